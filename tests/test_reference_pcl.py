"""PCL-SR's transcribed numbers (srlib/reference/pcl_sr.csv): every cell checked against the paper text.

The paper text (../shared/papers/001_*.txt) holds Tables 2-4 as tab-separated lines. This test parses them on its own
(it shares no code with the transcription) and compares every transcribed value, as written, to the printed cell.
Quirks of the text, handled here and documented in the CSV's ``source_note``:

* Table 2: the extraction splits each Set5 SSIM across two cells ("32.09 0." + ".8938" is 32.09 / 0.8938). The
  "Gains" rows are derived, so they are not transcribed; they are checked against +PCL minus base instead, and the
  two that disagree are noted on the +PCL cell. VDSR's B100 SSIM is printed 0.0726 (a typo for 0.7260), kept as is.
* Table 3: the dataset columns are printed in the order Set14, Set5, B100, Urban100, Manga109.
* Table 4: the method labels are rebuilt from the check-mark columns; config 3's negative-set cell is blank (the
  prose says LR input) and its LPIPS cell is missing, so it has a PSNR row only.
"""

from __future__ import annotations

import csv
import re
from importlib import resources
from pathlib import Path

import pytest

from srlib.reference import COLUMNS, load_reference

PAPER_TEXT = Path(__file__).resolve().parents[2] / "shared" / "papers" / "001_67fbacc1342bbd07.txt"
KEY = ("table", "method", "dataset", "metric")
DATASETS = ["Set5", "Set14", "B100", "Urban100", "Manga109"]
T3_DATASETS = ["Set14", "Set5", "B100", "Urban100", "Manga109"]
BACKBONES = ("EDSR-S", "EDSR-L", "RCAN", "HAN")
NUMBER = re.compile(r"^\d+\.\d+$")
# (base method, dataset, metric) whose printed "Gains" cell is not +PCL minus base
KNOWN_BAD_GAINS = {("EDSR-L", "Set5", "psnr"), ("RCAN", "Manga109", "ssim")}


def csv_rows() -> list[dict]:
    """The raw CSV rows as strings (values exactly as written, e.g. "0.8104")."""
    with resources.files("srlib.reference").joinpath("pcl_sr.csv").open("r") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------------------------------------
# Independent parser of the paper's tab-separated table lines
# ---------------------------------------------------------------------------------------------------------------------


def block(lines: list[str], header: str) -> tuple[list[str], list[list[str]]]:
    """The header line starting with ``header`` (as cells) and the tab-split lines after it, up to a blank line."""
    i = next(k for k, ln in enumerate(lines) if ln.startswith(header))
    j = next(k for k in range(i + 1, len(lines)) if not lines[k].strip())
    return lines[i].split("\t"), [ln.split("\t") for ln in lines[i + 1 : j]]


def method_rows(rows: list[list[str]], datasets: list[str], metrics: tuple[str, str]) -> dict[tuple, list[str]]:
    """{(method, dataset, metric): printed value} of a table whose rows are ``name, (metric1, metric2) x datasets``;
    a "+PCL" row is named after the row above it, and a "Gains" row becomes method "<base> Gains"."""
    out: dict[tuple, str] = {}
    base = None
    for name, *vals in rows:
        if name not in ("+PCL", "Gains"):
            base = name
        method = {"+PCL": f"{base} +PCL", "Gains": f"{base} Gains"}.get(name, name)
        assert len(vals) == 2 * len(datasets) and all(NUMBER.match(v) for v in vals), (name, vals)
        for k, v in enumerate(vals):
            out[(method, datasets[k // 2], metrics[k % 2])] = v
    return out


def config_label(n: str, l1: str, pcl: str, vcl: str, haar: str, neg: str) -> str:
    """Table 4's method label from its check-mark cells (any non-empty cell is a tick)."""
    assert l1, "every config uses L1"
    if pcl:
        return f"{n}: L1 + PCL ({'Haar' if haar else 'RGB'}, {neg or 'LR'})"  # blank N (config 3): LR, see prose
    if vcl:
        return f"{n}: L1 + VCL ({neg})"
    return f"{n}: L1"


def paper_cells(text: str) -> tuple[dict[tuple, str], dict[tuple, str]]:
    """({(table, method, dataset, metric): printed value} of Tables 2-4, {(base, dataset, metric): printed gain})."""
    lines = text.splitlines()
    out: dict[tuple, str] = {}

    # Table 2: the Set5 SSIM is split as "<psnr> 0." + ".<digits>"; join it back before splitting on tabs.
    header, _ = block(lines, "Method\tSet5")
    assert [c for c in header[1:] if c] == DATASETS
    _, rows = block(lines, "Michiga\tPSNR")
    joined = "\n".join("\t".join(r) for r in rows).replace(" 0.\t.", "\t0.")
    t2 = method_rows([ln.split("\t") for ln in joined.splitlines()], DATASETS, ("psnr", "ssim"))
    gains = {(m.removesuffix(" Gains"), ds, mt): v for (m, ds, mt), v in t2.items() if m.endswith(" Gains")}
    out.update({("Table 2", *k): v for k, v in t2.items() if not k[0].endswith(" Gains")})

    # Table 3: two header lines (datasets, then NIQE/LPIPS), then +PCL pairs.
    header, _ = block(lines, "Method\tSet14")
    assert [c for c in header[1:] if c] == T3_DATASETS
    sub, rows = block(lines, "\tNIQE\tLPIPS")
    assert sub[1:] == ["NIQE", "LPIPS"] * 5
    out.update({("Table 3", *k): v for k, v in method_rows(rows, T3_DATASETS, ("niqe", "lpips")).items()})

    # Table 4: config, five check-mark columns (L1, L_PCL, L_VCL, H_w, N), PSNR, LPIPS.
    header, rows = block(lines, "Config\t")
    ticks = [r"\mathcal{L}_1", r"\mathcal{L}_{PCL}", r"\mathcal{L}_{VCL}", r"\mathcal{H}_w", r"\mathcal{N}"]
    assert header[1:] == [*ticks, "↑PSNR", "↓LPIPS"]
    assert [r[0] for r in rows] == list("123456")
    for n, l1, pcl, vcl, haar, neg, psnr, lpips in rows:
        assert bool(neg) == (n not in ("1", "3")), "only configs 1 (no contrastive loss) and 3 lack a negative set"
        label = config_label(n, l1, pcl, vcl, haar, neg)
        out[("Table 4", label, "Set5", "psnr")] = psnr
        if lpips:
            out[("Table 4", label, "Set5", "lpips")] = lpips
    return out, gains


@pytest.fixture(scope="module")
def paper_text() -> str:
    if not PAPER_TEXT.exists():
        pytest.skip(f"PCL-SR paper text not found at {PAPER_TEXT}")
    return PAPER_TEXT.read_text()


# ---------------------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------------------


def test_loads_with_row_counts_per_table():
    ref = load_reference("PCL-SR")
    assert list(ref.columns) == COLUMNS
    assert ref.table.value_counts().to_dict() == {"Table 2": 190, "Table 3": 80, "Table 4": 11}
    assert (ref.scale == 4).all() and (ref.setting == "bicubic").all()
    assert not ref.duplicated(list(KEY)).any()
    metrics = ref.groupby("table").metric.agg(lambda s: set(s)).to_dict()
    assert metrics == {"Table 2": {"psnr", "ssim"}, "Table 3": {"niqe", "lpips"}, "Table 4": {"psnr", "lpips"}}
    t2 = load_reference("PCL-SR", "Table 2")
    assert {f"{b} +PCL" for b in BACKBONES} < set(t2.method) and not t2.method.str.contains("Gains").any()
    assert set(load_reference("PCL-SR", "Table 3").method) == {m for b in BACKBONES for m in (b, f"{b} +PCL")}
    assert all(r["source_note"].startswith(f"papers/001 {r['table']}") for r in csv_rows())


def test_every_value_matches_the_paper_text(paper_text):
    printed, _ = paper_cells(paper_text)
    rows = {tuple(r[k] for k in KEY): r["value"] for r in csv_rows()}
    assert len(printed) == 281
    assert sorted(rows) == sorted(printed)  # the same cells, none missing, none extra
    mismatches = [(k, v, printed[k]) for k, v in rows.items() if v != printed[k]]
    assert not mismatches, f"{len(mismatches)} cells differ from the paper text: {mismatches[:10]}"
    ref = load_reference("PCL-SR").set_index(list(KEY)).value  # ... and load_reference reads the same floats
    for k, v in printed.items():
        assert ref[k] == pytest.approx(float(v), abs=1e-9)


def test_printed_gains_are_pcl_minus_base_except_the_noted_ones(paper_text):
    printed, gains = paper_cells(paper_text)
    assert len(gains) == 4 * 10
    bad = set()
    for (base, ds, metric), gain in gains.items():
        diff = float(printed[("Table 2", f"{base} +PCL", ds, metric)]) - float(printed[("Table 2", base, ds, metric)])
        if abs(diff - float(gain)) > (0.01 if metric == "psnr" else 0.0001) + 1e-9:  # one unit of the last digit
            bad.add((base, ds, metric))
    assert bad == KNOWN_BAD_GAINS
    noted = [r for r in csv_rows() if "printed gain" in r["source_note"]]
    assert {(r["method"].removesuffix(" +PCL"), r["dataset"], r["metric"]) for r in noted} == KNOWN_BAD_GAINS


def test_vdsr_typo_is_kept_and_noted():
    (row,) = [r for r in csv_rows() if (r["method"], r["dataset"], r["metric"]) == ("VDSR", "B100", "ssim")]
    assert row["value"] == "0.0726" and "typo for 0.7260" in row["source_note"]
    assert sum("typo" in r["source_note"] for r in csv_rows()) == 1


def test_ablation_ends_are_rcan_and_rcan_pcl(paper_text):
    """Config 1 (L1 only) is the RCAN of Tables 2-3 and config 6 its +PCL version, to the printed rounding."""
    ref = load_reference("PCL-SR").set_index(list(KEY)).value
    for config, method in (("1: L1", "RCAN"), ("6: L1 + PCL (Haar, Gen)", "RCAN +PCL")):
        assert round(ref[("Table 4", config, "Set5", "psnr")], 2) == ref[("Table 2", method, "Set5", "psnr")]
        assert ref[("Table 4", config, "Set5", "lpips")] == ref[("Table 3", method, "Set5", "lpips")]
    notes = {(r["method"], r["metric"]): r["source_note"] for r in csv_rows() if r["table"] == "Table 4"}
    assert "RCAN" in notes[("1: L1", "psnr")] and "RCAN" in notes[("1: L1", "lpips")]
    assert ("3: L1 + PCL (Haar, LR)", "lpips") not in notes
    assert "LPIPS cell is missing" in notes[("3: L1 + PCL (Haar, LR)", "psnr")]
    prose = " ".join(paper_text.split())
    assert "results of using LR input are better than randomly selected samples" in prose  # config 3 vs 5
