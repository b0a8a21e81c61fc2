"""Models learn what they are trained on (issue 10): short seeded CPU trainings on the embedded images, each well
under a minute on two cores, that a broken trainer, loss or encoder recipe would fail.

* A tiny EDSR-S trained by srlib's trainer on bicubic x2 patches beats bicubic upsampling on held-out patches of that
  distribution (the embedded test images).
* DASR's degradation encoder, warmed up by the blind recipe's encoder stage (MoCo, the recipe's momentum), should
  separate two extreme isotropic blur widths at x4 on held-out patches, measured with the content-controlled
  nearest-neighbour accuracy (neighbours from other images only, :func:`srlib.embeddings.content_controlled_accuracy`).
  It does not yet (0.69 vs chance 0.5 after 200 steps; 0.63 with the papers' fixed momentum 0.999), nor does it when
  trained on DASR's own continuous width distribution (see the test's docstring): a strict xfail that turns red once
  the encoder learns, so whoever fixes it removes the mark.
* The recipe's MoCo momentum follows ``clip(1 - 10 / N, 0.9, 0.999)`` and reaches the architecture's kwargs.

Only the embedded images (scikit-image) are used: nothing from ../shared.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import torch
import torch.nn.functional as F

from srlib import embeddings as E
from srlib import profiles
from srlib.archs import EDSR
from srlib.data import embedded_set
from srlib.degradation import Degradation, IsoGaussian, apply_batch, imresize
from srlib.recipes import blind_sr as R
from srlib.runs import TrainingImages, train_one
from srlib.train import Batch, TrainConfig, build_model, train

pytestmark = pytest.mark.usefixtures("native_conv")


@pytest.fixture(scope="module")
def train_images() -> list[torch.Tensor]:
    """The embedded training set as (3, H, W) uint8 tensors."""
    return [torch.as_tensor(r.image).permute(2, 0, 1).contiguous() for r in embedded_set("train")]


@pytest.fixture(scope="module")
def test_images() -> dict:
    """The embedded test set (held out from training): {name: (H, W, 3) uint8}."""
    return {r.stem: r.image for r in embedded_set("test")}


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of two (B, 3, H, W) tensors on the 0..255 scale, over all pixels and channels."""
    return float(10 * torch.log10(255.0**2 / F.mse_loss(a.double(), b.double())))


# ---------------------------------------------------------------------------------------------------------------------
# A tiny SR network beats bicubic on its training distribution


def test_tiny_edsr_beats_bicubic(train_images, test_images, tmp_path):
    scale, lr_patch = 2, 16
    cfg = TrainConfig(scale=scale, iterations=2500, batch_size=8, lr_patch=lr_patch, lr=2e-3, lr_halve_every=1000,
                      seed=0, checkpoint_every=2500)

    def l1(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        return {"l1": F.l1_loss(model(batch.lr), batch.hr)}

    model = build_model(lambda: EDSR(scale, n_feats=16, n_blocks=1), cfg.seed)
    train(model, l1, train_images, cfg, tmp_path / "edsr", progress=False)
    # held-out patches (HR 128 x 128): 8 per test image, bicubic-degraded as in training (MATLAB imresize, rounded)
    g = torch.Generator().manual_seed(1)
    p = 4 * lr_patch * scale
    hr = []
    for img in test_images.values():
        t = torch.as_tensor(img).permute(2, 0, 1).float()
        tops = torch.randint(t.shape[1] - p + 1, (8,), generator=g).tolist()
        lefts = torch.randint(t.shape[2] - p + 1, (8,), generator=g).tolist()
        hr += [t[:, y : y + p, x : x + p] for y, x in zip(tops, lefts, strict=True)]
    hr_t = torch.stack(hr)
    lr = apply_batch(hr_t, [Degradation(scale)] * len(hr_t), g)
    with torch.inference_mode():
        sr = (model.eval()(lr / 255.0) * 255.0).clamp(0, 255).round()
    bic = imresize(lr, float(scale), quantize=True)
    b = 2 * scale  # shave the borders (both upscalers pad)
    psnr_sr, psnr_bic = _psnr(sr[..., b:-b, b:-b], hr_t[..., b:-b, b:-b]), _psnr(bic[..., b:-b, b:-b],
                                                                                   hr_t[..., b:-b, b:-b])
    print(f"tiny EDSR x{scale}: {psnr_sr:.2f} dB vs bicubic {psnr_bic:.2f} dB")
    assert psnr_sr > psnr_bic + 0.3


# ---------------------------------------------------------------------------------------------------------------------
# DASR's encoder stage learns the degradation


WIDTHS = (0.2, 4.0)


@dataclass(frozen=True)
class TwoWidths:
    """A training distribution of two isotropic Gaussian blurs (no noise, MATLAB bicubic), each with probability 1/2;
    duck-types :class:`srlib.degradation.DegradationSpace` for :func:`srlib.recipes.blind_sr.pair_batch`."""

    scale: int
    widths: tuple[float, ...] = WIDTHS

    def sample_batch(self, n: int, generator: torch.Generator) -> list[Degradation]:
        pick = torch.randint(len(self.widths), (n,), generator=generator).tolist()
        return [Degradation(self.scale, IsoGaussian(self.widths[k])) for k in pick]


ENCODER_STEPS = 200
ENCODER_SIZES = profiles.BlindSizes((4,), n_feats=8, enc_feats=8, dasr_groups=1, dasr_blocks=1, cdsr_blocks=1,
                                    codebook_size=8, queue_size=128, warmup_iterations=ENCODER_STEPS, iterations=1,
                                    batch_size=16, lr_patch=16)


def _encoder_stage(momentum: float | None = None):
    """The blind recipe's DASR encoder stage (:func:`srlib.recipes.blind_sr.dasr_run`'s parent) on :class:`TwoWidths`
    at x4 with C&D positives; ``momentum`` overrides the recipe's (None keeps it)."""
    prof = replace(profiles.resolve("smoke"), blind=ENCODER_SIZES)
    spec = R.dasr_run(prof, 4, 0, protocol="dasr").parent
    space = TwoWidths(4)
    spec = replace(spec, config=replace(spec.config, degradations=space), make_batch=R.pair_batch(space))
    if momentum is not None:
        spec = replace(spec, arch_kwargs={**spec.arch_kwargs, "momentum": momentum})
    return spec


def _controlled_accuracy(spec, train_images, test_images, runs) -> E.ControlledAccuracy:
    """Train ``spec`` and score its encoder's ``fea`` on 10 held-out patches per (test image, width)."""
    res = train_one(spec, runs, TrainingImages(override=train_images), progress=False)
    degs = [Degradation(4, IsoGaussian(w)) for w in WIDTHS]
    lr, dl, names = E.degradation_patches(test_images, degs, 10, ENCODER_SIZES.lr_patch, seed=0)
    acc = E.patch_embeddings(res.model, lr, dl, names).controlled_accuracy("fea", by="width")
    print(f"momentum {spec.arch_kwargs['momentum']:.4f}: {acc}")
    return acc


@pytest.mark.xfail(strict=True, reason="issue 10: a few hundred MoCo steps (two widths or DASR's continuous widths, "
                                       "200-800 steps) do not make DASR's encoder separate the two blurs on other "
                                       "images' patches (best 0.69, target 0.9)")
def test_dasr_encoder_stage_separates_two_blurs(train_images, test_images, tmp_path):
    """Content-controlled accuracy (chance 0.5) of the encoder stage's ``fea`` on widths 0.2 vs 4.0 at x4, seed 0,
    enc_feats 8, batch 16, queue 128, noise-free, measured on two CPU threads (Dec 2026):

    ===========================  =====  ======  ===========  ================  ==============
    training widths              steps  lr      positive     recipe momentum   momentum 0.999
    ===========================  =====  ======  ===========  ================  ==============
    two (0.2, 4.0), this test    200    1e-3    C&D          0.69 (m 0.95)     0.63
    two (0.2, 4.0)               800    1e-3    C&D          0.49 (m 0.9875)
    continuous U[0.2, 4.0]       200    1e-3    C&D          0.59 (m 0.95)
    continuous U[0.2, 4.0]       400    1e-3    C&D          0.57 (m 0.975)    0.57
    continuous U[0.2, 4.0]       800    1e-3    C&D          0.62 (m 0.9875)
    continuous U[0.2, 4.0]       400    1e-3    C&D, enc 16  0.53
    continuous U[0.2, 4.0]       400    3e-3    C&D          0.53
    two (0.2, 4.0)               200    1e-3    D            0.54
    continuous U[0.2, 4.0]       200    1e-3    D            0.49
    ===========================  =====  ======  ===========  ================  ==============

    So DASR's continuous distribution (every sample its own width) does not help at these budgets, and longer runs do
    not either. With C&D positives (the key: another crop of the query's image) and two widths the InfoNCE loss
    settles at ~2.5-3.0, below log(1 + 64) ~ 4.17, the best a degradation-only code can reach with a queue of 128 half
    of which shares the query's width: the encoder beats instance discrimination through the shared image content.
    """
    spec = _encoder_stage()
    assert spec.arch_kwargs["momentum"] == R.moco_momentum(ENCODER_STEPS) < 0.999
    acc = _controlled_accuracy(spec, train_images, test_images, tmp_path)
    assert acc.chance == 0.5
    assert acc.accuracy >= 0.9


# ---------------------------------------------------------------------------------------------------------------------
# The recipe's momentum


@pytest.mark.parametrize("steps, momentum", [(1, 0.9), (4, 0.9), (100, 0.9), (200, 0.95), (700, 1 - 10 / 700),
                                             (1000, 0.99), (5000, 0.998), (10_000, 0.999), (485_000, 0.999)])
def test_moco_momentum_follows_the_run_length(steps, momentum):
    assert R.moco_momentum(steps) == pytest.approx(momentum, abs=1e-12)


def test_moco_momentum_reaches_the_architecture():
    prof = profiles.resolve("smoke")
    joint = R.dasr_run(prof, 4, 0)
    assert joint.arch_kwargs["momentum"] == R.moco_momentum(prof.blind.iterations)
    assert joint.parent.arch_kwargs["momentum"] == R.moco_momentum(prof.blind.warmup_iterations)
    assert R.cdsr_run(prof, 4, 0).arch_kwargs["momentum"] == R.moco_momentum(prof.blind.iterations)
    assert joint.build().moco.momentum == joint.arch_kwargs["momentum"]
    paper = profiles.resolve("paper")
    assert R.dasr_run(paper, 4, 0).parent.arch_kwargs["momentum"] == R.PAPER_MOMENTUM  # 97 k steps keep 0.999
    with pytest.raises(ValueError, match="positive integer"):
        R.moco_momentum(0)
    # the momentum is part of the run's identity (its folder)
    assert _encoder_stage(0.999).folder("runs", "x") != _encoder_stage().folder("runs", "x")


# ---------------------------------------------------------------------------------------------------------------------
# Content-controlled accuracy


def test_content_controlled_accuracy_ignores_content():
    # vectors cluster by image, not by label: plain 1-NN finds the same-image twin (same label), the controlled
    # accuracy only sees the other image's points and falls to chance
    x = torch.tensor([[1.0, 0.01], [1.0, 0.011], [1.0, -0.01], [1.0, -0.011],
                      [-0.01, 1.0], [-0.011, 1.0], [0.01, 1.0], [0.011, 1.0]])
    labels, images = list("aabbaabb"), list("aaaabbbb")
    assert E.nn_accuracy(x, labels) == 1.0
    assert E.content_controlled_accuracy(x, labels, images) == (0.5, 0.5, 8)
    # clustered by label across images: 1
    y = torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.01, 1.0]] * 2)
    assert E.content_controlled_accuracy(y, list("aabb") * 2, list("xxxxyyyy")).accuracy == 1.0
    with pytest.raises(ValueError, match="two images"):
        E.content_controlled_accuracy(y, list("aabb") * 2, ["x"] * 8)
