"""PSNR / SSIM against hand-computed values, scikit-image, and the published bicubic Set5 x4 numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from srlib.degradation import imresize
from srlib.imgutil import modcrop, rgb2y
from srlib.metrics import psnr_rgb, psnr_y, ssim_map, ssim_y

Y_GAIN = (65.481 + 128.553 + 24.966) / 255.0  # = 219 / 255: Y change per unit change of all three channels
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _skimage_ssim(a: np.ndarray, b: np.ndarray, full: bool = False):
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, full=full
    )


@pytest.fixture
def pair():
    rng = np.random.default_rng(1234)
    hr = rng.integers(20, 200, size=(40, 48, 3), dtype=np.uint8)
    noise = rng.normal(0, 8, size=hr.shape)
    sr = np.clip(np.round(hr + noise), 0, 255).astype(np.uint8)
    return hr, sr


def test_psnr_constant_offset_by_hand(pair):
    hr, _ = pair
    d = 3
    sr = hr + np.uint8(d)
    assert psnr_rgb(hr, sr, 0) == pytest.approx(10 * math.log10(255**2 / d**2), abs=1e-10)
    # Every channel +d moves Y by d * 219/255 and the gray value by exactly d.
    assert psnr_y(hr, sr, 0) == pytest.approx(10 * math.log10(255**2 / (d * Y_GAIN) ** 2), abs=1e-9)
    assert psnr_y(hr, sr, 0, gray=True) == pytest.approx(10 * math.log10(255**2 / d**2), abs=1e-9)


def test_identical_images(pair):
    hr, _ = pair
    assert psnr_y(hr, hr.copy(), 2) == math.inf
    assert psnr_rgb(hr, hr.copy(), 2) == math.inf
    assert ssim_y(hr, hr.copy(), 2) == pytest.approx(1.0, abs=1e-12)


def test_crop_border_is_honoured():
    hr = np.full((30, 32, 3), 100, dtype=np.uint8)
    sr = hr.copy()
    sr[:4, :, :] = 110  # differences only in a 4-px band at the top
    assert psnr_rgb(hr, sr, 4) == math.inf
    assert psnr_y(hr, sr, 4) == math.inf
    assert ssim_y(hr, sr, 4) == pytest.approx(1.0, abs=1e-12)
    mse = (4 * 32 * 3 * 10**2) / (30 * 32 * 3)
    assert psnr_rgb(hr, sr, 0) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-10)
    # crop 3 keeps one differing row out of 24: mse = 24 * 1 * 10^2 / (24 * 26) on each channel.
    mse3 = (26 * 10**2) / (24 * 26)
    assert psnr_rgb(hr, sr, 3) == pytest.approx(10 * math.log10(255**2 / mse3), abs=1e-10)


def test_shape_mismatch_raises(pair):
    hr, sr = pair
    with pytest.raises(ValueError, match=r"\(40, 48, 3\).*\(40, 47, 3\)"):
        psnr_y(hr, sr[:, :47], 0)
    with pytest.raises(ValueError, match="shapes differ"):
        ssim_y(hr, sr[:39], 0)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_rgb(hr, sr[..., :2], 0)
    with pytest.raises(ValueError):
        psnr_y(hr[..., 0], sr[..., 0], 0)  # not (H, W, 3)


def test_ssim_of_constant_images_by_hand():
    # Constant images: every local variance / covariance is 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    hr = np.full((20, 20, 3), 100, dtype=np.uint8)
    sr = np.full((20, 20, 3), 110, dtype=np.uint8)
    a, b = 16 + 100 * Y_GAIN, 16 + 110 * Y_GAIN
    assert ssim_y(hr, sr, 0) == pytest.approx((2 * a * b + C1) / (a * a + b * b + C1), abs=1e-12)
    assert ssim_y(hr, sr, 0, gray=True) == pytest.approx((2 * 100 * 110 + C1) / (100**2 + 110**2 + C1), abs=1e-12)


def test_ssim_matches_skimage(pair):
    hr, sr = pair
    a, b = rgb2y(hr), rgb2y(sr)
    ref_mean, ref_map = _skimage_ssim(a, b, full=True)
    # skimage filters with 'reflect' padding and then averages the map without its 5-px border: that interior
    # uses no padded pixel, so it is exactly BasicSR's 'valid' SSIM.
    assert ssim_y(hr, sr, 0) == pytest.approx(ref_mean, abs=1e-10)
    np.testing.assert_allclose(ssim_map(a, b), ref_map[5:-5, 5:-5], atol=1e-10)
    assert ssim_y(hr, sr, 3) == pytest.approx(_skimage_ssim(a[3:-3, 3:-3], b[3:-3, 3:-3]), abs=1e-10)


def test_gray_flag_scores_gray_values():
    rng = np.random.default_rng(7)
    g1 = rng.integers(0, 256, size=(36, 36), dtype=np.uint8)
    g2 = np.clip(g1.astype(int) + rng.integers(-6, 7, size=g1.shape), 0, 255).astype(np.uint8)
    hr, sr = np.repeat(g1[..., None], 3, axis=2), np.repeat(g2[..., None], 3, axis=2)
    mse = np.mean((g1.astype(float)[2:-2, 2:-2] - g2.astype(float)[2:-2, 2:-2]) ** 2)
    assert psnr_y(hr, sr, 2, gray=True) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)
    assert ssim_y(hr, sr, 2, gray=True) == pytest.approx(
        _skimage_ssim(g1[2:-2, 2:-2].astype(float), g2[2:-2, 2:-2].astype(float)), abs=1e-10
    )
    # Through Y the differences shrink by 219/255, i.e. PSNR rises by 20 log10(255/219).
    assert psnr_y(hr, sr, 2) - psnr_y(hr, sr, 2, gray=True) == pytest.approx(20 * math.log10(255 / 219), abs=1e-9)


def test_float_input_on_255_scale(pair):
    hr, sr = pair
    assert psnr_y(hr.astype(np.float32), sr.astype(np.float64), 1) == pytest.approx(psnr_y(hr, sr, 1), abs=1e-9)


@pytest.mark.needs_data
def test_bicubic_set5_x4_matches_published(shared_data):
    """Bicubic Set5 x4: published 28.42 dB / 0.8104 (e.g. EDSR / RCAN tables; MATLAB evaluation)."""
    data = shared_data
    if not (data / "Set5" / "LR_bicubic" / "X4").is_dir():
        pytest.skip(f"Set5/LR_bicubic/X4 not in the data root {data}")
    psnrs, ssims = [], []
    for hr_path in sorted((data / "Set5" / "HR").glob("*.png")):
        hr = modcrop(np.asarray(Image.open(hr_path).convert("RGB")), 4)
        lr = np.asarray(Image.open(data / "Set5" / "LR_bicubic" / "X4" / f"{hr_path.stem}x4.png").convert("RGB"))
        lr_t = torch.from_numpy(lr.transpose(2, 0, 1).astype(np.float64))
        sr = imresize(lr_t, scale=4, quantize=True).numpy().transpose(1, 2, 0).astype(np.uint8)
        psnrs.append(psnr_y(hr, sr, 4))
        ssims.append(ssim_y(hr, sr, 4))
    assert np.mean(psnrs) == pytest.approx(28.42, abs=0.02)
    assert np.mean(ssims) == pytest.approx(0.8104, abs=0.0015)
