"""PCL-SR's tables, gains and the released code's gradient: what is measured on the runs of
:mod:`srlib.recipes.pcl_sr` (the pretrained bases, the L1 control / PCL as released / PCL arms and the Table 4
configurations; the recipe and its decisions are documented there).
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from srlib.archs.pcl_embed import PCLDiscriminator
from srlib.claims import claim_row
from srlib.data import PatchSampler
from srlib.degradation import Degradation
from srlib.evaluate import bicubic_upscaler, evaluation_sets, measure, model_upscalers, paper_table, perceptual_metrics
from srlib.metrics import LPIPS
from srlib.profiles import Profile
from srlib.recipes.pcl_sr import ARMS, SCALE, TABLE4, Arm, arm_slug, pcl_batch, sr_loss
from srlib.reference import load_reference
from srlib.train import Batch, TrainConfig

__all__ = ["ARMS", "SCALE", "TABLE4", "arm_slug", "claim_pairs", "evaluate_ablation", "evaluate_tables",
           "identical_weights", "paired_gains", "row_results", "sample_batch", "sr_gradients", "table4_pairs"]


def row_results(trained: dict, table: str = "tables") -> dict:
    """PCL-SR runs (``{RunId: TrainResult}``) keyed ``{(row name, seed): TrainResult}`` as the tables name
    their rows: ``"tables"`` (Tables 2-3): ``"<network>"`` for a base, ``"<network> <arm label>"`` for the arms of
    :data:`ARMS`; ``"table4"``: ``"RCAN base"``, the :data:`TABLE4` labels on RCAN and ``"<network> <label>"`` of
    configs 1, 6 and 6r on the other networks, ``"<network> base"`` for their bases."""
    labels = {arm_slug(a): a.label for a in ARMS.values()}
    labels4 = {arm_slug(a): a.label for a in TABLE4.values()}
    out = {}
    for k, r in trained.items():
        if k.paper != "pcl-sr":
            continue
        slug = k.method.removeprefix("pcl-")
        if table == "tables":
            if k.stage == "pretrain":
                out[k.network, k.seed] = r
            elif slug in labels:
                out[f"{k.network} {labels[slug]}", k.seed] = r
        elif k.stage == "pretrain":
            out[f"{k.network} base", k.seed] = r
        elif k.network == "RCAN" and slug in labels4:
            out[labels4[slug], k.seed] = r
        elif slug in labels4 and any(a.label == labels4[slug] for key, a in TABLE4.items() if key in ("1", "6", "6r")):
            out[f"{k.network} {labels4[slug]}", k.seed] = r
    return out


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
    methods = {"Bicubic": {profile.seeds[0]: bicubic_upscaler(SCALE)}, **model_upscalers(models)}
    measured = measure(methods, ablation_sets(profile, data_root), [Degradation(SCALE)], cache=cache,
                       desc="PCL-SR Table 4", extra_metrics={"lpips": LPIPS("alex")})
    return paper_table(measured, "PCL-SR", "Table 4", ("psnr", "lpips")), measured


def paired_gains(measurements: pd.DataFrame, pairs, paper_pairs=None, table: str = "Table 2") -> pd.DataFrame:
    """Differences between rows, paired by training seed and test image, per dataset and metric, beside the paper's
    difference, with a CI and a three-way verdict (:func:`srlib.claims.claim_row`).

    Args:
        measurements: tidy per-image frame from :func:`evaluate_tables` / :func:`evaluate_ablation`.
        pairs: ``[(better, worse), ...]`` row names; the effect is oriented: ``better - worse`` for PSNR/SSIM,
            ``worse - better`` for LPIPS and NIQE (lower is better), so a positive effect is always an improvement.
        paper_pairs: ``{(better, worse): (paper better, paper worse)}`` row names in the paper's table, for pairs
            whose rows have other names there (e.g. our base ``EDSR-S`` is the paper's ``EDSR-S``, our ``EDSR-S +PCL``
            its ``EDSR-S +PCL``); pairs without one get no paper value.

    Returns:
        One row per (pair, dataset, metric): ``better, worse, dataset, metric`` and the columns of
        :func:`srlib.claims.claim_row`; a pair whose rows do not beat bicubic PSNR on the dataset (where the
        measurements hold a ``Bicubic`` row) is inconclusive.
    """
    ref = load_reference("PCL-SR", table)
    ref = ref.set_index(["method", "dataset", "metric"]).value
    rows = []
    for better, worse in pairs:
        sub = measurements[measurements.method.isin([better, worse, "Bicubic"])]
        for (dataset, metric), cell in sub.groupby(["dataset", "metric"], sort=False):
            if not {better, worse} <= set(cell.method):
                continue
            pb, pw = (paper_pairs or {}).get((better, worse), (None, None))
            paper = (ref.get((pb, dataset, metric), float("nan")) - ref.get((pw, dataset, metric), float("nan"))
                     if pb else float("nan"))
            on_set = sub[sub.dataset == dataset]  # every metric of the set: the learned check reads its PSNR
            rows.append({"better": better, "worse": worse, "dataset": dataset, "metric": metric,
                         **claim_row(on_set, better, worse, metric, paper)})
    return pd.DataFrame(rows)


def claim_pairs(network: str):
    """The comparisons of our note for one network: +PCL vs the L1 control, +PCL vs base, released vs control (0 by
    construction), control vs base; and the paper's counterpart (+PCL vs base: the gain the paper reports)."""
    row = {k: f"{network} {a.label}" for k, a in ARMS.items()}
    pairs = [(row["pcl"], row["control"]), (row["pcl"], network), (row["released"], row["control"]),
             (row["control"], network)]
    return pairs, {(row["pcl"], network): (f"{network} +PCL", network)}


def table4_pairs(networks) -> list[tuple[str, str]]:
    """The comparisons of PCL Table 4 (rows of :func:`evaluate_ablation`): every configuration against config 1 (L1)
    and config 1 against the RCAN base; on each other network of ``networks``, +PCL and as-released against its L1
    control and that control against its base; and config 6 against 3 and 5 (claim P3: generated hard negatives beat
    LR-only and in-batch ones) and against 4 (claim P4: Haar input beats RGB)."""
    config1, six = TABLE4["1"].label, TABLE4["6"].label
    pairs = [(arm.label, config1) for key, arm in TABLE4.items() if key != "1"] + [(config1, "RCAN base")]
    for network in (n for n in networks if n != "RCAN"):
        rows = {k: f"{network} {TABLE4[k].label}" for k in ("1", "6", "6r")}
        pairs += [(rows["6"], rows["1"]), (rows["6r"], rows["1"]), (rows["1"], f"{network} base")]
    return pairs + [(six, TABLE4[k].label) for k in ("3", "5", "4")]


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
