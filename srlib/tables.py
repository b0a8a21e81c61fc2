"""Results tables: aggregate our measurements over seeds, put each cell beside the paper's value, and show the result in
the paper's own layout.

Every paper-vs-ours CSV under ``results/<profile>/tables/`` has the columns :data:`TABLE_COLUMNS`:
``method, dataset, scale, setting, metric, ours_mean, ours_std, n_seeds, paper, delta, source``.
``ours_std`` is the sample standard deviation over seeds (empty with one seed), ``delta = ours_mean - paper``,
``source`` names the paper table the value comes from (a cell reported by two papers gets one row per paper).
These tidy CSVs are the machine-readable output.

For people, :func:`paper_layout` pivots such a frame into the layout of the paper's table (:data:`LAYOUTS`): methods as
rows (measured rows first), test sets / settings as columns, each cell ``"ours ± std (paper)"``;
:meth:`PaperTable.style` colours the difference (green: ours better than the paper, red: worse; lower is better for
LPIPS and NIQE) for notebooks, and :meth:`PaperTable.to_markdown` writes the same layout as GitHub markdown with the
signed difference. :func:`save_table` writes that markdown as ``<name>.md`` beside every paper-vs-ours CSV (other
CSVs, such as claims and gains, get none: GitHub shows a CSV as a table already), and
``python -m srlib.tables results/<profile>`` (:func:`write_markdown`) regenerates the markdown from existing CSVs.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from srlib.fileio import atomic_write

KEYS = ["method", "dataset", "scale", "setting", "metric"]
TABLE_COLUMNS = [*KEYS, "ours_mean", "ours_std", "n_seeds", "paper", "delta", "source"]

#: Metrics where a lower value is better (the colour of a cell flips for them).
LOWER_IS_BETTER = frozenset({"lpips", "niqe"})
#: Decimals shown per metric (the papers' own precision); others get :data:`DEFAULT_DECIMALS`.
DECIMALS = {"psnr": 2, "ssim": 4, "lpips": 4, "niqe": 3, "acc": 2}
DEFAULT_DECIMALS = 4
METRIC_LABELS = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "niqe": "NIQE", "acc": "Acc (%)"}
FIELD_LABELS = {"method": "Method", "dataset": "Test set", "scale": "Scale", "setting": "Setting", "metric": "Metric",
                "kernel": "Kernel", "noise": "Noise"}
#: Baselines shown before every other measured method (papers list them first).
FIRST_METHODS = ("Bicubic",)
#: Order of values a paper's table does not fix (a table without a paper, or values it lacks), before natural order.
CONVENTIONAL_ORDER = {
    "dataset": ("Set5", "Set14", "B100", "BSD100", "Urban100", "Manga109"),
    "metric": ("psnr", "ssim", "lpips", "niqe", "acc"),
}
#: Fields derived from ``setting`` ("aniso2-0.2-0-n5" -> kernel "aniso2-0.2-0", noise "n5"; no noise: "n0").
_NOISE = re.compile(r"^(?P<kernel>.+?)-(?P<noise>n\d[\d.]*(?:-\d[\d.]*)?)$")
FIELDS = (*KEYS, "kernel", "noise")

# Colours of :meth:`PaperTable.style` (CSS).
_BETTER, _WORSE, _UNMEASURED = "background-color: #d9f2d9", "background-color: #f7d4d4", "color: #888888"


@dataclass(frozen=True)
class Layout:
    """How a paper lays a table out: fields (:data:`FIELDS`) on the rows, on the columns, and in stacked blocks.

    A field that is constant in the frame is left out (and named in the caption); a varying field the layout does not
    name is added to the columns, so no two cells ever collide.
    """

    rows: tuple[str, ...] = ("method",)
    columns: tuple[str, ...] = ("dataset", "scale", "setting", "metric")
    blocks: tuple[str, ...] = ()


#: The papers' table layouts, by ``source`` (see the paper texts and research/methods.md section 5).
LAYOUTS: dict[str, Layout] = {
    "CRL-SR Table 1": Layout(rows=("method",), columns=("dataset", "scale", "metric")),
    # Blocks of (kernel width, noise) settings, one row per method; columns Set5 x2 x3 x4, Set14 x2 ...
    "CRL-SR Table 2": Layout(rows=("setting", "method"), columns=("dataset", "scale")),
    # Set5; rows: scale, method; columns: kernel width, then noise level 90 / 95 / 100.
    "CRL-SR Table 3": Layout(rows=("scale", "method"), columns=("kernel", "noise")),
    # Set14 x4; rows: method, then noise 5 / 10 / 15; columns: the nine blur kernels.
    "CRL-SR Table 4": Layout(rows=("method", "noise"), columns=("kernel",)),
    "PCL-SR Table 2": Layout(rows=("method",), columns=("dataset", "metric")),
    "PCL-SR Table 3": Layout(rows=("method",), columns=("dataset", "metric")),
    "PCL-SR Table 4": Layout(rows=("method",), columns=("metric",)),
    # One block per scale (its kernel widths differ); columns: test set, then kernel width.
    "DASR Table 2": Layout(rows=("method",), columns=("dataset", "setting"), blocks=("scale",)),
    "CDSR Table 1": Layout(rows=("method",), columns=("dataset", "metric")),
    # Rows: "x2, n0" blocks of methods; columns: test set, PSNR / SSIM.
    "CDSR Table 2": Layout(rows=("scale", "setting", "method"), columns=("dataset", "metric")),
}
DEFAULT_LAYOUT = Layout()


def per_seed(measurements: pd.DataFrame) -> pd.DataFrame:
    """Per-image measurements -> one value per (cell, seed): the mean over the cell's images (image order kept)."""
    if "image" not in measurements.columns:
        return measurements
    return measurements.groupby([*KEYS, "seed"], sort=False)["value"].mean().reset_index()


def summarize(measurements: pd.DataFrame) -> pd.DataFrame:
    """Aggregate per-seed results into one row per cell.

    Args:
        measurements: tidy frame with columns :data:`KEYS` + ``seed`` + ``value`` (one value per seed and cell,
            e.g. the mean PSNR over a test set for that seed); with an ``image`` column (per-image rows of
            :func:`srlib.evaluate.measure`) each seed's cell value is first the mean over its images.

    Returns:
        Frame with :data:`KEYS`, ``ours_mean``, ``ours_std`` (ddof 1; NaN for one seed), ``n_seeds``, in the order
        in which cells first appear in ``measurements``.
    """
    missing = {*KEYS, "seed", "value"} - set(measurements.columns)
    if missing:
        raise ValueError(f"measurements lack columns {sorted(missing)}")
    measurements = per_seed(measurements)
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


def is_paper_table(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` has exactly the paper-vs-ours columns :data:`TABLE_COLUMNS`."""
    return list(frame.columns) == TABLE_COLUMNS


# ---------------------------------------------------------------------------------------------------------------------
# The paper's layout


def _split_setting(setting: str) -> tuple[str, str]:
    """``"iso4-n100"`` -> ``("iso4", "n100")``; a setting without noise -> ``(setting, "n0")``."""
    m = _NOISE.match(str(setting))
    return (m["kernel"], m["noise"]) if m else (str(setting), "n0")


def _with_derived(frame: pd.DataFrame) -> pd.DataFrame:
    kernel_noise = [_split_setting(s) for s in frame.setting]
    return frame.assign(kernel=[k for k, _ in kernel_noise], noise=[n for _, n in kernel_noise])


def _natural_key(value) -> tuple:
    """Sort key that orders ``iso0.8`` before ``iso1.6`` and ``n5`` before ``n10``."""
    parts = re.split(r"(\d+(?:\.\d+)?)", str(value))
    return tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts) if p)


@functools.lru_cache(maxsize=1)
def _reference() -> pd.DataFrame:
    from srlib.reference import load_reference

    ref = load_reference()
    return _with_derived(ref.assign(source=ref.paper + " " + ref.table))


def _value_order(field: str, values: Sequence, sources: Sequence[str]) -> dict:
    """Rank of each value of ``field``: the paper's order (first appearance in its transcribed table), then values the
    paper does not have in :data:`CONVENTIONAL_ORDER`, then natural order. Methods: :data:`FIRST_METHODS` first; a
    method the paper does not list is placed right after the paper method its name extends ("EDSR-S +L1 control"
    after "EDSR-S")."""
    ref = _reference()
    ref = ref[ref.source.isin(list(sources))]
    present = list(pd.unique(pd.Series(list(values), dtype=object)))
    paper_order = [v for v in pd.unique(ref[field].astype(object)) if v in set(present)]
    usual = CONVENTIONAL_ORDER.get(field, ())
    extra = sorted((v for v in present if v not in set(paper_order)),
                   key=lambda v: (usual.index(v) if v in usual else len(usual), _natural_key(v)))
    if field != "method":
        return {v: i for i, v in enumerate(paper_order + extra)}
    ordered = [m for m in FIRST_METHODS if m in present]
    children: dict[str, list[str]] = {}
    rest = []
    for m in extra:
        if m in ordered:
            continue
        parents = [p for p in paper_order if str(m).startswith(f"{p} ")]
        if parents:
            children.setdefault(max(parents, key=len), []).append(m)
        else:
            rest.append(m)
    for p in paper_order:
        if p not in ordered:
            ordered.append(p)
        ordered += [c for c in children.get(p, []) if c not in ordered]
    ordered += rest
    return {v: i for i, v in enumerate(ordered)}


def _label(field: str, value) -> str:
    if field == "scale":
        return f"×{int(value)}"
    if field == "metric":
        return METRIC_LABELS.get(str(value), str(value))
    return str(value)


def _fmt(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}"


def cell_text(ours: float, std: float, n_seeds: int, paper: Sequence[float] | float, metric: str) -> str:
    """``"28.43 ± 0.01 (28.42)"``: our mean, its spread over seeds (when more than one), the paper's value.

    A cell we did not measure shows the paper value alone, ``"(28.42)"``; two papers reporting different values for
    the same cell show both, ``"(28.42 / 28.40)"``. Decimals follow :data:`DECIMALS`.
    """
    d = DECIMALS.get(metric, DEFAULT_DECIMALS)
    papers = [p for p in np.atleast_1d(np.asarray(paper, dtype=float)) if np.isfinite(p)]
    parts = []
    if np.isfinite(ours):
        parts.append(_fmt(ours, d) + (f" ± {_fmt(std, d)}" if n_seeds > 1 and np.isfinite(std) else ""))
    if papers:
        parts.append("(" + " / ".join(_fmt(p, d) for p in dict.fromkeys(papers)) + ")")
    return " ".join(parts)


def verdict(ours: float, paper: float, metric: str) -> float:
    """+1 when ours is better than the paper, -1 worse, 0 when the difference rounds to zero at the shown precision
    (as :func:`delta_text` shows it), NaN when one is missing. "Better" is higher, except for
    :data:`LOWER_IS_BETTER` metrics.
    """
    if not (np.isfinite(ours) and np.isfinite(paper)):
        return math.nan
    diff = float(f"{ours - paper:.{DECIMALS.get(metric, DEFAULT_DECIMALS)}f}")
    if diff == 0:
        return 0.0
    return float(np.sign(diff) * (-1 if metric in LOWER_IS_BETTER else 1))


def delta_text(ours: float, paper: float, metric: str) -> str:
    """Signed difference ours - paper at the metric's precision (``"+0.12"``, ``"-0.0031"``; ``"±0.00"`` when it
    rounds to zero), or ``""`` when either value is missing."""
    if not (np.isfinite(ours) and np.isfinite(paper)):
        return ""
    d = DECIMALS.get(metric, DEFAULT_DECIMALS)
    text = f"{ours - paper:+.{d}f}"
    return "±" + text[1:] if float(text) == 0 else text


@dataclass(frozen=True, eq=False)
class PaperTable:
    """One paper table (or one block of it) in the paper's layout.

    ``text``, ``delta`` and ``better`` share one shape: rows indexed by the layout's row fields (at every level of the
    row grouping, groups with a measured cell first, then the paper's order), columns by its column fields (a
    single-level or a MultiIndex, labels as shown, e.g. ``"Set5"``, ``"×4"``, ``"PSNR"``).
    """

    title: str  #: the paper table(s), e.g. "PCL-SR Table 2", plus the block (e.g. "×2")
    caption: str  #: the fields constant over the table, e.g. "×4 · bicubic"
    text: pd.DataFrame  #: cell text, "ours ± std (paper)" (see :func:`cell_text`); "" for no cell
    delta: pd.DataFrame  #: "+0.12" (ours - paper) or ""
    better: pd.DataFrame  #: float: +1 ours better, -1 worse, 0 equal at the shown precision, NaN no comparison
    measured: pd.Series  #: bool per row: the row has at least one cell we measured
    seeds: tuple[int, ...]  #: the distinct seed counts of the measured cells

    def style(self):
        """A pandas ``Styler`` for notebooks: green cells where ours beats the paper, red where it is worse (respecting
        lower-is-better metrics), unmeasured rows in grey, the difference as a tooltip. Needs jinja2 (installed with
        the ``notebooks`` extra)."""
        colours = self.better.map(lambda v: _BETTER if v > 0 else _WORSE if v < 0 else "")
        styler = self.text.style.apply(lambda _: colours, axis=None)
        grey = np.where(self.measured.to_numpy(), "", _UNMEASURED)
        styler = styler.apply(lambda frame: np.repeat(grey[:, None], frame.shape[1], axis=1), axis=None)
        tips = self.delta.map(lambda s: f"ours − paper = {s}" if s else "")
        styler = styler.set_tooltips(tips) if tips.ne("").any().any() else styler
        caption = f"{self.title} · {self.caption}" if self.caption else self.title
        styler = styler.set_caption(f"{caption} — {_legend(self)}")
        return styler.set_table_styles([{"selector": "caption", "props": "caption-side: top; text-align: left;"},
                                        {"selector": "td", "props": "white-space: nowrap;"}], overwrite=False)

    def to_markdown(self) -> str:
        """GitHub markdown of the same layout; each cell ``"ours ± std (paper) +delta"``; repeated row labels blank."""
        row_fields = list(self.text.index.names)
        header = [str(f) for f in row_fields]
        header += [" · ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in self.text.columns]
        lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
        previous: tuple = ()
        for i, key in enumerate(self.text.index):
            key = key if isinstance(key, tuple) else (key,)
            shown = []
            for level, v in enumerate(key):  # blank a label repeated from the row above (the papers' grouped rows)
                same_prefix = len(previous) > level and previous[: level + 1] == key[: level + 1]
                shown.append("" if same_prefix and level < len(key) - 1 else str(v))
            previous = key
            cells = [
                " ".join(s for s in (t, dl) if s) for t, dl in zip(self.text.iloc[i], self.delta.iloc[i], strict=True)
            ]
            lines.append("| " + " | ".join(_md_escape(s) for s in [*shown, *cells]) + " |")
        return "\n".join(lines) + "\n"

    def _repr_html_(self) -> str:
        return self.style().to_html()


def _legend(table: PaperTable) -> str:
    """``"ours (mean ± std over 3 seeds) (paper)"`` and the like, from the seed counts of the measured cells."""
    seeds = table.seeds
    if not seeds:
        return "paper values only (nothing measured)"
    if seeds == (1,):
        return "ours (one seed) (paper)"
    if len(seeds) == 1:
        return f"ours (mean ± std over {seeds[0]} seeds) (paper)"
    return f"ours (mean, ± std where more than one seed, over {'/'.join(map(str, seeds))} seeds) (paper)"


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _constant_caption(frame: pd.DataFrame, fields: Sequence[str]) -> str:
    return " · ".join(_label(f, frame[f].iloc[0]) for f in fields)


def _resolve_layout(frame: pd.DataFrame, layout: Layout) -> tuple[list[str], list[str], list[str], list[str]]:
    """(blocks, rows, columns, constant fields) for ``frame``: constant fields dropped, unnamed varying fields added
    to the columns; with a single method and two or more column fields, the first column field joins the rows."""
    varying = [f for f in FIELDS if frame[f].nunique(dropna=False) > 1]
    # kernel/noise only split a varying setting; setting is then redundant when both are named by the layout.
    named = {*layout.rows, *layout.columns, *layout.blocks}
    if {"kernel", "noise"} <= named:
        varying = [f for f in varying if f != "setting"]
    else:
        varying = [f for f in varying if f not in ("kernel", "noise") or f in named]
    blocks = [f for f in layout.blocks if f in varying]
    rows = [f for f in layout.rows if f in varying or f == "method"]
    if "method" not in rows:
        rows.append("method")
    columns = [f for f in layout.columns if f in varying and f not in rows and f not in blocks]
    columns += [f for f in varying if f not in {*rows, *columns, *blocks}]
    if frame.method.nunique() == 1 and len(columns) > 1 and len(rows) == 1:
        rows.append(columns.pop(0))
    constant = [f for f in KEYS if f not in {*blocks, *rows, *columns} and frame[f].nunique(dropna=False) == 1]
    constant = [f for f in constant if f != "method"]
    return blocks, rows, columns, constant


def _main_source(frame: pd.DataFrame) -> str:
    sources = frame.source.fillna("").astype(str)
    sources = sources[sources != ""]
    return sources.value_counts().index[0] if len(sources) else ""


def paper_layout(frame: pd.DataFrame, layout: Layout | None = None, keep_paper_only: bool = True) -> list[PaperTable]:
    """A paper-vs-ours frame (:data:`TABLE_COLUMNS`) in its paper's layout.

    Args:
        frame: a table CSV's frame (ours and paper cells; ``n_seeds = 0`` marks paper cells we did not measure).
        layout: rows / columns / blocks; default: :data:`LAYOUTS` of the frame's most frequent ``source``, else
            :data:`DEFAULT_LAYOUT`.
        keep_paper_only: also show the paper's rows we did not measure (after the measured rows).

    Returns:
        One :class:`PaperTable` per block (one in all when the layout stacks no blocks): blocks with measured cells
        first, then the paper's order.
    """
    if not is_paper_table(frame):
        raise ValueError(f"not a paper-vs-ours table: columns {list(frame.columns)}, expected {TABLE_COLUMNS}")
    frame = frame.assign(source=frame.source.fillna("").astype(str), n_seeds=frame.n_seeds.fillna(0).astype(int))
    if not keep_paper_only:
        frame = frame[frame.n_seeds > 0]
    if frame.empty:
        return []
    frame = _with_derived(frame.reset_index(drop=True))
    main = _main_source(frame)
    layout = layout if layout is not None else LAYOUTS.get(main, DEFAULT_LAYOUT)
    blocks, rows, columns, constant = _resolve_layout(frame, layout)
    sources = [s for s in pd.unique(frame.source) if s]
    orders = {f: _value_order(f, frame[f], sources) for f in {*blocks, *rows, *columns}}
    title = ", ".join(sources) if sources else "ours (no paper values)"
    caption = _constant_caption(frame, constant)

    if blocks:  # blocks holding measured cells first, then the paper's order
        measured_blocks = {tuple(k) for k in frame.loc[frame.n_seeds > 0, blocks].itertuples(index=False)}
        keys = sorted({tuple(k) for k in frame[blocks].itertuples(index=False)},
                      key=lambda k: (k not in measured_blocks, *(orders[f][v] for f, v in zip(blocks, k, strict=True))))
        parts = [(k, frame[(frame[blocks] == pd.Series(k, index=blocks)).all(axis=1)]) for k in keys]
    else:
        parts = [((), frame)]
    out = []
    for key, part in parts:
        block_title = " · ".join([title, *(_label(f, v) for f, v in zip(blocks, key, strict=True))])
        out.append(_pivot(part, rows, columns, orders, block_title, caption))
    return out


def _pivot(frame: pd.DataFrame, rows: list[str], columns: list[str], orders: dict, title: str,
           caption: str) -> PaperTable:
    cells: dict[tuple, dict] = {}
    for rec in frame.to_dict("records"):
        rkey = tuple(rec[f] for f in rows)
        ckey = tuple(rec[f] for f in columns)
        cell = cells.setdefault((rkey, ckey), {"ours": math.nan, "std": math.nan, "n": 0, "paper": [],
                                               "metric": rec["metric"]})
        if rec["n_seeds"] > 0 and not np.isfinite(cell["ours"]):
            cell.update(ours=float(rec["ours_mean"]), std=float(rec["ours_std"]), n=int(rec["n_seeds"]))
        if pd.notna(rec["paper"]) and float(rec["paper"]) not in cell["paper"]:
            cell["paper"].append(float(rec["paper"]))
    measured_rows = {r for (r, _), c in cells.items() if np.isfinite(c["ours"])}
    measured_groups = {r[:i] for r in measured_rows for i in range(1, len(rows) + 1)}

    def row_sort(r):
        # At every level of the row grouping, groups holding a measured row come first, then the paper's order.
        return tuple((r[: i + 1] not in measured_groups, orders[f][r[i]]) for i, f in enumerate(rows))

    row_keys = sorted({r for r, _ in cells}, key=row_sort)
    col_keys = sorted({c for _, c in cells}, key=lambda c: tuple(orders[f][v] for f, v in zip(columns, c, strict=True)))

    def index(keys, fields):
        labels = [tuple(_label(f, v) for f, v in zip(fields, k, strict=True)) for k in keys]
        names = [FIELD_LABELS.get(f, f) for f in fields]
        if len(fields) == 1:
            return pd.Index([k[0] for k in labels], name=names[0], dtype=object)
        return pd.MultiIndex.from_tuples(labels, names=names)

    rindex = index(row_keys, rows)
    cindex = index(col_keys, columns) if columns else pd.Index([_label("metric", frame.metric.iloc[0])], dtype=object)
    col_keys = col_keys or [()]
    text = pd.DataFrame("", index=rindex, columns=cindex, dtype=object)
    delta = text.copy()
    better = pd.DataFrame(np.nan, index=rindex, columns=cindex)
    for i, r in enumerate(row_keys):
        for j, c in enumerate(col_keys):
            cell = cells.get((r, c))
            if cell is None:
                continue
            paper = cell["paper"][0] if cell["paper"] else math.nan
            text.iat[i, j] = cell_text(cell["ours"], cell["std"], cell["n"], cell["paper"], cell["metric"])
            delta.iat[i, j] = delta_text(cell["ours"], paper, cell["metric"])
            better.iat[i, j] = verdict(cell["ours"], paper, cell["metric"])
    measured = pd.Series([r in measured_rows for r in row_keys], index=rindex, dtype=bool)
    seeds = tuple(sorted({c["n"] for c in cells.values() if c["n"] > 0}))
    return PaperTable(title=title, caption=caption, text=text, delta=delta, better=better, measured=measured,
                      seeds=seeds)


# ---------------------------------------------------------------------------------------------------------------------
# Markdown and files


def to_markdown(frame: pd.DataFrame, name: str) -> str:
    """The markdown document of the paper-vs-ours table CSV called ``name``: its paper layout (:func:`paper_layout`,
    one section per block) with a legend. Generated from the CSV; deterministic.

    Raises:
        ValueError: ``frame`` is not a paper-vs-ours table.
    """
    if not is_paper_table(frame):
        raise ValueError(f"{name}: not a paper-vs-ours table (columns {list(frame.columns)}), no paper layout")
    lines = [f"# {name}", ""]
    tables = paper_layout(frame)
    measured = frame[frame.n_seeds.fillna(0) > 0]
    lines += [
        f"Generated from `{name}.csv` (the machine-readable table). Each cell: ours (mean ± std over seeds when more "
        "than one) (paper value) and the difference ours − paper. Higher is better except for LPIPS and NIQE. Rows "
        "we did not measure show the paper value only; measured rows come first.",
        "",
        f"Measured cells: {len(measured)} of {len(frame)}; seeds per cell: "
        + (", ".join(str(n) for n in sorted(measured.n_seeds.astype(int).unique())) or "none") + ".",
        "",
    ]
    for t in tables:
        lines += [f"## {t.title}" + (f" ({t.caption})" if t.caption else ""), "", t.to_markdown()]
    return "\n".join(lines)


def save_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table as CSV (4 decimals, ``\\n`` line ends) atomically; the same frame gives the same bytes.

    A paper-vs-ours table (:data:`TABLE_COLUMNS`) also gets ``<name>.md`` beside it: the paper's layout
    (:func:`to_markdown`, made from the CSV as written, so both hold the same numbers) for readers on GitHub. Other
    CSVs (claims, gains, accuracies) get none: they are short and GitHub already shows a CSV as a table.

    Returns:
        The CSV path.
    """
    path = Path(path)
    with atomic_write(path, binary=False) as f:
        table.to_csv(f, index=False, float_format="%.4f", lineterminator="\n")
    if is_paper_table(table):
        write_table_markdown(path)
    return path


def write_table_markdown(csv_path: str | os.PathLike) -> Path:
    """Write ``<name>.md`` (:func:`to_markdown`) beside the paper-vs-ours table CSV ``csv_path``; returns its path."""
    csv_path = Path(csv_path)
    md = csv_path.with_suffix(".md")
    text = to_markdown(pd.read_csv(csv_path), csv_path.stem)
    with atomic_write(md, binary=False) as f:
        f.write(text)
    return md


def write_markdown(results_dir: str | os.PathLike) -> list[Path]:
    """Regenerate the ``tables/<name>.md`` of every paper-vs-ours CSV of a results folder (``results/<profile>``)
    from the CSVs alone; trains and measures nothing. Returns the files written.

    Raises:
        FileNotFoundError: ``results_dir/tables`` does not exist.
    """
    tables = Path(results_dir) / "tables"
    if not tables.is_dir():
        raise FileNotFoundError(f"no tables folder {tables} (expected results/<profile>/tables/*.csv)")
    paper = [p for p in sorted(tables.glob("*.csv")) if is_paper_table(pd.read_csv(p, nrows=0))]
    return [write_table_markdown(p) for p in paper]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m srlib.tables RESULTS_DIR ...``: write the markdown of every paper-vs-ours table of each folder."""
    parser = argparse.ArgumentParser(prog="python -m srlib.tables", description=write_markdown.__doc__)
    parser.add_argument("results_dirs", nargs="+", help="results/<profile> folders (each with tables/*.csv)")
    args = parser.parse_args(argv)
    for d in args.results_dirs:
        for p in write_markdown(d):
            print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
