"""Degradation model shared by every notebook: blur -> downsample -> noise -> quantise.

All conventions are fixed here once (``DESIGN.md``, "Degradation conventions"):

* **Order.** Blur with a 21x21 kernel and reflect padding, downsample by the integer ``scale``, add white Gaussian
  noise on the 0..255 scale, round half to even and clamp to [0, 255] (DASR's ``SRMDPreprocessing`` order).
* **Images.** Tensors of shape (B, 3, H, W), float, values on the 0..255 scale, any device. HR height and width must
  be multiples of ``scale`` (crop first with :func:`srlib.imgutil.modcrop`).
* **Kernel widths are standard deviations.** Isotropic: k ~ exp(-(x^2 + y^2) / (2 sigma^2)). Anisotropic:
  Sigma = R(theta) diag(l1^2, l2^2) R(theta)^T, k ~ exp(-p^T Sigma^-1 p / 2), theta in degrees for fixed kernels.
  Kernels are sampled on the integer grid -10..10 and normalised to sum 1.
* **CDSR's convention** (``convention="cdsr"``) is a named option: anisotropic l1, l2 are *variances*
  (eigenvalues of Sigma) and every kernel is computed at size (k - s + 1) and placed in the top-left corner of a
  k x k array, which centres it for s-fold decimation (IKC/MANet).
* **Bicubic** (``resize="matlab"``, the default) is MATLAB's ``imresize`` exactly: cubic kernel a = -0.5, symmetric
  (mirror) borders, antialiasing when shrinking, output size ceil(H * scale), the height pass first. For 8-bit
  input (no blur) the result of each pass is rounded half away from zero and clipped, as MATLAB does for uint8
  images; this reproduces ``Set5/LR_bicubic`` bit for bit. Blurred (float) images are resized in float.
  ``resize="dasr"`` is DASR's port (clamped instead of mirrored borders, float), ``resize="sfold"`` keeps the
  top-left pixel of every s x s block (CDSR).
* **Spatially variant** degradation (CRL-SR Table 2): the blur width and/or the noise level rise linearly from the
  left to the right edge. The image is blurred at ``levels`` quantised widths and each column is the linear blend of
  the two nearest levels (exact at the levels, ``levels`` x memory, no per-pixel kernel tensor).

A :class:`Degradation` is a frozen description: print it, save it with :meth:`Degradation.to_dict`, rebuild it with
:meth:`Degradation.from_dict`, and :meth:`Degradation.apply` it with a seeded ``torch.Generator`` to reproduce the
same LR image exactly. :class:`DegradationSpace` samples random degradations for training; :func:`apply_batch`
applies one degradation per sample of a batch in a single pass.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

KERNEL_SIZE = 21
RESIZE_MODES = ("matlab", "dasr", "sfold")
CONVENTIONS = ("std", "cdsr")

# Training ranges of the isotropic kernel width (DASR paper Sec. 4.1; confirmed in DASR issue #23).
ISO_TRAIN_SIGMA = {2: (0.2, 2.0), 3: (0.2, 3.0), 4: (0.2, 4.0)}
# DASR Table 2 test widths per scale (0 = bicubic only).
DASR_ISO_TEST_SIGMA = {2: (0.0, 0.6, 1.2, 1.8), 3: (0.0, 0.8, 1.6, 2.4), 4: (0.0, 1.2, 2.4, 3.6)}
# The 9 anisotropic test kernels (l1, l2, theta in degrees) of DASR Table 3 / CRL-SR Table 4 (methods.md 1.1).
ANISO9 = (
    (2.0, 0.2, 0.0), (2.0, 1.0, 10.0), (3.5, 1.5, 30.0), (3.5, 2.0, 45.0), (3.5, 2.0, 90.0),
    (4.0, 1.5, 120.0), (4.0, 2.0, 135.0), (4.0, 3.0, 165.0), (4.0, 4.0, 180.0),
)
# CRL-SR Table 3: unseen isotropic widths x heavy noise levels.
CRL_UNSEEN_SIGMA = (4.0, 4.5, 5.0, 5.5, 6.0)
CRL_UNSEEN_NOISE = (90.0, 95.0, 100.0)
# CDSR's anisotropic training ranges of the kernel *variances* (its convention), per scale: MANet's rule
# [0.175 s, 2.5 s], which CDSR's README command states for x2 (0.35..5) and hard-codes in its spatially variant code
# (research/methods.md 1.2); x3 and x4 follow the rule.
CDSR_ANISO_VARIANCE = {2: (0.35, 5.0), 3: (0.525, 7.5), 4: (0.7, 10.0)}
# CDSR's training noise: probability that a sample is noise-free (``rate_cln``).
CDSR_CLEAN_PROB = 0.2
# Our stand-in for CDSR's unreleased test kernels (see cdsr_test_kernels): seed, kernels per scale, noise levels.
CDSR_TEST_SEED = 2022
CDSR_TEST_KERNELS = 9
CDSR_TEST_NOISE = {2: (0.0,), 3: (0.0,), 4: (0.0, 15.0)}


class DegradationError(ValueError):
    """Invalid degradation parameters or an image the degradation cannot be applied to."""


# --------------------------------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------------------------------


def _check_kernel_size(size: int, odd: bool = True) -> None:
    """Kernels that are convolved must have an odd size; CDSR's shifted kernels are generated at even sizes."""
    if not isinstance(size, int) or size < 1 or (odd and size % 2 == 0):
        raise DegradationError(f"kernel size must be a positive {'odd ' if odd else ''}integer, got {size!r}")


def _grid(size: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    r = (size - 1) / 2
    ax = torch.arange(size, dtype=dtype) - r
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return xx, yy


def _gaussian_from_cov(cov: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 2, 2) covariance -> (B, size, size) normalised Gaussian kernel (float64)."""
    xx, yy = _grid(size)
    p = torch.stack([xx, yy], dim=-1).reshape(-1, 2)  # (size*size, 2) as (x, y)
    inv = torch.linalg.inv(cov)  # (B, 2, 2)
    quad = torch.einsum("ni,bij,nj->bn", p, inv, p)
    k = torch.exp(-0.5 * quad).reshape(-1, size, size)
    return k / k.sum(dim=(1, 2), keepdim=True)


def _as_batch(v, name: str) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
    if not torch.all(torch.isfinite(t)) or torch.any(t <= 0):
        raise DegradationError(f"{name} must be finite and > 0, got {t.tolist()}")
    return t


def isotropic_gaussian_kernel(sigma, size: int = KERNEL_SIZE) -> torch.Tensor:
    """Isotropic Gaussian blur kernels, normalised to sum 1.

    Args:
        sigma: width (standard deviation, pixels), a float or a (B,) tensor; must be > 0.
        size: kernel size (21 in all three papers), centred at (size - 1) / 2.

    Returns:
        (size, size) float32 tensor for a scalar ``sigma``, else (B, size, size).
    """
    _check_kernel_size(size, odd=False)
    s = _as_batch(sigma, "kernel width sigma")
    xx, yy = _grid(size)
    k = torch.exp(-(xx**2 + yy**2)[None] / (2 * s[:, None, None] ** 2))
    k = (k / k.sum(dim=(1, 2), keepdim=True)).float()
    return k[0] if np.ndim(sigma) == 0 else k


def anisotropic_gaussian_kernel(l1, l2, theta_deg, size: int = KERNEL_SIZE, variances: bool = False) -> torch.Tensor:
    """Anisotropic Gaussian kernels with Sigma = R(theta) diag(l1^2, l2^2) R(theta)^T (DASR, DESIGN.md).

    Args:
        l1, l2: widths along the rotated axes (standard deviations, pixels; > 0), floats or (B,) tensors.
            With ``variances=True`` they are variances (CDSR's convention): Sigma = R diag(l1, l2) R^T.
        theta_deg: rotation angle in degrees, float or (B,).
        size: kernel size, centred at (size - 1) / 2.

    Returns:
        (size, size) float32 tensor for scalar arguments, else (B, size, size).
    """
    _check_kernel_size(size, odd=False)
    a, b = _as_batch(l1, "kernel width l1"), _as_batch(l2, "kernel width l2")
    th = torch.as_tensor(theta_deg, dtype=torch.float64).reshape(-1) * math.pi / 180
    a, b, th = torch.broadcast_tensors(a, b, th)
    ev = torch.stack([a, b], -1) if variances else torch.stack([a, b], -1) ** 2
    c, s = torch.cos(th), torch.sin(th)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (B, 2, 2)
    cov = rot @ torch.diag_embed(ev) @ rot.transpose(1, 2)
    k = _gaussian_from_cov(cov, size).float()
    scalar = np.ndim(l1) == 0 and np.ndim(l2) == 0 and np.ndim(theta_deg) == 0
    return k[0] if scalar else k


def shift_for_sfold(kernels: torch.Tensor, scale: int, size: int = KERNEL_SIZE) -> torch.Tensor:
    """Place (B, m, m) kernels with m = size - scale + 1 in the top-left corner of (B, size, size) (CDSR/IKC)."""
    m = kernels.shape[-1]
    if m != size - scale + 1:
        raise DegradationError(f"expected kernels of size {size - scale + 1} for scale {scale}, got {m}")
    return F.pad(kernels, (0, size - m, 0, size - m))


# --------------------------------------------------------------------------------------------------------------------
# Blur
# --------------------------------------------------------------------------------------------------------------------


def _check_images(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise DegradationError(f"expected a float tensor of shape (B, C, H, W) on the 0..255 scale, got {shape}")


def _check_fits(h: int, w: int, k: int) -> int:
    """Reflect padding needs the image to exceed the kernel radius; returns the radius."""
    r = k // 2
    if h <= r or w <= r:
        raise DegradationError(f"image of {h}x{w} pixels is too small for a {k}x{k} kernel (needs > {r} per side)")
    return r


def blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own kernel, reflect padding, output the same size.

    Args:
        x: (B, C, H, W) float images (0..255).
        kernels: (k, k) shared kernel or (B, k, k) one per image, k odd; H and W must exceed k // 2.

    Returns:
        (B, C, H, W) blurred images, same dtype and device as ``x``.
    """
    _check_images(x)
    b, c, h, w = x.shape
    k = kernels.shape[-1]
    _check_kernel_size(k)
    r = _check_fits(h, w, k)
    kernels = kernels.to(x.device, x.dtype)
    if kernels.ndim == 2:
        weight = kernels.expand(c, 1, k, k)
        return F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), weight, groups=c)
    if kernels.shape[0] != b:
        raise DegradationError(f"got {kernels.shape[0]} kernels for a batch of {b} images")
    weight = kernels[:, None].repeat_interleave(c, dim=0)  # (B*C, 1, k, k)
    y = F.conv2d(F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode="reflect"), weight, groups=b * c)
    return y.reshape(b, c, h, w)


# --------------------------------------------------------------------------------------------------------------------
# Bicubic resize (MATLAB imresize)
# --------------------------------------------------------------------------------------------------------------------


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB imresize's 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


@functools.lru_cache(maxsize=256)
def resize_matrix(
    in_len: int, out_len: int, scale: float, antialias: bool = True, border: str = "symmetric"
) -> torch.Tensor:
    """Dense (out_len, in_len) float64 CPU tensor M with out = M @ in along one axis (MATLAB ``contributions``).

    Output pixel i (1-based) samples input coordinate u = i / scale + (1 - 1 / scale) / 2. When shrinking with
    antialiasing the kernel is stretched to h(x) = scale * cubic(scale * x) (width 4 / scale). Weights are
    normalised to sum 1 per output pixel. ``border="symmetric"`` mirrors indices as MATLAB does (1..n, n..1);
    ``"replicate"`` clamps them (DASR's port).
    """
    if border not in ("symmetric", "replicate"):
        raise DegradationError(f"unknown border mode {border!r}")
    stretch = antialias and scale < 1
    width = 4.0 / scale if stretch else 4.0
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input indices
    dist = u[:, None] - idx
    weights = scale * _cubic(scale * dist) if stretch else _cubic(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)
    if border == "symmetric":
        mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
        idx0 = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    else:
        idx0 = np.clip(idx.astype(np.int64) - 1, 0, in_len - 1)
    m = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(m, (np.repeat(np.arange(out_len), taps), idx0.ravel()), weights.ravel())
    return torch.from_numpy(m)


def _round_uint8(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's conversion to uint8: round half away from zero, saturate to [0, 255].

    For x >= 0 rounding half away from zero is floor(x + 0.5); negative values saturate to 0 however they round.
    """
    return torch.floor_(x + 0.5).clamp_(0, 255)


def imresize(
    x: torch.Tensor,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    *,
    antialias: bool = True,
    quantize: bool = False,
    border: str = "symmetric",
) -> torch.Tensor:
    """MATLAB-exact bicubic ``imresize`` in torch, any scale, up or down.

    Args:
        x: (..., H, W) float tensor (0..255 for 8-bit semantics; any range in float mode).
        scale: resize factor (e.g. 1/4 to shrink by 4); output size ceil(H * scale) x ceil(W * scale).
        size: (out_h, out_w) instead of ``scale``; the factor per axis is then out / in, as in MATLAB.
        antialias: stretch the kernel when shrinking (MATLAB's default).
        quantize: treat the input as uint8 and round (half away from zero) and clip after *each* pass, as MATLAB
            does for uint8 images. Input must then be integer-valued in [0, 255].
        border: ``"symmetric"`` (MATLAB) or ``"replicate"`` (DASR's port).

    Returns:
        (..., out_h, out_w) tensor with the dtype of ``x`` (computed in float64 when ``quantize``).
    """
    if (scale is None) == (size is None):
        raise DegradationError("give exactly one of scale and size")
    h, w = x.shape[-2:]
    if scale is not None:
        if not scale > 0 or not math.isfinite(scale):
            raise DegradationError(f"resize factor must be finite and > 0, got {scale}")
        sh = sw = float(scale)
        out_h, out_w = math.ceil(h * sh - 1e-9), math.ceil(w * sw - 1e-9)
    else:
        out_h, out_w = (int(v) for v in size)
        if out_h < 1 or out_w < 1:
            raise DegradationError(f"output size must be positive, got {size}")
        sh, sw = out_h / h, out_w / w
    if out_h < 1 or out_w < 1:
        raise DegradationError(f"resizing {h}x{w} by {scale} gives an empty image")
    work = torch.float64 if quantize else x.dtype
    y = x.to(work)
    # MATLAB resizes the dimension with the smaller factor first; on a tie, the height.
    passes = [(-2, h, out_h, sh), (-1, w, out_w, sw)]
    if sw < sh:
        passes.reverse()
    for dim, n_in, n_out, s in passes:
        if n_in == n_out and s == 1:
            continue
        m = resize_matrix(n_in, n_out, s, antialias, border).to(y.device, work)
        y = torch.matmul(m, y) if dim == -2 else torch.matmul(y, m.T)
        if quantize:
            y = _round_uint8(y)
    return y.to(x.dtype)


def downsample(x: torch.Tensor, scale: int, mode: str = "matlab", quantize: bool = False) -> torch.Tensor:
    """Shrink (B, C, H, W) by the integer ``scale`` with one of :data:`RESIZE_MODES`.

    ``"matlab"``: MATLAB-exact bicubic (``quantize`` for 8-bit input); ``"dasr"``: DASR's clamped-border bicubic in
    float; ``"sfold"``: keep pixel (s*i, s*j) (CDSR's direct decimation).
    """
    if mode == "sfold":
        return x[..., ::scale, ::scale]
    if mode == "dasr":
        return imresize(x, 1 / scale, border="replicate")
    if mode == "matlab":
        return imresize(x, 1 / scale, quantize=quantize)
    raise DegradationError(f"unknown resize mode {mode!r}; choose from {RESIZE_MODES}")


# --------------------------------------------------------------------------------------------------------------------
# Spatially variant blur and noise
# --------------------------------------------------------------------------------------------------------------------


def column_ramp(start: float, end: float, width: int) -> torch.Tensor:
    """(width,) float64 values rising linearly from ``start`` at the left column to ``end`` at the right one."""
    if width == 1:
        return torch.tensor([float(start)], dtype=torch.float64)
    return start + (end - start) * torch.arange(width, dtype=torch.float64) / (width - 1)


def gaussian_blur_separable(x: torch.Tensor, sigma: float, size: int = KERNEL_SIZE) -> torch.Tensor:
    """Isotropic Gaussian blur as two 1-D passes (reflect padding), (B, C, H, W) -> (B, C, H, W).

    The normalised 2-D isotropic kernel is the outer product of the normalised 1-D kernel with itself, so this equals
    :func:`blur` with :func:`isotropic_gaussian_kernel` up to float round-off, at 2k instead of k^2 operations per
    pixel.
    """
    _check_images(x)
    _check_kernel_size(size)
    b, c, h, w = x.shape
    r = _check_fits(h, w, size)
    s = _as_batch(sigma, "kernel width sigma")[0]
    ax = torch.arange(size, dtype=torch.float64) - r
    k = torch.exp(-(ax**2) / (2 * s**2))
    k = (k / k.sum()).to(x.device, x.dtype)
    y = F.pad(x.reshape(b * c, 1, h, w), (r, r, r, r), mode="reflect")
    y = F.conv2d(F.conv2d(y, k.view(1, 1, 1, size)), k.view(1, 1, size, 1))
    return y.reshape(b, c, h, w)


def blur_width_ramp(x: torch.Tensor, start: float, end: float, levels: int = 32, size: int = KERNEL_SIZE):
    """Spatially variant isotropic blur whose width rises linearly from the left to the right edge (CRL-SR Table 2,
    after UDVD).

    The image is blurred once per quantised width ``linspace(start, end, levels)`` (separable Gaussian passes);
    column j takes the linear blend of the two levels around its width sigma_j, so it is exact where sigma_j is a
    level. Memory: two image copies; no per-pixel kernel tensor.

    Args:
        x: (B, C, H, W) float images (0..255).
        start, end: kernel widths (standard deviations, > 0) at the left and right columns.
        levels: number of quantised widths (>= 2 unless start == end).

    Returns:
        (B, C, H, W) blurred images.
    """
    _check_images(x)
    _as_batch([start, end], "ramp kernel width")
    if levels < 2 and start != end:
        raise DegradationError(f"a width ramp needs at least 2 levels, got {levels}")
    w = x.shape[-1]
    sig = column_ramp(start, end, w)
    if start == end:
        return gaussian_blur_separable(x, start, size)
    grid = torch.linspace(start, end, levels, dtype=torch.float64)
    # position of every column on the level grid: level index lo and blend weight t towards lo + 1
    pos = (sig - start) / (end - start) * (levels - 1)
    lo = pos.floor().clamp(max=levels - 1).long().to(x.device)
    t = (pos - pos.floor()).to(x.device, x.dtype)
    out = torch.zeros_like(x)
    for j, s in enumerate(grid.tolist()):
        weight = torch.where(lo == j, 1 - t, torch.zeros_like(t)) + torch.where(lo == j - 1, t, torch.zeros_like(t))
        if torch.any(weight != 0):
            cols = torch.nonzero(weight).flatten()
            c0, c1 = int(cols.min()), int(cols.max()) + 1
            # only the columns this level contributes to (plus the kernel radius) need blurring
            a, b = max(0, c0 - size), min(w, c1 + size)
            if b - a <= size // 2:
                a, b = 0, w
            blurred = gaussian_blur_separable(x[..., a:b], s, size)[..., c0 - a : c1 - a]
            out[..., c0:c1] += blurred * weight[c0:c1]
    return out


def add_noise(x: torch.Tensor, std: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Add white Gaussian noise on the 0..255 scale: x + std * N(0, 1), independent per pixel and channel.

    Args:
        x: (B, C, H, W) float images.
        std: noise standard deviation broadcastable to ``x`` ((B, 1, 1, 1) per image, (1, 1, 1, W) per column).
        generator: the only source of randomness; draws happen on the generator's device.
    """
    n = torch.randn(x.shape, generator=generator, dtype=torch.float32, device=generator.device)
    return x + std.to(x.device, x.dtype) * n.to(x.device, x.dtype)


def quantize8(x: torch.Tensor) -> torch.Tensor:
    """Round to integers (half to even) and clamp to [0, 255]: what saving an 8-bit PNG does."""
    return x.round().clamp(0, 255)


# --------------------------------------------------------------------------------------------------------------------
# Degradation descriptions
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IsoGaussian:
    """Isotropic Gaussian blur of width ``sigma`` (standard deviation, pixels)."""

    sigma: float
    type: str = field(default="iso", init=False)

    def __post_init__(self):
        _as_batch(self.sigma, "kernel width sigma")

    def kernel(self, size: int, convention: str) -> torch.Tensor:
        return isotropic_gaussian_kernel(self.sigma, size)

    @property
    def label(self) -> str:
        return f"iso{self.sigma:g}"


@dataclass(frozen=True)
class AnisoGaussian:
    """Anisotropic Gaussian blur: widths ``l1``, ``l2`` (standard deviations; variances under CDSR's convention)
    along axes rotated by ``theta`` degrees."""

    l1: float
    l2: float
    theta: float
    type: str = field(default="aniso", init=False)

    def __post_init__(self):
        _as_batch([self.l1, self.l2], "kernel widths l1, l2")
        if not math.isfinite(self.theta):
            raise DegradationError(f"theta must be finite, got {self.theta}")

    def kernel(self, size: int, convention: str) -> torch.Tensor:
        return anisotropic_gaussian_kernel(self.l1, self.l2, self.theta, size, variances=convention == "cdsr")

    @property
    def label(self) -> str:
        return f"aniso{self.l1:g}-{self.l2:g}-{self.theta:g}"


@dataclass(frozen=True)
class WidthRamp:
    """Spatially variant isotropic blur, width rising from ``start`` (left edge) to ``end`` (right edge)."""

    start: float = 0.2
    end: float = 4.0
    levels: int = 32
    type: str = field(default="ramp", init=False)

    def __post_init__(self):
        _as_batch([self.start, self.end], "ramp kernel widths")
        if self.levels < 2:
            raise DegradationError(f"a width ramp needs at least 2 levels, got {self.levels}")

    @property
    def label(self) -> str:
        return f"ramp{self.start:g}-{self.end:g}"


KERNEL_TYPES = {"iso": IsoGaussian, "aniso": AnisoGaussian, "ramp": WidthRamp}


@dataclass(frozen=True)
class Degradation:
    """One fully specified degradation: blur -> downsample by ``scale`` -> noise -> round (see module docstring).

    Attributes:
        scale: integer downsampling factor (>= 1).
        kernel: ``None`` (no blur: pure bicubic), :class:`IsoGaussian`, :class:`AnisoGaussian` or :class:`WidthRamp`.
        noise: noise standard deviation on the 0..255 scale (>= 0); with ``noise_end`` the level at the left edge.
        noise_end: if set, the noise level rises linearly over LR columns from ``noise`` to ``noise_end``.
        resize: one of :data:`RESIZE_MODES`.
        convention: ``"std"`` (widths are standard deviations) or ``"cdsr"`` (variances, kernels shifted for s-fold).
        kernel_size: odd kernel size (21).
    """

    scale: int
    kernel: IsoGaussian | AnisoGaussian | WidthRamp | None = None
    noise: float = 0.0
    noise_end: float | None = None
    resize: str = "matlab"
    convention: str = "std"
    kernel_size: int = KERNEL_SIZE

    def __post_init__(self):
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, np.integer)) or self.scale < 1:
            raise DegradationError(f"scale must be an integer >= 1, got {self.scale!r}")
        object.__setattr__(self, "scale", int(self.scale))
        for name in ("noise", "noise_end"):
            v = getattr(self, name)
            if v is not None and (not math.isfinite(v) or v < 0):
                raise DegradationError(f"{name} must be a finite level >= 0 on the 0..255 scale, got {v}")
        if self.resize not in RESIZE_MODES:
            raise DegradationError(f"unknown resize mode {self.resize!r}; choose from {RESIZE_MODES}")
        if self.convention not in CONVENTIONS:
            raise DegradationError(f"unknown kernel convention {self.convention!r}; choose from {CONVENTIONS}")
        _check_kernel_size(self.kernel_size)
        if self.kernel is not None and not isinstance(self.kernel, tuple(KERNEL_TYPES.values())):
            raise DegradationError(f"kernel must be None or one of {list(KERNEL_TYPES)}, got {self.kernel!r}")
        if isinstance(self.kernel, WidthRamp) and self.convention == "cdsr":
            raise DegradationError("a width ramp is defined in the standard convention only")

    # -- description ------------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Short label used in file names, e.g. ``x4-iso1.2-n15`` or ``x4-bicubic``: ``x{scale}-{setting}``."""
        return f"x{self.scale}-{self.setting}"

    @property
    def setting(self) -> str:
        """The degradation without its scale, as in the ``setting`` column of tables: ``iso1.2-n15``, ``bicubic``."""
        parts = [self.kernel.label if self.kernel else "bicubic"]
        if self.noise_end is not None:
            parts.append(f"n{self.noise:g}-{self.noise_end:g}")
        elif self.noise:
            parts.append(f"n{self.noise:g}")
        if self.resize != "matlab":
            parts.append(self.resize)
        if self.convention != "std":
            parts.append(self.convention)
        return "-".join(parts)

    def to_dict(self) -> dict:
        """JSON-able dict that :meth:`from_dict` turns back into an equal :class:`Degradation`."""
        d = asdict(self)
        d["kernel"] = asdict(self.kernel) if self.kernel else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Degradation:
        d = dict(d)
        k = d.get("kernel")
        if k is not None:
            k = dict(k)
            kind = k.pop("type", None)
            if kind not in KERNEL_TYPES:
                raise DegradationError(f"unknown kernel type {kind!r}; choose from {list(KERNEL_TYPES)}")
            d["kernel"] = KERNEL_TYPES[kind](**k)
        return cls(**d)

    def kernel_tensor(self) -> torch.Tensor | None:
        """(k, k) float32 kernel actually convolved (after CDSR's s-fold shift), or None without blur/for ramps."""
        if self.kernel is None or isinstance(self.kernel, WidthRamp):
            return None
        if self.convention == "cdsr":
            small = self.kernel.kernel(self.kernel_size - self.scale + 1, self.convention)
            return shift_for_sfold(small[None], self.scale, self.kernel_size)[0]
        return self.kernel.kernel(self.kernel_size, self.convention)

    # -- application ------------------------------------------------------------------------------------------------
    def apply(self, hr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Degrade HR images.

        Args:
            hr: (B, 3, H, W) float tensor on the 0..255 scale; H and W multiples of ``scale``.
            generator: seeded generator for the noise (required when there is noise).

        Returns:
            (B, 3, H / scale, W / scale) float tensor, integer-valued in [0, 255] (what an 8-bit LR PNG holds).
        """
        _check_images(hr)
        self._check_size(hr)
        if isinstance(self.kernel, WidthRamp):
            x = blur_width_ramp(hr, self.kernel.start, self.kernel.end, self.kernel.levels, self.kernel_size)
        elif self.kernel is not None:
            x = blur(hr, self.kernel_tensor())
        else:
            x = hr
        # Pure bicubic on 8-bit input follows MATLAB's uint8 arithmetic; blurred images are resized in float.
        x = downsample(x, self.scale, self.resize, quantize=self.kernel is None and _is_uint8_valued(hr))
        if self.noise_end is not None:
            std = column_ramp(self.noise, self.noise_end, x.shape[-1]).view(1, 1, 1, -1)
            x = add_noise(x, std, _need(generator, self))
        elif self.noise > 0:
            x = add_noise(x, torch.tensor(self.noise).view(1, 1, 1, 1), _need(generator, self))
        return quantize8(x)

    def _check_size(self, hr: torch.Tensor) -> None:
        h, w = hr.shape[-2:]
        if h % self.scale or w % self.scale:
            raise DegradationError(
                f"HR size {h}x{w} is not divisible by the scale {self.scale}: crop it first (srlib.imgutil.modcrop)"
            )
        if h < self.scale or w < self.scale:
            raise DegradationError(f"HR size {h}x{w} is smaller than the scale {self.scale}")


def _is_uint8_valued(x: torch.Tensor) -> bool:
    return bool(torch.all(x == x.round()) and x.min() >= 0 and x.max() <= 255)


def _need(generator: torch.Generator | None, deg: Degradation) -> torch.Generator:
    if generator is None:
        raise DegradationError(f"{deg.name} adds noise: pass a seeded torch.Generator to apply() for reproducibility")
    return generator


def apply_batch(hr: torch.Tensor, degradations: list[Degradation], generator: torch.Generator) -> torch.Tensor:
    """Apply ``degradations[i]`` to ``hr[i]`` in one batched pass (training: one random degradation per sample).

    All degradations must share scale, resize mode, convention and kernel size, and use spatially uniform blur and
    noise. Samples without blur get a delta kernel (an exact identity), and every resize runs in float.

    Args:
        hr: (B, 3, H, W) float tensor (0..255), H and W multiples of the scale.
        degradations: B degradations.
        generator: seeded generator for the noise.

    Returns:
        (B, 3, H / s, W / s) float tensor, integer-valued in [0, 255].
    """
    _check_images(hr)
    if len(degradations) != hr.shape[0]:
        raise DegradationError(f"got {len(degradations)} degradations for a batch of {hr.shape[0]} images")
    first = degradations[0]
    shared = {(d.scale, d.resize, d.convention, d.kernel_size) for d in degradations}
    if len(shared) != 1:
        raise DegradationError(f"a batch must share scale, resize, convention and kernel size, got {sorted(shared)}")
    if any(isinstance(d.kernel, WidthRamp) or d.noise_end is not None for d in degradations):
        raise DegradationError("spatially variant degradations are applied one at a time with Degradation.apply")
    first._check_size(hr)
    delta = torch.zeros(first.kernel_size, first.kernel_size)
    delta[first.kernel_size // 2, first.kernel_size // 2] = 1
    kernels = torch.stack([d.kernel_tensor() if d.kernel is not None else delta for d in degradations])
    x = downsample(blur(hr, kernels), first.scale, first.resize)
    std = torch.tensor([d.noise for d in degradations], dtype=torch.float32).view(-1, 1, 1, 1)
    if torch.any(std > 0):
        x = add_noise(x, std, generator)
    return quantize8(x)


@dataclass(frozen=True)
class DegradationSpace:
    """Distribution of training degradations, sampled with a seeded ``torch.Generator``.

    Attributes:
        scale: downsampling factor.
        kernel: ``"iso"`` (width ~ U[sigma_range]), ``"aniso"`` (l1, l2 ~ U[aniso_range] independently, theta ~
            U[0, 180) degrees; under CDSR's convention l2 ~ U[min, l1] as variances) or ``"none"``.
        sigma_range: isotropic width range; ``None`` takes DASR's per-scale range :data:`ISO_TRAIN_SIGMA`.
        aniso_range: anisotropic width range (standard deviations; variances under ``convention="cdsr"``).
        noise_range: noise level ~ U[noise_range] on the 0..255 scale (DASR: (0, 25)).
        clean_prob: probability of a noise-free sample (CDSR: 0.2).
        resize, convention: as in :class:`Degradation`.
    """

    scale: int
    kernel: str = "iso"
    sigma_range: tuple[float, float] | None = None
    aniso_range: tuple[float, float] = (0.2, 4.0)
    noise_range: tuple[float, float] = (0.0, 0.0)
    clean_prob: float = 0.0
    resize: str = "matlab"
    convention: str = "std"

    def __post_init__(self):
        if self.kernel not in ("iso", "aniso", "none"):
            raise DegradationError(f"unknown training kernel family {self.kernel!r}; choose iso, aniso or none")
        if self.sigma_range is None and self.kernel == "iso" and self.scale not in ISO_TRAIN_SIGMA:
            raise DegradationError(f"no default width range for scale {self.scale}; pass sigma_range")
        for name in ("sigma_range", "aniso_range", "noise_range"):
            r = getattr(self, name)
            if r is not None and not (0 <= r[0] <= r[1]):
                raise DegradationError(f"{name} must satisfy 0 <= low <= high, got {r}")

    def _uniform(self, lo: float, hi: float, g: torch.Generator) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))

    def sample(self, generator: torch.Generator) -> Degradation:
        """Draw one degradation; uses only ``generator`` (a fixed number of draws per sample)."""
        g = generator
        kernel = None
        if self.kernel == "iso":
            lo, hi = self.sigma_range or ISO_TRAIN_SIGMA[self.scale]
            kernel = IsoGaussian(self._uniform(lo, hi, g))
        elif self.kernel == "aniso":
            lo, hi = self.aniso_range
            l1 = self._uniform(lo, hi, g)
            l2 = self._uniform(lo, l1 if self.convention == "cdsr" else hi, g)
            kernel = AnisoGaussian(l1, l2, self._uniform(0.0, 180.0, g))
        noise = self._uniform(*self.noise_range, g)
        if self.clean_prob > 0 and float(torch.rand((), generator=g, dtype=torch.float64)) < self.clean_prob:
            noise = 0.0
        return Degradation(self.scale, kernel, noise, resize=self.resize, convention=self.convention)

    def sample_batch(self, n: int, generator: torch.Generator) -> list[Degradation]:
        return [self.sample(generator) for _ in range(n)]


# --------------------------------------------------------------------------------------------------------------------
# Named test settings (DESIGN.md "Test settings")
# --------------------------------------------------------------------------------------------------------------------


def _bicubic(scale: int) -> list[Degradation]:
    return [Degradation(scale)]


def _dasr_iso(scale: int) -> list[Degradation]:
    if scale not in DASR_ISO_TEST_SIGMA:
        raise DegradationError(f"DASR's isotropic test widths exist for scales 2, 3, 4, not {scale}")
    return [Degradation(scale, IsoGaussian(s) if s else None) for s in DASR_ISO_TEST_SIGMA[scale]]


def _aniso9(scale: int, noises=(0.0, 5.0, 10.0, 15.0)) -> list[Degradation]:
    return [Degradation(scale, AnisoGaussian(*k), n) for n in noises for k in ANISO9]


def _crl_unseen(scale: int) -> list[Degradation]:
    return [Degradation(scale, IsoGaussian(s), n) for n in CRL_UNSEEN_NOISE for s in CRL_UNSEEN_SIGMA]


def _crl_spatially_variant(scale: int) -> list[Degradation]:
    return [
        Degradation(scale, WidthRamp(0.2, 4.0), 5.0),
        Degradation(scale, IsoGaussian(2.0), 5.0, noise_end=50.0),
        Degradation(scale, WidthRamp(0.2, 4.0), 5.0, noise_end=50.0),
    ]


def cdsr_variance_range(scale: int) -> tuple[float, float]:
    """CDSR's training range of the anisotropic kernel variances at ``scale`` (:data:`CDSR_ANISO_VARIANCE`; other
    scales by MANet's rule [0.175 s, 2.5 s])."""
    if scale in CDSR_ANISO_VARIANCE:
        return CDSR_ANISO_VARIANCE[scale]
    if not isinstance(scale, int) or scale < 1:
        raise DegradationError(f"scale must be an integer >= 1, got {scale!r}")
    return (0.175 * scale, 2.5 * scale)


def cdsr_test_kernels(scale: int, seed: int = CDSR_TEST_SEED, n: int = CDSR_TEST_KERNELS) -> tuple[AnisoGaussian, ...]:
    """Our stand-in for CDSR's test kernels, which were never released (``research/methods.md`` 1.2: each HR test
    image has 9 LR versions, one per kernel; the parameters are unpublished).

    ``n`` anisotropic kernels drawn from CDSR's own training distribution at ``scale``, in CDSR's convention
    (variances; apply them with ``resize="sfold", convention="cdsr"``): kernel i has its larger variance l1 drawn
    uniformly from the i-th of ``n`` equal bins of :func:`cdsr_variance_range` (stratified, so the set spans the
    range from thin to wide), the smaller one l2 ~ U[low, l1] and the angle theta ~ U[0, 180) degrees, as CDSR's
    sampler draws them. Everything comes from ``torch.Generator().manual_seed(seed * 1000 + scale)`` (l1 of every
    kernel, then l2, then theta, each in float64); l1 and l2 are rounded to 3 decimals and theta to 0.1 degree so
    that the settings print readably (rounding keeps every value inside its range).

    Returns:
        ``n`` :class:`AnisoGaussian` (l1 >= l2 variances, theta in degrees), ordered by l1.
    """
    if not isinstance(n, int) or n < 1:
        raise DegradationError(f"number of test kernels must be a positive integer, got {n!r}")
    lo, hi = cdsr_variance_range(scale)
    g = torch.Generator().manual_seed(int(seed) * 1000 + int(scale))
    u1, u2, u3 = (torch.rand(n, generator=g, dtype=torch.float64).tolist() for _ in range(3))
    kernels = []
    for i in range(n):
        l1 = round(lo + (i + u1[i]) * (hi - lo) / n, 3)
        l2 = round(lo + u2[i] * (l1 - lo), 3)
        theta = round(180.0 * u3[i], 1) % 180.0
        kernels.append(AnisoGaussian(l1, l2, theta))
    return tuple(kernels)


def _cdsr_aniso9(scale: int) -> list[Degradation]:
    kernels = cdsr_test_kernels(scale)
    noises = CDSR_TEST_NOISE.get(scale, (0.0,))
    return [Degradation(scale, k, n, resize="sfold", convention="cdsr") for n in noises for k in kernels]


PRESETS = {
    "bicubic": _bicubic,
    "dasr-iso": _dasr_iso,
    "aniso9": _aniso9,
    "crl-unseen": _crl_unseen,
    "crl-sv": _crl_spatially_variant,
    "cdsr-aniso9": _cdsr_aniso9,
}
"""Named test settings: name -> function(scale) -> list of degradations."""


def preset(name: str, scale: int) -> list[Degradation]:
    """The degradations of a named test setting (see :data:`PRESETS`) at ``scale``."""
    if name not in PRESETS:
        raise DegradationError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name](scale)


def with_resize(degradations: list[Degradation], resize: str) -> list[Degradation]:
    """The same degradations with another resize mode."""
    return [replace(d, resize=resize) for d in degradations]
