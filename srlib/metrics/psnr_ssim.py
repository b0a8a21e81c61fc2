"""PSNR and SSIM with BasicSR's ``calculate_psnr`` / ``calculate_ssim`` conventions (no OpenCV).

Conventions (see DESIGN.md, "Metrics"):

* Inputs are ``np.ndarray`` of shape (H, W, 3), RGB, uint8 or float on the 0..255 scale, already mod-cropped
  by the caller (HR cropped to a multiple of the scale, SR rounded to 8 bits).
* ``crop_border`` pixels are shaved from every side before scoring (use the scale factor).
* Y channel = ITU-R BT.601 studio luma (16..235) as MATLAB's ``rgb2ycbcr``, in float64, not rounded
  (:func:`srlib.imgutil.rgb2y`).
* ``gray=True`` is for an HR that was a 1-channel file (Set14 ``bridge``): MATLAB evaluation scripts call
  ``rgb2ycbcr`` only on 3-channel images and score a 1-channel image on its gray values directly. Here both
  images are reduced with :func:`srlib.imgutil.rgb2gray` (full-range luma, which equals the gray value when
  the three channels are equal) instead of the studio-range Y formula. Scoring such a file through Y
  compresses its range by 219/255 and shifts PSNR by ~1.3 dB for that image.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d

from srlib.imgutil import rgb2gray, rgb2y

__all__ = ["psnr_y", "psnr_rgb", "ssim_y", "ssim_map", "gaussian_window_1d"]

_DATA_RANGE = 255.0
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_SSIM_WIN = 11
_SSIM_SIGMA = 1.5


def _check_pair(hr: np.ndarray, sr: np.ndarray, crop_border: int) -> None:
    """Validate two (H, W, 3) images of equal shape and a non-negative border that leaves pixels."""
    hr_shape, sr_shape = np.shape(hr), np.shape(sr)
    if hr_shape != sr_shape:
        raise ValueError(f"image shapes differ: hr {hr_shape} vs sr {sr_shape}")
    if len(hr_shape) != 3 or hr_shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) RGB images, got hr {hr_shape} and sr {sr_shape}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if 2 * crop_border >= min(hr_shape[0], hr_shape[1]):
        raise ValueError(f"crop_border={crop_border} leaves no pixels of a {hr_shape[0]}x{hr_shape[1]} image")


def _shave(img: np.ndarray, crop_border: int) -> np.ndarray:
    """Remove ``crop_border`` pixels from each side of the first two axes."""
    if crop_border == 0:
        return img
    return img[crop_border:-crop_border, crop_border:-crop_border, ...]


def _luma(img: np.ndarray, gray: bool) -> np.ndarray:
    """(H, W, 3) 0..255 -> (H, W) float64: studio Y (default) or the gray value (``gray=True``)."""
    return rgb2gray(img) if gray else rgb2y(img)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two float64 arrays on the 0..255 scale; ``inf`` when they are identical."""
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * math.log10(_DATA_RANGE**2 / mse)


def psnr_y(hr: np.ndarray, sr: np.ndarray, crop_border: int, gray: bool = False) -> float:
    """PSNR (dB) on the Y channel, BasicSR ``calculate_psnr(..., test_y_channel=True)`` conventions.

    ``PSNR = 10 log10(255^2 / MSE)`` with the MSE over the Y (or gray) values of the shaved images.

    Args:
        hr: ground truth, (H, W, 3) RGB, uint8 or float on the 0..255 scale.
        sr: restored image, same shape and scale as ``hr``.
        crop_border: pixels removed from each of the four sides before scoring (usually the scale).
        gray: score the gray value (:func:`srlib.imgutil.rgb2gray`) instead of studio Y; use it when the HR
            file was a 1-channel image (Set14 ``bridge``), as MATLAB evaluations do.

    Returns:
        PSNR in dB as a Python float; ``inf`` for identical inputs.

    Raises:
        ValueError: if the shapes differ or are not (H, W, 3), or the border leaves no pixels.
    """
    _check_pair(hr, sr, crop_border)
    a = _shave(_luma(np.asarray(hr), gray), crop_border)
    b = _shave(_luma(np.asarray(sr), gray), crop_border)
    return _psnr(a, b)


def psnr_rgb(hr: np.ndarray, sr: np.ndarray, crop_border: int) -> float:
    """PSNR (dB) over all three RGB channels, BasicSR ``calculate_psnr(..., test_y_channel=False)``.

    Args:
        hr: ground truth, (H, W, 3) RGB, uint8 or float on the 0..255 scale.
        sr: restored image, same shape and scale as ``hr``.
        crop_border: pixels removed from each of the four sides before scoring.

    Returns:
        PSNR in dB as a Python float (data range 255); ``inf`` for identical inputs.

    Raises:
        ValueError: if the shapes differ or are not (H, W, 3), or the border leaves no pixels.
    """
    _check_pair(hr, sr, crop_border)
    a = _shave(np.asarray(hr, dtype=np.float64), crop_border)
    b = _shave(np.asarray(sr, dtype=np.float64), crop_border)
    return _psnr(a, b)


def gaussian_window_1d(size: int = _SSIM_WIN, sigma: float = _SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian ``exp(-(i - c)^2 / (2 sigma^2))``, i = 0..size-1 (``cv2.getGaussianKernel``)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 2-D correlation with ``outer(g, g)``, keeping only the 'valid' region (no padding used)."""
    r = (len(g) - 1) // 2
    out = correlate1d(img, g, axis=0, mode="constant")
    out = correlate1d(out, g, axis=1, mode="constant")
    return out[r:-r, r:-r]


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM map of two 2-D float images on the 0..255 scale ('valid' region only).

    Wang et al., "Image quality assessment: from error visibility to structural similarity", IEEE TIP 2004,
    Eq. 13, with local statistics from an 11x11 Gaussian window (sigma 1.5) and population (biased) variances,
    C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2. The map is (H - 10, W - 10): 5 px are dropped per side.

    Args:
        a, b: (H, W) arrays, same shape, H and W >= 11.

    Returns:
        (H - 10, W - 10) float64 SSIM map.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two 2-D arrays of equal shape, got {a.shape} and {b.shape}")
    if min(a.shape) < _SSIM_WIN:
        raise ValueError(f"SSIM needs images of at least {_SSIM_WIN}x{_SSIM_WIN} pixels, got {a.shape}")
    c1 = (_SSIM_K1 * _DATA_RANGE) ** 2
    c2 = (_SSIM_K2 * _DATA_RANGE) ** 2
    g = gaussian_window_1d()
    mu_a = _filter_valid(a, g)
    mu_b = _filter_valid(b, g)
    mu_a2, mu_b2, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a = _filter_valid(a * a, g) - mu_a2
    var_b = _filter_valid(b * b, g) - mu_b2
    cov_ab = _filter_valid(a * b, g) - mu_ab
    return ((2.0 * mu_ab + c1) * (2.0 * cov_ab + c2)) / ((mu_a2 + mu_b2 + c1) * (var_a + var_b + c2))


def ssim_y(hr: np.ndarray, sr: np.ndarray, crop_border: int, gray: bool = False) -> float:
    """Mean SSIM on the Y channel, BasicSR ``calculate_ssim(..., test_y_channel=True)`` conventions.

    Wang et al. 2004 (IEEE TIP), Eq. 13 averaged over the 'valid' SSIM map (see :func:`ssim_map`), computed in
    float64 after shaving ``crop_border`` pixels from each side.

    Args:
        hr: ground truth, (H, W, 3) RGB, uint8 or float on the 0..255 scale.
        sr: restored image, same shape and scale as ``hr``.
        crop_border: pixels removed from each of the four sides before scoring (usually the scale).
        gray: score the gray value instead of studio Y (1-channel HR files; see :func:`psnr_y`).

    Returns:
        SSIM as a Python float in [-1, 1]; 1.0 for identical inputs.

    Raises:
        ValueError: if the shapes differ or are not (H, W, 3), or fewer than 11x11 pixels remain.
    """
    _check_pair(hr, sr, crop_border)
    a = _shave(_luma(np.asarray(hr), gray), crop_border)
    b = _shave(_luma(np.asarray(sr), gray), crop_border)
    return float(ssim_map(a, b).mean())
