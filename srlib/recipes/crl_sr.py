"""CRL-SR's runs: the six ablation variants of CRL-SR Table 1 and the non-blind RCAN baseline (notebooks 01, 02, 05).

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

* L_cond's LR pushing term acts on the SR feature (f_sr_i pushed away from f_lr_i while pulled towards f_hr_i; the
  text's reading, :func:`srlib.losses.contrastive.conditional_logits`). The first implementation's form (f_lr_i an
  extra negative of the HR anchor, which no SR parameter reaches) is kept as the variants ``b-hr`` and ``f-hr``
  (:data:`LR_TERM_VARIANTS`, not part of :func:`runs`).
* Contrastive terms use M locations per image drawn from the run's *loss* generator (``batch.loss_generator``, a
  stream apart from the data generator, so every variant of one seed sees the same batches), the same locations in
  every feature map of a step, each vector projected by a 2-layer MLP to S dims and L2-normalised; tau = 0.07.
* Training degradations: isotropic widths in DASR's per-scale range and noise U[0, 25], sampled per patch.
* RCAN, the non-blind baseline of CRL-SR Tables 2-4, is trained with L1 on bicubic LR only.
* Schedule: ``profile.crl.iterations`` at ``lr`` halved every third of the run, checkpoints every fifth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from srlib.degradation import DegradationSpace
from srlib.losses import contrastive as C
from srlib.profiles import Profile
from srlib.runs import RunId, RunSpec, TrainData, ladder
from srlib.train import Batch, TrainConfig

TAU = 0.07
PAPER = "crl-sr"
CODE = ("srlib.recipes.crl_sr", "srlib.archs.crl_sr", "srlib.archs.rcan", "srlib.losses.contrastive")


@dataclass(frozen=True)
class Variant:
    """One column of CRL-SR Table 1: whether CDE is used, which CFR loss (None: no CFR) and, for ``cfr="cond"``, which
    feature L_cond's LR term is compared with (``"sr"``: the text's reading; ``"hr"``: the first implementation's;
    see :func:`srlib.losses.contrastive.conditional_logits`)."""

    label: str
    cde: bool
    cfr: str | None  # "cond" | "infonce" | None
    lr_term: str = "sr"  # "sr" | "hr"; used by cfr="cond" only

    def __post_init__(self):
        if self.lr_term not in C.LR_TERMS:
            raise ValueError(f"Variant.lr_term must be one of {C.LR_TERMS}, got {self.lr_term!r}")


VARIANTS = {
    "a": Variant("a: baseline", False, None),
    "b": Variant("b: CFR (cond)", False, "cond"),
    "c": Variant("c: CFR (InfoNCE)", False, "infonce"),
    "d": Variant("d: CDE", True, None),
    "e": Variant("e: CDE + CFR (InfoNCE)", True, "infonce"),
    "f": Variant("f: CDE + CFR (cond)", True, "cond"),
}
FULL = "f"
LR_TERM_VARIANTS = {
    "b-hr": Variant("b: CFR (cond), LR term on f_hr", False, "cond", "hr"),
    "f-hr": Variant("f: CDE + CFR (cond), LR term on f_hr", True, "cond", "hr"),
}
"""(b) and (f) with the first implementation's LR term (``lr_term="hr"``): trainable by :func:`variant_run`, not
listed by :func:`runs`."""


def crl_loss(
    variant: Variant, m_locations: int, lambda_cde: float, lambda_c: float, lambda_hr: float, tau: float = TAU
):
    """The training objective of one Table 1 variant: ``loss_fn(model, batch) -> {term: weighted scalar}``.

    CRL-SR Eq. (8) (our reconstruction): L = L1(SR, HR) + lambda_cde L_bi (Eq. 3) + lambda_c L_cond (Eq. 6, with
    ``variant.lr_term``; or plain InfoNCE for ablations c, e) + lambda_hr L_HR (Eq. 7). The M locations are drawn
    from ``batch.loss_generator`` (never from the data generator ``batch.generator``).
    """

    def loss_fn(model, batch: Batch) -> dict[str, torch.Tensor]:
        out = model.forward_train(batch.lr, batch.hr)
        terms = {"l1": F.l1_loss(out["sr"], batch.hr)}
        if not (variant.cde or variant.cfr):
            return terms
        h, w = out["f_l"].shape[-2:]
        idx = C.sample_locations(h, w, min(m_locations, h * w), batch.loss_generator).to(out["f_l"].device)
        if variant.cde:
            f_l = model.proj_l(C.gather_locations(out["f_l"], idx))
            f_h = model.proj_h(C.gather_locations(out["f_h"], idx))
            terms["cde"] = lambda_cde * C.bidirectional_contrastive_loss(f_l, f_h, tau)
            terms.update(_matching_similarity(f_l.detach(), f_h.detach()))
        if variant.cfr:
            f_hr, f_sr, f_lr = (model.proj_f(C.gather_locations(out[k], idx)) for k in ("f_f_hr", "f_f_sr", "f_f_lr"))
            if variant.cfr == "cond":
                terms["cfr"] = lambda_c * C.conditional_contrastive_loss(f_hr, f_sr, f_lr, tau,
                                                                         lr_term=variant.lr_term)
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


def _config(profile: Profile, scale: int, seed: int, degradations: DegradationSpace | None) -> TrainConfig:
    s = profile.crl
    return TrainConfig(scale=scale, iterations=s.iterations, batch_size=s.batch_size, lr_patch=s.lr_patch, lr=s.lr,
                       lr_halve_every=max(1, s.iterations // 3), degradations=degradations, seed=seed,
                       checkpoint_every=max(1, s.iterations // 5), precision=profile.precision)


def variant_run(variant: str, profile: Profile, scale: int, seed: int) -> RunSpec:
    """One Table 1 variant (``"f"``: the full CRL-SR; or a key of :data:`LR_TERM_VARIANTS`) at ``scale`` and
    ``seed``."""
    known = {**VARIANTS, **LR_TERM_VARIANTS}
    if variant not in known:
        raise ValueError(f"unknown CRL-SR variant {variant!r}; choose one of {sorted(known)}")
    v, s = known[variant], profile.crl
    loss = crl_loss(v, s.m_locations, s.lambda_cde, s.lambda_c, s.lambda_hr)
    return RunSpec(
        id=RunId(PAPER, f"crl-{variant}", "CRLSR", scale, seed),
        arch="CRLSR",
        arch_kwargs={"scale": scale, "n_feats": s.n_feats, "n_blocks": s.n_blocks,
                     "n_detail_blocks": s.n_detail_blocks, "proj_dim": s.proj_dim, "cde": v.cde,
                     "cfr": v.cfr is not None, "n_blocks_f": s.n_blocks_f},
        config=_config(profile, scale, seed, DegradationSpace(scale, kernel="iso", noise_range=(0.0, 25.0))),
        recipe={"method": "crl", "variant": variant, "sizes": asdict(s),
                **({"lr_term": v.lr_term} if v.cfr == "cond" else {})},
        objective=lambda: (loss, None),
        data=TrainData(profile.train_sets, s.lr_patch * scale),
        code=CODE,
        desc=f"CRL-SR {v.label} x{scale} s{seed}",
    )


def rcan_run(profile: Profile, scale: int, seed: int) -> RunSpec:
    """The non-blind RCAN baseline: L1 on bicubic LR only (the RCAN rows of CRL-SR Tables 2-4)."""
    s = profile.crl
    return RunSpec(
        id=RunId(PAPER, "rcan", "RCAN", scale, seed),
        arch="RCAN",
        arch_kwargs={"scale": scale, "n_feats": s.n_feats, "n_groups": s.rcan_groups, "n_blocks": s.rcan_blocks,
                     "reduction": 8},
        config=_config(profile, scale, seed, None),
        recipe={"method": "rcan", "sizes": asdict(s)},
        objective=lambda: (l1_loss, None),
        data=TrainData(profile.train_sets, s.lr_patch * scale),
        code=CODE,
        desc=f"RCAN x{scale} s{seed}",
    )


LADDER_VARIANTS = ("a", "b", "c", "d", "f")
"""The Table 1 variants of claims C1-C4 (d > a, b > a, b > c, f best), laddered in a ``ladder`` profile."""


def runs(profile: Profile) -> list[RunSpec]:
    """Every CRL-SR run of ``profile``: the six Table 1 variants at x4 and the full model, the baseline and RCAN at
    each of ``profile.crl.scales``, for every seed. (The DASR rows of CRL-SR's tables are blind runs with CRL-SR's
    training distribution: :func:`srlib.recipes.blind_sr.runs` lists them.) In a ladder profile: the branches of
    :data:`LADDER_VARIANTS` at x4 for every seed."""
    if profile.ladder:
        return [b for seed in profile.seeds for k in LADDER_VARIANTS
                for b in ladder(variant_run(k, profile, 4, seed), profile.ladder)]
    out = []
    for scale in profile.crl.scales:
        for seed in profile.seeds:
            keys = VARIANTS if scale == 4 else ("f", "a")
            out += [variant_run(k, profile, scale, seed) for k in keys]
            out.append(rcan_run(profile, scale, seed))
    return out
