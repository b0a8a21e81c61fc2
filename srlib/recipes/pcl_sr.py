"""PCL-SR training (Wu et al., "Practical Contrastive Learning for Single Image Super-Resolution"): fine-tune an
existing x4 bicubic SR network with L_SR = L1 + alpha L_CL (paper Eq. 11) while a discriminator, trained with the
dual contrastive loss (Eq. 7), supplies the embedding of L_CL (Eqs. 8-10).

We cannot download the official checkpoints, so each run (DESIGN.md, "PCL-SR"):

1. **pretrains** the base network (EDSR-S or RCAN, sized by the profile) with L1 on bicubic LR;
2. **fine-tunes** a copy of it for the same number of iterations in each *arm* (:data:`ARMS`):

   * ``control``: L1 only (the extra fine-tuning the paper has no control for);
   * ``released``: L1 + alpha L_CL computed as in the official code, whose features are all under ``no_grad``:
     the term adds a constant and the SR network gets exactly the control's gradients;
   * ``pcl``: L1 + alpha L_CL with gradients to the SR output (the paper's method);

   and, on RCAN, the ablation configurations of PCL Table 4 (:data:`TABLE4`).

Every arm of a (network, seed) fine-tunes from the same base and sees the same patches, positives and negatives
(one batch constructor draws them all, whatever the arm uses), so the arms differ only in their loss and the gains
are paired by seed. The discriminator step comes first in each iteration (the official trainer's order) and uses
the detached SR output of the same forward pass that the SR step back-propagates through.

Discriminator step (official ``--contras_D_train``): real = HR and its sharpened copies, fake = SR and the blurred
HR copies (not the LR), all as Haar high-frequency bands (RGB for the "without Haar" configuration).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from srlib import pcl
from srlib.archs.pcl_embed import PCLDiscriminator
from srlib.archs.vgg import VGG16Features
from srlib.losses.pcl import dual_contrastive_d_loss, pcl_loss
from srlib.profiles import PCLSizes, Profile
from srlib.runs import RunId, RunSpec, TrainData, ladder
from srlib.train import Batch, Critic, TrainConfig, build_model, degraded_patches

PAPER = "pcl-sr"
CODE = ("srlib.recipes.pcl_sr", "srlib.archs.edsr", "srlib.archs.rcan", "srlib.archs.pcl_embed", "srlib.archs.vgg",
        "srlib.losses.pcl", "srlib.pcl")

SCALE = 4
NETWORKS = ("EDSR-S", "RCAN")
RGB_RANGE = 255.0
"""The official EDSR/RCAN scripts compute L1 on the 0..255 scale (``rgb_range 255``), so their ``1*L1 + w*CL``
weighs L_CL against an L1 that is 255 times ours ([0, 1] images): our L_CL weight is ``alpha / RGB_RANGE``. (Without
this factor, alpha = 1 on [0, 1] images is 255 times the paper's balance: measured in the medium profile, +PCL then
lost 1.5-2.9 dB PSNR against the L1 control and gained 9-13 NIQE points.)"""


@dataclass(frozen=True)
class Arm:
    """One fine-tuning arm.

    Attributes:
        label: row name in the tables (not part of the run's identity).
        loss: ``"l1"`` (L1 only), ``"pcl"`` (L1 + alpha L_CL through the discriminator) or ``"vcl"`` (L1 + alpha
            L_VCL through a frozen ImageNet VGG16, Table 4 config 2).
        released: compute L_CL as the official code does (no gradient to the SR network).
        haar: embed Haar high-frequency bands (True) or RGB (False; Table 4 config 4; VCL always uses RGB).
        negatives: ``"gen"`` (upsampled LR + blurred HR copies), ``"lr"`` (the upsampled LR only, config 3) or
            ``"rand"`` (HR patches of other images of the batch, config 5).
    """

    label: str
    loss: str
    released: bool = False
    haar: bool = True
    negatives: str = "gen"

    def spec(self) -> dict:
        """What identifies the arm's runs (the label does not: Table 4's config 1 is the control arm's run)."""
        return {k: v for k, v in asdict(self).items() if k != "label"}


ARMS = {
    "control": Arm("+L1 control", "l1"),
    "released": Arm("+PCL as released", "pcl", released=True),
    "pcl": Arm("+PCL", "pcl"),
}
"""The three arms of every network (PCL Tables 2-3 rows ``<net> <label>``)."""

TABLE4 = {
    "1": Arm("1: L1", "l1"),
    "2": Arm("2: L1 + VCL (Gen)", "vcl", haar=False),
    "3": Arm("3: L1 + PCL (Haar, LR)", "pcl", negatives="lr"),
    "4": Arm("4: L1 + PCL (RGB, Gen)", "pcl", haar=False),
    "5": Arm("5: L1 + PCL (Haar, Rand)", "pcl", negatives="rand"),
    "6": Arm("6: L1 + PCL (Haar, Gen)", "pcl"),
    "6r": Arm("6: as released", "pcl", released=True),
}
"""PCL Table 4's configurations on RCAN (config 1 is the control arm, 6 the PCL arm: same runs), plus config 6 as
released."""


NETWORK_ARCHS = {
    "EDSR-S": lambda s: ("EDSR", {"scale": SCALE, "n_feats": s.edsr_feats, "n_blocks": s.edsr_blocks}),
    "RCAN": lambda s: ("RCAN", {"scale": SCALE, "n_feats": s.rcan_feats, "n_groups": s.rcan_groups,
                                "n_blocks": s.rcan_blocks, "reduction": 8}),
}
"""(architecture, constructor kwargs) of each base network at the profile's size, x4."""


def network_arch(name: str, sizes: PCLSizes) -> tuple[str, dict]:
    """(architecture, kwargs) of the base network ``name`` ("EDSR-S" or "RCAN")."""
    if name not in NETWORK_ARCHS:
        raise ValueError(f"unknown PCL base network {name!r}; choose from {NETWORKS}")
    return NETWORK_ARCHS[name](sizes)


# ---------------------------------------------------------------------------------------------------------------------
# Batches and losses
# ---------------------------------------------------------------------------------------------------------------------


def pcl_batch(sizes: PCLSizes):
    """Batch constructor of the fine-tuning stage: bicubic x4 patches (:func:`srlib.train.degraded_patches`), then
    ``extras["pos"]`` (B, 1 + n_sharp, 3, H, W), HR first (PCL Eq. 5), and ``extras["neg"]`` (B, 1 + n_blur, 3, H,
    W), the upsampled LR first (Eq. 6), all in [0, 1] and drawn from the run's generator."""

    def make(sampler, cfg: TrainConfig, g: torch.Generator) -> Batch:
        batch = degraded_patches(sampler, cfg, g)
        lr_up = pcl.upsample_lr(batch.lr, batch.hr.shape[-2:])
        batch.extras["pos"] = pcl.positives(batch.hr, g, sizes.n_sharp)
        batch.extras["neg"] = pcl.negatives(batch.hr, lr_up, g, sizes.n_blur)
        return batch

    return make


def _sr(model: nn.Module, batch: Batch) -> torch.Tensor:
    """The SR output of this iteration, computed once (by the discriminator step) and shared with the SR step."""
    if "sr" not in batch.extras:
        batch.extras["sr"] = model(batch.lr)
    return batch.extras["sr"]


def _embed_input(x: torch.Tensor, haar: bool) -> torch.Tensor:
    """(..., 3, H, W) images -> their Haar LH/HL/HH bands (..., 9, H/2, W/2), or themselves for RGB embeddings."""
    if not haar:
        return x
    lead = x.shape[:-3]
    out = pcl.haar_highpass(x.reshape(-1, *x.shape[-3:]))
    return out.reshape(*lead, *out.shape[-3:])


def arm_negatives(arm: Arm, batch: Batch) -> torch.Tensor:
    """The negative set of ``arm`` for ``batch``: (B, K, 3, H, W).

    ``gen``: the generated set; ``lr``: its first entry (the upsampled LR); ``rand``: as many negatives as the
    generated set, the HR patches of other images of the batch (sample b gets b+1, b+2, ... modulo B, skipping b).
    """
    neg = batch.extras["neg"]
    if arm.negatives == "gen":
        return neg
    if arm.negatives == "lr":
        return neg[:, :1]
    if arm.negatives == "rand":
        n = batch.hr.shape[0]
        if n < 2:
            raise ValueError("random in-batch negatives need a batch of at least 2 images")
        shifts = [1 + j % (n - 1) for j in range(neg.shape[1])]
        return torch.stack([batch.hr.roll(-k, 0) for k in shifts], dim=1)
    raise ValueError(f"unknown negative set {arm.negatives!r}; choose 'gen', 'lr' or 'rand'")


def discriminator_loss(haar: bool):
    """The discriminator step's loss: PCL Eq. (7), dual contrastive over patch logits, real = HR + sharpened copies,
    fake = SR (detached) + blurred HR copies. ``critic_loss(disc, model, batch) -> {"d": L_D, "_d_margin": mean real
    logit - mean fake logit}``."""

    def loss_fn(disc: nn.Module, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        sr = _sr(model, batch).detach()
        real = batch.extras["pos"]
        fake = torch.cat([sr[:, None], batch.extras["neg"][:, 1:]], dim=1)
        real_logits = disc(_embed_input(real.flatten(0, 1), haar))
        fake_logits = disc(_embed_input(fake.flatten(0, 1), haar))
        return {"d": dual_contrastive_d_loss(real_logits, fake_logits),
                "_d_margin": (real_logits.mean() - fake_logits.mean()).detach()}

    return loss_fn


def sr_loss(arm: Arm, alpha: float, embed: nn.Module | None):
    """The SR step's loss: PCL Eq. (11), L_SR = L1 + alpha L_CL (Eqs. 8-10 through ``embed``), or L1 alone.

    L1 is measured on [0, 1] images, so the weight of L_CL is ``alpha / RGB_RANGE`` (see :data:`RGB_RANGE`): the
    paper's balance with L1 on the 0..255 scale.

    Returns ``loss_fn(model, batch) -> {"l1": ..., "cl": alpha / 255 * L_CL}`` (``cl`` only for contrastive arms; for
    the released arm it carries no gradient).
    """

    def loss_fn(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        sr = _sr(model, batch)
        terms = {"l1": F.l1_loss(sr, batch.hr)}
        if arm.loss == "l1":
            return terms
        pos, neg = batch.extras["pos"], arm_negatives(arm, batch)
        terms["cl"] = alpha / RGB_RANGE * pcl_loss(embed, _embed_input(sr, arm.haar), _embed_input(pos, arm.haar),
                                                   _embed_input(neg, arm.haar), released=arm.released)
        return terms

    return loss_fn


def l1_loss(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    """Pretraining loss of the base networks."""
    return {"l1": F.l1_loss(model(batch.lr), batch.hr)}

# ---------------------------------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------------------------------


def _common(profile: Profile, network: str) -> dict:
    arch, kwargs = network_arch(network, profile.pcl)
    return {"arch": arch, "arch_kwargs": kwargs, "data": TrainData(profile.train_sets, profile.pcl.lr_patch * SCALE),
            "code": CODE}


def base_run(network: str, profile: Profile, seed: int) -> RunSpec:
    """The base network pretrained with L1 on bicubic x4 patches: the stand-in for the official checkpoint (rows
    ``EDSR-S`` / ``RCAN`` of PCL Tables 2-3). Learning rate halved every third of the stage."""
    s = profile.pcl
    cfg = TrainConfig(SCALE, s.pretrain_iterations, s.batch_size, s.lr_patch, lr=s.pretrain_lr,
                      lr_halve_every=max(1, s.pretrain_iterations // 3), seed=seed,
                      checkpoint_every=max(1, s.pretrain_iterations // 5), precision=profile.precision)
    return RunSpec(id=RunId(PAPER, "pcl-base", network, SCALE, seed, "pretrain"), config=cfg,
                   recipe={"method": "pcl", "network": network, "sizes": asdict(s)},
                   objective=lambda: (l1_loss, None), desc=f"{network} base s{seed}", **_common(profile, network))


def arm_slug(arm: Arm) -> str:
    """The arm part of a run id, e.g. ``pcl-haar-gen``, ``l1``, ``pcl-released-haar-gen``."""
    tags = [arm.loss]
    if arm.loss != "l1":
        tags += [*(["released"] if arm.released else []), "haar" if arm.haar else "rgb", arm.negatives]
    return "-".join(tags)


def arm_run(arm: Arm, network: str, profile: Profile, seed: int) -> RunSpec:
    """One arm fine-tuned from the pretrained base (its parent) with a constant learning rate.

    Contrastive arms train a discriminator (``PCLDiscriminator`` of width ``d_channels`` on 9 Haar or 3 RGB channels,
    taps ``profile.pcl.taps``) alternately with the SR network (:class:`srlib.train.Critic`); the VCL arm uses a
    frozen ImageNet VGG16 instead and trains no discriminator.
    """
    s = profile.pcl
    cfg = TrainConfig(SCALE, s.finetune_iterations, s.batch_size, s.lr_patch, lr=s.finetune_lr, seed=10_000 + seed,
                      checkpoint_every=max(1, s.finetune_iterations // 5), precision=profile.precision)

    def objective():
        critic, embed = None, None
        if arm.loss == "pcl":
            disc = build_model(lambda: PCLDiscriminator(9 if arm.haar else 3, s.taps, base_channels=s.d_channels),
                               seed)
            critic, embed = Critic(disc, discriminator_loss(arm.haar), s.finetune_lr), disc
        elif arm.loss == "vcl":
            embed = VGG16Features(s.vgg_layers)
        return sr_loss(arm, s.alpha, embed), critic

    return RunSpec(id=RunId(PAPER, "pcl-" + arm_slug(arm), network, SCALE, seed, "finetune"), config=cfg,
                   recipe={"method": "pcl", "network": network, "sizes": asdict(s), "arm": arm.spec()},
                   objective=objective, make_batch=pcl_batch(s), parent=base_run(network, profile, seed),
                   desc=f"{network} {arm.label} s{seed}", **_common(profile, network))


LADDER_ARMS = ("control", "pcl")
"""The arms of claims P1 and P6 (+PCL vs the base; vs the L1 control of the same fine-tuning), laddered in a ``ladder``
profile."""


def runs(profile: Profile) -> list[RunSpec]:
    """Every PCL-SR run of ``profile``: per seed, for each of ``profile.pcl.networks`` the base and the three arms
    (:data:`ARMS`; notebook 03), and on RCAN the base and every PCL Table 4 configuration (:data:`TABLE4`; notebook
    05; configs 1, 6 and 6r are the control, +PCL and released arms: the same runs). In a ladder profile: the
    fine-tuning of :data:`LADDER_ARMS` laddered (each from its base, pretrained on its own schedule)."""
    if profile.ladder:
        return [b for seed in profile.seeds for network in profile.pcl.networks for key in LADDER_ARMS
                for b in ladder(arm_run(ARMS[key], network, profile, seed), profile.ladder)]
    out = []
    for seed in profile.seeds:
        for network in profile.pcl.networks:
            out += [base_run(network, profile, seed), *(arm_run(a, network, profile, seed) for a in ARMS.values())]
        out += [base_run("RCAN", profile, seed), *(arm_run(a, "RCAN", profile, seed) for a in TABLE4.values())]
    seen, unique = set(), []
    for spec in out:
        if spec.id not in seen:
            seen.add(spec.id)
            unique.append(spec)
    return unique
