"""PCL-SR training recipe (srlib.recipes.pcl_sr) and its analysis (srlib.methods.pcl_sr): arms, the released code's
zero gradient, the alternating critic."""

from dataclasses import replace

import pytest
import torch

from srlib.archs import PCLDiscriminator
from srlib.methods import pcl_sr as M
from srlib.profiles import resolve
from srlib.recipes import pcl_sr as P
from srlib.runs import TrainingImages, load_training_images, train_one
from srlib.train import Batch, load_losses

PROFILE = resolve("smoke")
PROFILE = replace(PROFILE, pcl=replace(PROFILE.pcl, pretrain_iterations=4, finetune_iterations=3, batch_size=3))


@pytest.fixture(scope="module")
def images():
    return load_training_images(P.base_run("EDSR-S", PROFILE, 0).data)[1]


def _train(spec, images, runs, max_steps=None):
    return train_one(spec, runs, TrainingImages(override=images), progress=False, max_steps=max_steps)


def _model(seed=0):
    return P.base_run("EDSR-S", PROFILE, seed).build()


@pytest.fixture(scope="module")
def arms(images, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    base = _train(P.base_run("EDSR-S", PROFILE, 0), images, runs)
    return base, {k: _train(P.arm_run(a, "EDSR-S", PROFILE, 0), images, runs) for k, a in P.ARMS.items()}


def test_released_arm_trains_exactly_the_control(arms):
    """The official no-grad L_CL adds a constant: fine-tuning with it gives the L1 control's weights bit for bit."""
    base, runs = arms
    assert M.identical_weights(runs["released"].model, runs["control"].model)
    assert not M.identical_weights(runs["pcl"].model, runs["control"].model)
    assert not M.identical_weights(runs["control"].model, base.model)


def test_contrastive_arms_train_a_discriminator_and_log_its_loss(arms):
    _, runs = arms
    assert runs["control"].critic is None
    assert isinstance(runs["pcl"].critic, PCLDiscriminator)
    log = (runs["pcl"].run_dir / "losses.csv").read_text().splitlines()
    assert log[0].split(",")[:5] == ["step", "d", "_d_margin", "l1", "cl"]
    assert len(log) == 1 + PROFILE.pcl.finetune_iterations


def test_sr_gradient_of_released_variant_is_zero_ours_is_not(arms, images):
    _, runs = arms
    g = M.sr_gradients(runs["pcl"].model, runs["pcl"].critic, M.sample_batch(PROFILE, images))
    assert g["released"] == 0.0
    assert g["ours"] > 1e-6 * g["l1_norm"] > 0


def test_critic_resume_is_bit_identical(images, tmp_path):
    arm = P.ARMS["pcl"]
    spec = P.arm_run(arm, "EDSR-S", PROFILE, 1)
    whole = _train(spec, images, tmp_path / "a")
    first = _train(spec, images, tmp_path / "b", max_steps=1)
    assert first.steps_run == 1 and not M.identical_weights(whole.critic, first.critic)
    ckpt = torch.load(first.run_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 1 and ckpt["critic"] is not None and ckpt["critic_optimizer"] is not None
    rest = _train(spec, images, tmp_path / "b")
    assert rest.steps_run == PROFILE.pcl.finetune_iterations - 1
    assert M.identical_weights(whole.model, rest.model) and M.identical_weights(whole.critic, rest.critic)
    logs = [load_losses(r.run_dir).drop(columns="seconds") for r in (whole, rest)]
    assert logs[0].equals(logs[1])


def test_discriminator_step_does_not_touch_the_sr_network(images):
    model = _model()
    disc = PCLDiscriminator(9, PROFILE.pcl.taps, base_channels=PROFILE.pcl.d_channels)
    batch = M.sample_batch(PROFILE, images)
    terms = P.discriminator_loss(True)(disc, model, batch)
    terms["d"].backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None for p in disc.parameters())
    assert "sr" in batch.extras  # shared with the SR step


def test_negative_sets(images):
    batch = M.sample_batch(PROFILE, images)
    b, k = batch.extras["neg"].shape[:2]
    assert P.arm_negatives(P.TABLE4["3"], batch).shape[1] == 1
    rand = P.arm_negatives(P.TABLE4["5"], batch)
    assert rand.shape[:2] == (b, k)
    for i in range(b):  # never the sample's own HR, always another image of the batch
        for j in range(k):
            assert not torch.equal(rand[i, j], batch.hr[i])
            assert any(torch.equal(rand[i, j], batch.hr[m]) for m in range(b) if m != i)
    one = Batch(batch.lr[:1], batch.hr[:1], batch.degradations[:1], batch.generator,
                {"neg": batch.extras["neg"][:1]})
    with pytest.raises(ValueError, match="at least 2"):
        P.arm_negatives(P.TABLE4["5"], one)


def test_table4_shares_runs_with_the_arms():
    assert P.TABLE4["1"].spec() == P.ARMS["control"].spec()
    assert P.TABLE4["6"].spec() == P.ARMS["pcl"].spec()
    assert P.TABLE4["6r"].spec() == P.ARMS["released"].spec()
    slugs = {P.arm_run(a, "RCAN", PROFILE, 0).id for a in P.TABLE4.values()}
    assert len(slugs) == len(P.TABLE4)


def test_unknown_network_is_an_error():
    with pytest.raises(ValueError, match="EDSR-S"):
        P.network_arch("VDSR", PROFILE.pcl)


def test_contrastive_weight_is_alpha_over_255(images):
    """L1 is on [0, 1] here and on 0..255 in the official code: the L_CL weight is alpha / 255 (paper Eq. 11)."""
    model = _model()
    disc = PCLDiscriminator(9, PROFILE.pcl.taps, base_channels=PROFILE.pcl.d_channels).eval()
    batch = M.sample_batch(PROFILE, images)
    terms = P.sr_loss(P.ARMS["pcl"], 3.0, disc)(model, batch)
    sr, pos, neg = batch.extras["sr"], batch.extras["pos"], batch.extras["neg"]
    haar = P.pcl.haar_highpass
    flat = [haar(x.flatten(0, 1)).unflatten(0, x.shape[:2]) for x in (pos, neg)]
    expected = P.pcl_loss(disc, haar(sr), *flat)
    assert torch.allclose(terms["cl"], 3.0 / 255 * expected)
