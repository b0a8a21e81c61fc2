"""DASR's and CDSR's transcribed numbers (srlib/reference/dasr.csv, cdsr.csv): every cell checked against the source.

The numbers come from the DASR and CDSR READMEs as quoted in ``../shared/research/methods.md`` section 5 (markdown
tables). This test parses those tables on its own (it shares no code with the transcription) and compares every
transcribed value, digit for digit, with the printed cell, in both directions (no cell missing, none extra):

* DASR README Table 2: per scale a DASR row carrying the widths, then Bicubic (and at x4 IKC) rows with the same
  widths; PSNR. Settings are rebuilt with :class:`srlib.degradation.Degradation` (width 0 = ``bicubic``).
* CDSR README Table 2: blocks "x2, n0", "x3, n0", "x4, n0", "x4, n15", four methods each, "PSNR/.SSIM" cells.
* CDSR README Table 1: positives C&D / D / C with "Acc" (percent) and PSNR per set at x4, noise-free.

CDSR's test kernels were never released; its cells are named by :func:`srlib.methods.blind_sr.cdsr_setting` (the
one documented mapping): the mean over 9 kernels at noise 0 or 15.
"""

from __future__ import annotations

import csv
import re
from importlib import resources
from pathlib import Path

import pytest

from srlib.degradation import Degradation, IsoGaussian
from srlib.methods.blind_sr import ACC_DATASET, cdsr_setting
from srlib.reference import COLUMNS, load_reference

METHODS_MD = Path(__file__).resolve().parents[2] / "shared" / "research" / "methods.md"
DATASETS = ("Set5", "Set14", "B100", "Urban100")
KEY = ("table", "method", "dataset", "scale", "setting", "metric")


@pytest.fixture(scope="module")
def section5() -> list[str]:
    if not METHODS_MD.exists():
        pytest.skip(f"research notes not found at {METHODS_MD} (they hold the README tables this test checks)")
    text = METHODS_MD.read_text()
    start = text.index("## 5. Reported numbers")
    end = text.index("\n## 6.", start)
    return text[start:end].splitlines()


def table_after(lines: list[str], title: str) -> list[list[str]]:
    """Cells of the markdown table that follows the paragraph starting with ``title`` (header and rule dropped)."""
    i = next(k for k, ln in enumerate(lines) if ln.startswith(title))
    j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith("|"))
    rows = []
    while j < len(lines) and lines[j].startswith("|"):
        rows.append([c.strip() for c in lines[j].strip().strip("|").split("|")])
        j += 1
    assert set(rows[1][0]) <= set("-: "), f"{title}: second line is not a table rule"
    return rows[2:]


def csv_cells(name: str, paper: str, tables: tuple[str, ...]) -> dict[tuple, str]:
    """The raw CSV values (strings as written) of some tables of one file, keyed by :data:`KEY`."""
    with resources.files("srlib.reference").joinpath(name).open("r") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == COLUMNS
    out = {}
    for r in rows:
        if r["paper"] == paper and r["table"] in tables:
            key = (r["table"], r["method"], r["dataset"], int(r["scale"]), r["setting"], r["metric"])
            assert key not in out, f"duplicate row {key}"
            out[key] = r["value"]
    return out


def dasr_table2_cells(lines: list[str]) -> dict[tuple, str]:
    rows = table_after(lines, "**DASR README Table 2**")
    out: dict[tuple, str] = {}
    widths: dict[int, list[float]] = {}
    for row in rows:
        m = re.fullmatch(r"×(\d) (\S+)", row[0])
        assert m, f"unexpected first cell {row[0]!r}"
        scale, method = int(m.group(1)), m.group(2)
        if row[1]:
            widths[scale] = [float(w) for w in row[1].split(" / ")]
        settings = [Degradation(scale, IsoGaussian(w) if w else None).setting for w in widths[scale]]
        assert len(row) == 6
        for ds, block in zip(DATASETS, row[2:], strict=True):
            vals = block.split()
            assert len(vals) == 4 and all(re.fullmatch(r"\d+\.\d\d", v) for v in vals)
            for st, v in zip(settings, vals, strict=True):
                out[("Table 2", method, ds, scale, st, "psnr")] = v
    assert sorted({(k[1], k[3]) for k in out}) == sorted(
        [("DASR", s) for s in (2, 3, 4)] + [("Bicubic", s) for s in (2, 3, 4)] + [("IKC", 4)])
    return out


def cdsr_table2_cells(lines: list[str]) -> dict[tuple, str]:
    rows = table_after(lines, "**CDSR README Table 2**")
    out: dict[tuple, str] = {}
    scale = noise = None
    for row in rows:
        if row[0]:
            m = re.fullmatch(r"×(\d), n(\d+)", row[0])
            assert m, f"unexpected setting cell {row[0]!r}"
            scale, noise = int(m.group(1)), float(m.group(2))
        for ds, cell in zip(DATASETS, row[2:], strict=True):
            m = re.fullmatch(r"(\d+\.\d\d)/(\.\d{4})", cell)
            assert m, f"unexpected cell {cell!r}"
            out[("Table 2", row[1], ds, scale, cdsr_setting(noise), "psnr")] = m.group(1)
            out[("Table 2", row[1], ds, scale, cdsr_setting(noise), "ssim")] = "0" + m.group(2)
    assert len(out) == 4 * 4 * 4 * 2  # 4 settings x 4 methods x 4 sets x 2 metrics
    return out


def cdsr_table1_cells(lines: list[str]) -> dict[tuple, str]:
    rows = table_after(lines, "**CDSR README Table 1**")
    out: dict[tuple, str] = {}
    for row in rows:
        method = row[0].split(" (")[0]
        acc = re.fullmatch(r"(\d+\.\d\d)%", row[1])
        assert acc, f"unexpected accuracy {row[1]!r}"
        out[("Table 1", method, ACC_DATASET, 4, cdsr_setting(0.0), "acc")] = acc.group(1)
        for ds, v in zip(DATASETS, row[2:], strict=True):
            assert re.fullmatch(r"\d+\.\d\d", v)
            out[("Table 1", method, ds, 4, cdsr_setting(0.0), "psnr")] = v
    assert {k[1] for k in out} == {"C&D", "D", "C"}
    return out


def test_dasr_table2_matches_the_readme(section5):
    assert csv_cells("dasr.csv", "DASR", ("Table 2",)) == dasr_table2_cells(section5)


def test_cdsr_tables_match_the_readme(section5):
    expected = {**cdsr_table1_cells(section5), **cdsr_table2_cells(section5)}
    assert csv_cells("cdsr.csv", "CDSR", ("Table 1", "Table 2")) == expected


def test_blind_reference_loads():
    ref = load_reference()
    cdsr, dasr = ref[ref.paper == "CDSR"], ref[ref.paper == "DASR"]
    assert cdsr.table.value_counts().to_dict() == {"Table 2": 128, "Table 1": 15}
    assert len(dasr) == 3 * 4 * 4 * 2 + 4 * 4  # DASR and Bicubic at x2, x3, x4; IKC at x4
    assert cdsr[cdsr.metric == "ssim"].value.between(0.6, 1).all()
    assert cdsr[cdsr.metric == "psnr"].value.between(20, 40).all()
    # the C&D row of CDSR Table 1 is the DASR x4 noise-free row of its Table 2 (the positives were compared on DASR)
    t1 = cdsr[(cdsr.table == "Table 1") & (cdsr.method == "C&D") & (cdsr.metric == "psnr")].set_index("dataset")
    t2 = cdsr[(cdsr.table == "Table 2") & (cdsr.method == "DASR") & (cdsr.scale == 4) & (cdsr.metric == "psnr")
              & (cdsr.setting == cdsr_setting(0.0))].set_index("dataset")
    assert t1.value.to_dict() == t2.value.to_dict()
