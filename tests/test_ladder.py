"""The budget ladder (issue 10, Build 1): the warmup-stable-decay schedule, EMA weights, trunk snapshots and branches.

Independent truths: the schedule's multipliers computed by hand; an EMA computed by hand over a known weight sequence;
a branch started from the trunk's snapshot against the same configuration trained from scratch (bit-identical,
because until its cool-down a branch *is* the trunk); a branch split by a stop and resumed against one uninterrupted.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from srlib.runs import RunId, RunSpec, TrainData, ladder, train_all
from srlib.train import TrainConfig, ema_decay, lr_factor, snapshot_path, train


def l1(model, batch):
    return {"l1": F.l1_loss(model(batch.lr), batch.hr)}


def images(n=3, side=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, side, side), generator=g, dtype=torch.uint8) for _ in range(n)]


def spec(iterations=40, lr=1e-3):
    return RunSpec(id=RunId("t", "edsr", "EDSR", 2, 0), arch="EDSR", arch_kwargs={"scale": 2, "n_feats": 8,
                                                                                   "n_blocks": 1},
                   config=TrainConfig(scale=2, iterations=iterations, batch_size=2, lr_patch=8, lr=lr,
                                      lr_halve_every=iterations // 3, checkpoint_every=7),
                   recipe={}, objective=lambda: (l1, None), data=TrainData(("x",), 16))


def weights(result):
    return {k: v.clone() for k, v in result.model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_lr_factor_by_hand():
    cfg = TrainConfig(scale=2, iterations=12, batch_size=1, lr_patch=8, warmup_steps=4, decay_start=8)
    assert [lr_factor(cfg, s) for s in range(12)] == [0.25, 0.5, 0.75, 1, 1, 1, 1, 1, 1.0, 0.75, 0.5, 0.25]
    stable = TrainConfig(scale=2, iterations=12, batch_size=1, lr_patch=8, warmup_steps=4)
    assert [lr_factor(stable, s) for s in (0, 3, 11)] == [0.25, 1.0, 1.0]


def test_config_refuses_mixed_or_impossible_schedules():
    with pytest.raises(ValueError, match="lr_halve_every is a step schedule"):
        TrainConfig(scale=2, iterations=12, batch_size=1, lr_patch=8, lr_halve_every=4, decay_start=8)
    with pytest.raises(ValueError, match="decay_start"):
        TrainConfig(scale=2, iterations=12, batch_size=1, lr_patch=8, decay_start=12)
    with pytest.raises(ValueError, match="snapshots"):
        TrainConfig(scale=2, iterations=12, batch_size=1, lr_patch=8, snapshots=(13,))
    with pytest.raises(ValueError, match="ema"):
        TrainConfig(scale=2, iterations=12, batch_size=1, lr_patch=8, ema=1.0)


def test_ema_is_the_average_of_the_weights_by_hand(tmp_path):
    """The returned model holds the EMA; recompute it from the raw weights after every step (read from snapshots)."""
    cfg = TrainConfig(scale=2, iterations=5, batch_size=2, lr_patch=8, lr=1e-2, ema=0.9, snapshots=(1, 2, 3, 4, 5),
                      checkpoint_every=5)
    from srlib.archs import build_arch
    from srlib.checkpoint import load_checkpoint
    from srlib.train import build_model

    model = build_model(lambda: build_arch("EDSR", {"scale": 2, "n_feats": 8, "n_blocks": 1}), 0)
    avg = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(model, l1, images(), cfg, tmp_path, progress=False)
    for step in range(1, 6):
        raw = load_checkpoint(snapshot_path(tmp_path, step))["model"]
        d = ema_decay(0.9, step)
        avg = {k: d * avg[k] + (1 - d) * raw[k] for k in avg}
    assert ema_decay(0.9, 1) == pytest.approx(2 / 11) and ema_decay(0.9, 100) == 0.9
    got = result.model.state_dict()
    assert all(torch.allclose(got[k], avg[k], atol=1e-6) for k in avg)
    assert not torch.equal(got["head.weight"], raw["head.weight"])  # the model returned is not the last weights


def test_branch_from_snapshot_equals_training_from_scratch(tmp_path):
    branches = ladder(spec(), [10, 40])
    assert [b.id.rung for b in branches] == ["b10", "b40"]
    assert branches[0].branch_of.config.snapshots == (10, 40) and branches[0].branch_of.config.decay_start is None
    assert [b.config.iterations for b in branches] == [11, 44] and [b.config.decay_start for b in branches] == [10, 40]
    laddered = train_all(branches, tmp_path / "ladder", images=images(), progress=False)
    scratch = train_all([replace(b, branch_of=None) for b in branches], tmp_path / "scratch", images=images(),
                        progress=False)
    for rung in ("b10", "b40"):
        assert same(weights(laddered.one(rung=rung)), weights(scratch.one(rung=rung)))
    # the trunk trained once: both branches start from its snapshots, and their logs start with its rows
    trunks = [p for p in (tmp_path / "ladder").iterdir() if "-trunk-" in p.name and p.is_dir()]
    assert len(trunks) == 1 and snapshot_path(trunks[0], 10).exists() and snapshot_path(trunks[0], 40).exists()
    import pandas as pd

    log = pd.read_csv(laddered.one(rung="b40").losses_csv)
    assert list(log.step) == list(range(1, 45))
    assert log.lr.iloc[0] == pytest.approx(1e-3) and log.lr.iloc[-1] == pytest.approx(1e-3 / 4)


def test_branch_resumes_bit_identically(tmp_path):
    branch = ladder(spec(), [10, 20])[1]
    whole = train_all([branch], tmp_path / "whole", images=images(), progress=False).one()
    from srlib.runs import TrainingImages, train_one

    imgs = TrainingImages(override=images())
    train_one(branch.branch_of, tmp_path / "split", imgs, progress=False)
    train_one(branch, tmp_path / "split", imgs, progress=False, max_steps=21)  # stop inside the cool-down
    resumed = train_one(branch, tmp_path / "split", imgs, progress=False)
    assert same(weights(whole), weights(resumed))


def test_branch_refuses_a_foreign_trunk(tmp_path):
    trunk_spec, branch = ladder(spec(), [10])[0].branch_of, ladder(spec(lr=2e-3), [10])[0]
    train_all([trunk_spec], tmp_path, images=images(), progress=False)
    folder = trunk_spec.folder(tmp_path, "given images")
    with pytest.raises(ValueError, match=r"differ in \['lr'\]"):
        train(branch.build(), l1, images(), branch.config, tmp_path / "b", progress=False,
              start_from=snapshot_path(folder, 10))
    early = replace(branch.config, iterations=12, decay_start=9)
    with pytest.raises(ValueError, match="holds step 10"):
        train(branch.build(), l1, images(), replace(early, lr=1e-3), tmp_path / "c", progress=False,
              start_from=snapshot_path(folder, 10))


def test_large_profile_ladders_every_claim_arm():
    """The ``large`` profile lists, per paper, only ladder branches, at budgets spanning >= 16x, three seeds."""
    from srlib.profiles import resolve
    from srlib.recipes import PAPERS

    prof = resolve("large")
    assert prof.ladder[-1] / prof.ladder[0] >= 16 and len(prof.seeds) >= 3 and prof.precision == "bf16"
    for paper, recipe in PAPERS.items():
        specs = recipe.runs(prof)
        assert specs and all(s.id.budget in prof.ladder and s.branch_of is not None for s in specs), paper
        assert {s.id.seed for s in specs} == set(prof.seeds)


def test_export_of_a_branch_holds_its_ema_weights(tmp_path):
    """``srlib export`` / ``upscale --run`` load what the tables evaluated: the branch's averaged weights."""
    from srlib.export import load_run

    result = train_all(ladder(spec(), [10]), tmp_path, images=images(), progress=False).one()
    model, _ = load_run(result.run_dir)
    assert same(model.state_dict(), weights(result))
