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


# ---------------------------------------------------------------- legible at the size shown, nothing cut off


def _many_methods_table(n_methods=9, datasets=("B100", "Set14", "Set5")):
    rows = []
    for i in range(n_methods):
        for d in datasets:
            for metric, base in (("psnr", 26.0), ("ssim", 0.7)):
                ours = base + 0.01 * i
                paper = float("nan") if i % 2 else base + 0.5
                rows.append({"method": f"method {i}", "dataset": d, "scale": 4, "setting": "bicubic",
                             "metric": metric, "ours_mean": ours, "ours_std": float("nan"), "n_seeds": 1,
                             "paper": paper, "delta": ours - paper})
    return pd.DataFrame(rows)


def _points(ax):
    """x of every point drawn in ``ax`` (method markers and paper bars)."""
    return [float(x) for line in ax.get_lines() for x in line.get_xdata()]


def test_plot_paper_vs_ours_draws_every_method_inside_the_axes():
    # PCL Tables 2/3 have 9 methods per category: the outer ones ("Bicubic", "+PCL as released") were cut off
    t = _many_methods_table(9)
    fig = viz.plot_paper_vs_ours(t)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert len(axes) == 2
    for ax in axes:
        lo, hi = ax.get_xlim()
        xs = _points(ax)
        assert len([c for c in ax.containers]) == 9 * 3  # one error-bar point per method and category
        assert xs and all(lo < x < hi for x in xs), (lo, hi, min(xs), max(xs))
        # each method's points stay inside its category's slot [i - 0.5, i + 0.5]
        for c in ax.containers:
            x = float(c.lines[0].get_xdata()[0])
            assert abs(x - round(x)) <= 0.4 + 1e-9
    assert len(fig.legends[0].get_texts()) == 9 + 1


def test_plot_paper_vs_ours_continues_wide_tables_on_further_rows():
    datasets = ("Set5", "Set14", "B100")
    rows = []
    for scale in (2, 3, 4):
        for d in datasets:
            for k in range(4):
                for metric in ("psnr", "ssim"):
                    rows.append({"method": "Bicubic", "dataset": d, "scale": scale, "setting": f"iso{k}",
                                 "metric": metric, "ours_mean": 30.0 - k, "ours_std": 0.0, "n_seeds": 1,
                                 "paper": 30.0, "delta": -k})
    fig = viz.plot_paper_vs_ours(pd.DataFrame(rows))
    assert fig.get_figwidth() <= viz.MAX_WIDTH_IN + 1e-9
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "PSNR (dB, Y) ↑" and "PSNR (dB, Y) ↑ (continued)" in titles and len(titles) > 2
    psnr_axes = [ax for ax in fig.axes if ax.get_title().startswith("PSNR")]
    ticks = [t.get_text() for ax in psnr_axes for t in ax.get_xticklabels()]
    assert len(ticks) == 36 and len(set(ticks)) == 36  # every category once
    # rows break between (dataset, scale) groups: each row starts with a group's first setting
    assert all(ax.get_xticklabels()[0].get_text().endswith("iso0") for ax in psnr_axes)


def test_text_sizes_px_by_hand():
    fig = Figure(figsize=(19.2, 2))
    fig.text(0.5, 0.5, "ten points", fontsize=10)
    # 10 pt at 100 dpi = 13.9 px, on a 1920-pixel figure shown 960 pixels wide: half of it
    assert viz.text_sizes_px(fig, display_width_px=960, dpi=100) == [("ten points", pytest.approx(10 * 100 / 72 / 2))]
    fig.set_size_inches(6, 2)
    assert viz.text_sizes_px(fig)[0][1] == pytest.approx(10 * 100 / 72)
    fig.text(0.95, 0.5, "cut off at the right edge", fontsize=10)
    assert viz.texts_outside(fig) == ["cut off at the right edge"]


def _legibility_cases():
    rng = np.random.default_rng(0)
    degs = ["bicubic", "iso 2.0", "iso 3.6 + n15", "aniso 3.5/2/45°"]
    imgs = ["baby", "bird", "butterfly", "head"]
    sim = {k: rng.uniform(0.2, 1, (16, 16)) for k in ("a: baseline", "d: CDE")}
    patch = torch.from_numpy(_img(32, 32)).permute(2, 0, 1).float()
    losses = pd.DataFrame({"step": np.arange(50), **{c: rng.uniform(0, 1, 50) for c in ("l1", "cde", "cfr", "hr")}})
    return {
        "paper_vs_ours 9 methods": lambda: viz.plot_paper_vs_ours(_many_methods_table(9), title="PCL Table 2"),
        "paper_vs_ours 36 categories": lambda: viz.plot_paper_vs_ours(
            pd.concat([_many_methods_table(1, tuple(f"set{i}" for i in range(36)))]), title="bicubic"),
        "similarity matrix 2 x 16": lambda: viz.plot_similarity_matrix(
            sim, [d for _ in imgs for d in degs], groups=[i for i in imgs for _ in degs],
            title="E_l output, L2-normalised per location: mean cosine between maps (Set5, x4, seed 0)"),
        "pcl samples 4 + 4": lambda: viz.plot_pcl_samples(
            patch, [patch] * 4, [patch] * 4, rng.uniform(0, 1, (4, 8)), rng.uniform(1, 2, 4),
            labels=["anchor: SR x4", "+ HR", *(f"+ sharpen f={f:.2f}" for f in (0.5, 1.75, 3.0)), "− LR bicubic↑ x4",
                    *(f"− blur σ={s:.2f}, 7x7" for s in (0.1, 1.05, 2.0))],
            layer_names=[f"block {i} ({c} ch)" for i, c in ((0, 64), (2, 128), (4, 256), (6, 512))],
            title="PCL-SR sample set, x4, 96x96 patch at (top 208, left 208); anchor: bicubic upsampled LR as a "
                  "stand-in (no SR model given); Haar bands of the [0, 1] images"),
        "embedding values 3 panels": lambda: viz.plot_embedding_values(
            rng.normal(size=(40, 2)), {c: rng.uniform(0, 4, 40) for c in ("width", "angle", "noise")}, title="t"),
        "training curves 4 panels": lambda: viz.plot_training_curves(losses, ["l1", "cde", "cfr", "hr"], title="t"),
        "images 6": lambda: viz.plot_images([_img()] * 6, [f"image {i}" for i in range(6)], ncols=6),
        "degradation, CDSR convention": lambda: viz.plot_degradation(
            _img(48, 48), _img(12, 12), D.Degradation(4, D.AnisoGaussian(3.5, 1.5, 30), convention="cdsr")
            .kernel_tensor(), title="x4, aniso", kernel_title="kernel (CDSR: shifted for s-fold)"),
    }


@pytest.mark.parametrize("case", list(_legibility_cases()))
def test_figures_are_legible_at_the_size_shown(case):
    fig = _legibility_cases()[case]()
    assert fig.get_figwidth() * viz.SAVE_DPI <= viz.DISPLAY_WIDTH_PX + 1e-6  # shown at its own size
    smallest = min(viz.text_sizes_px(fig), key=lambda t: t[1])
    assert smallest[1] >= viz.MIN_TEXT_PX, smallest
    assert viz.texts_outside(fig) == []  # no title or label cut off at the figure's edge


def test_no_offset_notation_on_axes_or_colour_bars():
    # values spanning a small range far from 0: matplotlib's default writes "+1.358e1" above the axis
    rng = np.random.default_rng(0)
    coords = np.stack([13.58 + 0.0004 * rng.uniform(size=30), rng.uniform(size=30)], axis=1)
    values = {"width": 13.58 + 0.0004 * rng.uniform(size=30)}
    plain = Figure()
    ax = plain.subplots()
    sc = ax.scatter(coords[:, 0], coords[:, 1], c=values["width"])
    cb = plain.colorbar(sc)
    plain.draw_without_rendering()
    assert ax.xaxis.get_offset_text().get_text() and cb.ax.yaxis.get_offset_text().get_text()  # the default does
    fig = viz.plot_embedding_values(coords, values)
    fig.draw_without_rendering()
    offsets = [a.get_offset_text().get_text() for ax in fig.axes for a in (ax.xaxis, ax.yaxis)]
    assert offsets and not any(offsets), offsets
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert any(label.startswith("13.58") for label in labels), labels  # the numbers are written in full
