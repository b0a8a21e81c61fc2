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

import hashlib
import inspect
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from srlib import data as sdata
from srlib.archs.crl_sr import CRLSR
from srlib.archs.rcan import RCAN
from srlib.degradation import DegradationSpace
from srlib.losses import contrastive as C
from srlib.profiles import Profile
from srlib.train import Batch, TrainConfig, TrainResult, build_model, train

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
    """sha256 over the source of everything that shapes a trained model; part of every run folder's name, so that a
    code change never silently reuses a model trained by older code."""
    import srlib.archs.common
    import srlib.archs.crl_sr
    import srlib.archs.rcan
    import srlib.data
    import srlib.degradation
    import srlib.losses.contrastive
    import srlib.train

    h = hashlib.sha256()
    for mod in (
        srlib.archs.common,
        srlib.archs.crl_sr,
        srlib.archs.rcan,
        srlib.data,
        srlib.degradation,
        srlib.losses.contrastive,
        srlib.train,
    ):
        h.update(inspect.getsource(mod).encode())
    h.update(inspect.getsource(inspect.getmodule(code_fingerprint)).encode())
    return h.hexdigest()


def _run_dir(runs: Path, name: str, spec: dict) -> Path:
    key = hashlib.sha256(json.dumps({**spec, "code": code_fingerprint()}, sort_keys=True).encode()).hexdigest()
    return runs / f"{name}-{key[:10]}"


def _config(profile: Profile, scale: int, seed: int, degradations: DegradationSpace | None) -> TrainConfig:
    s = profile.crl
    return TrainConfig(
        scale=scale,
        iterations=s.iterations,
        batch_size=s.batch_size,
        lr_patch=s.lr_patch,
        lr=s.lr,
        lr_halve_every=max(1, s.iterations // 3),
        degradations=degradations,
        seed=seed,
        checkpoint_every=max(1, s.iterations // 5),
    )


def train_crl(
    variant: str,
    profile: Profile,
    scale: int,
    seed: int,
    images: list[torch.Tensor],
    runs: Path,
    train_label: str = "",
    progress: bool = True,
) -> TrainResult:
    """Train (or load, if already trained with the same configuration and code) one Table 1 variant.

    Args:
        variant: a key of :data:`VARIANTS` (``"f"`` is the full CRL-SR).
        images: training HR images from :func:`training_images`.
        runs: folder holding one sub-folder per run (checkpoint, loss log, config).
    """
    v, s = VARIANTS[variant], profile.crl
    cfg = _config(profile, scale, seed, DegradationSpace(scale, kernel="iso", noise_range=(0.0, 25.0)))

    def factory():
        return CRLSR(
            scale,
            s.n_feats,
            s.n_blocks,
            s.n_detail_blocks,
            s.proj_dim,
            cde=v.cde,
            cfr=v.cfr is not None,
            n_blocks_f=s.n_blocks_f,
        )

    model = build_model(factory, seed)
    loss_fn = crl_loss(v, s.m_locations, s.lambda_cde, s.lambda_c, s.lambda_hr)
    spec = {"method": "crl", "variant": variant, "sizes": asdict(s), "train": cfg.to_dict(), "data": train_label}
    run_dir = _run_dir(Path(runs), f"crl-{variant}-x{scale}-seed{seed}", spec)
    return train(model, loss_fn, images, cfg, run_dir, progress=progress, desc=f"CRL-SR {v.label} x{scale} s{seed}")


def train_rcan(
    profile: Profile,
    scale: int,
    seed: int,
    images: list[torch.Tensor],
    runs: Path,
    train_label: str = "",
    progress: bool = True,
) -> TrainResult:
    """Train (or load) the non-blind RCAN baseline: L1 on bicubic LR only (the RCAN rows of CRL-SR Tables 2-4)."""
    s = profile.crl
    cfg = _config(profile, scale, seed, None)
    model = build_model(lambda: RCAN(scale, s.n_feats, s.rcan_groups, s.rcan_blocks, reduction=8), seed)
    spec = {"method": "rcan", "sizes": asdict(s), "train": cfg.to_dict(), "data": train_label}
    run_dir = _run_dir(Path(runs), f"rcan-x{scale}-seed{seed}", spec)
    return train(model, l1_loss, images, cfg, run_dir, progress=progress, desc=f"RCAN x{scale} s{seed}")
