"""DASR and CDSR, the blind-SR baselines (notebook 04; the DASR rows of CRL-SR Tables 2-4 in notebook 02).

Networks: :class:`srlib.archs.DASR` and :class:`srlib.archs.cdsr.CDSR` sized by ``profile.blind``. Both learn a
degradation embedding with MoCo (queue, momentum key encoder, T = 0.07) from pairs of LR patches.

**Pairs** (:func:`pair_batch`). Per training image two LR patches, the *query* (the SR target is its HR patch) and
the *positive key*, chosen as in CDSR Table 1 (:data:`POSITIVES`):

* ``"C&D"``: the same image (same augmentation, another random position) under the same degradation: DASR's and
  CDSR's choice (DASR ``SRMDPreprocessing``: one kernel and one noise level per image, shared by its two patches;
  the noise itself is drawn per patch);
* ``"D"``: another training image (another random one, never the query's when there are two or more) under the same
  degradation;
* ``"C"``: the same image under an independently drawn degradation.

**Training protocols** (:data:`PROTOCOLS`, :func:`training_space`), both on our trainer and MATLAB conventions:

* ``"dasr"`` (ours = DASR's, DESIGN.md): isotropic widths in DASR's per-scale range, MATLAB bicubic, noise
  U[0, ``noise``] (``noise=0``: noise-free, as DASR Table 2's models; ``noise=25``: DASR's noisy models and CRL-SR's
  training distribution);
* ``"cdsr"`` (CDSR's code, ``research/methods.md`` 1.2): anisotropic kernels with *variances* l1 ~ U[range],
  l2 ~ U[low, l1], theta ~ U[0, 180) (range [0.175 s, 2.5 s], :func:`srlib.degradation.cdsr_variance_range`),
  kernels shifted for s-fold decimation, noise U[0, ``noise``] with a 20% probability of a clean sample.

**Schedules.** DASR: an encoder-only stage (``warmup_iterations`` at ``warmup_lr``, contrastive loss only, the SR
network frozen; DASR ``epochs_encoder``: 1e-3 then x0.1 at 60% of the stage, here halved once at 60% because the
trainer's schedule halves) and then the joint stage (L1 + contrastive, ``iterations`` at ``lr`` halved every third),
started from the first stage's weights, queue and key encoder. The stages are two runs of the trainer with their
own folders (each resumes bit-identically; the second is keyed by the first's specification). CDSR: the joint
stage from the start (``epochs_encoder = -1``). Contrastive weight 1 in both.

**Test data of CDSR's tables** (never released): :func:`srlib.degradation.cdsr_test_kernels`, 9 seeded kernels per
scale drawn from CDSR's training ranges (s-fold, variances), noise 0 and, at x4, 15; every test image is degraded by
each of the 9 and a table cell is the mean over the 9 (:func:`cdsr_setting` names such a cell). These kernels are
ours: CDSR's numbers were measured on other kernels from the same distribution.

**Embedding accuracy** (CDSR Table 1's "Acc"; the paper does not define it, :func:`embedding_accuracy`): LR patches
(``lr_patch``) of the held-out test images, one patch per (image, kernel) at a seeded random position under each of
the 9 x4 test kernels (noise 0), embedded by the query encoder (``fea``, what the SR network consumes); the accuracy
is the leave-one-out 1-nearest-neighbour accuracy by cosine similarity with the kernel as the label
(:func:`srlib.embeddings.nn_accuracy`), in percent. Chance is ~1/9 = 11%: the paper's "C" positive (12%) sits there.
CDSR Table 1's C&D row equals the DASR row of its Table 2, so the positives were compared on DASR trained with
CDSR's protocol; :func:`evaluate_cdsr_table1` does the same.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from srlib import embeddings as E
from srlib.archs.cdsr import CDSR
from srlib.archs.dasr import DASR
from srlib.data import PatchSampler, crop_patches
from srlib.degradation import (
    CDSR_CLEAN_PROB,
    CDSR_TEST_NOISE,
    DegradationSpace,
    apply_batch,
    cdsr_variance_range,
    preset,
)
from srlib.evaluate import bicubic_upscaler, evaluation_sets, measure, paper_table
from srlib.profiles import BlindSizes, Profile, subsample
from srlib.reference import load_reference
from srlib.train import (
    Batch,
    TrainConfig,
    TrainResult,
    build_model,
    model_upscaler,
    model_upscalers,
    run_folder,
    source_fingerprint,
    train,
)

PROTOCOLS = ("dasr", "cdsr")
POSITIVES = {
    "C&D": "same image, same degradation",
    "D": "different images, same degradation",
    "C": "same image, different degradation",
}
"""CDSR Table 1's choices of the positive key (the row names of the table)."""

DEFAULT_NOISE = {"dasr": 0.0, "cdsr": 15.0}
"""Maximum training noise of each protocol when ``noise`` is not given: DASR Table 2's models are noise-free; our
CDSR-protocol models serve both noise levels of CDSR Table 2 (0 and 15; 20% of their samples are clean). Pass
``noise=25.0`` with ``protocol="dasr"`` for DASR's noisy models (CRL-SR's training distribution)."""

ACC_DATASET = "embedding"
"""The ``dataset`` of CDSR Table 1's accuracy cells (patches of all test sets pooled, see the module docstring)."""

CONTRASTIVE_WEIGHT = 1.0

STAGES_FILE = "stages.json"
"""Written into a DASR joint-stage run folder: the names of the run folders trained before it (the warm-up)."""

CURVE_LABELS = {"l1": "L1(SR, HR)", "contrastive": "contrastive (MoCo InfoNCE)",
                "_top1": "positive key ranked first (fraction)"}
"""Readable names of the loss-log columns of DASR / CDSR runs (for :func:`srlib.viz.plot_training_curves`)."""


# ---------------------------------------------------------------------------------------------------------------------
# Training distributions and pairs
# ---------------------------------------------------------------------------------------------------------------------


def training_space(protocol: str, scale: int, noise: float | None = None) -> DegradationSpace:
    """The training degradation distribution of a protocol (:data:`PROTOCOLS`) at ``scale``.

    Args:
        noise: maximum noise level (0..255 scale): U[0, noise] per image; None = :data:`DEFAULT_NOISE`.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown training protocol {protocol!r}; choose from {PROTOCOLS}")
    noise = DEFAULT_NOISE[protocol] if noise is None else float(noise)
    if protocol == "dasr":
        return DegradationSpace(scale, kernel="iso", noise_range=(0.0, noise))
    return DegradationSpace(scale, kernel="aniso", aniso_range=cdsr_variance_range(scale), noise_range=(0.0, noise),
                            clean_prob=CDSR_CLEAN_PROB, resize="sfold", convention="cdsr")


def pair_batch(space: DegradationSpace, positive: str = "C&D"):
    """Batch constructor of DASR / CDSR: per image a query patch and its positive key (see :data:`POSITIVES`).

    Draw order (all from the run's generator, the same for every choice of positive, so the three choices see the
    same query patches and degradations): image indices (B), offsets to another image (B), query top/left and key
    top/left positions (4 x B, float64), query and other-image dihedral transforms (2 x B), the query degradations
    (B), a second set of degradations (B, used by "C"), then the noise of the 2B LR patches.

    Returns:
        ``make(sampler, cfg, g) -> Batch`` with ``lr``/``hr`` the query patches (B, 3, p, p) / (B, 3, ps, ps) in
        [0, 1], ``degradations`` the query's, and ``extras``: ``lr_key`` (B, 3, p, p), ``hr_key``,
        ``key_degradations``, ``image`` and ``key_image`` (the training-image indices).
    """
    if positive not in POSITIVES:
        raise ValueError(f"unknown positive {positive!r}; choose from {list(POSITIVES)}")

    def make(sampler: PatchSampler, cfg: TrainConfig, g: torch.Generator) -> Batch:
        images, p, b = sampler.images, sampler.patch_size, sampler.batch_size
        n = len(images)
        idx = torch.randint(n, (b,), generator=g)
        offset = torch.randint(max(1, n - 1), (b,), generator=g)
        other = (idx + 1 + offset) % n if n > 1 else idx
        u = torch.rand(4, b, generator=g, dtype=torch.float64)
        ts = torch.randint(8, (2, b), generator=g) if sampler.augment else torch.zeros(2, b, dtype=torch.int64)
        degs_q = space.sample_batch(b, g)
        degs_other = space.sample_batch(b, g)
        key_idx, key_t = (other, ts[1]) if positive == "D" else (idx, ts[0])
        degs_k = degs_other if positive == "C" else degs_q
        hr_q = crop_patches(images, p, idx, u[0], u[1], ts[0])
        hr_k = crop_patches(images, p, key_idx, u[2], u[3], key_t)
        lr = apply_batch(torch.cat([hr_q, hr_k]), degs_q + degs_k, g) / 255.0
        batch = Batch(lr[:b].contiguous(), hr_q / 255.0, degs_q, g)
        batch.extras.update(lr_key=lr[b:].contiguous(), hr_key=hr_k / 255.0, key_degradations=degs_k, image=idx,
                            key_image=key_idx)
        return batch

    return make


# ---------------------------------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------------------------------


def _top1(logits: torch.Tensor) -> torch.Tensor:
    """Fraction of queries whose positive key beats every queued negative (a diagnostic)."""
    return (logits.detach().argmax(dim=1) == 0).float().mean()


def encoder_loss(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    """DASR's first stage: MoCo's InfoNCE on (query, key) only (``forward_encoder``: momentum update, enqueue)."""
    out = model.forward_encoder(batch.lr, batch.extras["lr_key"].to(batch.lr.device))
    return {"contrastive": model.contrastive_loss(out["logits"], out["labels"]), "_top1": _top1(out["logits"])}


def joint_loss(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    """Joint stage (DASR's second, CDSR's only): L1(SR(query), HR) + 1.0 * InfoNCE (``forward_train``)."""
    out = model.forward_train(batch.lr, batch.extras["lr_key"].to(batch.lr.device))
    return {
        "l1": F.l1_loss(out["sr"], batch.hr),
        "contrastive": CONTRASTIVE_WEIGHT * model.contrastive_loss(out["logits"], out["labels"]),
        "_top1": _top1(out["logits"]),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Models and runs
# ---------------------------------------------------------------------------------------------------------------------


def dasr_factory(scale: int, sizes: BlindSizes):
    """DASR at the profile's size: ``dasr_groups`` x ``dasr_blocks`` DA blocks of ``n_feats`` channels, encoder width
    ``enc_feats`` (fea = 4 x enc_feats), MoCo queue ``queue_size`` (paper: 5 x 5 x 64, 64, 8192)."""
    return lambda: DASR(scale, sizes.n_feats, sizes.dasr_groups, sizes.dasr_blocks, enc_feats=sizes.enc_feats,
                        queue_size=sizes.queue_size)


def cdsr_factory(scale: int, sizes: BlindSizes):
    """CDSR at the profile's size: ``cdsr_blocks`` RRDB-SFT blocks of ``n_feats`` channels with RDB growth
    n_feats / 2, LPE width ``enc_feats`` and embedding 4 x enc_feats, codebook ``codebook_size`` (paper: 10 blocks,
    64 channels, growth 32, LPE 64, embedding 256, L = 1024, K = 8192)."""
    return lambda: CDSR(scale, sizes.n_feats, sizes.cdsr_blocks, growth=max(1, sizes.n_feats // 2),
                        enc_feats=sizes.enc_feats, emb_dim=4 * sizes.enc_feats, codebook_size=sizes.codebook_size,
                        queue_size=sizes.queue_size)


def code_fingerprint() -> str:
    """:func:`srlib.train.source_fingerprint` of everything that shapes a trained DASR / CDSR."""
    import srlib.archs.cdsr
    import srlib.archs.common
    import srlib.archs.dasr
    import srlib.archs.moco
    import srlib.data
    import srlib.degradation
    import srlib.train

    return source_fingerprint(srlib.archs.common, srlib.archs.moco, srlib.archs.dasr, srlib.archs.cdsr, srlib.data,
                              srlib.degradation, srlib.train, inspect.getmodule(code_fingerprint))


def _slug(positive: str) -> str:
    return {"C&D": "cd", "D": "d", "C": "c"}[positive]


def _training_sizes(s: BlindSizes) -> dict:
    """The sizes that shape a trained model (evaluation-only fields, ``eval_*``, do not enter a run's key)."""
    return {k: v for k, v in asdict(s).items() if not k.startswith("eval_")}


def _check_sizes(s: BlindSizes) -> None:
    if s.queue_size % s.batch_size:
        raise ValueError(f"profile.blind: the MoCo queue ({s.queue_size}) must be a multiple of the batch size "
                         f"({s.batch_size})")


def _joint_config(s: BlindSizes, scale: int, space: DegradationSpace, seed: int) -> TrainConfig:
    return TrainConfig(scale=scale, iterations=s.iterations, batch_size=s.batch_size, lr_patch=s.lr_patch, lr=s.lr,
                       lr_halve_every=max(1, s.iterations // 3), degradations=space, seed=seed,
                       checkpoint_every=max(1, s.iterations // 5))


def train_dasr(profile: Profile, scale: int, seed: int, images: list[torch.Tensor], runs: str | os.PathLike,
               train_label: str = "", progress: bool = True, protocol: str = "dasr", positive: str = "C&D",
               noise: float | None = None, max_steps: int | None = None) -> TrainResult:
    """Train (or load, when trained before with the same specification and code) DASR in its two stages.

    Stage 1 (``warmup_iterations`` > 0): the SR network is frozen and the encoder learns from the contrastive loss
    alone at ``warmup_lr`` (halved once at 60% of the stage). Stage 2: everything trains on L1 + contrastive at
    ``lr`` halved every third of ``iterations``, from stage 1's weights, queue and key encoder, with the generator
    seeded ``10_000 + seed`` (other patches than stage 1's). Both stages are cached runs of
    :func:`srlib.train.train` (``runs/dasr-...-warmup-...`` and ``runs/dasr-...-joint-...``); a finished or
    interrupted run resumes bit-identically.

    Args:
        profile: sizes from ``profile.blind``.
        images: training HR images (:func:`srlib.methods.crl_sr.training_images`).
        runs: folder of the runs.
        protocol, noise: training distribution (:func:`training_space`); CRL-SR's tables use ``protocol="dasr",
            noise=25.0``.
        positive: the positive key (:data:`POSITIVES`).
        max_steps: stop after this many steps of the two stages together (stage 1 first), keeping a checkpoint;
            the next call resumes. The returned model is then unfinished.

    Returns:
        :class:`srlib.train.TrainResult` of the last stage run (usable with :func:`srlib.train.model_upscaler`).
    """
    s = profile.blind
    _check_sizes(s)
    space = training_space(protocol, scale, noise)
    factory = dasr_factory(scale, s)
    make_batch = pair_batch(space, positive)
    tag = f"dasr-{protocol}-n{space.noise_range[1]:g}-{_slug(positive)}-x{scale}-s{seed}"
    base = {"method": "dasr", "protocol": protocol, "positive": positive, "sizes": _training_sizes(s),
            "data": train_label, "code": code_fingerprint()}
    joint_cfg = _joint_config(s, scale, space, 10_000 + seed)
    warm_cfg = None
    if s.warmup_iterations > 0:
        warm_cfg = TrainConfig(scale=scale, iterations=s.warmup_iterations, batch_size=s.batch_size,
                               lr_patch=s.lr_patch, lr=s.warmup_lr,
                               lr_halve_every=max(1, math.ceil(0.6 * s.warmup_iterations)), degradations=space,
                               seed=seed, checkpoint_every=max(1, s.warmup_iterations // 5))
    warm_spec = {**base, "stage": "warmup", "train": warm_cfg.to_dict() if warm_cfg else None}
    joint_dir = run_folder(runs, f"{tag}-joint", {**base, "stage": "joint", "train": joint_cfg.to_dict(),
                                                   "after": warm_spec})
    model = build_model(factory, seed)
    warm_dir = run_folder(runs, f"{tag}-warmup", warm_spec) if warm_cfg else None
    joint_dir.mkdir(parents=True, exist_ok=True)
    (joint_dir / STAGES_FILE).write_text(json.dumps([warm_dir.name] if warm_dir else []) + "\n")
    warm_steps = 0
    if warm_cfg is not None and not (joint_dir / "checkpoint.pt").exists():
        model.sr_net.requires_grad_(False)
        warm = train(model, encoder_loss, images, warm_cfg, warm_dir,
                     make_batch=make_batch, max_steps=max_steps, progress=progress,
                     desc=f"DASR {protocol} {positive} x{scale} s{seed}: encoder")
        model.sr_net.requires_grad_(True)
        warm_steps = warm.steps_run
        if max_steps is not None and max_steps <= s.warmup_iterations:
            return warm
        max_steps = None if max_steps is None else max_steps - s.warmup_iterations
    result = train(model, joint_loss, images, joint_cfg, joint_dir, make_batch=make_batch, max_steps=max_steps,
                   progress=progress, desc=f"DASR {protocol} {positive} x{scale} s{seed}: joint")
    result.steps_run += warm_steps
    return result


def train_cdsr(profile: Profile, scale: int, seed: int, images: list[torch.Tensor], runs: str | os.PathLike,
               train_label: str = "", progress: bool = True, protocol: str = "cdsr", positive: str = "C&D",
               noise: float | None = None, max_steps: int | None = None) -> TrainResult:
    """Train (or load) CDSR: joint L1 + contrastive from the first step (CDSR's ``epochs_encoder = -1``), ``lr``
    halved every third of ``iterations``; one cached run ``runs/cdsr-...``. Arguments as :func:`train_dasr`."""
    s = profile.blind
    _check_sizes(s)
    space = training_space(protocol, scale, noise)
    cfg = _joint_config(s, scale, space, seed)
    spec = {"method": "cdsr", "protocol": protocol, "positive": positive, "sizes": _training_sizes(s),
            "data": train_label, "code": code_fingerprint(), "stage": "joint", "train": cfg.to_dict()}
    model = build_model(cdsr_factory(scale, s), seed)
    tag = f"cdsr-{protocol}-n{space.noise_range[1]:g}-{_slug(positive)}-x{scale}-s{seed}"
    return train(model, joint_loss, images, cfg, run_folder(runs, tag, spec),
                 make_batch=pair_batch(space, positive), max_steps=max_steps, progress=progress,
                 desc=f"CDSR {protocol} {positive} x{scale} s{seed}")


# ---------------------------------------------------------------------------------------------------------------------
# Test settings and the embedding accuracy
# ---------------------------------------------------------------------------------------------------------------------


def cdsr_setting(noise: float = 0.0) -> str:
    """The ``setting`` of a CDSR Table 1 / 2 cell: the mean over our 9 seeded test kernels
    (:func:`srlib.degradation.cdsr_test_kernels`, preset ``"cdsr-aniso9"``) at one noise level: ``"cdsr-aniso9"``,
    ``"cdsr-aniso9-n15"``. This is the one place that maps CDSR's test sets to our settings (the reference CSV uses
    these names)."""
    return "cdsr-aniso9" + (f"-n{noise:g}" if noise else "")


def cdsr_test_degradations(scale: int, max_kernels: int | None = None) -> dict[float, list]:
    """CDSR Table 2's test degradations at ``scale``, by noise level: {noise: the kernels (``max_kernels`` evenly
    spaced of the 9 when given)}."""
    degs = preset("cdsr-aniso9", scale)
    return {n: subsample([d for d in degs if d.noise == n], max_kernels) for n in CDSR_TEST_NOISE.get(scale, (0.0,))}


def _kernel_mean(measured: pd.DataFrame, noise: float) -> pd.DataFrame:
    """Per-kernel measurements -> one cell per (method, set, scale, metric, seed): the mean over the kernels."""
    if measured.empty:
        return measured
    keys = ["method", "dataset", "scale", "metric", "seed"]
    out = measured.groupby(keys, sort=False)["value"].mean().reset_index()
    return out.assign(setting=cdsr_setting(noise))[["method", "dataset", "scale", "setting", "metric", "seed",
                                                      "value"]]


def measure_cdsr(methods: dict, image_sets, scale: int, noises=None, max_kernels: int | None = None, cache=None,
                 desc: str = "CDSR test kernels") -> pd.DataFrame:
    """:func:`srlib.evaluate.measure` on CDSR's test kernels at ``scale``, averaged over the kernels per cell.

    Args:
        methods: {name: {seed: upscaler}}.
        noises: noise levels (default: those of :data:`srlib.degradation.CDSR_TEST_NOISE`).

    Returns:
        tidy frame ``method, dataset, scale, setting, metric, seed, value`` with settings :func:`cdsr_setting`.
    """
    by_noise = cdsr_test_degradations(scale, max_kernels)
    parts = [_kernel_mean(measure(methods, image_sets, by_noise[n], cache=cache, desc=f"{desc} x{scale} n{n:g}"), n)
             for n in (by_noise if noises is None else noises)]
    return pd.concat(parts, ignore_index=True)


def heldout_images(profile: Profile, data_root=None) -> dict[str, np.ndarray]:
    """The held-out images of the embedding accuracy and the projections: the images of :func:`table_sets`
    ({"set/stem": HR})."""
    return {f"{s.name}/{r.stem}": r.image for s in table_sets(profile, data_root) for r in s}


def embedding_accuracy(model: nn.Module, hr_images, scale: int, lr_patch: int, patches_per_image: int = 1,
                       seed: int = 0, layer: str = "fea", max_kernels: int | None = None) -> float:
    """CDSR Table 1's "Acc" (our definition, see the module docstring), in percent.

    LR patches of ``hr_images`` under each of the 9 noise-free test kernels at ``scale``
    (:func:`srlib.embeddings.degradation_patches`, ``patches_per_image`` per (image, kernel), seeded), embedded by the
    model's query encoder (``layer`` of ``model.embed``); leave-one-out 1-NN accuracy by cosine with the kernel as
    the label (:func:`srlib.embeddings.nn_accuracy`). With one patch per (image, kernel) a neighbour with the same
    kernel is always a patch of another image, so content cannot raise the score; more patches per (image, kernel)
    let a patch find its sibling from the same image and kernel, which rewards content as well.
    """
    degs = cdsr_test_degradations(scale, max_kernels)[0.0]
    lr, d, names = E.degradation_patches(hr_images, degs, patches_per_image, lr_patch, seed)
    emb = E.patch_embeddings(model, lr, d, names)
    return 100.0 * emb.accuracy(layer)


# ---------------------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------------------


def evaluation_sizes(profile: Profile) -> tuple[tuple[str, ...], int | None]:
    """(test sets, kernels per noise level) of notebook 04's tables.

    ``profile.blind.eval_sets`` / ``profile.blind.eval_kernels`` when the profile sets them (a light evaluation that
    keeps the ``small`` notebook within its budget: CDSR's protocol has 9 LR images per HR image), else the profile's
    ``eval_sets`` / ``max_settings``. Kernels: that many of the 9, evenly spaced (first and last included; None = all
    9); the cell keeps the name :func:`cdsr_setting` (the mean over the kernels measured). Images per set:
    ``profile.max_images``.
    """
    b = profile.blind
    return tuple(b.eval_sets or profile.eval_sets), b.eval_kernels or profile.max_settings


def table_sets(profile: Profile, data_root=None) -> list:
    """The test sets of notebook 04's tables (:func:`evaluation_sizes`), as :func:`srlib.evaluate.evaluation_sets`
    opens them (``profile.max_images`` per set; the embedded test set when none is found)."""
    return evaluation_sets(profile, data_root, evaluation_sizes(profile)[0])


def _by_method(models: dict, scale: int) -> dict:
    return model_upscalers({(name, seed): model for (name, s, seed), model in models.items() if s == scale})


def evaluate_cdsr_table1(profile: Profile, models: dict, data_root=None, cache=None,
                         patches_per_image: int = 1) -> pd.DataFrame:
    """CDSR Table 1 (x4, choice of the positive): embedding accuracy and PSNR on each test set, beside the paper.

    Args:
        models: {(positive, seed): x4 model} with positives of :data:`POSITIVES` (CDSR compared them on DASR trained
            with its protocol: :func:`train_dasr` with ``protocol="cdsr"``).
        patches_per_image: patches per (image, kernel) of the accuracy (always all 9 kernels: chance stays 1/9).

    Returns:
        table with :data:`srlib.tables.TABLE_COLUMNS`: per positive, ``acc`` (dataset :data:`ACC_DATASET`, percent,
        on the images of :func:`table_sets`) and ``psnr`` per test set, setting ``cdsr-aniso9`` (mean over the
        noise-free kernels, :func:`evaluation_sizes` of them). Sets we do not have (Urban100) keep the paper value
        only.
    """
    scale = 4
    methods = _by_method({(pos, scale, seed): m for (pos, seed), m in models.items()}, scale)
    measured = measure_cdsr(methods, table_sets(profile, data_root), scale, noises=(0.0,),
                            max_kernels=evaluation_sizes(profile)[1], cache=cache, desc="CDSR Table 1")
    hr = heldout_images(profile, data_root)
    rows = [{"method": pos, "dataset": ACC_DATASET, "scale": scale, "setting": cdsr_setting(0.0), "metric": "acc",
             "seed": seed, "value": embedding_accuracy(m, hr, scale, profile.blind.lr_patch, patches_per_image)}
            for (pos, seed), m in models.items()]
    measured = pd.concat([measured, pd.DataFrame(rows)], ignore_index=True)
    return paper_table(measured, "CDSR", "Table 1", metrics=("acc", "psnr"))


def evaluate_cdsr_table2(profile: Profile, models: dict, data_root=None, cache=None,
                         return_measurements: bool = False):
    """CDSR Table 2 (anisotropic, CDSR's protocol): PSNR and SSIM of DASR and CDSR beside the paper.

    Args:
        models: {(method, scale, seed): model} with methods ``"DASR"`` and ``"CDSR"`` (both trained with
            ``protocol="cdsr"``). Scales not trained, sets we lack and the IKC / MANet rows keep the paper values only.

    Returns:
        table with :data:`srlib.tables.TABLE_COLUMNS`; settings ``cdsr-aniso9`` (x2, x3, x4) and ``cdsr-aniso9-n15``
        (x4), each the mean over the 9 kernels (:func:`evaluation_sizes` of them), on :func:`table_sets`; with
        ``return_measurements`` also the per-seed measurements (for :func:`cdsr_vs_dasr`).
    """
    sets = table_sets(profile, data_root)
    parts = [measure_cdsr(_by_method(models, scale), sets, scale, max_kernels=evaluation_sizes(profile)[1],
                          cache=cache, desc="CDSR Table 2")
             for scale in sorted({s for _, s, _ in models})]
    measured = pd.concat(parts, ignore_index=True) if parts else None
    table = paper_table(measured, "CDSR", "Table 2", metrics=("psnr", "ssim"))
    return (table, measured) if return_measurements else table


def cdsr_vs_dasr(measured: pd.DataFrame, metric: str = "psnr") -> pd.DataFrame:
    """CDSR's claim over DASR (CDSR Table 2) on our measurements: CDSR - DASR paired by training seed.

    Args:
        measured: the measurements of :func:`evaluate_cdsr_table2` (``return_measurements=True``).

    Returns:
        one row per (dataset, scale, setting): ``diff_mean``, ``diff_std`` (sample std over seeds; NaN for one),
        ``n_seeds``, ``paper_diff`` (where the paper has both cells), ``holds`` (mean difference > 0).
    """
    m = measured[measured.metric == metric]
    by = m.pivot_table(index=["dataset", "scale", "setting", "seed"], columns="method", values="value")
    if not {"CDSR", "DASR"} <= set(by.columns):
        raise ValueError(f"cdsr_vs_dasr needs measurements of both CDSR and DASR, got {sorted(by.columns)}")
    diff = (by["CDSR"] - by["DASR"]).dropna().rename("diff").reset_index()
    ref = load_reference("CDSR", "Table 2")
    ref = ref[ref.metric == metric].pivot_table(index=["dataset", "scale", "setting"], columns="method",
                                                values="value")
    paper = (ref["CDSR"] - ref["DASR"]).rename("paper_diff")
    out = diff.groupby(["dataset", "scale", "setting"], sort=False)["diff"].agg(
        diff_mean="mean", diff_std=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan, n_seeds="size")
    out = out.join(paper, how="left").reset_index()
    out["holds"] = out.diff_mean > 0
    return out


def evaluate_dasr_table2(profile: Profile, models: dict, data_root=None, cache=None) -> pd.DataFrame:
    """DASR Table 2 (noise-free isotropic widths per scale): PSNR of DASR and Bicubic beside the paper.

    Args:
        models: {(scale, seed): DASR trained with ``protocol="dasr"``, noise-free}.

    Returns:
        table with :data:`srlib.tables.TABLE_COLUMNS`; settings ``bicubic``, ``iso0.6``, ... (``profile.max_settings``
        of the 4 widths when set) on :func:`table_sets`; untrained scales and the IKC row keep the paper values only.
    """
    sets = table_sets(profile, data_root)
    parts = []
    for scale in sorted({s for s, _ in models}):
        methods = {"DASR": {seed: model_upscaler(m) for (s, seed), m in models.items() if s == scale},
                   "Bicubic": {profile.seeds[0]: bicubic_upscaler(scale)}}
        parts.append(measure(methods, sets, subsample(preset("dasr-iso", scale), profile.max_settings), cache=cache,
                             desc=f"DASR Table 2 x{scale}"))
    measured = pd.concat(parts, ignore_index=True) if parts else None
    return paper_table(measured, "DASR", "Table 2", metrics=("psnr",))


# ---------------------------------------------------------------------------------------------------------------------
# The runs of notebook 04
# ---------------------------------------------------------------------------------------------------------------------

RUNS = {
    "DASR-iso": "DASR, our protocol (isotropic, MATLAB bicubic, noise-free): DASR Table 2",
    "DASR": "DASR, CDSR's protocol (anisotropic variances, s-fold, noise U[0, 15] with 20% clean), C&D positives: "
            "CDSR Table 2's DASR row and Table 1's C&D row",
    "CDSR": "CDSR, CDSR's protocol: CDSR Table 2's CDSR row",
    "DASR D": "DASR, CDSR's protocol, positives from another image (same degradation): CDSR Table 1 (x4 only)",
    "DASR C": "DASR, CDSR's protocol, positives under another degradation (same image): CDSR Table 1 (x4 only)",
}
"""The runs :func:`train_blind_runs` trains per scale and seed, and what each is for."""


def train_blind_runs(profile: Profile, runs: str | os.PathLike, data_root=None, progress: bool = True) -> dict:
    """Train (or load) every run of notebook 04 (:data:`RUNS`) for ``profile.blind.scales`` x ``profile.seeds``.

    Returns:
        {(run name, scale, seed): TrainResult}; the Table 1 runs ("DASR D", "DASR C") only at x4.
    """
    from srlib.methods.crl_sr import training_images

    out = {}
    for scale in profile.blind.scales:
        label, images = training_images(profile, profile.blind.lr_patch * scale, data_root)
        if progress:
            print(f"x{scale}: training on {label}")
        for seed in profile.seeds:
            args = (profile, scale, seed, images, runs, label, progress)
            out["DASR-iso", scale, seed] = train_dasr(*args, protocol="dasr")
            out["DASR", scale, seed] = train_dasr(*args, protocol="cdsr")
            out["CDSR", scale, seed] = train_cdsr(*args, protocol="cdsr")
            if scale == 4:
                for positive in ("D", "C"):
                    out[f"DASR {positive}", scale, seed] = train_dasr(*args, protocol="cdsr", positive=positive)
    return out


def table_models(trained: dict, table: str) -> dict:
    """The models of one table from :func:`train_blind_runs`'s runs, keyed as the table's function expects:
    ``"cdsr1"`` {(positive, seed)}, ``"cdsr2"`` {("DASR" | "CDSR", scale, seed)}, ``"dasr2"`` {(scale, seed)}."""
    if table == "cdsr1":
        names = {"DASR": "C&D", "DASR D": "D", "DASR C": "C"}
        return {(names[n], seed): r.model for (n, s, seed), r in trained.items() if n in names and s == 4}
    if table == "cdsr2":
        return {(n, s, seed): r.model for (n, s, seed), r in trained.items() if n in ("DASR", "CDSR")}
    if table == "dasr2":
        return {(s, seed): r.model for (n, s, seed), r in trained.items() if n == "DASR-iso"}
    raise ValueError(f"unknown table {table!r}; choose cdsr1, cdsr2 or dasr2")


def stage_losses(result: TrainResult) -> pd.DataFrame:
    """The loss log of a run with its earlier stages first (DASR: the warm-up, steps continued), and a ``stage``
    column (``"encoder"`` / ``"joint"``)."""
    from srlib.train import load_losses

    stages_file = result.run_dir / STAGES_FILE
    names = json.loads(stages_file.read_text()) if stages_file.exists() else []
    logs = [load_losses(result.run_dir.parent / n).assign(stage="encoder") for n in names]
    joint = load_losses(result.run_dir).assign(stage="joint")
    offset = int(logs[-1].step.max()) if logs else 0
    return pd.concat([*logs, joint.assign(step=joint.step + offset)], ignore_index=True)


# ---------------------------------------------------------------------------------------------------------------------
# Analysis helpers for the notebook
# ---------------------------------------------------------------------------------------------------------------------


def embeddings_by_model(models: dict, hr_images, n_patches: int, lr_patch: int, seed: int = 0) -> dict:
    """Degradation embeddings of many LR patches for the projection widget: {label: PatchEmbeddings}.

    Args:
        models: {label: (model, protocol)}; each model embeds patches degraded by its own protocol's training
            distribution (:func:`training_space` with its default noise; one random degradation per patch), so the
            colours span the widths, angles and noise levels it was trained on.
        hr_images: {name: HR image} held-out images (e.g. :func:`heldout_images`).
        n_patches: patches per image.
    """
    out = {}
    for label, (model, protocol) in models.items():
        space = training_space(protocol, int(model.scale))
        lr, degs, names = E.degradation_patches(hr_images, space, n_patches, lr_patch, seed)
        out[label] = E.patch_embeddings(model, lr, degs, names)
    return out


def accuracy_table(models: dict, hr_images, scale: int, lr_patch: int, patches_per_image: int = 1, seed: int = 0,
                   max_kernels: int | None = None) -> pd.DataFrame:
    """Embedding accuracy (percent, :func:`embedding_accuracy`) of every model and embedding layer.

    Args:
        models: {label: model} at ``scale``.

    Returns:
        frame ``model, layer, acc`` (one row per layer of ``model.embed``: DASR ``fea``, ``q``; CDSR also
        ``fea_csc``, ``attn``).
    """
    degs = cdsr_test_degradations(scale, max_kernels)[0.0]
    lr, d, names = E.degradation_patches(hr_images, degs, patches_per_image, lr_patch, seed)
    rows = []
    for label, model in models.items():
        emb = E.patch_embeddings(model, lr, d, names)
        rows += [{"model": label, "layer": layer, "acc": 100.0 * emb.accuracy(layer)} for layer in emb.layers]
    return pd.DataFrame(rows)


def sr_gallery(upscalers: dict, lr_images: dict) -> tuple[list[np.ndarray], list[str]]:
    """SR of every LR image by every upscaler, laid out row by row (LR, then one column per upscaler) for
    :func:`srlib.viz.plot_images` with ``ncols = 1 + len(upscalers)``.

    Args:
        upscalers: {name: upscaler on the 0..255 scale} (:func:`srlib.train.model_upscaler`, bicubic).
        lr_images: {name: (h, w, 3) uint8 LR}.

    Returns:
        (images, titles).
    """
    from srlib.imgutil import img2tensor, tensor2img

    images, titles = [], []
    for name, lr in lr_images.items():
        images.append(lr)
        titles.append(f"{name} (LR)")
        t = img2tensor(np.asarray(lr))[None]
        for label, up in upscalers.items():
            with torch.inference_mode():
                images.append(tensor2img(up(t)[0]))
            titles.append(label)
    return images, titles


def protocol_summary(profile: Profile, scale: int) -> pd.DataFrame:
    """The training distributions of both protocols at ``scale``, and the sizes, as a table for the notebook."""
    rows = []
    for protocol in PROTOCOLS:
        space = training_space(protocol, scale)
        rows.append({"protocol": protocol, **{k: v for k, v in asdict(space).items() if k != "scale"}})
    return pd.DataFrame(rows)


__all__ = [
    "ACC_DATASET",
    "CURVE_LABELS",
    "RUNS",
    "DEFAULT_NOISE",
    "POSITIVES",
    "PROTOCOLS",
    "accuracy_table",
    "cdsr_factory",
    "cdsr_setting",
    "cdsr_test_degradations",
    "cdsr_vs_dasr",
    "code_fingerprint",
    "dasr_factory",
    "embedding_accuracy",
    "embeddings_by_model",
    "encoder_loss",
    "evaluate_cdsr_table1",
    "evaluate_cdsr_table2",
    "evaluate_dasr_table2",
    "evaluation_sizes",
    "joint_loss",
    "measure_cdsr",
    "pair_batch",
    "protocol_summary",
    "heldout_images",
    "sr_gallery",
    "stage_losses",
    "table_models",
    "train_blind_runs",
    "table_sets",
    "train_cdsr",
    "train_dasr",
    "training_space",
]

