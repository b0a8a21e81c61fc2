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

import inspect
import os
from dataclasses import asdict, dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from srlib import pcl
from srlib.archs.edsr import EDSR
from srlib.archs.pcl_embed import PCLDiscriminator
from srlib.archs.rcan import RCAN
from srlib.archs.vgg import VGG16Features
from srlib.data import PatchSampler
from srlib.degradation import Degradation
from srlib.evaluate import bicubic_upscaler, evaluation_sets, measure, paper_table, perceptual_metrics
from srlib.losses.pcl import dual_contrastive_d_loss, pcl_loss
from srlib.metrics import LPIPS
from srlib.profiles import PCLSizes, Profile
from srlib.reference import load_reference
from srlib.train import (
    Batch,
    Critic,
    TrainConfig,
    TrainResult,
    build_model,
    degraded_patches,
    model_upscalers,
    run_folder,
    source_fingerprint,
    train,
)

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

    def slug(self, network: str, seed: int) -> str:
        """Run folder prefix, e.g. ``pcl-RCAN-pcl-haar-gen-s0``."""
        tags = [self.loss]
        if self.loss != "l1":
            tags += [*(["released"] if self.released else []), "haar" if self.haar else "rgb", self.negatives]
        return "-".join(["pcl", network, *tags, f"s{seed}"])


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


def code_fingerprint() -> str:
    """:func:`srlib.train.source_fingerprint` of everything that shapes a PCL-SR run."""
    import srlib.archs.common
    import srlib.archs.edsr
    import srlib.archs.pcl_embed
    import srlib.archs.rcan
    import srlib.archs.vgg
    import srlib.data
    import srlib.degradation
    import srlib.losses.pcl
    import srlib.train

    return source_fingerprint(srlib.archs.common, srlib.archs.edsr, srlib.archs.pcl_embed, srlib.archs.rcan,
                              srlib.archs.vgg, srlib.data, srlib.degradation, srlib.losses.pcl, srlib.pcl, srlib.train,
                              inspect.getmodule(code_fingerprint))


def network_factory(name: str, sizes: PCLSizes):
    """A constructor of the base network ``name`` ("EDSR-S" or "RCAN") at the profile's size, x4."""
    if name == "EDSR-S":
        return lambda: EDSR(SCALE, sizes.edsr_feats, sizes.edsr_blocks)
    if name == "RCAN":
        return lambda: RCAN(SCALE, sizes.rcan_feats, sizes.rcan_groups, sizes.rcan_blocks, reduction=8)
    raise ValueError(f"unknown PCL base network {name!r}; choose from {NETWORKS}")


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


def _spec(profile: Profile, network: str, seed: int, train_label: str) -> dict:
    return {"method": "pcl", "network": network, "seed": seed, "sizes": asdict(profile.pcl), "data": train_label,
            "code": code_fingerprint()}


def train_base(network: str, profile: Profile, seed: int, images: list[torch.Tensor], runs: str | os.PathLike,
               train_label: str = "", progress: bool = True) -> TrainResult:
    """Pretrain (or load) the base network with L1 on bicubic x4 patches: the stand-in for the official
    checkpoint (rows ``EDSR-S`` / ``RCAN`` of PCL Tables 2-3). Learning rate halved every third of the stage."""
    s = profile.pcl
    cfg = TrainConfig(SCALE, s.pretrain_iterations, s.batch_size, s.lr_patch, lr=s.pretrain_lr,
                      lr_halve_every=max(1, s.pretrain_iterations // 3), seed=seed,
                      checkpoint_every=max(1, s.pretrain_iterations // 5))
    spec = {**_spec(profile, network, seed, train_label), "stage": "pretrain", "train": cfg.to_dict()}
    model = build_model(network_factory(network, s), seed)
    return train(model, l1_loss, images, cfg, run_folder(runs, f"pcl-{network}-base-s{seed}", spec),
                 progress=progress, desc=f"{network} base s{seed}")


def train_arm(arm: Arm, network: str, profile: Profile, seed: int, images: list[torch.Tensor],
              runs: str | os.PathLike, train_label: str = "", progress: bool = True,
              base: TrainResult | None = None, max_steps: int | None = None) -> TrainResult:
    """Fine-tune (or load) one arm from the pretrained base (trained first if needed) with a constant learning rate.

    Contrastive arms train a discriminator (``PCLDiscriminator`` of width ``d_channels`` on 9 Haar or 3 RGB channels,
    taps ``profile.pcl.taps``) alternately with the SR network (:class:`srlib.train.Critic`); the VCL arm uses a
    frozen ImageNet VGG16 instead and trains no discriminator.

    Args:
        max_steps: stop after this many steps (a checkpoint is kept; the next call resumes), as in
            :func:`srlib.train.train`.

    Returns:
        The run; for contrastive arms ``result.critic`` is the trained discriminator.
    """
    s = profile.pcl
    base = base or train_base(network, profile, seed, images, runs, train_label, progress)
    cfg = TrainConfig(SCALE, s.finetune_iterations, s.batch_size, s.lr_patch, lr=s.finetune_lr, seed=10_000 + seed,
                      checkpoint_every=max(1, s.finetune_iterations // 5))
    spec = {**_spec(profile, network, seed, train_label), "stage": "finetune", "arm": arm.spec(),
            "train": cfg.to_dict()}
    model = build_model(network_factory(network, s), seed)
    model.load_state_dict(base.model.state_dict())
    critic = None
    embed: nn.Module | None = None
    if arm.loss == "pcl":
        disc = build_model(lambda: PCLDiscriminator(9 if arm.haar else 3, s.taps, base_channels=s.d_channels), seed)
        critic = Critic(disc, discriminator_loss(arm.haar), s.finetune_lr)
        embed = disc
    elif arm.loss == "vcl":
        embed = VGG16Features(s.vgg_layers)
    return train(model, sr_loss(arm, s.alpha, embed), images, cfg, run_folder(runs, arm.slug(network, seed), spec),
                 make_batch=pcl_batch(s), max_steps=max_steps, progress=progress, desc=f"{network} {arm.label} s{seed}",
                 critic=critic)


# ---------------------------------------------------------------------------------------------------------------------
# The released code's gradient, measured
# ---------------------------------------------------------------------------------------------------------------------


def sr_gradients(model: nn.Module, disc: PCLDiscriminator, batch: Batch, alpha: float = 1.0) -> dict[str, float]:
    """How much L_CL changes the SR network's gradient, for the released variant and ours.

    For one batch (with ``extras`` from :func:`pcl_batch`), computes the gradient of L1 + alpha L_CL w.r.t. every SR
    parameter for each variant and compares it with the gradient of L1 alone.

    Returns:
        ``{"released": max |g - g_L1|, "ours": max |g - g_L1|, "l1_norm": ||g_L1||}`` over all parameters; the
        released variant gives exactly 0.
    """
    params = [p for p in model.parameters() if p.requires_grad]

    def grads(arm: Arm | None) -> list[torch.Tensor]:
        b = Batch(batch.lr, batch.hr, batch.degradations, batch.generator, {k: batch.extras[k] for k in ("pos", "neg")})
        terms = sr_loss(arm or ARMS["control"], alpha, disc)(model, b)
        return torch.autograd.grad(sum(terms.values()), params, allow_unused=True)

    def max_diff(a, b):
        return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))

    model.train()
    g_l1 = grads(None)
    return {"released": max_diff(grads(ARMS["released"]), g_l1), "ours": max_diff(grads(ARMS["pcl"]), g_l1),
            "l1_norm": float(torch.sqrt(sum((g ** 2).sum() for g in g_l1)))}


# ---------------------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------------------


def evaluate_tables(profile: Profile, models: dict, data_root=None, cache=None):
    """Measure PCL Tables 2 (PSNR/SSIM, Y) and 3 (NIQE/LPIPS) on the profile's test sets x4 in one pass.

    Args:
        models: ``{(row name, seed): model}`` with row names ``"<network>"`` (the base) or ``"<network> <arm
            label>"``; a Bicubic row is added. The paper's ``<network> +PCL`` rows are compared with ours.

    Returns:
        ``(table2, table3, measurements)``: tables with :data:`srlib.tables.TABLE_COLUMNS` (paper rows we do not
        train keep the paper value only) and the tidy per-seed measurements.
    """
    methods = {"Bicubic": {profile.seeds[0]: bicubic_upscaler(SCALE)}, **model_upscalers(models)}
    measured = measure(methods, evaluation_sets(profile, data_root), [Degradation(SCALE)], cache=cache,
                       desc="PCL-SR Tables 2-3", extra_metrics=perceptual_metrics())
    return (paper_table(measured, "PCL-SR", "Table 2", ("psnr", "ssim")),
            paper_table(measured, "PCL-SR", "Table 3", ("niqe", "lpips")), measured)


def ablation_sets(profile: Profile, data_root=None):
    """PCL Table 4's test set: Set5 x4 (the embedded test set where Set5 is absent)."""
    return evaluation_sets(profile, data_root, ("Set5",))


def evaluate_ablation(profile: Profile, models: dict, data_root=None, cache=None):
    """Measure PCL Table 4 (PSNR and LPIPS on Set5 x4) for ``{(row name, seed): model}`` (row names: the keys'
    labels of :data:`TABLE4`, and ``"RCAN"`` for the base).

    Returns:
        ``(table, measurements)``.
    """
    measured = measure(model_upscalers(models), ablation_sets(profile, data_root), [Degradation(SCALE)], cache=cache,
                       desc="PCL-SR Table 4", extra_metrics={"lpips": LPIPS("alex")})
    return paper_table(measured, "PCL-SR", "Table 4", ("psnr", "lpips")), measured


def paired_gains(measurements: pd.DataFrame, pairs, paper_pairs=None, table: str = "Table 2") -> pd.DataFrame:
    """Differences between rows, paired by training seed, per dataset and metric, beside the paper's difference.

    Args:
        measurements: tidy per-seed frame from :func:`evaluate_tables` / :func:`evaluate_ablation`.
        pairs: ``[(better, worse), ...]`` row names; the gain is ``better - worse`` (for LPIPS and NIQE lower is
            better, so their ``improves`` flag checks for a negative gain).
        paper_pairs: ``{(better, worse): (paper better, paper worse)}`` row names in the paper's table, for pairs
            whose rows have other names there (e.g. our base ``EDSR-S`` is the paper's ``EDSR-S``, our ``EDSR-S +PCL``
            its ``EDSR-S +PCL``); pairs without one get no paper value.

    Returns:
        One row per (pair, dataset, metric): ``better, worse, dataset, metric, gain_mean, gain_std, n_seeds,
        paper_gain, improves`` (``improves``: the mean gain is in the metric's better direction).
    """
    ref = load_reference("PCL-SR", table)
    ref = ref.set_index(["method", "dataset", "metric"]).value
    rows = []
    for better, worse in pairs:
        sub = measurements[measurements.method.isin([better, worse])]
        for (dataset, metric), cell in sub.groupby(["dataset", "metric"], sort=False):
            by = cell.pivot_table(index="seed", columns="method", values="value")
            if better not in by or worse not in by:
                continue
            gain = (by[better] - by[worse]).dropna()
            pb, pw = (paper_pairs or {}).get((better, worse), (None, None))
            paper = (ref.get((pb, dataset, metric), float("nan")) - ref.get((pw, dataset, metric), float("nan"))
                     if pb else float("nan"))
            lower_better = metric in ("lpips", "niqe")
            rows.append({"better": better, "worse": worse, "dataset": dataset, "metric": metric,
                         "gain_mean": gain.mean(), "gain_std": gain.std(ddof=1) if len(gain) > 1 else float("nan"),
                         "n_seeds": len(gain), "paper_gain": paper,
                         "improves": bool(gain.mean() < 0 if lower_better else gain.mean() > 0)})
    return pd.DataFrame(rows)


def claim_pairs(network: str):
    """The comparisons of our note for one network: +PCL vs the L1 control, +PCL vs base, released vs control (0 by
    construction), control vs base; and the paper's counterpart (+PCL vs base: the gain the paper reports)."""
    row = {k: f"{network} {a.label}" for k, a in ARMS.items()}
    pairs = [(row["pcl"], row["control"]), (row["pcl"], network), (row["released"], row["control"]),
             (row["control"], network)]
    return pairs, {(row["pcl"], network): (f"{network} +PCL", network)}


def identical_weights(a: nn.Module, b: nn.Module) -> bool:
    """Whether two models hold bit-identical parameters and buffers."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def sample_batch(profile: Profile, images: list[torch.Tensor], seed: int = 0) -> Batch:
    """One fine-tuning batch (with positives and negatives) of the profile's size, drawn from ``seed``."""
    s = profile.pcl
    cfg = TrainConfig(SCALE, 1, s.batch_size, s.lr_patch, seed=seed)
    g = torch.Generator().manual_seed(seed)
    return pcl_batch(s)(PatchSampler(list(images), s.lr_patch * SCALE, s.batch_size), cfg, g)
