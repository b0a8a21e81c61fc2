"""The papers' own numbers, transcribed once as tidy CSV (one file per paper) and never typed anywhere else.

Columns: ``paper, table, method, dataset, scale, setting, metric, value, source_note``. ``setting`` uses the names
of :attr:`srlib.degradation.Degradation.setting` (``bicubic``, ``iso1.2``, ``aniso2-0.2-0-n5``, ...) so that our
measurements join the paper's value for the same cell; ``metric`` is ``psnr``/``ssim``/``lpips``/``niqe``.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

COLUMNS = ["paper", "table", "method", "dataset", "scale", "setting", "metric", "value", "source_note"]


def load_reference(paper: str | None = None, table: str | None = None) -> pd.DataFrame:
    """All transcribed paper values, optionally only those of one ``paper`` (e.g. ``"PCL-SR"``) and ``table``."""
    frames = []
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".csv"):
            with entry.open("r") as f:
                df = pd.read_csv(f, dtype={"scale": int, "value": float})
            if list(df.columns) != COLUMNS:
                raise ValueError(f"reference file {entry.name} has columns {list(df.columns)}, expected {COLUMNS}")
            frames.append(df)
    ref = pd.concat(frames, ignore_index=True)
    if paper is not None:
        ref = ref[ref.paper == paper]
    if table is not None:
        ref = ref[ref.table == table]
    return ref.reset_index(drop=True)
