"""Results tables: aggregate our measurements over seeds and put each cell beside the paper's value.

Every table CSV under ``results/<profile>/tables/`` has the columns :data:`TABLE_COLUMNS`:
``method, dataset, scale, setting, metric, ours_mean, ours_std, n_seeds, paper, delta, source``.
``ours_std`` is the sample standard deviation over seeds (empty with one seed), ``delta = ours_mean - paper``,
``source`` names the paper table the value comes from (a cell reported by two papers gets one row per paper).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from srlib.fileio import atomic_write

KEYS = ["method", "dataset", "scale", "setting", "metric"]
TABLE_COLUMNS = [*KEYS, "ours_mean", "ours_std", "n_seeds", "paper", "delta", "source"]


def summarize(measurements: pd.DataFrame) -> pd.DataFrame:
    """Aggregate per-seed results into one row per cell.

    Args:
        measurements: tidy frame with columns :data:`KEYS` + ``seed`` + ``value`` (one value per seed and cell,
            e.g. the mean PSNR over a test set for that seed).

    Returns:
        Frame with :data:`KEYS`, ``ours_mean``, ``ours_std`` (ddof 1; NaN for one seed), ``n_seeds``, in the order
        in which cells first appear in ``measurements``.
    """
    missing = {*KEYS, "seed", "value"} - set(measurements.columns)
    if missing:
        raise ValueError(f"measurements lack columns {sorted(missing)}")
    grouped = measurements.groupby(KEYS, sort=False)["value"]
    out = grouped.agg(ours_mean="mean", ours_std=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan)
    out["n_seeds"] = grouped.size()
    return out.reset_index()


def compare_with_paper(summary: pd.DataFrame, reference: pd.DataFrame, keep_paper_only: bool = False) -> pd.DataFrame:
    """Join each of our cells with the paper value for the same (method, dataset, scale, setting, metric).

    Args:
        summary: output of :func:`summarize`.
        reference: rows of :func:`srlib.reference.load_reference` (restrict it to the tables being reproduced).
        keep_paper_only: also keep paper cells we did not measure (ours empty), e.g. methods not yet implemented.

    Returns:
        Frame with :data:`TABLE_COLUMNS`.
    """
    ref = reference.assign(source=reference.paper + " " + reference.table, paper=reference.value)[
        [*KEYS, "paper", "source"]
    ]
    ref = ref.astype({"scale": int})
    how = "outer" if keep_paper_only else "left"
    table = summary.astype({"scale": int}).merge(ref, on=KEYS, how=how, sort=False)
    table["delta"] = table.ours_mean - table.paper
    table["source"] = table.source.fillna("")
    table["n_seeds"] = table.n_seeds.fillna(0).astype(int)
    return table[TABLE_COLUMNS]


def save_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table as CSV (4 decimals, ``\\n`` line ends) atomically; the same frame gives the same bytes."""
    path = Path(path)
    with atomic_write(path, binary=False) as f:
        table.to_csv(f, index=False, float_format="%.4f", lineterminator="\n")
    return path
