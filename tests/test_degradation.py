"""Degradation model: exactness against MATLAB's LR images, kernel conventions, ramps, reproducibility, bad input."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from srlib import degradation as D
from srlib.imgutil import img2tensor, modcrop, tensor2img


def _img(h=32, w=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, h, w), generator=g).float()


# ---------------------------------------------------------------- MATLAB bicubic


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_reproduces_matlab_set5_lr(shared_data, scale):
    """Our MATLAB-exact imresize reproduces Set5/LR_bicubic (made by MATLAB) bit for bit."""
    for hr_path in sorted((shared_data / "Set5" / "HR").glob("*.png")):
        hr = modcrop(np.array(Image.open(hr_path).convert("RGB")), scale)
        lr = tensor2img(D.Degradation(scale).apply(img2tensor(hr)[None])[0])
        ref = np.array(Image.open(shared_data / "Set5" / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png"))
        np.testing.assert_array_equal(lr, ref[..., :3], err_msg=f"{hr_path.stem} x{scale}")


def test_float_bicubic_differs_from_uint8_matlab(shared_data):
    """Skipping MATLAB's uint8 rounding between passes (BasicSR's float imresize) misses by 1 level on some pixels:
    the middle rounding is what makes ours exact."""
    hr = modcrop(np.array(Image.open(shared_data / "Set5" / "HR" / "baby.png").convert("RGB")), 4)
    x = img2tensor(hr)[None]
    exact = D.imresize(x, 0.25, quantize=True)
    floaty = D.imresize(x.double(), 0.25).round().clamp(0, 255)
    diff = (exact - floaty).abs()
    assert diff.max() >= 1 and 0.01 < (diff > 0).float().mean() < 0.3


def test_resize_matrix_rows_sum_to_one_and_match_hand_values():
    m = D.resize_matrix(8, 4, 0.5)
    assert torch.allclose(m.sum(1), torch.ones(4, dtype=torch.float64))
    # Upscaling x2: output pixel 5 (1-based) samples u = 5 / 2 + (1 - 1 / 2) / 2 = 2.75, so input pixels 1..4 sit at
    # distances 1.75, 0.75, 0.25, 1.25; Keys' kernel (a = -0.5) there, by hand: 1.5|x|^3 - 2.5|x|^2 + 1 for |x| <= 1,
    # -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2 for 1 < |x| <= 2.
    up = D.resize_matrix(8, 16, 2.0)
    expected = np.array([-0.0234375, 0.2265625, 0.8671875, -0.0703125])
    # row 4 (1-based 5) samples u = 2.75: taps at input 1..4 (0-based 0..3), no border effect
    np.testing.assert_allclose(up[4, :4].numpy(), expected / expected.sum())


def test_imresize_identity_and_constant():
    x = _img()
    assert torch.equal(D.imresize(x, 1.0), x)
    const = torch.full((1, 3, 24, 24), 77.0)
    for s in (0.25, 1 / 3, 0.5, 2.0, 3.0):
        assert torch.allclose(D.imresize(const, s), torch.full_like(D.imresize(const, s), 77.0), atol=1e-4)


def test_imresize_output_size_is_ceil():
    x = torch.zeros(1, 1, 10, 7)
    assert D.imresize(x, 1 / 3).shape[-2:] == (4, 3)
    assert D.imresize(x, size=(5, 9)).shape[-2:] == (5, 9)


def test_dasr_resize_differs_only_near_borders():
    x = _img(48, 48)
    a = D.downsample(x, 4, "matlab")
    b = D.downsample(x, 4, "dasr")
    assert torch.allclose(a[..., 2:-2, 2:-2], b[..., 2:-2, 2:-2], atol=1e-3)
    assert not torch.allclose(a, b)


def test_sfold_keeps_top_left_pixel():
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    y = D.downsample(x, 4, "sfold")
    assert y.flatten().tolist() == [0.0, 4.0, 32.0, 36.0]


# ---------------------------------------------------------------- kernels


def test_isotropic_kernel_matches_formula():
    k = D.isotropic_gaussian_kernel(1.5).double()
    ax = np.arange(21) - 10
    ref = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * 1.5**2))
    np.testing.assert_allclose(k.numpy(), ref / ref.sum(), rtol=1e-6, atol=1e-9)


def test_anisotropic_kernel_widths_are_standard_deviations():
    """theta = 0: the kernel is separable with std l1 along x (columns) and l2 along y (rows)."""
    k = D.anisotropic_gaussian_kernel(3.0, 1.0, 0.0, size=41).double()
    ax = torch.arange(41, dtype=torch.float64) - 20
    var_x = (k.sum(0) * ax**2).sum()
    var_y = (k.sum(1) * ax**2).sum()
    assert abs(math.sqrt(var_x) - 3.0) < 1e-3 and abs(math.sqrt(var_y) - 1.0) < 1e-3
    # rotating by 90 degrees swaps the axes; equal widths give the isotropic kernel
    k90 = D.anisotropic_gaussian_kernel(3.0, 1.0, 90.0, size=41)
    assert torch.allclose(k90, k.float().T, atol=1e-7)
    assert torch.allclose(D.anisotropic_gaussian_kernel(2.0, 2.0, 33.0), D.isotropic_gaussian_kernel(2.0), atol=1e-7)


def test_cdsr_variance_convention():
    """CDSR's l1, l2 are variances: (4, 1) as variances == (2, 1) as standard deviations."""
    a = D.anisotropic_gaussian_kernel(4.0, 1.0, 30.0, variances=True)
    b = D.anisotropic_gaussian_kernel(2.0, 1.0, 30.0)
    assert torch.allclose(a, b, atol=1e-7)


def test_cdsr_kernel_is_shifted_for_sfold():
    deg = D.Degradation(4, D.IsoGaussian(1.0), resize="sfold", convention="cdsr")
    k = deg.kernel_tensor()
    assert k.shape == (21, 21) and torch.all(k[18:, :] == 0) and torch.all(k[:, 18:] == 0)
    small = D.isotropic_gaussian_kernel(1.0, size=18)
    assert torch.allclose(k[:18, :18], small)
    # the centre of mass sits half a pixel up-left of the 21x21 centre at 10: (18 - 1) / 2 = 8.5
    ax = torch.arange(21.0)
    assert abs(float((k.sum(1) * ax).sum()) - 8.5) < 1e-5


def test_batched_blur_equals_per_image_loop():
    x = torch.cat([_img(seed=i) for i in range(3)])
    ks = D.isotropic_gaussian_kernel(torch.tensor([0.5, 1.5, 3.0]))
    batched = D.blur(x, ks)
    loop = torch.cat([D.blur(x[i : i + 1], ks[i]) for i in range(3)])
    assert torch.allclose(batched, loop, atol=1e-4)


def test_blur_is_reflect_padded_convolution():
    x = _img(16, 16).double()
    k = torch.rand(5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = D.blur(x, k)
    xp = np.pad(x[0, 0].numpy(), 2, mode="reflect")
    ref = np.array([[np.sum(xp[i : i + 5, j : j + 5] * k.numpy()) for j in range(16)] for i in range(16)])
    np.testing.assert_allclose(y[0, 0].numpy(), ref, rtol=1e-10)


# ---------------------------------------------------------------- spatially variant


def test_width_ramp_column_equals_uniform_blur_at_the_levels():
    """Width 0.2 -> 4 over 32 levels on a 94-pixel-wide image: every 3rd column lies exactly on a level."""
    x = _img(40, 94).double()
    levels = 32
    out = D.blur_width_ramp(x, 0.2, 4.0, levels)
    grid = torch.linspace(0.2, 4.0, levels, dtype=torch.float64)
    for j in range(levels):
        col = j * 3  # (94 - 1) / (32 - 1) = 3
        ref = D.blur(x, D.isotropic_gaussian_kernel(float(grid[j])).double())  # the 2-D uniform blur
        assert torch.allclose(out[..., col], ref[..., col], atol=1e-6), f"level {j}"


def test_separable_blur_equals_2d_blur():
    x = _img(30, 37).double()
    for s in (0.2, 1.3, 4.0):
        ref = D.blur(x, D.isotropic_gaussian_kernel(s).double())
        assert torch.allclose(D.gaussian_blur_separable(x, s), ref, atol=1e-9)


def test_width_ramp_blurs_more_to_the_right():
    x = _img(64, 128)
    y = D.blur_width_ramp(x, 0.2, 4.0)
    hf = (y[..., 1:, :] - y[..., :-1, :]).abs().mean(dim=(0, 1, 2))
    assert hf[:20].mean() > 3 * hf[-20:].mean()


def test_noise_ramp_std_rises_with_the_column():
    hr = torch.full((1, 3, 256, 512), 128.0)
    deg = D.Degradation(2, None, 5.0, noise_end=50.0)
    lr = deg.apply(hr, torch.Generator().manual_seed(0))
    std = (lr - 128).std(dim=(0, 1, 2))  # per LR column
    expected = D.column_ramp(5.0, 50.0, 256)
    bins = [slice(i, i + 32) for i in range(0, 256, 32)]
    measured = torch.stack([std[b].pow(2).mean().sqrt() for b in bins])
    assert torch.all(measured[1:] > measured[:-1])
    assert torch.allclose(measured, torch.stack([expected[b].pow(2).mean().sqrt() for b in bins]).float(), rtol=0.1)


# ---------------------------------------------------------------- descriptions and reproducibility


def test_degradation_json_roundtrip_and_exact_reproduction():
    space = D.DegradationSpace(4, kernel="aniso", noise_range=(0, 25))
    deg = space.sample(torch.Generator().manual_seed(3))
    again = D.Degradation.from_dict(json.loads(json.dumps(deg.to_dict())))
    assert again == deg and str(again) == str(deg)
    hr = _img(48, 48)
    a = deg.apply(hr, torch.Generator().manual_seed(7))
    b = again.apply(hr, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert torch.all(a == a.round()) and a.min() >= 0 and a.max() <= 255


def test_sampling_is_seeded_and_within_ranges():
    space = D.DegradationSpace(3, kernel="iso", noise_range=(0, 25))
    a = space.sample_batch(50, torch.Generator().manual_seed(0))
    b = space.sample_batch(50, torch.Generator().manual_seed(0))
    assert a == b
    assert all(0.2 <= d.kernel.sigma <= 3.0 and 0 <= d.noise <= 25 for d in a)
    cdsr = D.DegradationSpace(2, kernel="aniso", aniso_range=(0.35, 5.0), convention="cdsr", clean_prob=0.2)
    ds = cdsr.sample_batch(200, torch.Generator().manual_seed(1))
    assert all(d.kernel.l2 <= d.kernel.l1 for d in ds)


def test_apply_batch_matches_single_application():
    degs = D.DegradationSpace(2, noise_range=(0, 0)).sample_batch(3, torch.Generator().manual_seed(0))
    hr = torch.cat([_img(24, 24, seed=i) for i in range(3)])
    batched = D.apply_batch(hr, degs, torch.Generator().manual_seed(0))
    single = torch.cat([d.apply(hr[i : i + 1]) for i, d in enumerate(degs)])
    assert (batched - single).abs().max() <= 1  # float round-off may move a .5 across a rounding boundary
    assert (batched != single).float().mean() < 0.01


def test_presets():
    assert [d.kernel.sigma if d.kernel else 0 for d in D.preset("dasr-iso", 4)] == [0, 1.2, 2.4, 3.6]
    assert len(D.preset("aniso9", 4)) == 36 and len(D.preset("crl-unseen", 4)) == 15
    sv = D.preset("crl-sv", 4)
    assert [d.name for d in sv] == ["x4-ramp0.2-4-n5", "x4-iso2-n5-50", "x4-ramp0.2-4-n5-50"]
    with pytest.raises(D.DegradationError, match="unknown preset"):
        D.preset("nope", 4)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: D.IsoGaussian(0.0), "must be finite and > 0"),
        (lambda: D.IsoGaussian(-1.0), "must be finite and > 0"),
        (lambda: D.AnisoGaussian(2.0, 0.0, 10.0), "must be finite and > 0"),
        (lambda: D.blur(_img(), torch.ones(4, 4) / 16), "positive odd integer"),
        (lambda: D.Degradation(2, D.IsoGaussian(1.0), kernel_size=20), "positive odd integer"),
        (lambda: D.Degradation(0), "scale must be an integer >= 1"),
        (lambda: D.Degradation(2.5), "scale must be an integer >= 1"),
        (lambda: D.Degradation(2, noise=-1), "noise must be"),
        (lambda: D.Degradation(2, resize="lanczos"), "unknown resize mode"),
        (lambda: D.Degradation(4).apply(_img(30, 32)), "not divisible by the scale 4"),
        (lambda: D.Degradation(2, D.IsoGaussian(1.0)).apply(_img(8, 8)), "too small for a 21x21 kernel"),
        (lambda: D.Degradation(2, noise=5).apply(_img(8, 8)), "pass a seeded torch.Generator"),
        (lambda: D.imresize(_img(), -0.5), "finite and > 0"),
        (lambda: D.Degradation.from_dict({"scale": 2, "kernel": {"type": "motion"}}), "unknown kernel type"),
    ],
)
def test_bad_input_gives_clear_error(make, match):
    with pytest.raises(D.DegradationError, match=match):
        make()
