"""CRL-SR training: the six ablation variants of CRL-SR Table 1 and the non-blind RCAN baseline.

Our reconstruction (the paper's equations were lost; DESIGN.md, "CRL-SR"):

* Every variant trains the **same SR network** (E_l -> detail generator G -> decoder, global bicubic residual; see
  :class:`srlib.archs.crl_sr.CRLSR`), so differences come from the training losses alone:

  ====  =====================  =========================================================
  key   Table 1 label          loss
  ====  =====================  =========================================================
  a     a: baseline            L1
  b     b: CFR (cond)          L1 + lambda_c L_cond + lambda_hr L_HR
  c     c: CFR (InfoNCE)       L1 + lambda_c L_InfoNCE(f_hr, f_sr) + lambda_hr L_HR
  d     d: CDE                 L1 + lambda_cde (L(f_l, f_h) + L(f_h, f_l))
  e     e: CDE + CFR (InfoNCE) d + c
  f     f: CDE + CFR (cond)    d + b  (the full CRL-SR)
  ====  =====================  =========================================================

* Contrastive terms use M locations per image drawn from the run's generator, the same locations in every feature
  map of a step, each vector projected by a 2-layer MLP to S dims and L2-normalised; tau = 0.07.
* Training degradations: isotropic widths in DASR's per-scale range and noise U[0, 25], sampled per patch.
* RCAN, the non-blind baseline of CRL-SR Tables 2-4, is trained with L1 on bicubic LR only.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from srlib import data as sdata
from srlib.archs.crl_sr import CRLSR
from srlib.archs.rcan import RCAN
from srlib.degradation import DegradationSpace, preset
from srlib.evaluate import bicubic_upscaler, evaluation_sets, measure, paper_table
from srlib.losses import contrastive as C
from srlib.profiles import Profile, subsample
from srlib.reference import load_reference
from srlib.train import (
    Batch,
    TrainConfig,
    TrainResult,
    build_model,
    model_upscalers,
    run_folder,
    source_fingerprint,
    train,
)

TAU = 0.07


@dataclass(frozen=True)
class Variant:
    """One column of CRL-SR Table 1: whether CDE is used, and which CFR loss (None: no CFR)."""

    label: str
    cde: bool
    cfr: str | None  # "cond" | "infonce" | None


VARIANTS = {
    "a": Variant("a: baseline", False, None),
    "b": Variant("b: CFR (cond)", False, "cond"),
    "c": Variant("c: CFR (InfoNCE)", False, "infonce"),
    "d": Variant("d: CDE", True, None),
    "e": Variant("e: CDE + CFR (InfoNCE)", True, "infonce"),
    "f": Variant("f: CDE + CFR (cond)", True, "cond"),
}
FULL = "f"


def crl_loss(variant: Variant, m_locations: int, lambda_cde: float, lambda_c: float, lambda_hr: float, tau=TAU):
    """The training objective of one Table 1 variant: ``loss_fn(model, batch) -> {term: weighted scalar}``.

    CRL-SR Eq. (8) (our reconstruction): L = L1(SR, HR) + lambda_cde L_bi (Eq. 3) + lambda_c L_cond (Eq. 6, or plain
    InfoNCE for ablations c, e) + lambda_hr L_HR (Eq. 7).
    """

    def loss_fn(model: CRLSR, batch: Batch) -> dict[str, torch.Tensor]:
        out = model.forward_train(batch.lr, batch.hr)
        terms = {"l1": F.l1_loss(out["sr"], batch.hr)}
        if not (variant.cde or variant.cfr):
            return terms
        h, w = out["f_l"].shape[-2:]
        idx = C.sample_locations(h, w, min(m_locations, h * w), batch.generator)
        if variant.cde:
            f_l = model.proj_l(C.gather_locations(out["f_l"], idx))
            f_h = model.proj_h(C.gather_locations(out["f_h"], idx))
            terms["cde"] = lambda_cde * C.bidirectional_contrastive_loss(f_l, f_h, tau)
            terms.update(_matching_similarity(f_l.detach(), f_h.detach()))
        if variant.cfr:
            f_hr, f_sr, f_lr = (model.proj_f(C.gather_locations(out[k], idx)) for k in ("f_f_hr", "f_f_sr", "f_f_lr"))
            if variant.cfr == "cond":
                terms["cfr"] = lambda_c * C.conditional_contrastive_loss(f_hr, f_sr, f_lr, tau)
            else:
                terms["cfr"] = lambda_c * C.infonce_refinement_loss(f_hr, f_sr, tau)
            terms["hr"] = lambda_hr * C.hr_reconstruction_loss(out["hr_recon"], batch.hr)
        return terms

    return loss_fn


def _matching_similarity(f_l: torch.Tensor, f_h: torch.Tensor) -> dict[str, torch.Tensor]:
    """Diagnostics of CDE (logged, not optimised): mean cosine similarity of projected E_l(LR) and E_h(HR) vectors
    at the same location (``_sim_match``) and at different locations of the same image (``_sim_other``)."""
    sim = f_l @ f_h.transpose(1, 2)  # (B, M, M), unit vectors
    m = sim.shape[-1]
    diag = sim.diagonal(dim1=1, dim2=2).mean()
    return {
        "_sim_match": diag,
        "_sim_other": (sim.sum() - sim.diagonal(dim1=1, dim2=2).sum()) / (sim.numel() - sim.shape[0] * m),
    }


def l1_loss(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    """Plain L1 training (the RCAN baseline)."""
    return {"l1": F.l1_loss(model(batch.lr), batch.hr)}


def training_images(profile: Profile, min_size: int, data_root: str | os.PathLike | None = None):
    """The profile's training HR images as (3, H, W) uint8 tensors: its ``train_sets`` found under the data root,
    else the embedded training set. Images with a side below ``min_size`` (the HR patch) are skipped.

    Returns:
        (label naming the sets and how many images were kept, list of images)
    """
    names = sdata.available_sets([n for n in profile.train_sets if not n.startswith("embedded")], data_root)
    names = names or ["embedded-train"]
    images = [t.to(torch.uint8) for n in names for t in sdata.open_set(n, data_root).tensors()]
    kept = [t for t in images if min(t.shape[-2:]) >= min_size]
    if not kept:
        raise ValueError(f"no training image of {'+'.join(names)} has both sides >= {min_size} pixels")
    return f"{'+'.join(names)} ({len(kept)} of {len(images)} images >= {min_size} px)", kept


def code_fingerprint() -> str:
    """:func:`srlib.train.source_fingerprint` of everything that shapes a trained CRL-SR or RCAN model."""
    import srlib.archs.common
    import srlib.archs.crl_sr
    import srlib.archs.rcan
    import srlib.data
    import srlib.degradation
    import srlib.losses.contrastive
    import srlib.train

    return source_fingerprint(srlib.archs.common, srlib.archs.crl_sr, srlib.archs.rcan, srlib.data, srlib.degradation,
                              srlib.losses.contrastive, srlib.train, inspect.getmodule(code_fingerprint))


def _train_run(name: str, method: dict, factory, loss_fn, profile: Profile, scale: int, seed: int,
               degradations: DegradationSpace | None, images, runs, train_label: str, progress: bool,
               desc: str) -> TrainResult:
    """Train (or load) one run with the profile's CRL-SR schedule in ``runs / f"{name}-{key}"``, where ``key`` hashes
    the method, the sizes, the training configuration, the data label and :func:`code_fingerprint`."""
    s = profile.crl
    cfg = TrainConfig(scale=scale, iterations=s.iterations, batch_size=s.batch_size, lr_patch=s.lr_patch, lr=s.lr,
                      lr_halve_every=max(1, s.iterations // 3), degradations=degradations, seed=seed,
                      checkpoint_every=max(1, s.iterations // 5))
    spec = {**method, "sizes": asdict(s), "train": cfg.to_dict(), "data": train_label, "code": code_fingerprint()}
    model = build_model(factory, seed)
    return train(model, loss_fn, images, cfg, run_folder(runs, name, spec), progress=progress, desc=desc)


def train_crl(variant: str, profile: Profile, scale: int, seed: int, images: list[torch.Tensor], runs: Path,
              train_label: str = "", progress: bool = True) -> TrainResult:
    """Train (or load, if already trained with the same configuration and code) one Table 1 variant.

    Args:
        variant: a key of :data:`VARIANTS` (``"f"`` is the full CRL-SR).
        images: training HR images from :func:`training_images`.
        runs: folder holding one sub-folder per run (checkpoint, loss log, config).
    """
    v, s = VARIANTS[variant], profile.crl

    def factory():
        return CRLSR(scale, s.n_feats, s.n_blocks, s.n_detail_blocks, s.proj_dim, cde=v.cde, cfr=v.cfr is not None,
                     n_blocks_f=s.n_blocks_f)

    return _train_run(f"crl-{variant}-x{scale}-seed{seed}", {"method": "crl", "variant": variant}, factory,
                      crl_loss(v, s.m_locations, s.lambda_cde, s.lambda_c, s.lambda_hr), profile, scale, seed,
                      DegradationSpace(scale, kernel="iso", noise_range=(0.0, 25.0)), images, runs, train_label,
                      progress, f"CRL-SR {v.label} x{scale} s{seed}")


def train_rcan(profile: Profile, scale: int, seed: int, images: list[torch.Tensor], runs: Path,
               train_label: str = "", progress: bool = True) -> TrainResult:
    """Train (or load) the non-blind RCAN baseline: L1 on bicubic LR only (the RCAN rows of CRL-SR Tables 2-4)."""
    s = profile.crl
    return _train_run(f"rcan-x{scale}-seed{seed}", {"method": "rcan"},
                      lambda: RCAN(scale, s.n_feats, s.rcan_groups, s.rcan_blocks, reduction=8), l1_loss, profile,
                      scale, seed, None, images, runs, train_label, progress, f"RCAN x{scale} s{seed}")


# ---------------------------------------------------------------------------------------------------------------------
# Analysis and tables
# ---------------------------------------------------------------------------------------------------------------------


def penalty_map(model: CRLSR, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """The CFR penalty w_i (CRL-SR Eq. (5), our reconstruction) at every LR-grid location of one image.

    w_i = d_i / mean(d), d_i = || P(E_F(HR))_i - P(E_F(up(LR)))_i ||: large where the LR lost the detail that E_F
    sees in the HR image.

    Args:
        model: a CRL-SR model trained with CFR (``model.cfr``).
        lr: (1, 3, h, w) in [0, 1]; hr: (1, 3, h*s, w*s) in [0, 1].

    Returns:
        (h, w) tensor of penalty weights (mean 1).
    """
    if not model.cfr:
        raise ValueError("the penalty map needs a model trained with CFR (variants b, c, e, f)")
    with torch.inference_mode():
        f_hr, f_lr = model.feature_net(hr), model.feature_net(model.upsample(lr))
        h, w = f_hr.shape[-2:]
        idx = torch.arange(h * w)
        p_hr = model.proj_f(C.gather_locations(f_hr, idx))
        p_lr = model.proj_f(C.gather_locations(f_lr, idx))
        return C.penalty_weights(p_hr, p_lr)[0].reshape(h, w)


def table_protocols(profile: Profile, data_root=None) -> dict[str, tuple[list, list]]:
    """The test protocol of CRL-SR Tables 2-4 for the profile's trained scales: table -> (test sets, degradations).

    Table 2: the profile's test sets x the three spatially variant settings; Table 3: Set5 x unseen widths 4-6 x noise
    90-100; Table 4: Set14 (the paper does not name the set; DASR's Table 3 uses Set14) x the 9 anisotropic kernels x
    noise 5, 10, 15. A set absent from the data root is replaced by the embedded test set. ``profile.max_settings``
    keeps an evenly spaced subset of each table's settings.
    """

    scales, n = profile.crl.scales, profile.max_settings
    return {
        "Table 2": (evaluation_sets(profile, data_root),
                    [d for s in scales for d in subsample(preset("crl-sv", s), n)]),
        "Table 3": (evaluation_sets(profile, data_root, ("Set5",)),
                    [d for s in scales for d in subsample(preset("crl-unseen", s), n)]),
        "Table 4": (evaluation_sets(profile, data_root, ("Set14",)),
                    subsample([d for d in preset("aniso9", 4) if d.noise > 0], n) if 4 in scales else []),
    }


def ablation_claims(measurements):
    """The paper's ablation claims checked on our Table 1 measurements, paired by training seed.

    Claims (CRL-SR Sec. 4.2): d > a (CDE helps), b > a (CFR helps), b > c (the conditional loss beats InfoNCE),
    f is the best variant. For each claim: mean and sample std over seeds of our PSNR difference, the paper's
    difference, and whether ours holds (mean difference > 0; for "f best", f beats every other variant).
    """
    psnr = measurements[measurements.metric == "psnr"]
    by = psnr.pivot_table(index="seed", columns="method", values="value")
    label = {k: v.label for k, v in VARIANTS.items()}
    ref = load_reference("CRL-SR", "Table 1").set_index("method").value
    rows = []
    for better, worse, claim in (("d", "a", "d > a: CDE helps"), ("b", "a", "b > a: CFR helps"),
                                 ("b", "c", "b > c: conditional beats InfoNCE")):
        diff = by[label[better]] - by[label[worse]]
        rows.append({"claim": claim, "ours_diff_mean": diff.mean(), "ours_diff_std": diff.std(ddof=1),
                     "n_seeds": len(diff), "paper_diff": ref[label[better]] - ref[label[worse]],
                     "holds": bool(diff.mean() > 0)})
    others = [label[k] for k in VARIANTS if k != FULL]
    margin = by[label[FULL]] - by[others].max(axis=1)
    rows.append({"claim": "f best: full CRL-SR beats every other variant", "ours_diff_mean": margin.mean(),
                 "ours_diff_std": margin.std(ddof=1), "n_seeds": len(margin),
                 "paper_diff": ref[label[FULL]] - max(ref[o] for o in others), "holds": bool(margin.mean() > 0)})
    return pd.DataFrame(rows)


def evaluate_tables(profile: Profile, models: dict, data_root=None, cache=None,
                    tables=("Table 2", "Table 3", "Table 4")):
    """Measure CRL-SR Tables 2-4 (PSNR, Y) for trained models beside the paper's values.

    Args:
        models: ``{(method name, scale, seed): model}`` with method names as in the paper ("RCAN", "CRL-SR");
            a Bicubic row is added. Paper rows we do not train (IKC, DASR, untrained scales) keep the paper value only.

    Returns:
        ``{table: DataFrame}`` with :data:`srlib.tables.TABLE_COLUMNS`.
    """
    settings = table_protocols(profile, data_root)
    out = {}
    for table in tables:
        sets, degs = settings[table]
        parts = []
        for scale in sorted({d.scale for d in degs}):
            methods = {"Bicubic": {profile.seeds[0]: bicubic_upscaler(scale)}}
            methods.update(model_upscalers({(name, seed): m for (name, s, seed), m in models.items() if s == scale}))
            parts.append(measure(methods, sets, [d for d in degs if d.scale == scale], cache=cache,
                                 desc=f"CRL-SR {table} x{scale}"))
        measured = pd.concat(parts, ignore_index=True) if parts else None
        out[table] = paper_table(measured, "CRL-SR", table)
    return out


def ablation_setting(profile: Profile, data_root=None):
    """CRL-SR Table 1's test protocol (our reading): Set14 x4 under both spatially variant ramps (width 0.2 -> 4,
    noise 5 -> 50); the embedded test set stands in where Set14 is absent."""
    sets, _ = table_protocols(profile, data_root)["Table 4"]
    return sets, [preset("crl-sv", 4)[2]]


def evaluate_ablation(profile: Profile, models: dict, data_root=None, cache=None):
    """Measure CRL-SR Table 1 for trained variants ``{(variant key, seed): model}``.

    Returns:
        (table with :data:`srlib.tables.TABLE_COLUMNS`, claims from :func:`ablation_claims`)
    """
    sets, degs = ablation_setting(profile, data_root)
    methods = model_upscalers({(VARIANTS[key].label, seed): model for (key, seed), model in models.items()})
    measured = measure(methods, sets, degs, cache=cache, desc="CRL-SR Table 1")
    return paper_table(measured, "CRL-SR", "Table 1"), ablation_claims(measured)
