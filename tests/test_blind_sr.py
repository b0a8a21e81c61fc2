"""DASR / CDSR training and analysis (srlib.methods.blind_sr, the notebook-04 parts of embeddings / widgets / viz).

The pair batches share what each positive says they share (checked on images of one flat colour each, so content is
read off the pixels, not off our own bookkeeping); the CDSR protocol's statistics; the encoder-only stage moves the
encoder only; the two-stage run resumes bit-identically; the nearest-neighbour accuracy on hand-made embeddings; the
CDSR test kernels are seeded and inside CDSR's training ranges. Tiny sizes throughout (C = 8, 12x12 LR patches).
"""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from srlib import degradation as D
from srlib import embeddings as E
from srlib import profiles
from srlib.archs import CDSR, DASR
from srlib.data import PatchSampler
from srlib.evaluate import bicubic_upscaler
from srlib.methods import blind_sr as B
from srlib.recipes import blind_sr as R
from srlib.reference import load_reference
from srlib.runs import TrainingImages, train_one
from srlib.train import TrainConfig, build_model

SCALE = 2
TINY = profiles.BlindSizes((SCALE,), n_feats=8, enc_feats=4, dasr_groups=1, dasr_blocks=1, cdsr_blocks=1,
                           codebook_size=8, queue_size=8, warmup_iterations=2, iterations=3, batch_size=2, lr_patch=12)


pytestmark = pytest.mark.usefixtures("native_conv")


def _profile(**changes):
    return replace(profiles.resolve("smoke"), blind=replace(TINY, **changes))


def _flat_images(n=4, size=40):
    """Images of one flat colour each (the colour identifies the image in any patch)."""
    colours = [(30, 60, 90), (200, 20, 40), (10, 220, 120), (120, 120, 250)][:n]
    return [torch.tensor(c, dtype=torch.uint8).view(3, 1, 1).expand(3, size, size).contiguous() for c in colours]


def _random_images(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, 40, 44), generator=g, dtype=torch.uint8) for _ in range(n)]


def _batch(positive, images, space, seed=0, b=6):
    sampler = PatchSampler(images, 12 * SCALE, b)
    cfg = TrainConfig(scale=SCALE, iterations=1, batch_size=b, lr_patch=12, degradations=space)
    return R.pair_batch(space, positive)(sampler, cfg, torch.Generator().manual_seed(seed))


def _colour(hr):
    """(B, 3, H, W) flat patches -> (B, 3) colours (0..255)."""
    return (hr * 255).round().flatten(2).mean(-1)


# ---------------------------------------------------------------------------------------------------------------------
# Pairs


@pytest.mark.parametrize("positive, same_image, same_degradation",
                         [("C&D", True, True), ("D", False, True), ("C", True, False)])
def test_pair_batch_positives(positive, same_image, same_degradation):
    space = R.training_space("dasr", SCALE, noise=25.0)
    batch = _batch(positive, _flat_images(), space)
    ex = batch.extras
    assert batch.lr.shape == ex["lr_key"].shape == (6, 3, 12, 12) and batch.hr.shape == (6, 3, 24, 24)
    same_colour = (_colour(batch.hr) == _colour(ex["hr_key"])).all(dim=1)
    assert bool(same_colour.all()) if same_image else not bool(same_colour.any())
    same = [q == k for q, k in zip(batch.degradations, ex["key_degradations"], strict=True)]
    assert all(same) if same_degradation else not any(same)
    # the key LR is its HR patch under the key degradations (noise-free copy of the space: no noise to compare)
    quiet = replace(space, noise_range=(0.0, 0.0))
    b0 = _batch(positive, _random_images(), quiet, seed=3)
    again = D.apply_batch(b0.extras["hr_key"] * 255, b0.extras["key_degradations"], torch.Generator())
    assert torch.equal(again, b0.extras["lr_key"] * 255)
    assert torch.equal(D.apply_batch(b0.hr * 255, b0.degradations, torch.Generator()), b0.lr * 255)


def test_pair_batch_same_image_key_is_another_patch_of_it():
    """C&D: both patches come from one (randomly transformed) image, at independent positions."""
    images = _random_images(2, seed=1)
    batch = _batch("C&D", images, R.training_space("dasr", SCALE), seed=4, b=8)
    def found(patch, img):
        """``patch`` (3, 24, 24) in [0, 1] is a crop of one of the 8 flips / quarter turns of ``img``."""
        p = (patch * 255).round()
        views = [torch.rot90(img.flip(-1) if t & 4 else img, t & 3, (-2, -1)) for t in range(8)]
        return any((v.unfold(1, 24, 1).unfold(2, 24, 1).permute(1, 2, 0, 3, 4) == p).all(-1).all(-1).all(-1).any()
                   for v in views)

    for i in range(8):
        img = images[int(batch.extras["image"][i])].float()
        assert found(batch.hr[i], img) and found(batch.extras["hr_key"][i], img)
    assert not torch.equal(batch.hr, batch.extras["hr_key"])


def test_positive_choices_see_the_same_queries():
    space = R.training_space("cdsr", SCALE)
    batches = [_batch(p, _random_images(), space, seed=7) for p in B.POSITIVES]
    for b in batches[1:]:
        assert torch.equal(b.hr, batches[0].hr) and b.degradations == batches[0].degradations


def test_unknown_positive_and_protocol():
    with pytest.raises(ValueError, match="unknown positive"):
        R.pair_batch(R.training_space("dasr", 2), "CD")
    with pytest.raises(ValueError, match="unknown training protocol"):
        R.training_space("ikc", 2)


# ---------------------------------------------------------------------------------------------------------------------
# Protocols


def test_cdsr_protocol_statistics():
    space = R.training_space("cdsr", 4, noise=15.0)
    degs = space.sample_batch(4000, torch.Generator().manual_seed(0))
    assert {(d.resize, d.convention) for d in degs} == {("sfold", "cdsr")}
    l1 = np.array([d.kernel.l1 for d in degs])
    l2 = np.array([d.kernel.l2 for d in degs])
    theta = np.array([d.kernel.theta for d in degs])
    noise = np.array([d.noise for d in degs])
    assert l1.min() >= 0.7 and l1.max() <= 10.0 and np.all(l2 <= l1) and l2.min() >= 0.7
    assert abs(l1.mean() - 5.35) < 0.2  # U[0.7, 10]
    assert theta.min() >= 0 and theta.max() < 180 and abs(theta.mean() - 90) < 4
    clean = (noise == 0).mean()
    assert abs(clean - 0.2) < 0.03  # U[0, 15] is never exactly 0: every zero is a clean draw
    assert noise.max() <= 15 and abs(noise[noise > 0].mean() - 7.5) < 0.4
    # variances: the kernel of (l1, l2) as variances is that of (sqrt l1, sqrt l2) as standard deviations
    d = degs[0]
    std = D.anisotropic_gaussian_kernel(d.kernel.l1**0.5, d.kernel.l2**0.5, d.kernel.theta, 21 - 4 + 1)
    assert torch.allclose(d.kernel_tensor()[:18, :18], std, atol=1e-6)


def test_dasr_protocol():
    space = R.training_space("dasr", 3, noise=25.0)
    degs = space.sample_batch(500, torch.Generator().manual_seed(0))
    assert all(isinstance(d.kernel, D.IsoGaussian) and 0.2 <= d.kernel.sigma <= 3.0 for d in degs)
    assert {(d.resize, d.convention) for d in degs} == {("matlab", "std")}
    assert max(d.noise for d in degs) > 20 and all(0 <= d.noise <= 25 for d in degs)
    assert all(d.noise == 0 for d in R.training_space("dasr", 3).sample_batch(50, torch.Generator()))


# ---------------------------------------------------------------------------------------------------------------------
# Training


def _train(spec, images, runs, max_steps=None):
    return train_one(spec, runs, TrainingImages(override=images), progress=False, max_steps=max_steps)


def _params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def test_warmup_stage_updates_only_the_encoder(tmp_path):
    prof = _profile()
    fresh = build_model(lambda: DASR(**R.dasr_kwargs(SCALE, prof.blind)), 0)
    res = _train(R.dasr_run(prof, SCALE, 0, protocol="cdsr").parent, _random_images(), tmp_path)
    assert "warmup" in res.run_dir.name and res.steps_run == 2
    model = res.model
    for name, p in fresh.sr_net.named_parameters():
        assert torch.equal(p, dict(model.sr_net.named_parameters())[name]), name
    moved_q = [n for n, p in fresh.moco.encoder_q.named_parameters()
               if not torch.equal(p, dict(model.moco.encoder_q.named_parameters())[n])]
    moved_k = [n for n, p in fresh.moco.encoder_k.named_parameters()
               if not torch.equal(p, dict(model.moco.encoder_k.named_parameters())[n])]
    assert len(moved_q) == len(list(fresh.moco.encoder_q.parameters()))
    assert moved_k  # the key encoder follows by momentum
    assert not torch.equal(model.moco.queue, fresh.moco.queue)  # keys were enqueued
    log = pd.read_csv(res.run_dir / "losses.csv")
    assert list(log.columns[1:3]) == ["contrastive", "_top1"] and "l1" not in log


def test_two_stage_run_resumes_bit_identically(tmp_path):
    prof = _profile()
    images = _random_images()
    spec = R.dasr_run(prof, SCALE, 0)
    full = _train(spec, images, tmp_path / "a")
    assert full.steps_run == 3 and "joint" in full.run_dir.name
    log = pd.read_csv(full.run_dir / "losses.csv")
    assert {"l1", "contrastive"} <= set(log.columns) and len(log) == 3
    warm = _train(spec.parent, images, tmp_path / "b", max_steps=1)
    part = _train(spec, images, tmp_path / "b", max_steps=2)  # the warm-up to its end first, then 2 joint steps
    assert (warm.steps_run, part.steps_run) == (1, 2)
    done = _train(spec, images, tmp_path / "b")
    assert done.steps_run == 1
    a, b = full.model.state_dict(), done.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    again = _train(spec, images, tmp_path / "b")
    assert again.steps_run == 0  # finished: loaded, not retrained
    # the joint stage is keyed by the warm-up's specification: another warm-up -> another joint folder
    other = R.dasr_run(_profile(warmup_lr=5e-4), SCALE, 0)
    assert other.folder(tmp_path, "x") != spec.folder(tmp_path, "x")
    assert _train(other, images, tmp_path / "b", max_steps=1).steps_run == 1


def test_cdsr_trains_jointly_and_resumes(tmp_path):
    prof = _profile()
    images = _random_images()
    spec = R.cdsr_run(prof, SCALE, 0)
    full = _train(spec, images, tmp_path / "a")
    assert full.steps_run == 3 and full.run_dir.name.startswith("blind-cdsr-CDSR-cdsr-n15-cd-x2-s0-joint")
    _train(spec, images, tmp_path / "b", max_steps=2)
    done = _train(spec, images, tmp_path / "b")
    a, b = full.model.state_dict(), done.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():
        out = full.model(torch.rand(1, 3, 12, 16))
    assert out.shape == (1, 3, 24, 32)


def test_nonblind_control_shares_dasr_batches_and_initial_weights(tmp_path):
    """The non-blind control is DASR's joint stage without the encoder: the same batches (same batch constructor and
    seed), the same initial SR-network weights, L1 only; its embedding is one learned vector that does train."""
    prof = _profile()
    images = _random_images()
    joint, control = R.dasr_run(prof, SCALE, 0, protocol="cdsr"), R.nonblind_run(prof, SCALE, 0, protocol="cdsr")
    assert control.config == joint.config and control.parent is None
    assert R.run_name(control.id) == "DASR const" and R.run_name(R.nonblind_run(prof, SCALE, 0).id) == "DASR-iso const"
    sampler = PatchSampler(images, 12 * SCALE, TINY.batch_size)
    a = joint.make_batch(sampler, joint.config, torch.Generator().manual_seed(3))
    b = control.make_batch(sampler, control.config, torch.Generator().manual_seed(3))
    assert torch.equal(a.lr, b.lr) and torch.equal(a.hr, b.hr)
    dasr, const = joint.build(), control.build()
    sa, sc = dasr.sr_net.state_dict(), const.sr_net.state_dict()
    assert sa.keys() == sc.keys() and all(torch.equal(sa[k], sc[k]) for k in sa)
    result = _train(control, images, tmp_path)
    log = pd.read_csv(result.run_dir / "losses.csv")
    assert list(log.columns[1:2]) == ["l1"] and "contrastive" not in log
    assert result.model.embedding.abs().sum() > 0  # initialised to zeros, moved by training
    named = {("DASR const", SCALE, 0): result, ("DASR", SCALE, 0): result}
    assert set(B.table_models(named, "cdsr2")) == {(B.NONBLIND, SCALE, 0), ("DASR", SCALE, 0)}


def test_encoder_swap_is_dasr_with_cdsrs_encoder(tmp_path):
    """The encoder swap trains exactly as DASR (both stages: same configs, batches and initial SR-network weights) and
    differs from it only in the encoder, which is CDSR's (LPE + CSC, same parameter shapes as CDSR's at the profile's
    size); it trains through both stages and its embeddings include CSC's."""
    prof = _profile()
    images = _random_images()
    dasr, swap = R.dasr_run(prof, SCALE, 0, protocol="cdsr"), R.dasr_run(prof, SCALE, 0, protocol="cdsr",
                                                                          encoder="cdsr")
    assert R.run_name(swap.id) == "DASR+CDSR enc" and swap.id != dasr.id and swap.parent.id != dasr.parent.id
    assert swap.config == dasr.config and swap.parent.config == dasr.parent.config
    assert swap.parent.freeze == dasr.parent.freeze == ("sr_net",)
    extra = {k: v for k, v in swap.arch_kwargs.items() if dasr.arch_kwargs.get(k) != v}
    assert extra == {"encoder": "cdsr", "codebook_size": TINY.codebook_size}
    sampler = PatchSampler(images, 12 * SCALE, TINY.batch_size)
    a = dasr.make_batch(sampler, dasr.config, torch.Generator().manual_seed(3))
    b = swap.make_batch(sampler, swap.config, torch.Generator().manual_seed(3))
    assert torch.equal(a.lr, b.lr) and torch.equal(a.extras["lr_key"], b.extras["lr_key"])
    m_dasr, m_swap, m_cdsr = dasr.build(), swap.build(), R.cdsr_run(prof, SCALE, 0).build()
    sa, sb = m_dasr.sr_net.state_dict(), m_swap.sr_net.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    shapes = {k: v.shape for k, v in m_swap.moco.encoder_q.state_dict().items()}
    assert shapes == {k: v.shape for k, v in m_cdsr.moco.encoder_q.state_dict().items()}
    with pytest.raises(ValueError, match="encoder"):
        R.dasr_run(prof, SCALE, 0, encoder="lpe")
    result = _train(swap, images, tmp_path)
    assert set(result.model.eval().embed(torch.rand(2, 3, 12, 12))) == {"fea", "fea_csc", "attn", "q"}
    named = {("DASR+CDSR enc", SCALE, 0): result, ("DASR", SCALE, 0): result}
    assert set(B.table_models(named, "cdsr2")) == {(B.SWAP, SCALE, 0), ("DASR", SCALE, 0)}


def test_queue_must_hold_whole_batches(tmp_path):
    with pytest.raises(ValueError, match="multiple of the batch size"):
        R.cdsr_run(_profile(batch_size=3), SCALE, 0)


# ---------------------------------------------------------------------------------------------------------------------
# Nearest-neighbour accuracy and embeddings


def test_nn_accuracy_hand_made():
    # two tight clusters far apart: every nearest neighbour shares the label
    x = np.array([[1, 0.01], [1, -0.01], [1, 0.0], [0.01, 1], [-0.01, 1], [0, 1]])
    assert E.nn_accuracy(x, list("aaabbb")) == 1.0
    # alternating labels: neighbours 0->2 (hit), 1->2, 2->0 (tie with 1: lowest index, hit), 3->5 (hit), 4->5,
    # 5->3 (tie with 4, hit)
    assert E.nn_accuracy(x, list("ababab")) == pytest.approx(4 / 6)
    # the point itself is left out: two identical points with different labels are each other's neighbour
    assert E.nn_accuracy(np.array([[1.0, 0], [1.0, 0], [0, 1.0]]), ["a", "b", "b"]) == 0.0


def test_nn_accuracy_clustered_and_random():
    g = np.random.default_rng(0)
    n_classes, per = 8, 60
    centres = g.normal(size=(n_classes, 16))
    labels = np.repeat(np.arange(n_classes), per)
    clustered = centres[labels] + 0.01 * g.normal(size=(len(labels), 16))
    assert E.nn_accuracy(clustered, labels) == 1.0
    noise = g.normal(size=(len(labels), 16))
    acc = E.nn_accuracy(torch.from_numpy(noise), labels.tolist())
    assert abs(acc - 1 / n_classes) < 0.05
    with pytest.raises(ValueError, match="labels"):
        E.nn_accuracy(noise, labels[:-1])


def test_embedding_accuracy_and_patches():
    hr = {f"im{i}": np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8) for i in range(3)}
    degs = B.cdsr_test_degradations(SCALE)[0.0]
    lr, d, names = E.degradation_patches(hr, degs, 2, 12, seed=0)
    assert lr.shape == (3 * 9 * 2, 3, 12, 12) and 0 <= lr.min() and lr.max() <= 1
    assert d[:2] == [degs[0]] * 2 and names[:18] == ["im0"] * 18
    again, _, _ = E.degradation_patches(hr, degs, 2, 12, seed=0)
    assert torch.equal(lr, again)
    model = build_model(lambda: CDSR(**R.cdsr_kwargs(SCALE, TINY)), 0).eval()
    emb = E.patch_embeddings(model, lr, d, names)
    assert emb.layers == ["fea", "fea_csc", "attn", "q"] and len(emb.labels) == 54
    assert emb.labels.width.max() == pytest.approx(max(k.kernel.l1 for k in degs) ** 0.5)
    acc = B.embedding_accuracy(model, hr, SCALE, 12, patches_per_image=2)
    assert 0 <= acc <= 100 and acc == pytest.approx(100 * emb.accuracy("fea"))


def test_degradation_values():
    iso = E.degradation_values(D.Degradation(4, D.IsoGaussian(1.5), 10.0))
    assert iso["width"] == iso["width2"] == 1.5 and np.isnan(iso["angle"]) and iso["noise"] == 10
    cd = E.degradation_values(D.Degradation(4, D.AnisoGaussian(4.0, 9.0, 200.0), convention="cdsr"))
    assert (cd["width"], cd["width2"], cd["angle"]) == (3.0, 2.0, 20.0)
    assert E.degradation_values(D.Degradation(4))["width"] == 0


# ---------------------------------------------------------------------------------------------------------------------
# CDSR test kernels, table settings, tables


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_cdsr_test_kernels_seeded_and_in_range(scale):
    ks = D.cdsr_test_kernels(scale)
    assert ks == D.cdsr_test_kernels(scale) and len(ks) == 9
    assert ks != D.cdsr_test_kernels(scale, seed=1)
    lo, hi = D.CDSR_ANISO_VARIANCE[scale]
    assert (lo, hi) == (0.175 * scale, 2.5 * scale) or (lo, hi) == pytest.approx((0.175 * scale, 2.5 * scale))
    for i, k in enumerate(ks):
        assert lo <= k.l2 <= k.l1 <= hi and 0 <= k.theta < 180
        width = (hi - lo) / 9
        assert lo + i * width - 1e-3 <= k.l1 <= lo + (i + 1) * width + 1e-3  # stratified over the range
    degs = D.preset("cdsr-aniso9", scale)
    assert {(d.resize, d.convention) for d in degs} == {("sfold", "cdsr")}
    assert sorted({d.noise for d in degs}) == ([0.0, 15.0] if scale == 4 else [0.0])


def test_cdsr_settings_match_the_reference():
    ref = load_reference("CDSR")
    assert set(ref.setting) == {B.cdsr_setting(0.0), B.cdsr_setting(15.0)}
    assert B.cdsr_setting(15.0) == "cdsr-aniso9-n15"
    assert set(ref[ref.table == "Table 1"].method) == set(B.POSITIVES)
    acc = ref[ref.metric == "acc"]
    assert set(acc.dataset) == {B.ACC_DATASET}


def test_evaluation_sizes_fall_back_to_the_profile():
    prof = _profile()
    assert B.evaluation_sizes(prof) == (prof.eval_sets, prof.max_settings)


def test_cdsr_table2_on_a_tiny_set(tmp_path):
    prof = replace(_profile(), eval_sets=("embedded-test",), max_images=1, max_settings=1)
    models = {(m, SCALE, 0): build_model(lambda c=c, f=f: c(**f(SCALE, TINY)), 0).eval()
              for m, c, f in (("DASR", DASR, R.dasr_kwargs), ("CDSR", CDSR, R.cdsr_kwargs))}
    table = B.evaluate_cdsr_table2(prof, models, cache=tmp_path)
    ours = table[table.n_seeds > 0]
    # Bicubic is measured too: a claim whose models do not beat it is inconclusive (srlib.claims)
    assert set(ours.method) == {"DASR", "CDSR", "Bicubic"} and set(ours.metric) == {"psnr", "ssim"}
    assert set(ours.setting) == {B.cdsr_setting(0.0)} and set(ours.scale) == {SCALE}
    paper = table[table.n_seeds == 0]
    assert len(paper) == 128 and paper.paper.notna().all()  # every paper cell kept (no set of ours matches)


# ---------------------------------------------------------------------------------------------------------------------
# Widget and figures


def test_embedding_widget_switches_layers():
    from srlib import widgets

    hr = {f"im{i}": np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8) for i in range(2)}
    models = {"DASR": (build_model(lambda: DASR(**R.dasr_kwargs(SCALE, TINY)), 0).eval(), "dasr"),
              "CDSR": (build_model(lambda: CDSR(**R.cdsr_kwargs(SCALE, TINY)), 0).eval(), "cdsr")}
    embs = B.embeddings_by_model(models, hr, 6, 12)
    assert embs["DASR"].labels.angle.isna().all() and embs["CDSR"].labels.angle.notna().all()
    fig = widgets.render_degradation_embedding(embs["CDSR"], "fea_csc")
    assert len(fig.axes) == 6  # three panels, three colour bars
    box = widgets.degradation_embedding_explorer(embs)
    assert list(box.controls["layer"].options) == ["fea", "q"]
    box.controls["model"].value = "CDSR"
    assert list(box.controls["layer"].options) == ["fea", "fea_csc", "attn", "q"]
    box.controls["layer"].value = "attn"
    assert "attn" in box.status.value and "color:#b00020" not in box.status.value
    with pytest.raises(ValueError, match="unknown layer"):
        widgets.render_degradation_embedding(embs["DASR"], "attn")


def test_real_lr_examples_fall_back_to_embedded(tmp_path):
    from srlib import viz

    label, images = viz.real_lr_examples(tmp_path, n=2, size=32)
    assert "embedded" in label and len(images) == 2
    assert all(im.shape == (32, 32, 3) and im.dtype == np.uint8 for im in images.values())
    ims, titles = B.sr_gallery({"bicubic": bicubic_upscaler(4)}, images)
    assert [im.shape for im in ims] == [(32, 32, 3), (128, 128, 3)] * 2 and titles[1] == "bicubic"


def test_cdsr_vs_dasr_pairs_by_seed_and_image():
    # 3 seeds x 2 images; CDSR - DASR = 0.3 + per-seed offsets, the same on both images
    rows = [{"method": m, "dataset": "Set5", "scale": 4, "setting": B.cdsr_setting(0.0), "metric": "psnr",
             "seed": seed, "image": image, "value": v + (0.01 if image == "b" else 0.0)}
            for m, vals in (("DASR", (30.0, 31.0, 29.0)), ("CDSR", (30.5, 31.1, 29.3))) for seed, v in enumerate(vals)
            for image in ("a", "b")]
    rows += [{**r, "method": "Bicubic", "value": 25.0} for r in rows if r["method"] == "DASR" and r["seed"] == 0]
    claim = B.cdsr_vs_dasr(pd.DataFrame(rows))
    assert list(claim.dataset) == ["Set5", "all"]
    row = claim.iloc[0]
    assert row.effect == pytest.approx(0.3) and row.n_seeds == 3 and row.n_images == 2
    # per-seed differences 0.5, 0.1, 0.3: every bootstrap mean lies within them
    assert 0.1 - 1e-9 <= row.ci_low < 0.3 < row.ci_high <= 0.5 + 1e-9
    assert row.paper_effect == pytest.approx(31.63 - 31.45)
    assert row.verdict == "supported" and (row.claim_id, row.better, row.worse) == ("D1", "CDSR", "DASR")
    with pytest.raises(ValueError, match="both CDSR and DASR"):
        B.cdsr_vs_dasr(pd.DataFrame(rows[:3]))


def test_encoder_swap_claims_split_d1_into_encoder_and_trunk():
    """D3 (swap - DASR) and D4 (CDSR - swap) are paired differences on the same seeds and images, so their effects add
    up to D1's pooled effect; hand-set values: per seed, DASR v, swap v + 0.1 + 0.1 seed, CDSR v + 0.5."""
    rows = [{"method": m, "dataset": "Set5", "scale": 4, "setting": B.cdsr_setting(0.0), "metric": "psnr",
             "seed": seed, "image": image, "value": 30.0 + seed + (0.2 if image == "b" else 0.0) + shift(seed)}
            for m, shift in (("DASR", lambda s: 0.0), (B.SWAP, lambda s: 0.1 + 0.1 * s), ("CDSR", lambda s: 0.5))
            for seed in range(3) for image in ("a", "b")]
    claim = B.cdsr_vs_dasr(pd.DataFrame(rows)).set_index("claim_id")
    assert claim.loc["D3", "effect"] == pytest.approx(0.2) and claim.loc["D4", "effect"] == pytest.approx(0.3)
    assert claim.loc["D3", "effect"] + claim.loc["D4", "effect"] == pytest.approx(claim.loc["D1"].effect.iloc[-1])
    assert claim.loc["D3", "verdict"] == claim.loc["D4", "verdict"] == "supported"
    assert np.isnan(claim.loc["D3", "paper_effect"]) and claim.loc["D3", "dataset"] == "all"
    assert claim.loc[["D3", "D4"], ["better", "worse"]].values.tolist() == [[B.SWAP, "DASR"], ["CDSR", B.SWAP]]
    no_swap = B.cdsr_vs_dasr(pd.DataFrame([r for r in rows if r["method"] != B.SWAP]))
    assert not {"D3", "D4"} & set(no_swap.claim_id)


def test_stage_losses_continue_the_steps(tmp_path):
    prof = _profile()
    res = _train(R.dasr_run(prof, SCALE, 0), _random_images(), tmp_path)
    log = B.stage_losses(res)
    assert log.step.tolist() == [1, 2, 3, 4, 5] and log.stage.tolist() == ["encoder"] * 2 + ["joint"] * 3
    assert log.l1.isna().tolist() == [True, True, False, False, False]
