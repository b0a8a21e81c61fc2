"""Figures: pure functions returning Figures with the right data, paper-vs-ours with missing values, reproducible and
atomic PNG files, the demo image and the helpers the notebooks use."""

import hashlib
import math
import os

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from srlib import degradation as D
from srlib import viz


def _img(h=48, w=64, seed=0) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).numpy()


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]


# ---------------------------------------------------------------- image helpers


def test_to_uint8_accepts_arrays_tensors_and_gray():
    img = _img()
    assert viz.to_uint8(img) is img
    t = torch.from_numpy(img).permute(2, 0, 1).float()
    np.testing.assert_array_equal(viz.to_uint8(t), img)
    np.testing.assert_array_equal(viz.to_uint8(t[None]), img)
    gray = viz.to_uint8(img[..., 0])
    assert gray.shape == img.shape and np.all(gray[..., 2] == img[..., 0])
    np.testing.assert_array_equal(viz.to_uint8(np.full((2, 2, 3), 300.0)), np.full((2, 2, 3), 255, np.uint8))
    with pytest.raises(ValueError, match="shape"):
        viz.to_uint8(np.zeros((4, 4, 2), np.uint8))


def test_nearest_resize_repeats_pixels_as_blocks():
    lr = _img(3, 5)
    up = viz._nearest_resize(lr, (12, 20))
    np.testing.assert_array_equal(up, lr.repeat(4, axis=0).repeat(4, axis=1))


def test_center_crop_and_multiple():
    img = _img(50, 70)
    c = viz.center_crop(img, 40, multiple=12)
    assert c.shape == (36, 36, 3)
    np.testing.assert_array_equal(c, img[5:41, 15:51])
    assert viz.center_crop(img, 500).shape == img.shape


def test_degrade_image_is_seeded_and_modcropped():
    hr = _img(50, 66)
    d = D.Degradation(4, D.IsoGaussian(1.2), 10.0)
    hr_c, lr1 = viz.degrade_image(hr, d, seed=3)
    _, lr2 = viz.degrade_image(hr, d, seed=3)
    _, lr3 = viz.degrade_image(hr, d, seed=4)
    assert hr_c.shape == (48, 64, 3) and lr1.shape == (12, 16, 3) and lr1.dtype == np.uint8
    np.testing.assert_array_equal(lr1, lr2)
    assert not np.array_equal(lr1, lr3)


def test_noisy_copies_levels_and_shared_pattern():
    img = np.full((64, 64, 3), 128, np.uint8)
    noisy = viz.noisy_copies(img, (0, 5, 15), seed=0)
    np.testing.assert_array_equal(noisy[0], img)
    res5, res15 = (n.astype(float) - 128 for n in noisy[1:])
    assert abs(res5.std() - 5) < 0.5 and abs(res15.std() - 15) < 1.0
    assert np.corrcoef(res5.ravel(), res15.ravel())[0, 1] > 0.95  # one seed: the same pattern, scaled


def test_describe():
    assert viz.describe(D.Degradation(4)) == "x4, no blur, no noise, MATLAB bicubic"
    assert viz.describe(D.Degradation(4), short=True) == "bicubic"
    d = D.Degradation(3, D.AnisoGaussian(3.5, 1.5, 30), 15, resize="sfold", convention="cdsr")
    assert viz.describe(d) == "x3, aniso l1=3.5 l2=1.5 θ=30° (variances), noise 15, s-fold, CDSR convention"
    assert viz.describe(D.preset("crl-sv", 4)[2], short=True) == "blur σ 0.2→4, noise 5→50"


def test_example_image_prefers_butterfly(shared_data):
    name, img = viz.example_image(shared_data)
    assert name == "Set5/butterfly" and img.shape == (256, 256, 3) and img.dtype == np.uint8


def test_example_image_falls_back_to_embedded(tmp_path, monkeypatch):
    monkeypatch.delenv("SRLIB_DATA", raising=False)
    name, img = viz.example_image(tmp_path)  # an empty data root: no Set5, no Set14
    assert name.startswith("embedded-test/") and img.ndim == 3 and img.dtype == np.uint8


# ---------------------------------------------------------------- plots


def test_plot_kernels_shared_scale_titles_and_colourbar():
    ks = torch.stack([D.isotropic_gaussian_kernel(s) for s in (0.6, 1.2, 2.4, 3.6)])
    fig = viz.plot_kernels(ks, ["a", "b", "c", "d"], ncols=3)
    assert isinstance(fig, Figure)
    axes = _image_axes(fig)
    assert len(axes) == 4 and [ax.get_title() for ax in axes] == ["a", "b", "c", "d"]
    clims = {ax.images[0].get_clim() for ax in axes}
    assert len(clims) == 1 and math.isclose(clims.pop()[1], float(ks.max()), rel_tol=1e-6)
    assert any("kernel weight" in ax.get_ylabel() for ax in fig.axes)  # the colour bar
    # a list of (k, k) arrays works too, and the sqrt colour scale keeps one scale
    fig = viz.plot_kernels([k.numpy() for k in ks], gamma=0.5)
    assert len({ax.images[0].norm.vmax for ax in _image_axes(fig)}) == 1
    assert any(ax.get_ylabel() == "weight (√ scale)" for ax in fig.axes)
    with pytest.raises(ValueError, match="titles"):
        viz.plot_kernels(ks, ["only one"])
    with pytest.raises(ValueError, match="empty"):
        viz.plot_kernels([])


def test_plot_images_shows_lr_at_hr_size():
    hr = _img(48, 64)
    _, lr = viz.degrade_image(hr, D.Degradation(4), 0)
    t = torch.from_numpy(lr).permute(2, 0, 1).float()  # a 0..255 tensor is accepted too
    fig = viz.plot_images([hr, lr, t], ["HR", "LR", "LR tensor"], ncols=2)
    axes = _image_axes(fig)
    assert len(axes) == 3
    shown = [ax.images[0].get_array() for ax in axes]
    assert all(a.shape == (48, 64, 3) for a in shown)
    np.testing.assert_array_equal(shown[0], hr)
    np.testing.assert_array_equal(shown[1], lr.repeat(4, 0).repeat(4, 1))
    np.testing.assert_array_equal(shown[2], shown[1])


def test_plot_degradation_with_and_without_kernel():
    hr = _img(48, 48)
    _, lr = viz.degrade_image(hr, D.Degradation(4, D.IsoGaussian(2.0)), 0)
    fig = viz.plot_degradation(hr, lr, D.isotropic_gaussian_kernel(2.0), title="t")
    assert len(_image_axes(fig)) == 3 and fig.get_suptitle() == "t"
    fig = viz.plot_degradation(hr, lr, None)
    assert len(_image_axes(fig)) == 2


def test_plot_spatially_variant_curves_follow_the_ramps():
    hr = _img(48, 64)
    degs = D.preset("crl-sv", 4)
    lrs = [viz.degrade_image(hr, d, 0)[1] for d in degs]
    fig = viz.plot_spatially_variant(hr, lrs, degs)
    assert len(_image_axes(fig)) == 3
    lines = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            lines.setdefault(line.get_label(), []).append(line.get_ydata())
    widths, noises = lines["blur width σ"], lines["noise level"]
    assert len(widths) == 3 and len(noises) == 3
    np.testing.assert_allclose([widths[0][0], widths[0][-1]], [0.2, 4.0])  # ramp over the HR columns
    np.testing.assert_allclose(widths[1], 2.0)  # constant iso width
    np.testing.assert_allclose(noises[0], 5.0)
    np.testing.assert_allclose([noises[1][0], noises[1][-1]], [5.0, 50.0])
    assert len(noises[1]) == 16  # one value per LR column
    # a single degradation works as well
    fig = viz.plot_spatially_variant(hr, lrs[0], degs[0])
    assert len(_image_axes(fig)) == 1
    with pytest.raises(ValueError, match="LR images"):
        viz.plot_spatially_variant(hr, lrs[:2], degs)


def test_plot_noise_levels():
    crop = _img(32, 32)
    levels = (0, 15, 50)
    fig = viz.plot_noise_levels(crop, viz.noisy_copies(crop, levels), levels)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0] == "σ = 0 (measured 0.0)" and titles[2].startswith("σ = 50")
    assert len(_image_axes(fig)) == 6
    with pytest.raises(ValueError, match="levels"):
        viz.plot_noise_levels(crop, [crop], levels)


def _table(**over):
    rows = []
    for metric, ours, paper in (("psnr", 28.43, 28.42), ("ssim", 0.811, 0.8104)):
        for setting in ("bicubic", "iso1.2"):
            rows.append({"method": "Bicubic", "dataset": "Set5", "scale": 4, "setting": setting, "metric": metric,
                         "ours_mean": ours, "ours_std": 0.01 if metric == "psnr" else 0.001, "n_seeds": 3,
                         "paper": paper, "delta": ours - paper, "source": "DASR Table 2"})
    t = pd.DataFrame(rows)
    for k, v in over.items():
        t[k] = v
    return t


def test_plot_paper_vs_ours_one_panel_per_metric():
    fig = viz.plot_paper_vs_ours(_table(), title="x")
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["PSNR (dB, Y) ↑", "SSIM (Y) ↑"]
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["bicubic", "iso1.2"]
    assert axes[0].get_xlabel() == "Set5, ×4"
    texts = [t.get_text() for t in axes[0].texts]
    assert texts[0] == "+0.01"  # one seed count everywhere: it is in the legend
    assert any("mean ± std, 3 seeds" in t.get_text() for t in fig.legends[0].get_texts())
    # the paper marker sits at the paper value
    ys = sorted(float(y) for line in axes[0].get_lines() if line.get_gid() == "paper" for y in line.get_ydata())
    assert ys == [28.42, 28.42]
    fig = viz.plot_paper_vs_ours(_table(), metrics=["ssim"])
    assert len([ax for ax in fig.axes if ax.get_title()]) == 1


def test_plot_paper_vs_ours_duplicate_sources_and_mixed_seed_counts():
    t = _table()
    dup = t.iloc[[0]].assign(source="PCL-SR Table 2")  # the same cell published by two papers, same value
    other = t.iloc[[1]].assign(source="other", paper=30.0, delta=t.iloc[1]["ours_mean"] - 30.0)  # a different value
    t = pd.concat([t, dup, other], ignore_index=True)
    t.loc[0, "n_seeds"] = 1
    ax = viz.plot_paper_vs_ours(t, metrics=["psnr"]).axes[0]
    papers = sorted(float(y) for line in ax.get_lines() if line.get_gid() == "paper" for y in line.get_ydata())
    assert papers == [28.42, 28.42, 30.0]  # bicubic: one marker for two sources; iso1.2: two values
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["+0.01 (n=1)", "+0.01/-1.57 (n=3)"]


def test_plot_paper_vs_ours_with_missing_paper_and_std():
    t = _table(paper=float("nan"), delta=float("nan"), ours_std=float("nan"), n_seeds=1)
    fig = viz.plot_paper_vs_ours(t)
    ax = fig.axes[0]
    assert all(t.get_text().startswith("no paper") for t in ax.texts)
    assert not [line for line in ax.get_lines() if line.get_gid() == "paper"]
    assert all(len(c.lines[2]) == 0 for c in ax.containers)  # no error bars


def test_plot_paper_vs_ours_bad_tables():
    with pytest.raises(ValueError, match="lacks the columns"):
        viz.plot_paper_vs_ours(_table().drop(columns=["paper"]))
    with pytest.raises(ValueError, match="empty"):
        viz.plot_paper_vs_ours(_table().iloc[:0])
    with pytest.raises(ValueError, match="not in the table"):
        viz.plot_paper_vs_ours(_table(), metrics=["lpips"])


# ---------------------------------------------------------------- saving


def test_save_figure_is_reproducible_and_creates_folders(tmp_path):
    path = tmp_path / "a" / "b" / "fig.png"
    fig = viz.plot_kernels([D.isotropic_gaussian_kernel(1.0)], ["σ=1"])
    assert viz.save_figure(fig, path) == path
    first = path.read_bytes()
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"Software" not in first and b"matplotlib" not in first
    viz.save_figure(viz.plot_kernels([D.isotropic_gaussian_kernel(1.0)], ["σ=1"]), path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(first).hexdigest()
    assert os.listdir(path.parent) == ["fig.png"]  # no temporary files left
    assert path.stat().st_mode & 0o044  # readable by others, as open() would create it (umask 022)
    # the figure is displayable as PNG without pyplot
    assert fig._repr_png_().startswith(b"\x89PNG")


def test_save_figure_failure_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "fig.png"
    fig = viz.plot_kernels([D.isotropic_gaussian_kernel(1.0)])
    viz.save_figure(fig, path)
    before = path.read_bytes()

    def broken(f, **kwargs):
        f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        viz.save_figure(fig, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["fig.png"]
    with pytest.raises(ValueError, match="PNG"):
        viz.save_figure(fig, tmp_path / "fig.pdf")
