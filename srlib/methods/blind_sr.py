"""DASR's and CDSR's tables, embeddings and claims: what is measured on the runs of :mod:`srlib.recipes.blind_sr`
(training protocols, pairs and schedules are documented there).

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

from dataclasses import asdict
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from srlib import embeddings as E
from srlib.claims import claim_row
from srlib.degradation import CDSR_TEST_NOISE, preset
from srlib.evaluate import bicubic_upscaler, evaluation_sets, measure, model_upscalers, paper_table
from srlib.profiles import Profile, subsample
from srlib.recipes.blind_sr import POSITIVES, PROTOCOLS, RUNS, run_name, training_space
from srlib.reference import load_reference
from srlib.train import TrainResult

ACC_DATASET = "embedding"
"""The ``dataset`` of CDSR Table 1's accuracy cells (patches of all test sets pooled, see the module docstring)."""

CURVE_LABELS = {"l1": "L1(SR, HR)", "contrastive": "contrastive (MoCo InfoNCE)",
                "_top1": "positive key ranked first (fraction)"}
"""Readable names of the loss-log columns of DASR / CDSR runs (for :func:`srlib.viz.plot_training_curves`)."""


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


NONBLIND = "DASR trunk, constant embedding"
"""Row name of DASR's non-blind, same-trunk control (:func:`srlib.recipes.blind_sr.nonblind_run`) in the blind tables:
the baseline that DASR's and CDSR's claims are really about (what the degradation encoder adds)."""

SWAP = "DASR trunk, CDSR encoder"
"""Row name of the encoder swap (:func:`srlib.recipes.blind_sr.dasr_run` with ``encoder="cdsr"``) in the blind
tables: CDSR's LPE + CSC feeding DASR's SR network, trained as DASR."""

SWAP_CLAIMS = {"D3": (SWAP, "DASR"), "D4": ("CDSR", SWAP)}
"""The encoder swap's pooled claims (ours; the papers do not train it): D3 CDSR's encoder beats DASR's in DASR's trunk
(``better``, ``worse``), D4 CDSR's trunk beats DASR's, both fed by CDSR's encoder. D3 + D4 = D1 on one set of
images and seeds."""


def _kernel_mean(measured: pd.DataFrame, noise: float) -> pd.DataFrame:
    """Per-kernel measurements -> one cell per (method, set, scale, metric, seed): the mean over the kernels."""
    if measured.empty:
        return measured
    keys = ["method", "dataset", "scale", "metric", "seed", *(["image"] if "image" in measured.columns else [])]
    out = measured.groupby(keys, sort=False)["value"].mean().reset_index()
    return out.assign(setting=cdsr_setting(noise))[["method", "dataset", "scale", "setting", "metric", *keys[4:],
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


def kernel_test_patches(hr_images, scale: int, lr_patch: int, patches_per_image: int = 1, seed: int = 0,
                        max_kernels: int | None = None):
    """LR patches of ``hr_images`` under each of CDSR's noise-free test kernels at ``scale`` (``max_kernels`` of the 9
    when given; :func:`srlib.embeddings.degradation_patches`, ``patches_per_image`` per (image, kernel), seeded):
    ``(lr, degradations, image names)``, what the encoder accuracies embed."""
    degs = cdsr_test_degradations(scale, max_kernels)[0.0]
    return E.degradation_patches(hr_images, degs, patches_per_image, lr_patch, seed)


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
    emb = E.patch_embeddings(model, *kernel_test_patches(hr_images, scale, lr_patch, patches_per_image, seed,
                                                         max_kernels))
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
                         patches_per_image: int = 1, return_measurements: bool = False):
    """CDSR Table 1 (x4, choice of the positive): embedding accuracy and PSNR on each test set, beside the paper.

    Args:
        models: {(positive, seed): x4 model} with positives of :data:`POSITIVES` (CDSR compared them on DASR trained
            with its protocol: :func:`train_dasr` with ``protocol="cdsr"``).
        patches_per_image: patches per (image, kernel) of the accuracy (always all 9 kernels: chance stays 1/9).

    Returns:
        table with :data:`srlib.tables.TABLE_COLUMNS`: per positive, ``acc`` (dataset :data:`ACC_DATASET`, percent,
        on the images of :func:`table_sets`) and ``psnr`` per test set, setting ``cdsr-aniso9`` (mean over the
        noise-free kernels, :func:`evaluation_sizes` of them). Sets we do not have (Urban100) keep the paper value
        only. With ``return_measurements`` also the per-image PSNR measurements, a ``Bicubic`` row included (for
        :func:`positive_claim`).
    """
    scale = 4
    methods = {**_by_method({(pos, scale, seed): m for (pos, seed), m in models.items()}, scale),
               "Bicubic": {profile.seeds[0]: bicubic_upscaler(scale)}}
    per_image = measure_cdsr(methods, table_sets(profile, data_root), scale, noises=(0.0,),
                             max_kernels=evaluation_sizes(profile)[1], cache=cache, desc="CDSR Table 1")
    measured = per_image[per_image.method != "Bicubic"]
    hr = heldout_images(profile, data_root)
    rows = [{"method": pos, "dataset": ACC_DATASET, "scale": scale, "setting": cdsr_setting(0.0), "metric": "acc",
             "seed": seed, "value": embedding_accuracy(m, hr, scale, profile.blind.lr_patch, patches_per_image)}
            for (pos, seed), m in models.items()]
    measured = pd.concat([measured, pd.DataFrame(rows)], ignore_index=True)
    table = paper_table(measured, "CDSR", "Table 1", metrics=("acc", "psnr"))
    return (table, per_image) if return_measurements else table


def positive_claim(per_image: pd.DataFrame) -> pd.DataFrame:
    """CDSR Table 1's PSNR claim (the PSNR half of D2): the C&D positive beats the best other positive (the one with
    the highest mean PSNR of ours), paired by training seed and test image over every set and kernel measured. The
    paper's effect: its C&D - max(C, D) per test set, averaged over the sets we measure. The accuracy half (D the
    most accurate) is a per-model number in ``cdsr_table1_positives.csv`` (``acc``), not a paired claim.

    Args:
        per_image: the measurements of :func:`evaluate_cdsr_table1` (``return_measurements=True``); a claim whose
            positives do not beat its ``Bicubic`` row is inconclusive.

    Returns:
        one row (none when C&D or no other positive was measured): ``claim_id`` "D2", ``claim``, ``scope`` and the
        columns of :func:`srlib.claims.claim_row`.
    """
    m = per_image[per_image.metric == "psnr"]
    others = [p for p in POSITIVES if p != "C&D" and p in set(m.method)]
    if "C&D" not in set(m.method) or not others:
        return pd.DataFrame()
    best = m[m.method.isin(others)].groupby("method")["value"].mean().idxmax()
    ref = load_reference("CDSR", "Table 1")
    ref = ref[ref.metric == "psnr"].pivot_table(index="dataset", columns="method", values="value")
    sets = sorted(set(m.dataset) & set(ref.index))
    paper = float((ref.loc[sets, "C&D"] - ref.loc[sets, others].max(axis=1)).mean()) if sets else None
    scope = f"{'+'.join(sorted(set(m.dataset)))} x4 {cdsr_setting(0.0)}"
    return pd.DataFrame([{"claim_id": "D2", "claim": f"C&D beats the best other positive ({best})", "scope": scope,
                          **claim_row(m, "C&D", best, "psnr", paper)}])


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
    parts = [measure_cdsr({**_by_method(models, scale), "Bicubic": {profile.seeds[0]: bicubic_upscaler(scale)}},
                          sets, scale, max_kernels=evaluation_sizes(profile)[1], cache=cache, desc="CDSR Table 2")
             for scale in sorted({s for _, s, _ in models})]
    measured = pd.concat(parts, ignore_index=True) if parts else None
    table = paper_table(measured, "CDSR", "Table 2", metrics=("psnr", "ssim"))
    return (table, measured) if return_measurements else table


def cdsr_vs_dasr(measured: pd.DataFrame, metric: str = "psnr") -> pd.DataFrame:
    """CDSR's claim over DASR (CDSR Table 2, claim D1) on our measurements: CDSR - DASR paired by training seed and
    test image, per (dataset, scale, setting) and pooled over them (``dataset`` "all"); where DASR's non-blind control
    (:data:`NONBLIND`) was measured, also "D0 DASR" and "D0 CDSR": each blind model against it, pooled; where the
    encoder swap (:data:`SWAP`) was measured, also D3 and D4 (:data:`SWAP_CLAIMS`), pooled (no paper value for
    these: the papers do not train the controls).

    Args:
        measured: the per-image measurements of :func:`evaluate_cdsr_table2` (``return_measurements=True``); where
            they hold a ``Bicubic`` row, a claim whose models do not beat it is inconclusive.

    Returns:
        one row per cell and the pooled row: ``claim_id``, ``better`` and ``worse`` (the two methods compared, the
        effect is ``better - worse``), ``dataset``, ``scale``, ``setting`` and the columns of
        :func:`srlib.claims.claim_row` (``paper_effect``: the paper's CDSR - DASR where it has both cells; the
        pooled row's is their mean).
    """
    m = measured[measured.metric == metric]
    if not {"CDSR", "DASR"} <= set(m.method):
        raise ValueError(f"cdsr_vs_dasr needs measurements of both CDSR and DASR, got {sorted(set(m.method))}")
    ref = load_reference("CDSR", "Table 2")
    ref = ref[ref.metric == metric].pivot_table(index=["dataset", "scale", "setting"], columns="method",
                                                values="value")
    paper = ref["CDSR"] - ref["DASR"]
    rows, cells = [], []
    for (dataset, scale, setting), cell in m.groupby(["dataset", "scale", "setting"], sort=False):
        p = float(paper.get((dataset, scale, setting), np.nan))
        cells.append(p)
        rows.append({"claim_id": "D1", "better": "CDSR", "worse": "DASR", "dataset": dataset, "scale": scale,
                     "setting": setting, **claim_row(cell, "CDSR", "DASR", metric, p, baseline_metric=metric)})
    pooled = np.nanmean(cells) if any(not np.isnan(c) for c in cells) else np.nan
    pooled_rows = [("D1", "CDSR", "DASR", pooled)]
    if NONBLIND in set(m.method):  # the control: does the degradation-aware model beat its non-blind trunk?
        pooled_rows += [(f"D0 {blind}", blind, NONBLIND, None) for blind in ("DASR", "CDSR")]
    if SWAP in set(m.method):  # the encoder swap: CDSR's encoder and CDSR's trunk apart
        pooled_rows += [(claim_id, better, worse, None) for claim_id, (better, worse) in SWAP_CLAIMS.items()]
    for claim_id, better, worse, paper in pooled_rows:
        rows.append({"claim_id": claim_id, "better": better, "worse": worse, "dataset": "all", "scale": "all",
                     "setting": "all", **claim_row(m, better, worse, metric, paper, baseline_metric=metric)})
    return pd.DataFrame(rows)


GATE = 0.5
"""The encoder gate (DESIGN.md, fixed before the `large` runs were read): a blind claim (D0, D1, D3, D4) is read only
where every degradation encoder of the claim reaches a content-controlled kernel accuracy of at least ``chance + GATE *
(1 - chance)`` (half-way from chance to perfect)."""


def encoder_gate(accuracy: float, chance: float) -> bool:
    """Whether a degradation encoder separates kernels "well above chance" (:data:`GATE`)."""
    return accuracy >= chance + GATE * (1.0 - chance)


def encoder_accuracy(model, hr_images, scale: int, lr_patch: int, patches_per_image: int = 2, seed: int = 0):
    """Content-controlled kernel accuracy of a blind model's degradation encoder (``fea``): LR patches of the held-out
    ``hr_images`` under each of CDSR's 9 noise-free test kernels, nearest neighbours from other images only
    (:func:`srlib.embeddings.content_controlled_accuracy`; chance ~ 1/9)."""
    emb = E.patch_embeddings(model, *kernel_test_patches(hr_images, scale, lr_patch, patches_per_image, seed))
    return emb.controlled_accuracy("fea", "degradation")


class EncoderAccuracy(NamedTuple):
    """A blind model's content-controlled kernel accuracy as the gate reads it: the mean over its seeds."""

    accuracy: float  #: mean over seeds
    chance: float  #: mean over seeds
    per_seed: list  #: the seeds' :class:`srlib.embeddings.ControlledAccuracy`, in the order of ``models``


def encoder_accuracies(models: dict, hr_images, lr_patch: int) -> dict[str, EncoderAccuracy]:
    """:func:`encoder_accuracy` of every blind model of ``models`` (``{(name, scale, seed): model}``; the non-blind
    control :data:`NONBLIND` has no encoder) on ``lr_patch``-pixel patches of ``hr_images``, by name (names in sorted
    order), averaged over its seeds: what :func:`gate_claims` gates by."""
    out = {}
    for name in sorted({n for n, _, _ in models} - {NONBLIND}):
        found = [encoder_accuracy(m, hr_images, scale, lr_patch) for (n, scale, _), m in models.items() if n == name]
        out[name] = EncoderAccuracy(float(np.mean([a.accuracy for a in found])),
                                    float(np.mean([a.chance for a in found])), found)
    return out


def gate_claims(claims: pd.DataFrame, models: dict, profile: Profile, data_root=None) -> pd.DataFrame:
    """The encoder gate on the claim rows of :func:`cdsr_vs_dasr`, in every profile.

    Each row gets ``encoder_acc`` and ``encoder_chance``: those of the worst degradation encoder among the two models
    it compares (its ``better`` and ``worse``; the non-blind control :data:`NONBLIND` has none), each the mean over
    its seeds of :func:`encoder_accuracy` on :func:`heldout_images`; a row whose encoder fails :func:`encoder_gate`
    becomes *inconclusive* and says why.

    Args:
        models: the models of the claims, ``{("DASR" | "CDSR" | ..., scale, seed): model}`` (:func:`table_models`
            ``"cdsr2"``).
    """
    acc = encoder_accuracies(models, heldout_images(profile, data_root), profile.blind.lr_patch)
    rows = []
    for r in claims.to_dict("records"):
        encoders = [n for n in (r["better"], r["worse"]) if n != NONBLIND]
        worst = min(encoders, key=lambda n: acc[n].accuracy - acc[n].chance)
        a, c, _ = acc[worst]
        r = {**r, "encoder_acc": a, "encoder_chance": c}
        if not encoder_gate(a, c):
            r["verdict"] = "inconclusive"
            r["why"] = (f"the degradation encoder of '{worst}' does not separate kernels: content-controlled accuracy "
                        f"{a:.2f} (chance {c:.2f}, gate {c + GATE * (1 - c):.2f})")
        rows.append(r)
    return pd.DataFrame(rows, columns=[*claims.columns, "encoder_acc", "encoder_chance"])


def evaluate_dasr_table2(profile: Profile, models: dict, data_root=None, cache=None) -> pd.DataFrame:
    """DASR Table 2 (noise-free isotropic widths per scale): PSNR of DASR, its non-blind control and Bicubic beside the
    paper.

    Args:
        models: {(method, scale, seed): model}: ``"DASR"`` trained with ``protocol="dasr"``, noise-free, and
            optionally :data:`NONBLIND` (its same-trunk control, :func:`srlib.recipes.blind_sr.nonblind_run`).

    Returns:
        table with :data:`srlib.tables.TABLE_COLUMNS`; settings ``bicubic``, ``iso0.6``, ... (``profile.max_settings``
        of the 4 widths when set) on :func:`table_sets`; untrained scales and the IKC row keep the paper values only.
    """
    sets = table_sets(profile, data_root)
    parts = []
    for scale in sorted({s for _, s, _ in models}):
        methods = {**_by_method(models, scale), "Bicubic": {profile.seeds[0]: bicubic_upscaler(scale)}}
        parts.append(measure(methods, sets, subsample(preset("dasr-iso", scale), profile.max_settings), cache=cache,
                             desc=f"DASR Table 2 x{scale}"))
    measured = pd.concat(parts, ignore_index=True) if parts else None
    return paper_table(measured, "DASR", "Table 2", metrics=("psnr",))


# ---------------------------------------------------------------------------------------------------------------------
# The runs of notebook 04
# ---------------------------------------------------------------------------------------------------------------------

def by_name(trained: dict) -> dict:
    """``{RunId: TrainResult}`` of blind runs -> ``{(run name, scale, seed): TrainResult}`` with the names of
    :data:`srlib.recipes.blind_sr.RUNS` ("DASR-iso", "DASR", "CDSR", "DASR D", "DASR C", "DASR-n25", ...)."""
    return {(run_name(k), k.scale, k.seed): r for k, r in trained.items() if k.paper == "blind"}


def table_models(named: dict, table: str) -> dict:
    """The models of one table from the blind runs by name (:func:`by_name`), keyed as the table's function expects:
    ``"cdsr1"`` {(positive, seed)}, ``"cdsr2"`` {("DASR" | "CDSR" | NONBLIND | SWAP, scale, seed)}, ``"dasr2"``
    {("DASR" | NONBLIND, scale, seed)} (:data:`NONBLIND`: the non-blind same-trunk control of DASR, :data:`SWAP`: the
    encoder swap, where trained)."""
    if table == "cdsr1":
        names = {"DASR": "C&D", "DASR D": "D", "DASR C": "C"}
        return {(names[n], seed): r.model for (n, s, seed), r in named.items() if n in names and s == 4}
    names = {"cdsr2": {"DASR": "DASR", "CDSR": "CDSR", "DASR const": NONBLIND, "DASR+CDSR enc": SWAP},
             "dasr2": {"DASR-iso": "DASR", "DASR-iso const": NONBLIND}}.get(table)
    if names is None:
        raise ValueError(f"unknown table {table!r}; choose cdsr1, cdsr2 or dasr2")
    return {(names[n], s, seed): r.model for (n, s, seed), r in named.items() if n in names}


def stage_losses(result: TrainResult) -> pd.DataFrame:
    """The loss log of a run with its earlier stage first (DASR: the warm-up, steps continued), and a ``stage``
    column (``"encoder"`` / ``"joint"``)."""
    from srlib.runs import run_info
    from srlib.train import load_losses

    parent = run_info(result.run_dir).get("parent_folder")
    logs = [load_losses(result.run_dir.parent / parent).assign(stage="encoder")] if parent else []
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
    lr, d, names = kernel_test_patches(hr_images, scale, lr_patch, patches_per_image, seed, max_kernels)
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
    "NONBLIND",
    "SWAP",
    "SWAP_CLAIMS",
    "CURVE_LABELS",
    "RUNS",
    "POSITIVES",
    "PROTOCOLS",
    "accuracy_table",
    "cdsr_setting",
    "cdsr_test_degradations",
    "cdsr_vs_dasr",
    "embedding_accuracy",
    "embeddings_by_model",
    "evaluate_cdsr_table1",
    "evaluate_cdsr_table2",
    "evaluate_dasr_table2",
    "evaluation_sizes",
    "measure_cdsr",
    "positive_claim",
    "protocol_summary",
    "heldout_images",
    "kernel_test_patches",
    "sr_gallery",
    "stage_losses",
    "table_models",
    "by_name",
    "table_sets",
    "training_space",
]

