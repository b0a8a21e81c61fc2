"""The shared trainer: resume ends bit-identical to an uninterrupted run; divergence names the loss term."""

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srlib.degradation import DegradationSpace
from srlib.train import TrainConfig, TrainingDiverged, build_model, train


class Tiny(nn.Module):
    def __init__(self, scale=2):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3 * scale**2, 3, padding=1))
        self.up = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.up(self.body(x))


def l1_and_random(model, batch):
    """L1 plus a term that consumes the run's loss generator, as CRL-SR's location sampling does."""
    sr = model(batch.lr)
    idx = torch.randint(0, sr.numel(), (16,), generator=batch.loss_generator)
    return {"l1": F.l1_loss(sr, batch.hr), "aux": 0.1 * sr.flatten()[idx].abs().mean()}


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, (3, 40, 48), generator=g, dtype=torch.uint8) for _ in range(3)]


CFG = TrainConfig(scale=2, iterations=8, batch_size=4, lr_patch=8, lr=1e-3, lr_halve_every=3, checkpoint_every=3,
                  degradations=DegradationSpace(2, kernel="iso", noise_range=(0, 25)), seed=5)


def _run(images, run_dir, **kw):
    model = build_model(Tiny, CFG.seed)
    return train(model, l1_and_random, images, CFG, run_dir, progress=False, **kw)


def test_resume_is_bit_identical_to_an_uninterrupted_run(images, tmp_path):
    full = _run(images, tmp_path / "full")
    part = _run(images, tmp_path / "split", max_steps=5)  # stops at 5: checkpoint at 5 (mid-interval)
    assert part.steps_run == 5
    resumed = _run(images, tmp_path / "split")
    assert resumed.steps_run == 3
    for (name, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    cols = ["step", "l1", "aux", "total", "lr"]
    pd.testing.assert_frame_equal(pd.read_csv(full.losses_csv)[cols], pd.read_csv(resumed.losses_csv)[cols])
    # the learning rate was halved at steps 3 and 6, and the log has one row per step
    log = pd.read_csv(full.losses_csv)
    assert log.step.tolist() == list(range(1, 9))
    assert log.lr.tolist() == [1e-3] * 3 + [5e-4] * 3 + [2.5e-4] * 2


def test_resume_restores_the_loss_generator(images, tmp_path):
    """The checkpoint holds the loss generator's state: the locations drawn after a resume are the uninterrupted
    run's (a fresh loss generator at the resume would redraw the first steps' locations)."""
    drawn: dict[str, list] = {"full": [], "split": []}

    def recording(key):
        def loss_fn(model, batch):
            drawn[key].append(batch.loss_generator.get_state().clone())
            return l1_and_random(model, batch)
        return loss_fn

    train(build_model(Tiny, CFG.seed), recording("full"), images, CFG, tmp_path / "full", progress=False)
    for max_steps in (5, None):
        train(build_model(Tiny, CFG.seed), recording("split"), images, CFG, tmp_path / "split", progress=False,
              max_steps=max_steps)
    assert len(drawn["split"]) == len(drawn["full"]) == CFG.iterations
    for step, (a, b) in enumerate(zip(drawn["full"], drawn["split"], strict=True), 1):
        assert torch.equal(a, b), step
    assert len({bytes(s.numpy()) for s in drawn["full"]}) == CFG.iterations  # the stream advances every step


def test_a_loss_that_samples_does_not_change_the_batches(images, tmp_path):
    """Adding a term that draws random numbers (from ``batch.loss_generator``) leaves every batch as it was."""
    seen: dict[str, list] = {"plain": [], "sampling": []}

    def recording(key, fn):
        def loss_fn(model, batch):
            seen[key].append((batch.lr.clone(), batch.hr.clone(), list(batch.degradations)))
            return fn(model, batch)
        return loss_fn

    def plain(model, batch):
        return {"l1": F.l1_loss(model(batch.lr), batch.hr)}

    for key, fn in (("plain", plain), ("sampling", l1_and_random)):
        train(build_model(Tiny, CFG.seed), recording(key, fn), images, CFG, tmp_path / key, progress=False)
    assert len(seen["plain"]) == CFG.iterations
    for step, (a, b) in enumerate(zip(seen["plain"], seen["sampling"], strict=True), 1):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2], step


def test_loss_seed_is_a_distinct_stream():
    from srlib.train import loss_seed, rank_seed

    seeds = {loss_seed(s, r, w) for s in (0, 1) for r, w in ((0, 1), (0, 2), (1, 2))}
    assert len(seeds) == 4  # (seed, rank) pairs; the world size does not enter
    assert not seeds & {rank_seed(s, r, w) for s in (0, 1) for r, w in ((0, 1), (0, 2), (1, 2))}
    assert loss_seed(3, 1, 2) == loss_seed(3, 1, 2)


def test_finished_run_is_loaded_not_retrained(images, tmp_path):
    first = _run(images, tmp_path)
    again = _run(images, tmp_path)
    assert again.steps_run == 0
    assert all(torch.equal(a, b) for a, b in zip(first.model.parameters(), again.model.parameters(), strict=True))


def test_same_seed_same_weights_other_seed_differs(images, tmp_path):
    a = _run(images, tmp_path / "a").model
    b = _run(images, tmp_path / "b").model
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    other = train(build_model(Tiny, 6), l1_and_random, images, TrainConfig(**{**CFG.__dict__, "seed": 6}),
                  tmp_path / "c", progress=False).model
    assert not torch.equal(next(a.parameters()), next(other.parameters()))


def test_resume_with_another_config_is_refused(images, tmp_path):
    _run(images, tmp_path, max_steps=2)
    other = TrainConfig(**{**CFG.__dict__, "lr": 5e-4})
    with pytest.raises(ValueError, match="another configuration"):
        train(build_model(Tiny, 5), l1_and_random, images, other, tmp_path, progress=False)


def test_nan_stops_the_run_naming_the_term(images, tmp_path):
    calls = []

    def exploding(model, batch):
        calls.append(1)
        terms = l1_and_random(model, batch)
        terms["contrastive"] = torch.tensor(float("nan") if len(calls) == 5 else 0.0)
        return terms

    with pytest.raises(TrainingDiverged, match="'contrastive' became nan at step 5; .* holds step 3"):
        train(build_model(Tiny, 5), exploding, images, CFG, tmp_path, progress=False)
    assert (tmp_path / "checkpoint.pt").exists()


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="iterations must be a positive integer"):
        TrainConfig(scale=2, iterations=0, batch_size=4, lr_patch=8)
    with pytest.raises(ValueError, match="degradations are for scale 4"):
        TrainConfig(scale=2, iterations=1, batch_size=1, lr_patch=8, degradations=DegradationSpace(4))


def test_resume_drops_a_row_cut_short_by_a_kill(tmp_path):
    """A process killed mid-row leaves e.g. ``1`` of ``12,...``: the log kept on resume has complete rows only."""
    from srlib.train import _truncate_log

    log = tmp_path / "losses.csv"
    log.write_text("step,l1,total,lr,seconds\n" + "".join(f"{i},0.5,0.5,0.001,{i}.0\n" for i in range(1, 12)) + "1")
    _truncate_log(log, 10)
    rows = log.read_text().splitlines()
    assert rows[0] == "step,l1,total,lr,seconds"
    assert [r.split(",")[0] for r in rows[1:]] == [str(i) for i in range(1, 11)]
