"""Notebook 03's PCL-SR sample-set explorer: the pure sample-set function (shapes, identities, the loss against the
InfoNCE formula by hand, input checks), the figure, the headless fallback and the widget's wiring."""

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from srlib import degradation as D
from srlib import pcl, viz, widgets
from srlib.archs.pcl_embed import PCLDiscriminator

PATCH, SCALE = 16, 4


def _img(h=40, w=36, seed=0) -> torch.Tensor:
    """(3, H, W) uint8 tensor of seeded noise."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def net() -> PCLDiscriminator:
    torch.manual_seed(0)
    return PCLDiscriminator(taps=(0, 2))


def _set(net, hr=None, sr_fn=None, **kw):
    kw = {"scale": SCALE, "patch": PATCH, "sharpen_factors": (1.0, 2.0), "blur_sigmas": (0.5, 1.5), "blur_size": 5,
          **kw}
    return widgets.pcl_sample_set(_img() if hr is None else hr, sr_fn, net, **kw)


def _bars(fig):
    """Heights of the bar chart, (n_bars, L): one row per sample in the order drawn."""
    ax = next(a for a in fig.axes if a.containers)
    return np.array([[r.get_height() for r in c] for c in ax.containers])


# ---------------------------------------------------------------- the pure function


def test_shapes_and_contents(net):
    img = _img()
    s = _set(net, img, top=3, left=5)
    assert (s.top, s.left, s.patch, s.scale, s.blur_size) == (3, 5, PATCH, SCALE, 5)
    hr = img[:, 3 : 3 + PATCH, 5 : 5 + PATCH].float() / 255
    torch.testing.assert_close(s.hr, hr, rtol=0, atol=0)
    lr = D.imresize(hr[None].double() * 255, scale=1 / SCALE, quantize=True).float()[0] / 255
    torch.testing.assert_close(s.lr, lr, rtol=0, atol=0)
    assert s.anchor.shape == (3, PATCH, PATCH) and not s.anchor_is_sr
    assert s.positives.shape == s.negatives.shape == (3, 3, PATCH, PATCH)
    torch.testing.assert_close(s.positives[0], hr, rtol=0, atol=0)
    torch.testing.assert_close(s.positives[2], pcl.quantize(pcl.sharpen(hr[None], 2.0))[0], rtol=0, atol=0)
    torch.testing.assert_close(s.negatives[2], pcl.quantize(pcl.gaussian_blur(hr[None], (5, 5), (1.5, 1.5)))[0],
                               rtol=0, atol=0)
    assert s.anchor_hf.shape == (9, 8, 8) and s.pos_hf.shape == s.neg_hf.shape == (3, 9, 8, 8)
    assert s.taps == (0, 2) and s.layer_names == ["block 0 (64 ch)", "block 2 (128 ch)"]
    assert [tuple(f.shape) for f in s.anchor_feats] == [(64, 8, 8), (128, 4, 4)]
    assert [tuple(f.shape) for f in s.pos_feats] == [(3, 64, 8, 8), (3, 128, 4, 4)]
    assert [tuple(f.shape) for f in s.neg_feats] == [(3, 64, 8, 8), (3, 128, 4, 4)]
    assert s.sim_pos.shape == s.sim_neg.shape == (2, 3) and s.similarities.shape == (2, 6)
    assert s.loss_per_layer.shape == (2,) and math.isclose(s.loss, s.loss_per_layer.mean(), rel_tol=1e-6)
    assert np.all(np.abs(s.similarities) <= 1 + 1e-6)
    assert len(s.pos_labels) == len(s.neg_labels) == 3 and "f=2.00" in s.pos_labels[2]
    assert "σ=1.50" in s.neg_labels[2] and "5x5" in s.neg_labels[2]
    # deterministic: no random draws
    s2 = _set(net, img, top=3, left=5)
    np.testing.assert_array_equal(s2.similarities, s.similarities)


def test_accepts_hwc_uint8_and_restores_the_train_mode(net):
    img = _img()
    net.train()
    a = _set(net, img)
    assert net.training and all(m.training for m in net.modules())
    net.eval()
    b = _set(net, img.permute(1, 2, 0).numpy())
    assert not any(m.training for m in net.modules())
    np.testing.assert_array_equal(a.similarities, b.similarities)  # eval mode both times; centred patch


def test_sharpen_factor_one_is_hr(net):
    s = _set(net, sharpen_factors=(1.0, 2.5))
    torch.testing.assert_close(s.positives[1], s.positives[0], rtol=0, atol=0)
    np.testing.assert_array_equal(s.sim_pos[:, 1], s.sim_pos[:, 0])


def test_identical_anchor_has_similarity_one_to_hr(net):
    img = _img()
    hr = img[None, :, 12:28, 10:26].float() / 255  # the centred 16 x 16 patch of the 40 x 36 image
    seen = []

    def sr_fn(lr):
        seen.append(lr)
        return hr.clone()

    s = _set(net, img, sr_fn)
    assert s.anchor_is_sr and len(seen) == 1 and seen[0].shape == (1, 3, 4, 4)
    torch.testing.assert_close(seen[0][0], s.lr, rtol=0, atol=0)
    np.testing.assert_allclose(s.sim_pos[:, 0], 1.0, atol=1e-6)
    assert np.all(s.sim_pos[:, 2] < 1 - 1e-3)  # the copy sharpened by 2 differs


def test_bicubic_stand_in_is_the_lr_negative(net):
    s = _set(net)
    torch.testing.assert_close(s.anchor, s.negatives[0], rtol=0, atol=0)
    np.testing.assert_allclose(s.sim_neg[:, 0], 1.0, atol=1e-6)
    assert "stand-in" in s.anchor_label


def test_loss_is_infonce_by_hand(net):
    s = _set(net, sharpen_factors=(0.5, 3.0), blur_sigmas=(1.0,))
    for sp, sn, loss in zip(s.sim_pos, s.sim_neg, s.loss_per_layer, strict=True):
        # -log softmax of [s(a, p_j), s(a, n_1), ..., s(a, n_K)] at index 0, averaged over the positives
        by_hand = np.mean([math.log(math.exp(p) + sum(math.exp(n) for n in sn)) - p for p in sp])
        assert loss == pytest.approx(by_hand, rel=1e-5)
    assert s.loss == pytest.approx(float(np.mean(s.loss_per_layer)), rel=1e-6)


def test_rgb_range_scales_the_haar_input(net):
    a, b = _set(net), _set(net, rgb_range=255.0)
    torch.testing.assert_close(b.pos_hf, pcl.haar_highpass(a.positives * 255.0))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"patch": 48}, "larger than the 40x36 image"),
        ({"patch": 18}, "multiple of the scale 4"),
        ({"patch": 9, "scale": 3}, "must be even"),
        ({"top": 30}, "outside the 40x36 image"),
        ({"scale": 0}, "scale must be an integer"),
        ({"sharpen_factors": (-1.0,)}, "sharpen_factors"),
        ({"blur_sigmas": (0.0,)}, "blur_sigmas"),
        ({"blur_size": 4}, "blur_size must be a positive odd"),
        ({"rgb_range": 0.0}, "rgb_range"),
    ],
)
def test_bad_input_raises(net, kw, match):
    with pytest.raises(ValueError, match=match):
        _set(net, **kw)


def test_bad_sr_output_raises(net):
    with pytest.raises(ValueError, match=r"sr_fn must return a \(1, 3, 16, 16\)"):
        _set(net, sr_fn=lambda lr: lr)


def test_spread():
    assert widgets.spread(0.5, 3.0, 3) == (0.5, 1.75, 3.0)
    assert widgets.spread(0.1, 2.0, 1) == (2.0,) and widgets.spread(0.1, 2.0, 0) == ()


# ---------------------------------------------------------------- figure and explorer


def test_haar_hf_magnitude_by_hand():
    img = np.zeros((2, 2, 3), np.uint8)
    img[0, 0] = 255  # a = 1: LH = HL = HH = 0.5 in every colour
    np.testing.assert_allclose(viz.haar_hf_magnitude(img), [[3 * math.sqrt(0.75)]])
    assert not viz.haar_hf_magnitude(np.full((4, 6, 3), 77, np.uint8)).any()


def test_render_shows_the_sample_set(net):
    img = _img()
    fig = widgets.render_pcl_samples(img, None, net, scale=SCALE, patch=PATCH, sharpen=2.0, blur_sigma=1.5,
                                     blur_size=5, n_sharp=2, n_blur=2)
    s = _set(net, img, sharpen_factors=(0.5, 2.0), blur_sigmas=(0.1, 1.5))
    assert isinstance(fig, Figure) and "stand-in" in fig.get_suptitle()
    np.testing.assert_allclose(_bars(fig), s.similarities.T)
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(images) == 2 * 7
    np.testing.assert_array_equal(images[1], viz.to_uint8(s.positives[0] * 255))
    np.testing.assert_allclose(images[7 + 6], viz.haar_hf_magnitude(s.negatives[2] * 255))
    text = " ".join(t.get_text() for ax in fig.axes for t in ax.get_xticklabels())
    assert f"InfoNCE {s.loss_per_layer[1]:.4f}" in text
    assert "f=2.00" in fig.axes[3].get_title() and "σ=1.50, 5x5" in fig.axes[6].get_title()


def test_plot_pcl_samples_checks_shapes():
    x = torch.zeros(3, 4, 4)
    with pytest.raises(ValueError, match=r"shape \(L, 2\)"):
        viz.plot_pcl_samples(x, [x], [x], np.zeros((1, 3)))
    with pytest.raises(ValueError, match="at least one positive"):
        viz.plot_pcl_samples(x, [], [x], np.zeros((1, 1)))


def test_headless_explorer_returns_a_figure(net, monkeypatch):
    monkeypatch.setenv("SRLIB_INTERACTIVE", "0")
    fig = widgets.pcl_sample_explorer(_img(), None, net, scale=SCALE, patch=PATCH)
    assert isinstance(fig, Figure) and _bars(fig).shape == (8, 2)
    assert isinstance(widgets.pcl_sample_explorer(_img(), None, net, scale=2, patch=8, interactive=False), Figure)
    with pytest.raises(ValueError, match="larger than"):
        widgets.pcl_sample_explorer(_img(), None, net, patch=64, interactive=False)


def test_explorer_controls_fire_the_renderer(net, monkeypatch):
    pytest.importorskip("ipywidgets")
    calls = []

    def fake(hr, sr_fn, embed_net, **values):
        calls.append(values)
        if values["sharpen"] == 0.5:
            raise ValueError("a deliberate error")
        return Figure()

    monkeypatch.setattr(widgets, "render_pcl_samples", fake)
    box = widgets.pcl_sample_explorer(_img(), None, net, scale=SCALE, patch=PATCH, interactive=True)
    assert set(box.controls) == {"sharpen", "blur_sigma", "blur_size", "top", "left"}
    assert len(calls) == 1 and (calls[0]["top"], calls[0]["left"]) == (12, 10)  # centred at first
    assert box.controls["top"].max == 24 and box.controls["left"].max == 20
    box.controls["sharpen"].value = 1.5
    box.controls["blur_sigma"].value = 0.8
    box.controls["left"].value = 4
    assert calls[-1] == {"scale": SCALE, "patch": PATCH, "sharpen": 1.5, "blur_sigma": 0.8, "blur_size": 7,
                         "n_sharp": 3, "n_blur": 3, "rgb_range": 1.0, "top": 12, "left": 4}
    assert "0.50, 1.00, 1.50" in box.status.value
    box.controls["sharpen"].value = 0.5  # must not raise
    assert "ValueError" in box.status.value and "deliberate" in box.status.value
    assert "deliberate" in box.message.value and box.image.layout.display == "none"
    box.controls["sharpen"].value = 1.0  # recovers
    assert "Error" not in box.status.value and box.message.value == "" and box.image.layout.display is None


def test_sharpen_max_below_the_first_factor_is_refused(net):
    # spread(0.5, f, 3) with f < 0.5 would run backwards from the fixed first factor: a clear message, not a figure
    with pytest.raises(ValueError, match=r"sharpen f max = 0.3 is below the first of the 3 values.*0.5"):
        widgets.render_pcl_samples(_img(), None, net, scale=SCALE, patch=PATCH, sharpen=0.3)
    with pytest.raises(ValueError, match=r"blur σ max = 0.05 is below .*0.1"):
        widgets.render_pcl_samples(_img(), None, net, scale=SCALE, patch=PATCH, blur_sigma=0.05, n_blur=2)
    # one copy has no fixed first factor: any strength is possible
    fig = widgets.render_pcl_samples(_img(), None, net, scale=SCALE, patch=PATCH, sharpen=0.3, n_sharp=1)
    assert "f=0.30" in " ".join(ax.get_title() for ax in fig.axes)


def test_explorer_cannot_choose_an_impossible_maximum(net):
    pytest.importorskip("ipywidgets")
    box = widgets.pcl_sample_explorer(_img(), None, net, scale=SCALE, patch=PATCH, interactive=True)
    assert box.controls["sharpen"].min == widgets.PCL_SHARPEN_FIRST == 0.5
    assert box.controls["blur_sigma"].min == widgets.PCL_BLUR_FIRST == 0.1
    box.controls["sharpen"].value = 0.2  # ipywidgets clamps to the slider's range
    assert box.controls["sharpen"].value == 0.5 and "Error" not in box.status.value
    assert "sharpen f = 0.50, 0.50, 0.50" in box.status.value


def test_explorer_renders_for_real(net):
    pytest.importorskip("ipywidgets")
    box = widgets.pcl_sample_explorer(_img(), None, net, scale=SCALE, patch=PATCH, interactive=True)
    assert "Error" not in box.status.value and "computed in" in box.status.value
    first = bytes(box.image.value)
    assert first.startswith(b"\x89PNG") and box.static_png == first
    box.controls["blur_size"].value = 3
    assert "Error" not in box.status.value and "3x3" in box.status.value
    assert bytes(box.image.value).startswith(b"\x89PNG") and bytes(box.image.value) != first
    assert box.static_png == first
