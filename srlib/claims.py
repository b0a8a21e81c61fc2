"""Paired claims with confidence intervals and a three-way verdict fixed before any run is read.

A paper claim compares two rows of a table ("CDE helps": variant (d) beats variant (a)). We measure both rows on the
same test images for the same training seeds, so the claim's **effect** is a paired difference per (seed, image):
``d[s, i] = better[s, i] - worse[s, i]``, oriented so that a positive effect is the claimed direction (for metrics
where lower is better, LPIPS and NIQE, ``worse - better``). An image is a test image under one test setting: the
unit ``dataset/scale/setting/image``.

**Confidence interval** (:func:`paired_bootstrap`): a two-way bootstrap over training seeds *and* test images. Each
replicate draws S seeds and U images with replacement, independently, and takes the mean of ``d`` over the drawn
grid; the interval is the 2.5 / 97.5 percentiles of 2,000 replicates (numpy PCG64, seed 0: the same measurements
give the same bytes). Resampling seeds carries the training spread, resampling images the test-set spread.

**Verdict** (:func:`verdict`), the rule fixed before running, applied in this order:

1. *inconclusive* when a model of the claim did not learn (it does not beat bicubic on the claim's own test
   images: :func:`beats_baseline`): a comparison between models that learned nothing says nothing about the method;
2. *inconclusive* with fewer than :data:`MIN_SEEDS` training seeds: the spread of training, which dominates at these
   budgets, cannot be estimated, and a CI over test images alone would be far too narrow;
3. *contradicted* when the CI lies below 0, or entirely below half the paper's effect (the paper's claimed size is
   excluded even if the direction holds);
4. *supported* when the CI lies above 0;
5. *inconclusive* otherwise (the CI covers 0).

Every claim row carries the reason in words (``why``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from srlib.tables import LOWER_IS_BETTER

__all__ = ["MIN_SEEDS", "N_BOOT", "VERDICTS", "Effect", "beats_baseline", "claim_row", "paired_bootstrap",
           "paired_differences", "verdict"]

VERDICTS = ("supported", "contradicted", "inconclusive")
MIN_SEEDS = 3
"""Fewest training seeds for a verdict other than inconclusive."""
N_BOOT = 2000
"""Bootstrap replicates of :func:`paired_bootstrap`."""


@dataclass(frozen=True)
class Effect:
    """A paired effect: its mean and bootstrap CI (same unit as the metric), and how many seeds and images it pools."""

    mean: float
    low: float
    high: float
    n_seeds: int
    n_images: int


def paired_bootstrap(diff: pd.DataFrame, *, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0) -> Effect:
    """Mean and two-way (seeds x images) bootstrap CI of a paired difference.

    Args:
        diff: columns ``seed``, ``unit`` (one test image under one setting) and ``diff`` (oriented difference). Units
            not measured for every seed are dropped, so the grid is complete.
        n_boot: bootstrap replicates; level: coverage of the percentile interval; seed: the bootstrap's own seed.

    Returns:
        :class:`Effect` (NaN mean and bounds for an empty grid).
    """
    grid = diff.pivot_table(index="seed", columns="unit", values="diff", aggfunc="mean").dropna(axis=1)
    m = grid.to_numpy(dtype=np.float64)  # (S, U)
    s, u = m.shape if m.size else (0, 0)
    if s == 0 or u == 0:
        return Effect(math.nan, math.nan, math.nan, s, u)
    rng = np.random.Generator(np.random.PCG64(seed))
    seed_counts = rng.multinomial(s, np.full(s, 1.0 / s), size=n_boot)  # (B, S)
    unit_counts = rng.multinomial(u, np.full(u, 1.0 / u), size=n_boot)  # (B, U)
    reps = np.einsum("bs,su,bu->b", seed_counts, m, unit_counts) / (s * u)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [tail, 1.0 - tail])
    return Effect(float(m.mean()), float(low), float(high), s, u)


def verdict(effect: Effect, paper_effect: float | None = None, *, learned: bool | None = True,
            min_seeds: int = MIN_SEEDS) -> tuple[str, str]:
    """The three-way verdict of the module docstring and the reason, in words.

    Args:
        effect: the oriented effect (positive = the claimed direction).
        paper_effect: the paper's effect, oriented the same way (None/NaN: none reported; only the sign rules apply).
        learned: whether every model of the claim beat bicubic (None: not checked).
    """
    if learned is False:
        return "inconclusive", "a model of the claim does not beat bicubic: nothing was learned to compare"
    if effect.n_seeds < min_seeds:
        return "inconclusive", (f"{effect.n_seeds} training seed(s) (< {min_seeds}): the training spread cannot be "
                                f"estimated")
    if math.isnan(effect.high):
        return "inconclusive", "no paired measurements"
    if effect.high < 0:
        return "contradicted", "the CI lies below 0"
    if paper_effect is not None and not math.isnan(paper_effect) and paper_effect > 0 and \
            effect.high < paper_effect / 2:
        return "contradicted", f"the CI lies entirely below half the paper's effect ({paper_effect / 2:.3g})"
    if effect.low > 0:
        return "supported", "the CI lies above 0"
    return "inconclusive", "the CI covers 0"


def _units(frame: pd.DataFrame) -> pd.Series:
    cols = [c for c in ("dataset", "scale", "setting", "image") if c in frame.columns]
    if frame.empty:  # DataFrame.agg over no rows returns a frame, not a Series
        return pd.Series(index=frame.index, dtype=str)
    return frame[cols].astype(str).agg("/".join, axis=1)


def paired_differences(measured: pd.DataFrame, better: str, worse: str, metric: str) -> pd.DataFrame:
    """Oriented per-(seed, image) differences ``better - worse`` (``worse - better`` for lower-is-better metrics).

    Args:
        measured: tidy per-image measurements of :func:`srlib.evaluate.measure` (``method, dataset, scale, setting,
            metric, seed, image, value``; without ``image`` a set's mean is the unit).
        better, worse: method (row) names; metric: e.g. ``"psnr"``.

    Returns:
        columns ``seed, unit, diff`` for the (seed, unit) cells both methods were measured on.
    """
    m = measured[(measured.metric == metric) & measured.method.isin([better, worse])]
    m = m.assign(unit=_units(m))
    by = m.pivot_table(index=["seed", "unit"], columns="method", values="value", aggfunc="mean")
    if better not in by or worse not in by:
        return pd.DataFrame(columns=["seed", "unit", "diff"])
    d = (by[better] - by[worse]).dropna()
    if metric in LOWER_IS_BETTER:
        d = -d
    return d.rename("diff").reset_index()


def beats_baseline(measured: pd.DataFrame, methods, baseline: str = "Bicubic", metric: str = "psnr") -> bool | None:
    """Whether every training seed of every method in ``methods`` beats ``baseline`` on average over the units both
    were measured on (the "did it learn" check of a claim). None when the baseline or a method was not measured.

    The baseline is deterministic (one seed); it is paired by unit with each seed of each method.
    """
    m = measured[measured.metric == metric]
    m = m.assign(unit=_units(m))
    base = m[m.method == baseline].groupby("unit")["value"].mean()
    if base.empty:
        return None
    lower = metric in LOWER_IS_BETTER
    for method in methods:
        rows = m[m.method == method]
        if rows.empty:
            return None
        for _, r in rows.groupby("seed"):
            per_unit = r.groupby("unit")["value"].mean()
            gain = (per_unit - base.reindex(per_unit.index)).dropna().mean()
            if not (-gain if lower else gain) > 0:
                return False
    return True


def claim_row(measured: pd.DataFrame, better: str, worse: str, metric: str, paper_effect: float | None = None,
              *, baseline_metric: str = "psnr", seed: int = 0) -> dict:
    """One claim's effect, CI and verdict: ``effect, ci_low, ci_high, n_seeds, n_images, paper_effect, verdict, why``.

    ``paper_effect`` is the paper's ``better - worse`` in the metric's own sign; it is oriented here like ours. The
    "did it learn" check is :func:`beats_baseline` of both rows on the same ``measured`` frame, on
    ``baseline_metric`` (not checked where the frame holds no ``Bicubic`` row).
    """
    effect = paired_bootstrap(paired_differences(measured, better, worse, metric), seed=seed)
    oriented = None if paper_effect is None or math.isnan(paper_effect) else \
        (-paper_effect if metric in LOWER_IS_BETTER else paper_effect)
    learned = beats_baseline(measured, (better, worse), metric=baseline_metric)
    v, why = verdict(effect, oriented, learned=learned)
    return {"effect": effect.mean, "ci_low": effect.low, "ci_high": effect.high, "n_seeds": effect.n_seeds,
            "n_images": effect.n_images, "paper_effect": math.nan if oriented is None else oriented, "verdict": v,
            "why": why}
