"""Widgets: the pure render function per kernel type, the explorer's wiring without a kernel (setting a control
calls the renderer with the new parameters; errors are shown, not raised), and the interactive switch."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from srlib import degradation as D
from srlib import viz, widgets


def _img(h=64, w=64, seed=0) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).numpy()


# ---------------------------------------------------------------- resolve_interactive


def test_resolve_interactive(monkeypatch):
    monkeypatch.delenv("SRLIB_INTERACTIVE", raising=False)
    assert widgets.resolve_interactive(None) is True
    assert widgets.resolve_interactive(False) is False and widgets.resolve_interactive(True) is True
    for value, expected in (("0", False), ("1", True), ("false", False), ("True", True), ("", True)):
        monkeypatch.setenv("SRLIB_INTERACTIVE", value)
        assert widgets.resolve_interactive(None) is expected, value
    monkeypatch.setenv("SRLIB_INTERACTIVE", "0")
    assert widgets.resolve_interactive(True) is True  # an explicit value wins over the environment
    monkeypatch.setenv("SRLIB_INTERACTIVE", "maybe")
    with pytest.raises(ValueError, match="SRLIB_INTERACTIVE"):
        widgets.resolve_interactive(None)
    assert widgets.resolve_interactive("0") is False


def test_import_needs_no_jupyter():
    code = "import sys, srlib.widgets, srlib.viz; print(any(m in sys.modules for m in ('ipywidgets', 'IPython')))"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root, env=env)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- pure functions


def test_degradation_from_params():
    assert widgets.degradation_from_params({"kernel": "none"}) == D.Degradation(4)
    d = widgets.degradation_from_params({"kernel": "aniso", "l1": 2, "l2": 1, "theta": 10, "noise": 5, "scale": 3,
                                         "resize": "dasr", "convention": "cdsr"})
    assert d == D.Degradation(3, D.AnisoGaussian(2.0, 1.0, 10.0), 5.0, resize="dasr", convention="cdsr")
    assert widgets.degradation_from_params({"sigma": 1.2}).kernel == D.IsoGaussian(1.2)
    with pytest.raises(D.DegradationError, match="kernel type"):
        widgets.degradation_from_params({"kernel": "box"})
    with pytest.raises(D.DegradationError, match="sigma"):
        widgets.degradation_from_params({"sigma": 0.0})
    with pytest.raises(ValueError, match="unknown explorer parameters"):
        widgets.degradation_from_params({"sgima": 1.0})


@pytest.mark.parametrize("kernel", ["none", "iso", "aniso"])
def test_render_degradation_each_kernel_type(kernel):
    hr = _img(70, 66)
    params = {"kernel": kernel, "noise": 10.0, "seed": 1, "crop": 48}
    fig = widgets.render_degradation(hr, params)
    assert isinstance(fig, Figure)
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(images) == (2 if kernel == "none" else 3)
    # the LR shown is exactly the seeded degradation of the central crop
    crop = viz.center_crop(hr, 48, 4)
    _, lr = viz.degrade_image(crop, widgets.degradation_from_params(params), seed=1)
    np.testing.assert_array_equal(images[-2], crop)
    np.testing.assert_array_equal(images[-1], lr.repeat(4, 0).repeat(4, 1))
    if kernel != "none":
        np.testing.assert_allclose(images[0], widgets.degradation_from_params(params).kernel_tensor().numpy())
    assert "seed 1" in fig.get_suptitle() and "noise 10" in fig.get_suptitle()


def test_render_degradation_errors():
    with pytest.raises(D.DegradationError, match="too small"):
        widgets.render_degradation(_img(8, 8), {"scale": 2})


# ---------------------------------------------------------------- wiring (no kernel needed)


@pytest.fixture
def spy(monkeypatch):
    calls = []
    real = widgets.render_degradation

    def fake(hr, params):
        calls.append(dict(params))
        return real(hr, params)

    monkeypatch.setattr(widgets, "render_degradation", fake)
    return calls


def test_explorer_controls_fire_the_renderer(spy):
    pytest.importorskip("ipywidgets")
    hr = _img(64, 64)
    box = widgets.degradation_explorer(hr, scale=2, params={"crop": 48})
    assert len(spy) == 1 and spy[0]["scale"] == 2 and spy[0]["crop"] == 48  # drawn once on creation
    assert set(box.controls) == {"kernel", "sigma", "l1", "l2", "theta", "noise", "scale", "resize", "convention",
                                 "seed"}
    for c in box.controls.values():
        if hasattr(c, "continuous_update"):
            assert c.continuous_update is False
    box.controls["sigma"].value = 1.2
    assert spy[-1]["sigma"] == 1.2 and spy[-1]["kernel"] == "iso"
    box.controls["kernel"].value = "aniso"
    assert spy[-1]["kernel"] == "aniso" and box.controls["sigma"].disabled and not box.controls["l1"].disabled
    box.controls["theta"].value = 45.0
    box.controls["noise"].value = 15.0
    box.controls["scale"].value = 3
    box.controls["resize"].value = "sfold"
    box.controls["convention"].value = "cdsr"
    box.controls["seed"].value = 7
    assert spy[-1] == {"kernel": "aniso", "sigma": 1.2, "l1": 3.5, "l2": 1.5, "theta": 45.0, "noise": 15.0,
                       "scale": 3, "resize": "sfold", "convention": "cdsr", "seed": 7, "crop": 48}
    assert len(spy) == 9
    assert "aniso" in box.status.value and "noise 15" in box.status.value


def test_explorer_shows_errors_instead_of_raising(monkeypatch):
    pytest.importorskip("ipywidgets")

    def failing(hr, params):
        if params["noise"] > 20:
            raise D.DegradationError("noise must be a finite level")
        if params["noise"] == 13:
            raise RuntimeError("unexpected bug")
        return Figure()

    monkeypatch.setattr(widgets, "render_degradation", failing)
    box = widgets.degradation_explorer(_img(), scale=4)
    box.controls["noise"].value = 30.0  # must not raise
    assert "DegradationError" in box.status.value and "noise must be a finite level" in box.status.value
    box.controls["noise"].value = 13.0
    assert "RuntimeError" in box.status.value
    box.controls["noise"].value = 5.0  # recovers
    assert "Error" not in box.status.value and "noise 5" in box.status.value


def test_explorer_real_error_from_a_tiny_image():
    pytest.importorskip("ipywidgets")
    box = widgets.degradation_explorer(_img(8, 8), scale=2)
    assert "DegradationError" in box.status.value and "too small" in box.status.value
