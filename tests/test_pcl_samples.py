"""PCL-SR sample generation (srlib.pcl): Haar DWT against hand-computed bands, sharpening against an explicit 3x3 loop
and PIL's ImageEnhance.Sharpness, Gaussian blur against a hand-built 2-D kernel with numpy reflect padding, and the
positive/negative sets (shapes, index 0, determinism, parameter ranges, 8-bit quantisation). Tiny tensors only."""

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from srlib.pcl import (
    BLUR_SIZES,
    BlurParams,
    gaussian_blur,
    haar_dwt,
    haar_highpass,
    haar_idwt,
    negatives,
    positives,
    quantize,
    sample_blur_params,
    sample_sharpen_factors,
    sharpen,
    smooth,
    upsample_lr,
)


def _rand(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _is_8bit(v: torch.Tensor) -> bool:
    s = v.double() * 255
    return bool(torch.allclose(s, s.round(), atol=1e-3, rtol=0))


# ---------------------------------------------------------------- Haar


def test_haar_roundtrip():
    """haar_idwt(haar_dwt(x)) reconstructs x (float32 to 1e-6, float64 to 1e-12)."""
    for dtype, tol in ((torch.float32, 1e-6), (torch.float64, 1e-12)):
        x = _rand(2, 3, 8, 6, dtype=dtype)
        ll, highs = haar_dwt(x)
        assert ll.shape == (2, 3, 4, 3) and highs.shape == (2, 3, 3, 4, 3)
        assert (haar_idwt(ll, highs) - x).abs().max().item() < tol


def test_haar_constant_orthonormal():
    """A constant 2x2 image v: LL = 2v (orthonormal scaling 1/2 per 2x2 block), all high bands 0."""
    v = 0.3
    x = torch.full((1, 3, 2, 2), v, dtype=torch.float64)
    ll, highs = haar_dwt(x)
    assert torch.allclose(ll, torch.full_like(ll, 2 * v), atol=1e-15)
    assert highs.abs().max().item() == 0.0
    assert haar_highpass(x).abs().max().item() == 0.0


def test_haar_hand_example():
    """[[a, b], [c, d]] = [[1, 2], [4, 8]], done by hand with the 1-D orthonormal Haar pair (low (p + q)/sqrt2, high
    (p - q)/sqrt2, PyWavelets' sign: pywt.dwt([1, 2], 'haar') has detail -0.7071):
    rows low along W: top 3/sqrt2, bottom 12/sqrt2; rows high along W: top -1/sqrt2, bottom -4/sqrt2.
    LL = low_H(low_W) = (3 + 12)/2 = 7.5; LH = high_H(low_W) = (3 - 12)/2 = -4.5;
    HL = low_H(high_W) = (-1 - 4)/2 = -2.5; HH = high_H(high_W) = (-1 + 4)/2 = 1.5."""
    x = torch.tensor([[1.0, 2.0], [4.0, 8.0]], dtype=torch.float64).expand(1, 3, 2, 2)
    ll, highs = haar_dwt(x)
    assert torch.allclose(ll, torch.full_like(ll, 7.5))
    for k, expected in enumerate((-4.5, -2.5, 1.5)):  # LH, HL, HH
        assert torch.allclose(highs[:, :, k], torch.full_like(ll, expected)), k


def test_haar_parseval():
    """Orthonormal: sum of squares of the image equals the sum over the four bands."""
    x = _rand(2, 3, 6, 10, dtype=torch.float64)
    ll, highs = haar_dwt(x)
    assert math.isclose((x**2).sum().item(), (ll**2).sum().item() + (highs**2).sum().item(), rel_tol=1e-12)


def test_haar_highpass_channel_order():
    """(B, 9, H/2, W/2); "band" (official torch.cat((LH, HL, HH), 1)): band k of colour c at channel 3k + c;
    "channel": at channel 3c + k."""
    x = _rand(2, 3, 4, 6)
    _, highs = haar_dwt(x)
    band, chan = haar_highpass(x), haar_highpass(x, order="channel")
    assert band.shape == chan.shape == (2, 9, 2, 3)
    for c in range(3):
        for k in range(3):
            assert torch.equal(band[:, k * 3 + c], highs[:, c, k])
            assert torch.equal(chan[:, 3 * c + k], highs[:, c, k])


def test_haar_errors():
    with pytest.raises(ValueError, match="even"):
        haar_dwt(torch.zeros(1, 3, 5, 4))
    with pytest.raises(ValueError, match="even"):
        haar_highpass(torch.zeros(1, 3, 4, 7))
    with pytest.raises(ValueError, match="order"):
        haar_highpass(torch.zeros(1, 3, 4, 4), order="rgb")
    with pytest.raises(ValueError, match="highs"):
        haar_idwt(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2))


# ---------------------------------------------------------------- sharpen


def _smooth_by_hand(img: np.ndarray) -> np.ndarray:
    """Explicit loop: interior pixels get sum(w * neighbours) / 13 with w = 5 at the centre and 1 around; the border
    rows and columns are copied (PIL leaves them unfiltered)."""
    h, w = img.shape
    out = img.copy()
    for i in range(1, h - 1):
        for j in range(1, w - 1):
            total = 0.0
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    weight = 5.0 if (di, dj) == (0, 0) else 1.0
                    total += weight * img[i + di, j + dj]
            out[i, j] = total / 13.0
    return out


def test_sharpen_identity_and_smooth():
    """factor 1 is the identity; factor 0 is the hand-smoothed image (explicit loop), borders included."""
    x = _rand(2, 3, 5, 6, dtype=torch.float64)
    assert torch.allclose(sharpen(x, 1.0), x, atol=1e-15, rtol=0)
    zero = sharpen(x, 0.0)
    for b in range(2):
        for c in range(3):
            expected = _smooth_by_hand(x[b, c].numpy())
            np.testing.assert_allclose(zero[b, c].numpy(), expected, atol=1e-14, rtol=0)
    assert torch.equal(smooth(x), zero)


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_sharpen_matches_pil(factor):
    """PIL ImageEnhance.Sharpness on a uint8 image (PIL rounds its smoothed image and the blend) within 1 level;
    border pixels identical."""
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    pil = np.asarray(ImageEnhance.Sharpness(Image.fromarray(arr)).enhance(factor)).astype(np.float64)
    x = torch.from_numpy(arr).permute(2, 0, 1)[None].double() / 255
    ours = sharpen(x, factor)[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(ours - pil).max() < 1.0
    assert np.array_equal(np.round(ours[0]), arr[0]) and np.array_equal(np.round(ours[:, -1]), arr[:, -1])


def test_sharpen_per_image_factor_and_range():
    """A (B,) factor equals separate calls per image; factor 3 stays clamped to [0, 1]; bad factors are errors."""
    x = _rand(3, 3, 6, 6)
    f = torch.tensor([0.5, 1.7, 3.0])
    out = sharpen(x, f)
    for i in range(3):
        assert torch.allclose(out[i : i + 1], sharpen(x[i : i + 1], float(f[i])), atol=1e-6)
    assert out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match="factor"):
        sharpen(x, torch.ones(2))
    with pytest.raises(ValueError, match="factor"):
        sharpen(x, float("nan"))


# ---------------------------------------------------------------- gaussian blur


def _gauss1d_by_hand(size, sigma):
    r = size // 2
    g = [math.exp(-((i - r) ** 2) / (2 * sigma**2)) for i in range(size)]
    return np.array(g) / sum(g)


def test_gaussian_blur_identity_and_constant():
    """sigma -> 0 (1e-3) is the identity exactly; a constant image is unchanged by any kernel."""
    x = _rand(2, 3, 12, 12)
    assert torch.equal(gaussian_blur(x, (11, 5), (1e-3, 1e-3)), x)
    const = torch.full((1, 3, 12, 12), 0.37)
    assert torch.allclose(gaussian_blur(const, (11, 7), (2.0, 0.6)), const, atol=1e-6)


def test_gaussian_blur_matches_hand_kernel():
    """Equals a direct 2-D correlation with the outer-product kernel (rows: kH/sigma_y, columns: kW/sigma_x) on
    numpy's reflect padding (mirror without repeating the edge)."""
    x = _rand(1, 2, 7, 9, dtype=torch.float64)
    (kh, kw), (sy, sx) = (5, 3), (1.3, 0.7)
    k2 = np.outer(_gauss1d_by_hand(kh, sy), _gauss1d_by_hand(kw, sx))
    out = gaussian_blur(x, (kh, kw), (sy, sx))
    for c in range(2):
        padded = np.pad(x[0, c].numpy(), ((kh // 2, kh // 2), (kw // 2, kw // 2)), mode="reflect")
        expected = np.array([[(padded[i : i + kh, j : j + kw] * k2).sum() for j in range(9)] for i in range(7)])
        np.testing.assert_allclose(out[0, c].numpy(), expected, atol=1e-12, rtol=0)


def test_gaussian_blur_errors():
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="odd"):
        gaussian_blur(x, (4, 3), (1.0, 1.0))
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(x, (3, 3), (0.0, 1.0))
    with pytest.raises(ValueError, match="larger"):
        gaussian_blur(torch.zeros(1, 3, 5, 5), (11, 3), (1.0, 1.0))


# ---------------------------------------------------------------- positives / negatives


def test_positives():
    """(B, 4, 3, H, W); index 0 is HR exactly; copies are quantised sharpenings with the returned per-image factors
    in [0.5, 3); same seed -> same output, other seed -> different."""
    hr = quantize(_rand(2, 3, 8, 10))
    out, factors = positives(hr, _gen(1), return_params=True)
    assert out.shape == (2, 4, 3, 8, 10) and factors.shape == (3, 2)
    assert torch.equal(out[:, 0], hr)
    assert factors.min() >= 0.5 and factors.max() < 3.0
    assert torch.equal(factors, sample_sharpen_factors(_gen(1), 2))
    for j in range(3):
        assert torch.equal(out[:, j + 1], quantize(sharpen(hr, factors[j])))
    assert _is_8bit(out[:, 1:]) and out.min() >= 0 and out.max() <= 1
    assert torch.equal(positives(hr, _gen(1)), out)
    assert not torch.equal(positives(hr, _gen(2)), out)


def test_negatives():
    """(B, 4, 3, H, W); index 0 is the upsampled LR exactly; copies are quantised blurs with ONE kernel per copy
    shared by the batch (image-by-image blurring gives the same result); seeded determinism."""
    hr = quantize(_rand(2, 3, 12, 12))
    lr_up = upsample_lr(_rand(2, 3, 6, 6, seed=5), (12, 12))
    out, params = negatives(hr, lr_up, _gen(1), return_params=True)
    assert out.shape == (2, 4, 3, 12, 12) and len(params) == 3
    assert torch.equal(out[:, 0], lr_up)
    assert params == sample_blur_params(_gen(1))
    for j, p in enumerate(params):
        assert isinstance(p, BlurParams)
        assert p.kernel_size[0] in BLUR_SIZES and p.kernel_size[1] in BLUR_SIZES
        assert all(0.1 <= s < 2.0 for s in p.sigma)
        for i in range(2):
            assert torch.equal(out[i, j + 1], quantize(gaussian_blur(hr[i : i + 1], p.kernel_size, p.sigma))[0])
    assert _is_8bit(out[:, 1:])
    assert torch.equal(negatives(hr, lr_up, _gen(1)), out)
    assert not torch.equal(negatives(hr, lr_up, _gen(2)), out)
    with pytest.raises(ValueError, match="lr_up"):
        negatives(hr, lr_up[..., :6, :6], _gen(1))


def test_parameter_distributions():
    """Many draws: factors cover [0.5, 3) with mean ~1.75; every kernel size appears; sigmas cover [0.1, 2)."""
    f = sample_sharpen_factors(_gen(0), 4000, n_sharp=1)
    assert f.min() >= 0.5 and f.max() < 3.0 and f.min() < 0.51 and f.max() > 2.99
    assert abs(f.mean().item() - 1.75) < 0.05
    params = sample_blur_params(_gen(0), n_blur=400)
    sizes = {k for p in params for k in p.kernel_size}
    sigmas = np.array([s for p in params for s in p.sigma])
    assert sizes == set(BLUR_SIZES)
    assert sigmas.min() >= 0.1 and sigmas.max() < 2.0 and sigmas.min() < 0.15 and sigmas.max() > 1.95
    with pytest.raises(ValueError, match="sizes"):
        sample_blur_params(_gen(0), sizes=(3, 4))
    with pytest.raises(ValueError, match="factor_range"):
        sample_sharpen_factors(_gen(0), 2, factor_range=(3.0, 0.5))


def test_upsample_lr_and_quantize():
    """upsample_lr: official bicubic (align_corners=True) clamped to [0, 1], corners kept; quantize: 8-bit grid."""
    lr = _rand(1, 3, 4, 5)
    up = upsample_lr(lr, (8, 10))
    assert up.shape == (1, 3, 8, 10) and up.min() >= 0 and up.max() <= 1
    assert torch.allclose(up[..., 0, 0], lr[..., 0, 0]) and torch.allclose(up[..., -1, -1], lr[..., -1, -1])
    levels = torch.tensor([0.0, 1.0, 17.0, 128.0, 254.0, 255.0])
    jitter = torch.tensor([0.3, -0.4, 0.45, -0.2, 0.1, 0.0])
    assert torch.allclose(quantize((levels + jitter) / 255) * 255, levels, atol=1e-4, rtol=0)
    assert torch.equal(quantize(torch.tensor([-0.1, 1.2])), torch.tensor([0.0, 1.0]))
