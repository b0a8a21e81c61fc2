"""CDE embeddings (srlib.embeddings), their figures (srlib.viz) and the embedding explorer (srlib.widgets): features
by hook equal the encoder's own output and leave no hook behind, similarities by hand, a deterministic PCA, the
tidy embedding structure on a tiny untrained CRLSR, and the explorer's wiring without a kernel."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from srlib import embeddings as E
from srlib import viz, widgets
from srlib.archs.crl_sr import CRLSR, Encoder
from srlib.degradation import Degradation, IsoGaussian
from srlib.train import build_model


def _crops(n=3, size=32, seed=0) -> dict[str, np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    return {f"img{i}": torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8).numpy()
            for i in range(n)}


def _degs(scale=4) -> dict[str, Degradation]:
    return {"bicubic": Degradation(scale), "iso 2 + n10": Degradation(scale, IsoGaussian(2.0), 10.0)}


@pytest.fixture(scope="module")
def tiny():
    """Untrained CDE model (E_l, E_h, proj_l, proj_h) and a baseline without CDE modules, n_feats 8."""
    cde = build_model(lambda: CRLSR(4, n_feats=8, n_blocks=2, n_detail_blocks=1, proj_dim=16, cfr=False), 0)
    base = build_model(lambda: CRLSR(4, n_feats=8, n_blocks=2, n_detail_blocks=1, cde=False, cfr=False), 0)
    return cde.eval(), base.eval()


# ---------------------------------------------------------------- features


def test_encoder_features_output_equals_forward_and_hooks_are_removed():
    enc = build_model(lambda: Encoder(2, n_feats=8, n_blocks=3), 0)
    x = torch.rand(2, 3, 16, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = enc(x)
    torch.testing.assert_close(E.encoder_features(enc, x), ref, rtol=0, atol=0)
    for layer in (0, 1, 3):
        f = E.encoder_features(enc, x, layer)
        assert f.shape == (2, 8, 8, 6) and not f.requires_grad
    with torch.no_grad():  # after block 1 = head, then the first residual block
        after1 = enc.body[0](enc.head(torch.nn.functional.pixel_unshuffle(x, 2)))
    torch.testing.assert_close(E.encoder_features(enc, x, 1), after1)
    hooks = [m._forward_hooks for m in enc.modules()]
    assert all(len(h) == 0 for h in hooks)
    with pytest.raises(ValueError, match="layer"):
        E.encoder_features(enc, x, 4)
    with pytest.raises(ValueError):  # a failing forward pass leaves no hook either
        E.encoder_features(enc, x[..., :11], 2)
    assert all(len(m._forward_hooks) == 0 for m in enc.modules())


def test_project_map_shapes_and_unit_norm(tiny):
    cde, _ = tiny
    feat = torch.randn(2, 8, 3, 5, generator=torch.Generator().manual_seed(0))
    p = E.project_map(cde.proj_l, feat)
    assert p.shape == (2, 15, 16)
    torch.testing.assert_close(p.norm(dim=-1), torch.ones(2, 15))
    raw = E.project_map(None, feat)
    assert raw.shape == (2, 15, 8)
    torch.testing.assert_close(raw[1, 7], torch.nn.functional.normalize(feat[1, :, 1, 2], dim=0))  # 7 = 1 * 5 + 2


# ---------------------------------------------------------------- similarities and PCA


def test_location_similarity_by_hand():
    e0, e1 = [1.0, 0.0], [0.0, 1.0]
    d = [math.sqrt(0.5), math.sqrt(0.5)]
    fa = torch.tensor([[e0, e1]])  # (1, M=2, S=2)
    fb = torch.tensor([[e0, d]])
    # sim = [[e0.e0, e0.d], [e1.e0, e1.d]] = [[1, s], [0, s]], s = sqrt(1/2)
    s = math.sqrt(0.5)
    out = E.location_similarity(fa, fb)
    assert out["match"] == pytest.approx((1 + s) / 2)
    assert out["other"] == pytest.approx((s + 0) / 2)
    same = E.location_similarity(fa[0], fa[0])  # (M, S) accepted
    assert same == pytest.approx({"match": 1.0, "other": 0.0})
    with pytest.raises(ValueError):
        E.location_similarity(fa, fb[:, :1])


def test_similarity_matrix_symmetric_with_unit_diagonal():
    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(10, 6, generator=g) for _ in range(4)]
    maps.append(maps[0] * 3.0)  # same directions, another length
    mat = E.similarity_matrix(maps)
    assert mat.shape == (5, 5)
    np.testing.assert_allclose(mat, mat.T)
    np.testing.assert_allclose(np.diag(mat), 1.0)
    assert mat[0, 4] == pytest.approx(1.0)
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [0.0, 1.0]])  # cos 0 at location 0, cos 1 at location 1
    assert E.similarity_matrix([a, b])[0, 1] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        E.similarity_matrix([a, torch.zeros(3, 2)])


def test_pca_recovers_dominant_direction_and_is_deterministic():
    g = torch.Generator().manual_seed(0)
    direction = torch.nn.functional.normalize(torch.randn(12, generator=g, dtype=torch.float64), dim=0)
    t = torch.randn(200, generator=g, dtype=torch.float64) * 5
    x = t[:, None] * direction + 0.01 * torch.randn(200, 12, generator=g, dtype=torch.float64) + 3.0
    coords, explained = E.pca_2d(x.numpy(), return_explained=True)
    assert coords.shape == (200, 2) and explained[0] > 0.99
    corr = np.corrcoef(coords[:, 0], t.numpy())[0, 1]
    assert abs(corr) > 0.999
    np.testing.assert_array_equal(coords, E.pca_2d(x.numpy().copy()))
    np.testing.assert_allclose(E.pca_2d(-x.numpy()), -coords, atol=1e-9)  # components keep their sign convention
    # the sign convention makes the result independent of the SVD's arbitrary signs: the flipped data set gives
    # the same coordinates up to the convention, not a mirror image of a random sign
    flipped = E.pca_2d(x.numpy()[::-1].copy())
    np.testing.assert_allclose(flipped[::-1], coords, atol=1e-9)
    rank1 = E.pca_2d(np.outer(np.arange(5.0), [1.0, 2.0]))
    np.testing.assert_allclose(rank1[:, 1], 0.0, atol=1e-12)


# ---------------------------------------------------------------- CDE embeddings


def test_cde_embeddings_shapes_labels_and_determinism(tiny):
    cde, base = tiny
    crops, degs = _crops(), _degs()
    emb = E.cde_embeddings(cde, crops, degs, seed=3)
    n = len(crops) * (len(degs) + 1)
    assert emb.vectors.shape == (n, 64, 16) and emb.projected and emb.grid == (8, 8)
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=-1), 1.0, rtol=1e-5)
    assert emb.image[:3] == ["img0"] * 3 and emb.degradation[:3] == ["bicubic", "iso 2 + n10", "HR"]
    assert emb.domain.count("HR") == len(crops) and len(emb.entries("LR")) == len(crops) * len(degs)
    assert emb.inputs[0].shape == (8, 8, 3) and emb.inputs[2].shape == (32, 32, 3)
    again = E.cde_embeddings(cde, crops, degs, seed=3)
    np.testing.assert_array_equal(emb.vectors, again.vectors)
    # an image's LR does not depend on which other images are embedded
    alone = E.cde_embeddings(cde, {"img1": crops["img1"]}, degs, seed=3)
    np.testing.assert_allclose(alone.vectors, emb.vectors[3:6], atol=1e-5)  # batched passes: float rounding only

    raw = E.cde_embeddings(cde, crops, degs, layer=1, n_locations=10)
    assert raw.vectors.shape == (n, 10, 8) and not raw.projected and len(set(raw.locations)) == 10
    x, labels = raw.points()
    assert x.shape == (n * 10, 8) and len(labels["location"]) == n * 10
    assert raw.similarity("LR").shape == (6, 6)

    only_lr = E.cde_embeddings(base, crops, degs)  # the baseline has no E_h: LR entries only
    assert only_lr.vectors.shape == (6, 64, 8) and set(only_lr.domain) == {"LR"} and not only_lr.projected
    with pytest.raises(ValueError, match="project"):
        E.cde_embeddings(base, crops, degs, project=True)
    with pytest.raises(ValueError, match="scale"):
        E.cde_embeddings(cde, crops, {"x2": Degradation(2)})
    with pytest.raises(ValueError, match="one size"):
        E.cde_embeddings(cde, {"a": crops["img0"], "b": crops["img1"][:16]}, degs)


def test_invariance_table(tiny):
    cde, base = tiny
    crops, degs = _crops(), _degs()
    embs = {"a": E.cde_embeddings(base, crops, degs), "d": [E.cde_embeddings(cde, crops, degs, seed=s, project=False)
                                                          for s in (0, 1)]}
    t = E.invariance_table(embs)
    assert list(t.columns) == ["model", "features", "pair_type", "mean_cosine", "std", "n_seeds", "n_pairs"]
    assert len(t) == 4
    row = t[(t.model == "d") & (t.pair_type == "same image, different degradation")].iloc[0]
    assert row.n_seeds == 2 and row.n_pairs == 3 and np.isfinite(row["std"])  # 3 images x C(2, 2) pairs
    assert t[(t.model == "a") & (t.pair_type == "different image")].iloc[0].n_pairs == 12  # C(6, 2) - 3
    mat = embs["a"].similarity("LR")
    assert t.iloc[0].mean_cosine == pytest.approx(np.mean([mat[0, 1], mat[2, 3], mat[4, 5]]))


def test_probe_inputs():
    degs = E.probe_degradations(4)
    assert len(degs) == 4 and all(d.scale == 4 for d in degs.values())
    name, crops = E.probe_images(["no-such-set"], None, n_images=2, size=50, multiple=4)
    assert name == "embedded-test" and len(crops) == 2
    assert all(c.shape == (48, 48, 3) and c.dtype == np.uint8 for c in crops.values())


# ---------------------------------------------------------------- figures


def test_plot_training_curves():
    df = pd.DataFrame({"step": np.arange(1, 41), "l1": np.linspace(0.1, 0.05, 40), "cde": np.linspace(1, 0.2, 40),
                       "_sim_match": np.linspace(0, 0.9, 40), "_sim_other": np.linspace(0, 0.1, 40)})
    fig = viz.plot_training_curves({"a": df[["step", "l1"]], "d": df}, ["l1", "cde", ("_sim_match", "_sim_other")],
                                   title="t", smooth=5)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    smoothed = [ln for ln in fig.axes[0].lines if ln.get_gid() == "smoothed"]
    assert len(smoothed) == 2  # both runs in the L1 panel
    assert len([ln for ln in fig.axes[1].lines if ln.get_gid() == "smoothed"]) == 1  # only d has the CDE column
    np.testing.assert_allclose(smoothed[0].get_ydata()[4], df.l1[:5].mean())
    with pytest.raises(ValueError, match="nope"):
        viz.plot_training_curves(df, ["nope"])
    assert isinstance(viz.plot_training_curves(df, ["l1"]), Figure)


def test_plot_similarity_matrix_and_embedding_2d():
    mat = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.3], [0.2, 0.3, 1.0]])
    fig = viz.plot_similarity_matrix({"x": mat, "y": mat * 0.9}, ["a", "b", "c"], "t", groups=["i", "i", "j"])
    assert isinstance(fig, Figure) and len([ax for ax in fig.axes if ax.images]) == 2 and len(fig.axes) == 3
    assert "0.50" in [t.get_text() for t in fig.axes[0].texts]
    with pytest.raises(ValueError, match="shape"):
        viz.plot_similarity_matrix(mat, ["a", "b"])
    coords = np.random.default_rng(0).normal(size=(12, 2))
    fig = viz.plot_embedding_2d(coords, ["p", "q"] * 6, ["LR"] * 6 + ["HR"] * 6, "t", explained=[0.5, 0.2])
    assert isinstance(fig, Figure) and "50%" in fig.axes[0].get_xlabel()
    assert len(fig.axes[0].collections) == 4 + 4  # 4 (colour, marker) groups + their means
    many = viz.plot_embedding_2d(coords, [str(i) for i in range(12)])
    assert isinstance(many, Figure)


def test_render_embedding(tiny):
    cde, base = tiny
    crops, degs = _crops(), _degs()
    fig = widgets.render_embedding(cde, crops, list(degs), None, degs, n_locations=8)
    assert isinstance(fig, Figure) and "projected" in fig.axes[0].get_title()
    fig = widgets.render_embedding(base, crops, "bicubic", 1, degs, n_locations=4, colour_by="location")
    assert isinstance(fig, Figure) and "block 1" in fig.axes[0].get_title()
    fig = widgets.render_embedding(cde, crops, list(degs), None, degs, project=False, lr_only=True)
    assert "E_l only" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="unknown degradations"):
        widgets.render_embedding(cde, crops, ["nope"], None, degs)


# ---------------------------------------------------------------- widget wiring


def test_embedding_explorer_calls_render_with_new_values(tiny, monkeypatch):
    cde, _ = tiny
    crops, degs = _crops(), _degs()
    calls = []

    def spy(model, images, degradation_names, layer, degradations, **kw):
        calls.append({"model": model, "images": list(images), "degs": list(degradation_names), "layer": layer, **kw})
        return Figure()

    monkeypatch.setattr(widgets, "render_embedding", spy)
    box = widgets.embedding_explorer(cde, crops, degs, [None, 0, 1, 2])
    assert calls[-1]["images"] == list(crops) and calls[-1]["degs"] == list(degs) and calls[-1]["layer"] is None
    box.controls["layer"].value = 2
    assert calls[-1]["layer"] == 2
    box.controls["degradation"].value = "iso 2 + n10"
    assert calls[-1]["degs"] == ["iso 2 + n10"] and calls[-1]["layer"] == 2
    box.controls["images"].value = ("img1",)
    assert calls[-1]["images"] == ["img1"]
    box.controls["colour"].value = "location"
    box.controls["locations"].value = 16
    assert calls[-1]["colour_by"] == "location" and calls[-1]["n_locations"] == 16
    assert calls[-1]["model"] is cde and len(calls) == 6

    def broken(*args, **kw):
        raise ValueError("bad choice")

    monkeypatch.setattr(widgets, "render_embedding", broken)
    box.controls["layer"].value = 0  # an error is shown, not raised
    assert "bad choice" in box.status.value
