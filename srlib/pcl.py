"""PCL-SR sample generation and wavelet embedding input (Wu et al., "Practical Contrastive Learning Framework for
Single Image Super-Resolution", PCL-SISR, Sec. 3.2-3.3), following the official code (``Aitical/PCL-SISR``:
``src/trainer.py``, ``src/data/div2k.py:RandomDegrad``, ``src/loss/discriminator.py``; ``research/methods.md`` 2.4).

Conventions (all functions here):

* Images are float tensors of shape (B, 3, H, W) (any channel count C works) with values in [0, 1], on any device.
  Randomness comes only from the ``torch.Generator`` passed in; draws happen on the generator's device and the
  drawn parameters are moved to the images' device.
* **Quantisation** (:func:`quantize`): ``round(clamp(x, 0, 1) * 255) / 255`` with round half to even, the official
  ``utility.quantize`` at ``rgb_range = 1``. Every generated positive and negative is quantised; the inputs placed
  at index 0 (HR, upsampled LR) are passed through unchanged.
* **Positives** (PCL Eq. 5, :func:`positives`): HR plus ``n_sharp`` sharpened copies. The official ``--gpu_sharp``
  branch calls ``kornia.enhance.sharpness(hr, f)`` with one factor per image, f ~ U[0.5, 3.0)
  (``sharp_value + sharp_range * rand``), i.e. PIL's ``ImageEnhance.Sharpness`` (:func:`sharpen`). A factor below 1
  blends towards the smoothed image, so about 20% of the "sharpened" positives are mildly smoothed.
* **Negatives** (PCL Eq. 6, :func:`negatives`): the bicubic-upsampled LR plus ``n_blur`` Gaussian blurs of HR. The
  official ``--gpu_blur`` branch draws kernel sizes and widths with Python's ``random`` **once per blurred copy,
  shared by the whole batch** (every image of the batch gets the same kernel), and calls
  ``kornia.filters.gaussian_blur2d(hr, [k0, k1], [s0, s1])`` (reflect padding), then quantises. We keep that
  behaviour (one :class:`BlurParams` per copy). Kernel sizes are drawn independently from {3, 5, 7, 9, 11}, widths
  from U[0.1, 2.0).
* **Axis order of the Gaussian** (:func:`gaussian_blur`): ``kernel_size = (kH, kW)`` and ``sigma = (sigma_y,
  sigma_x)``: the first entry acts along the height, as in kornia >= 0.7 (``gaussian_blur2d`` documents
  ``(kH, kW)``, ``(sigma_y, sigma_x)``). The official code names its pair ``[kx, ky]``, ``[sx, sy]``, but kornia
  applies the first entry along H there too; since both entries are drawn i.i.d., the distribution is the same.
* **Haar embedding input** (PCL Sec. 3.3, :func:`haar_highpass`): one level of the orthonormal Haar DWT, LL
  dropped, the three high bands concatenated **band-major** as the official ``Discriminator.filter_wavelet`` does
  (``torch.cat((LH, HL, HH), 1)`` on ``pytorch_wavelets.DWTForward(J=1, wave='haar', mode='reflect')``): channels
  ``[LH_0..LH_{C-1}, HL_0..HL_{C-1}, HH_0..HH_{C-1}]`` (for RGB: LH_R, LH_G, LH_B, HL_R, ..., HH_B). The released
  discriminator feeds the bands in the raw value range with no affine map (``filter_wavelet(norm=False)``).
* **Band naming** (:func:`haar_dwt`) follows ``pytorch_wavelets``, whose ``yh[0][:, :, k]`` for k = 0, 1, 2 we
  reproduce exactly (same signs) for even H and W (Haar needs no padding then, so ``mode`` is irrelevant). The first
  letter is the filter along the width, the second along the height. For each 2x2 block ``[[a, b], [c, d]]`` (rows
  top to bottom)::

      LL = (a + b + c + d) / 2
      LH = (a + b - c - d) / 2   low-pass along W, high-pass along H: responds to horizontal edges
      HL = (a - b + c - d) / 2   high-pass along W, low-pass along H: responds to vertical edges
      HH = (a - b - c + d) / 2   diagonal

  (PyWavelets' ``dwt2`` returns the same numbers as ``cA, (cH, cV, cD)``: our LH is its cH, HL its cV.) Some texts
  name the bands the other way round (first letter = filter along H); only the name differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Official defaults (research/methods.md 2.4; rcanx4_PCL.sh / NLSNx4_PCL_final_run.sh).
N_SHARP = 3
SHARP_FACTOR_RANGE = (0.5, 3.0)  # sharp_value 0.5, sharp_range 2.5
N_BLUR = 3
BLUR_SIZES = (3, 5, 7, 9, 11)  # random.randint(1, 5) * 2 + 1
BLUR_SIGMA_RANGE = (0.1, 2.0)  # random.random() * 1.9 + 0.1

# PIL's ImageFilter.SMOOTH (also kornia.enhance.sharpness's "degenerate" kernel), normalised by 13.
SMOOTH_KERNEL = ((1.0, 1.0, 1.0), (1.0, 5.0, 1.0), (1.0, 1.0, 1.0))
SMOOTH_SCALE = 13.0


def _check_images(x: torch.Tensor, name: str = "images") -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a float tensor of shape (B, C, H, W), got {shape}")


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Quantise [0, 1] images to 8 bits: ``round(clamp(x, 0, 1) * 255) / 255`` (round half to even).

    The official ``utility.quantize(img, rgb_range=1)``. Shapes: any -> same.
    """
    return (x.clamp(0.0, 1.0) * 255.0).round() / 255.0


# --------------------------------------------------------------------------------------------------------------------
# Sharpening (positives)
# --------------------------------------------------------------------------------------------------------------------


def smooth(x: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageFilter.SMOOTH``: 3x3 kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 on every channel.

    Border pixels (first/last row and column) are copied from the input unfiltered, as PIL's 3x3 filter and
    ``kornia.enhance.sharpness`` do; images narrower or shorter than 3 pixels are returned unchanged. No rounding
    (PIL rounds its 8-bit result; we stay in float).

    Shapes: (B, C, H, W) -> (B, C, H, W); values stay in the input's range (the kernel is a convex average).
    """
    _check_images(x)
    b, c, h, w = x.shape
    if h < 3 or w < 3:
        return x.clone()
    k = torch.tensor(SMOOTH_KERNEL, dtype=x.dtype, device=x.device) / SMOOTH_SCALE
    inner = F.conv2d(x.reshape(b * c, 1, h, w), k.view(1, 1, 3, 3)).reshape(b, c, h - 2, w - 2)
    out = x.clone()
    out[:, :, 1:-1, 1:-1] = inner
    return out


def sharpen(x: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
    """PIL ``ImageEnhance.Sharpness`` / ``kornia.enhance.sharpness``: blend the image with its smoothed version.

    ``out = clamp(s + factor * (x - s), 0, 1)`` with ``s = smooth(x)`` (:func:`smooth`, borders unfiltered, hence
    the border pixels of ``out`` equal ``x`` for every factor). factor 1 is the identity, 0 the smoothed image, > 1
    sharpens (unsharp masking), in (0, 1) blurs mildly. kornia clamps only for factors outside (0, 1); for inputs in
    [0, 1] the result is the same. PIL works on 8-bit images and rounds its smoothed image and the blend, so it
    differs from this float version by less than 1 level (0.46 at factor 2, 0.73 at 0.5, 0.92 at 3 on random images;
    tested against PIL 13 in the unit tests).
    Used by PCL Eq. 5 ("Sharpen").

    Args:
        x: (B, C, H, W) float images in [0, 1].
        factor: a float (whole batch) or a (B,) tensor (one factor per image).

    Returns:
        (B, C, H, W) images in [0, 1], not quantised.
    """
    _check_images(x)
    f = torch.as_tensor(factor, dtype=x.dtype).to(x.device)
    if f.ndim == 0:
        f = f.expand(x.shape[0])
    if f.shape != (x.shape[0],):
        raise ValueError(f"sharpen: factor must be a float or a ({x.shape[0]},) tensor, got shape {tuple(f.shape)}")
    if not torch.all(torch.isfinite(f)):
        raise ValueError(f"sharpen: factor must be finite, got {f.tolist()}")
    s = smooth(x)
    return (s + f.view(-1, 1, 1, 1) * (x - s)).clamp(0.0, 1.0)


def sample_sharpen_factors(
    generator: torch.Generator,
    batch: int,
    n_sharp: int = N_SHARP,
    factor_range: tuple[float, float] = SHARP_FACTOR_RANGE,
) -> torch.Tensor:
    """Draw the sharpening factors of :func:`positives`: one per (copy, image), f ~ U[lo, hi).

    Args:
        generator: the only source of randomness (draws on its device).
        batch: number of images B.
        n_sharp: number of sharpened copies.
        factor_range: (lo, hi), the official U[0.5, 3.0).

    Returns:
        (n_sharp, B) float64 tensor on the generator's device, values in [lo, hi).
    """
    lo, hi = (float(v) for v in factor_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
        raise ValueError(f"factor_range must be (lo, hi) with 0 <= lo < hi, got {factor_range!r}")
    if n_sharp < 0 or batch < 0:
        raise ValueError(f"n_sharp and batch must be >= 0, got n_sharp={n_sharp}, batch={batch}")
    u = torch.rand((n_sharp, batch), generator=generator, dtype=torch.float64, device=generator.device)
    return (lo + (hi - lo) * u).clamp(max=math.nextafter(hi, lo))


def positives(
    hr: torch.Tensor,
    generator: torch.Generator,
    n_sharp: int = N_SHARP,
    factor_range: tuple[float, float] = SHARP_FACTOR_RANGE,
    return_params: bool = False,
):
    """Positive set of PCL Eq. 5: HR plus ``n_sharp`` sharpened, quantised copies (official ``--sharp_hr
    --gpu_sharp``).

    Copy j of image i is ``quantize(sharpen(hr[i], f[j, i]))`` with factors from :func:`sample_sharpen_factors`
    (one per image and copy, U[0.5, 3.0) by default).

    Args:
        hr: (B, 3, H, W) HR images in [0, 1].
        generator: the only source of randomness.
        n_sharp: number of sharpened copies (the official ``mcl_neg = 3``).
        factor_range: range of the sharpness factor.
        return_params: also return the factors.

    Returns:
        (B, 1 + n_sharp, 3, H, W): index 0 is ``hr`` itself (unchanged), 1.. the sharpened copies. With
        ``return_params``: ``(samples, factors)``, factors (n_sharp, B) float64 on the generator's device.
    """
    _check_images(hr, "hr")
    factors = sample_sharpen_factors(generator, hr.shape[0], n_sharp, factor_range)
    copies = [hr] + [quantize(sharpen(hr, factors[j].to(hr.device))) for j in range(n_sharp)]
    out = torch.stack(copies, dim=1)
    return (out, factors) if return_params else out


# --------------------------------------------------------------------------------------------------------------------
# Gaussian blur (negatives)
# --------------------------------------------------------------------------------------------------------------------


def gaussian_kernel1d(size: int, sigma: float, dtype=torch.float64, device=None) -> torch.Tensor:
    """kornia's ``get_gaussian_kernel1d``: ``exp(-x^2 / (2 sigma^2))`` at x = -(size // 2) .. size // 2, sum 1.

    Args:
        size: odd kernel size >= 1.
        sigma: standard deviation in pixels, > 0 (1e-3 gives the unit impulse).

    Returns:
        (size,) tensor.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"Gaussian kernel size must be a positive odd integer, got {size!r}")
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"Gaussian sigma must be finite and > 0, got {sigma!r}")
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def gaussian_blur(x: torch.Tensor, kernel_size: tuple[int, int], sigma: tuple[float, float]) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding: ``kornia.filters.gaussian_blur2d(x, kernel_size, sigma)``.

    The kernel is the outer product of two 1-D Gaussians (:func:`gaussian_kernel1d`); padding is ``'reflect'``
    (mirror without repeating the edge pixel, ``F.pad(mode='reflect')``), (k - 1) / 2 pixels per side, so the output
    has the input's size. A sigma -> 0 gives the identity. Used by PCL Eq. 6 ("Blur").

    Args:
        x: (B, C, H, W) float images.
        kernel_size: (kH, kW), odd sizes; kH acts along the height (kornia's convention, see the module docstring).
        sigma: (sigma_y, sigma_x) standard deviations in pixels, > 0.

    Returns:
        (B, C, H, W) blurred images (not clamped or quantised; a convex average keeps [0, 1]).
    """
    _check_images(x)
    (kh, kw), (sy, sx) = tuple(kernel_size), tuple(sigma)
    ky = gaussian_kernel1d(kh, sy, dtype=x.dtype, device=x.device)
    kx = gaussian_kernel1d(kw, sx, dtype=x.dtype, device=x.device)
    b, c, h, w = x.shape
    if kh // 2 >= h or kw // 2 >= w:
        raise ValueError(
            f"gaussian_blur: reflect padding needs an image larger than half the kernel: kernel {kh}x{kw}, "
            f"image {h}x{w}"
        )
    y = x.reshape(b * c, 1, h, w)
    y = F.conv2d(F.pad(y, (kw // 2, kw // 2, 0, 0), mode="reflect"), kx.view(1, 1, 1, kw))
    y = F.conv2d(F.pad(y, (0, 0, kh // 2, kh // 2), mode="reflect"), ky.view(1, 1, kh, 1))
    return y.reshape(b, c, h, w)


@dataclass(frozen=True)
class BlurParams:
    """One Gaussian blur of :func:`negatives`: ``kernel_size = (kH, kW)``, ``sigma = (sigma_y, sigma_x)``."""

    kernel_size: tuple[int, int]
    sigma: tuple[float, float]


def sample_blur_params(
    generator: torch.Generator,
    n_blur: int = N_BLUR,
    sizes: Sequence[int] = BLUR_SIZES,
    sigma_range: tuple[float, float] = BLUR_SIGMA_RANGE,
) -> list[BlurParams]:
    """Draw the blurs of :func:`negatives`: one :class:`BlurParams` per blurred copy, shared by the whole batch.

    Each of kH, kW is drawn uniformly and independently from ``sizes``, each of sigma_y, sigma_x from
    U[lo, hi) (official ``--gpu_blur``: sizes {3, 5, 7, 9, 11}, sigma U[0.1, 2.0)).

    Args:
        generator: the only source of randomness (draws on its device).
        n_blur: number of blurred copies.
        sizes: candidate odd kernel sizes.
        sigma_range: (lo, hi) with 0 < lo < hi.

    Returns:
        list of ``n_blur`` :class:`BlurParams` (Python ints and floats).
    """
    sizes = tuple(sizes)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 or s % 2 == 0 for s in sizes):
        raise ValueError(f"sizes must be a non-empty sequence of positive odd integers, got {sizes!r}")
    lo, hi = (float(v) for v in sigma_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise ValueError(f"sigma_range must be (lo, hi) with 0 < lo < hi, got {sigma_range!r}")
    if n_blur < 0:
        raise ValueError(f"n_blur must be >= 0, got {n_blur}")
    dev = generator.device
    idx = torch.randint(len(sizes), (n_blur, 2), generator=generator, device=dev).tolist()
    u = torch.rand((n_blur, 2), generator=generator, dtype=torch.float64, device=dev)
    sig = (lo + (hi - lo) * u).clamp(max=math.nextafter(hi, lo)).tolist()
    return [BlurParams((sizes[i0], sizes[i1]), (s0, s1)) for (i0, i1), (s0, s1) in zip(idx, sig, strict=True)]


def upsample_lr(lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The official LR negative: ``F.interpolate(lr, size, mode='bicubic', align_corners=True).clamp(0, 1)``.

    (PCL's loss upsamples the LR input this way before embedding it; not MATLAB's ``imresize``.)

    Shapes: (B, C, h, w) -> (B, C, *size), values in [0, 1], not quantised.
    """
    _check_images(lr, "lr")
    return F.interpolate(lr, size=tuple(size), mode="bicubic", align_corners=True).clamp(0.0, 1.0)


def negatives(
    hr: torch.Tensor,
    lr_up: torch.Tensor,
    generator: torch.Generator,
    n_blur: int = N_BLUR,
    sizes: Sequence[int] = BLUR_SIZES,
    sigma_range: tuple[float, float] = BLUR_SIGMA_RANGE,
    return_params: bool = False,
):
    """Negative set of PCL Eq. 6: the upsampled LR plus ``n_blur`` Gaussian-blurred, quantised copies of HR
    (official ``--random_neg --only_blur --gpu_blur``).

    Copy j is ``quantize(gaussian_blur(hr, *params[j]))`` with ``params`` from :func:`sample_blur_params`: **one
    kernel per copy, shared by every image of the batch**, as the official code draws it.

    Args:
        hr: (B, 3, H, W) HR images in [0, 1].
        lr_up: (B, 3, H, W) LR input already upsampled to the HR size (e.g. :func:`upsample_lr`).
        generator: the only source of randomness.
        n_blur: number of blurred copies (the official ``mcl_neg = 3``).
        sizes: candidate kernel sizes.
        sigma_range: range of the blur widths.
        return_params: also return the blurs.

    Returns:
        (B, 1 + n_blur, 3, H, W): index 0 is ``lr_up`` itself (unchanged), 1.. the blurred copies. With
        ``return_params``: ``(samples, params)``, params a list of ``n_blur`` :class:`BlurParams`.
    """
    _check_images(hr, "hr")
    _check_images(lr_up, "lr_up")
    if lr_up.shape != hr.shape:
        raise ValueError(
            f"negatives: lr_up must be upsampled to the HR shape {tuple(hr.shape)}, got {tuple(lr_up.shape)}"
        )
    params = sample_blur_params(generator, n_blur, sizes, sigma_range)
    copies = [lr_up.to(hr.dtype)] + [quantize(gaussian_blur(hr, p.kernel_size, p.sigma)) for p in params]
    out = torch.stack(copies, dim=1)
    return (out, params) if return_params else out


# --------------------------------------------------------------------------------------------------------------------
# Haar wavelet (embedding input)
# --------------------------------------------------------------------------------------------------------------------


def haar_dwt(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One level of the orthonormal 2-D Haar DWT (PCL Sec. 3.3, "Haar wavelet transform").

    Equal to ``pytorch_wavelets.DWTForward(J=1, wave='haar')`` for even H and W: returns its ``(yl, yh[0])``. Band
    formulas and names in the module docstring. Orthonormal: the energy ``sum(x^2)`` equals the sum of squares of
    all four bands (Parseval), and a constant image v gives LL = 2v and zero high bands.

    Args:
        x: (B, C, H, W) float tensor, H and W even.

    Returns:
        ``(LL, highs)``: LL (B, C, H/2, W/2); highs (B, C, 3, H/2, W/2) with bands [LH, HL, HH] along dim 2.
    """
    _check_images(x)
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"haar_dwt: height and width must be even, got {h}x{w} (crop to a multiple of 2 first)")
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    ll = (a + b + c + d) * 0.5
    lh = (a + b - c - d) * 0.5
    hl = (a - b + c - d) * 0.5
    hh = (a - b - c + d) * 0.5
    return ll, torch.stack([lh, hl, hh], dim=2)


def haar_idwt(ll: torch.Tensor, highs: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`haar_dwt` (the transform is orthonormal, so the inverse is its transpose).

    Args:
        ll: (B, C, h, w) LL band.
        highs: (B, C, 3, h, w) bands [LH, HL, HH].

    Returns:
        (B, C, 2h, 2w) reconstruction.
    """
    _check_images(ll, "ll")
    if highs.shape != (*ll.shape[:2], 3, *ll.shape[2:]):
        raise ValueError(f"haar_idwt: highs must have shape {(*ll.shape[:2], 3, *ll.shape[2:])}, got {highs.shape}")
    lh, hl, hh = highs.unbind(dim=2)
    a = (ll + lh + hl + hh) * 0.5
    b = (ll + lh - hl - hh) * 0.5
    c = (ll - lh + hl - hh) * 0.5
    d = (ll - lh - hl + hh) * 0.5
    n, ch, h, w = ll.shape
    top = torch.stack([a, b], dim=-1).reshape(n, ch, h, 2 * w)
    bottom = torch.stack([c, d], dim=-1).reshape(n, ch, h, 2 * w)
    return torch.stack([top, bottom], dim=-2).reshape(n, ch, 2 * h, 2 * w)


def haar_highpass(x: torch.Tensor, order: str = "band") -> torch.Tensor:
    """PCL's embedding input H_w(x) (PCL Sec. 3.3, Eq. 7): Haar LH, HL, HH bands stacked, LL dropped.

    Args:
        x: (B, C, H, W) images (C = 3 gives 9 channels), H and W even. Values in their raw range (no affine map, as
            the released ``Discriminator.filter_wavelet(norm=False)``); for [0, 1] images the bands lie in [-1, 1].
        order: ``"band"`` (default, the official ``torch.cat((LH, HL, HH), 1)``): channel ``k * C + c`` is band k
            (0 LH, 1 HL, 2 HH) of colour c. ``"channel"``: channel ``3 * c + k``, i.e. [LH, HL, HH] of each colour in
            turn. The first convolution of the discriminator mixes all channels, so the two orders train the same
            model up to a permutation of its first-layer weights; "band" is needed to load official weights.

    Returns:
        (B, 3C, H/2, W/2).
    """
    if order not in ("band", "channel"):
        raise ValueError(f"haar_highpass: order must be 'band' or 'channel', got {order!r}")
    _, highs = haar_dwt(x)
    b, c, _, h, w = highs.shape
    if order == "band":
        highs = highs.transpose(1, 2)
    return highs.reshape(b, 3 * c, h, w)
