"""Widgets: the pure render function per kernel type, the explorer's wiring without a kernel (setting a control
calls the renderer with the new parameters; errors are shown, not raised), and the interactive switch."""

import asyncio
import base64
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


# ---------------------------------------------------------------- what every explorer shares


def _dropdowns(box):
    import ipywidgets as w

    return {name: c for name, c in box.controls.items() if isinstance(c, w.Dropdown)}


def _assert_every_choice_has_a_visible_label(box):
    """Select every option of every dropdown: the box must show its label (ipywidgets shows an empty box when the
    value is None, which it takes for "nothing selected")."""
    for name, d in _dropdowns(box).items():
        for label, value in zip(d._options_labels, d._options_values, strict=True):
            d.value = value
            assert d.index is not None and d.label == label and label.strip(), (name, label, value)


def _embedding_explorer(monkeypatch, calls):
    from srlib import degradation as D

    def fake(model, images, names, layer, degradations, **kw):
        calls.append({"layer": layer, **kw})
        return Figure()

    monkeypatch.setattr(widgets, "render_embedding", fake)
    crops = {"a": _img(32, 32), "b": _img(32, 32, seed=1)}
    degs = {"bicubic": D.Degradation(4), "iso 2": D.Degradation(4, D.IsoGaussian(2.0))}
    return widgets.embedding_explorer(None, crops, degs, [None, 0, 1, 2], n_locations=None)


def test_dropdown_choices_none_show_their_label(monkeypatch):
    pytest.importorskip("ipywidgets")
    calls = []
    box = _embedding_explorer(monkeypatch, calls)
    # the initial choices are None ("output" layer, "all" locations) and are shown, not an empty box
    assert box.controls["layer"].label == "output" and box.controls["locations"].label == "all"
    assert calls[-1]["layer"] is None and calls[-1]["n_locations"] is None
    _assert_every_choice_has_a_visible_label(box)
    box.controls["layer"].value = 1
    box.controls["locations"].value = 16
    assert calls[-1]["layer"] == 1 and calls[-1]["n_locations"] == 16
    box.controls["layer"].index = 0  # what the browser sends when "output" is picked
    box.controls["locations"].index = len(widgets.LOCATION_CHOICES) - 1
    assert calls[-1]["layer"] is None and calls[-1]["n_locations"] is None
    assert box.controls["layer"].label == "output" and box.controls["locations"].label == "all"
    # the other explorers' dropdowns too
    _assert_every_choice_has_a_visible_label(widgets.degradation_explorer(_img(), scale=4, params={"crop": 32}))


def test_explorer_shows_a_png_and_a_static_copy_when_displayed(monkeypatch):
    pytest.importorskip("ipywidgets")
    import IPython.display

    box = widgets.degradation_explorer(_img(64, 64), scale=2, params={"crop": 48})
    first = bytes(box.image.value)
    assert first == box.static_png and first.startswith(b"\x89PNG") and box.redraws == 1
    # the PNG is the figure the pure function draws for the same values
    fig = widgets.render_degradation(_img(64, 64), {**widgets.DEFAULT_PARAMS, "scale": 2, "crop": 48})
    assert first == viz.figure_png(fig)
    box.controls["sigma"].value = 1.0
    assert bytes(box.image.value) != first and box.static_png == first and box.redraws == 2
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False, **kw: shown.append((obj, raw)))
    box._ipython_display_()
    (live, raw1), (static, raw2) = shown
    assert raw1 and raw2
    assert live["application/vnd.jupyter.widget-view+json"]["model_id"] == box.model_id
    assert base64.b64decode(static["image/png"]) == first
    # the live widget carries the class and the rule that hide the static copy while it is on the page
    assert "srlib-explorer" in box._dom_classes
    css = " ".join(c.value for c in box.children if hasattr(c, "value") and isinstance(c.value, str))
    assert ".jp-OutputArea-child:has(.srlib-explorer) + .jp-OutputArea-child" in css and "display: none" in css


def test_slow_redraws_are_debounced_on_a_running_loop(monkeypatch):
    pytest.importorskip("ipywidgets")
    drawn = []
    real = widgets.render_degradation

    def spy(hr, params):
        drawn.append(params["sigma"])
        return real(hr, params)

    monkeypatch.setattr(widgets, "render_degradation", spy)
    box = widgets.degradation_explorer(_img(64, 64), scale=2, params={"crop": 32})
    assert len(drawn) == 1
    box._redraw.slow_s, box._redraw.delay_s = 0.0, 0.05  # every draw counts as slow; a short pause

    async def arrow_keys():
        for v in (2.5, 2.6, 2.7, 2.8):  # four presses in a row: no draw yet
            box.controls["sigma"].value = v
        assert len(drawn) == 1
        await asyncio.sleep(0.3)
        assert drawn[1:] == [2.8]  # one draw, with the last value
        box.controls["sigma"].value = 1.0
        await asyncio.sleep(0.3)

    asyncio.run(arrow_keys())
    assert drawn[1:] == [2.8, 1.0] and box.redraws == 3 and "σ=1" in box.status.value
    # fast draws, or no running loop (scripts, tests): drawn at once
    box._redraw.slow_s = 10.0
    box.controls["sigma"].value = 1.5
    assert drawn[-1] == 1.5


def test_errors_hide_the_figure_and_show_the_message(monkeypatch):
    pytest.importorskip("ipywidgets")
    box = widgets.degradation_explorer(_img(64, 64), scale=2, params={"crop": 32})
    box.controls["kernel"].value = "aniso"
    box.controls["l1"].value = 0.1
    box.controls["l2"].value = 0.1
    monkeypatch.setattr(widgets, "render_degradation", lambda hr, p: 1 / 0)
    box.controls["noise"].value = 3.0
    assert "ZeroDivisionError" in box.status.value and "Traceback" in box.message.value
    assert box.image.layout.display == "none"
