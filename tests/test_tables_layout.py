"""Paper-layout tables: hand-made frames pivoted into rows (methods, measured first) and columns (test sets,
settings), the cell text, the colour direction (higher is better for PSNR, lower for LPIPS), the markdown, and the
files written beside the CSVs (including the committed results/*/tables/*.md, which must match their CSVs)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from srlib import tables
from srlib.tables import TABLE_COLUMNS, paper_layout

ROOT = Path(__file__).resolve().parents[1]
GREEN, RED = "#d9f2d9", "#f7d4d4"


def _row(method, dataset, metric, ours=np.nan, std=np.nan, n=0, paper=np.nan, source="Test Table 1", scale=4,
         setting="bicubic"):
    return {"method": method, "dataset": dataset, "scale": scale, "setting": setting, "metric": metric,
            "ours_mean": ours, "ours_std": std, "n_seeds": n, "paper": paper, "delta": ours - paper,
            "source": source}


def _frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


@pytest.fixture
def hand_frame() -> pd.DataFrame:
    """Three methods on Set5/Set14 x PSNR/LPIPS: "Zeta" (paper only, listed first in the CSV), "Ours" (two seeds),
    "Bicubic" (one seed, PSNR only, no paper LPIPS)."""
    return _frame([
        _row("Zeta", "Set5", "psnr", paper=30.0),
        _row("Zeta", "Set5", "lpips", paper=0.2),
        _row("Zeta", "Set14", "psnr", paper=27.0),
        _row("Ours", "Set5", "psnr", 28.4312, 0.0123, 2, 28.42),
        _row("Ours", "Set5", "lpips", 0.3000, 0.0100, 2, 0.2500),  # higher LPIPS: worse
        _row("Ours", "Set14", "psnr", 25.0, 0.1, 2, 26.0),  # lower PSNR: worse
        _row("Ours", "Set14", "lpips", 0.2000, 0.0100, 2, 0.2500),  # lower LPIPS: better
        _row("Bicubic", "Set5", "psnr", 28.43, np.nan, 1, 28.42),
        _row("Bicubic", "Set14", "psnr", 25.996, np.nan, 1, 26.0),  # rounds to the paper's 26.00
    ])


def _css(html: str) -> dict[str, str]:
    """{cell id: css} of a Styler's HTML (selectors may be grouped: "#T_t_row0_col0, #T_t_row1_col1 {...}")."""
    out: dict[str, str] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", html):
        for sel in selectors.split(","):
            m = re.fullmatch(r"\s*#T_t_(row\d+_col\d+)\s*", sel)
            if m:
                out[m[1]] = out.get(m[1], "") + body
    return out


def test_rows_columns_and_cell_text(hand_frame):
    (t,) = paper_layout(hand_frame)
    assert t.title == "Test Table 1" and t.caption == "×4 · bicubic"
    # Measured rows first (the baseline, then the others), the paper-only row last.
    assert list(t.text.index) == ["Bicubic", "Ours", "Zeta"] and t.text.index.name == "Method"
    assert t.measured.tolist() == [True, True, False]
    # No paper order for this made-up source: the usual order of test sets and metrics.
    assert list(t.text.columns) == [("Set5", "PSNR"), ("Set5", "LPIPS"), ("Set14", "PSNR"), ("Set14", "LPIPS")]
    assert list(t.text.columns.names) == ["Test set", "Metric"]
    assert t.text.loc["Ours", ("Set5", "PSNR")] == "28.43 ± 0.01 (28.42)"
    assert t.text.loc["Ours", ("Set5", "LPIPS")] == "0.3000 ± 0.0100 (0.2500)"
    assert t.text.loc["Bicubic", ("Set5", "PSNR")] == "28.43 (28.42)"  # one seed: no spread
    assert t.text.loc["Zeta", ("Set5", "PSNR")] == "(30.00)"  # not measured: the paper value alone
    assert t.text.loc["Bicubic", ("Set5", "LPIPS")] == ""  # no cell at all
    assert t.delta.loc["Ours", ("Set5", "PSNR")] == "+0.01" and t.delta.loc["Ours", ("Set14", "PSNR")] == "-1.00"
    assert t.delta.loc["Bicubic", ("Set14", "PSNR")] == "±0.00"
    assert t.seeds == (1, 2)


def test_colour_direction_respects_lower_is_better(hand_frame):
    (t,) = paper_layout(hand_frame)
    b = t.better
    assert b.loc["Ours", ("Set5", "PSNR")] == 1  # 28.43 > 28.42
    assert b.loc["Ours", ("Set14", "PSNR")] == -1  # 25.0 < 26.0
    assert b.loc["Ours", ("Set5", "LPIPS")] == -1  # 0.30 > 0.25: worse for LPIPS
    assert b.loc["Ours", ("Set14", "LPIPS")] == 1  # 0.20 < 0.25: better for LPIPS
    assert b.loc["Bicubic", ("Set14", "PSNR")] == 0  # equal at the shown precision
    assert np.isnan(b.loc["Zeta", ("Set5", "PSNR")])  # nothing to compare

    html = t.style().set_uuid("t").to_html()
    css = _css(html)
    cols = list(t.text.columns)
    rows = list(t.text.index)

    def at(r, c):
        return css.get(f"row{rows.index(r)}_col{cols.index(c)}", "")

    assert GREEN in at("Ours", ("Set5", "PSNR")) and RED not in at("Ours", ("Set5", "PSNR"))
    assert RED in at("Ours", ("Set14", "PSNR"))
    assert RED in at("Ours", ("Set5", "LPIPS"))
    assert GREEN in at("Ours", ("Set14", "LPIPS"))
    assert GREEN not in at("Bicubic", ("Set14", "PSNR")) and RED not in at("Bicubic", ("Set14", "PSNR"))
    assert "#888888" in at("Zeta", ("Set5", "PSNR"))  # unmeasured row in grey
    assert "28.43 ± 0.01 (28.42)" in html and "ours − paper = +0.01" in html


def test_markdown_layout(hand_frame):
    (t,) = paper_layout(hand_frame)
    lines = t.to_markdown().splitlines()
    assert lines[0] == "| Method | Set5 · PSNR | Set5 · LPIPS | Set14 · PSNR | Set14 · LPIPS |"
    assert lines[1] == "|---|---|---|---|---|"
    assert lines[2] == "| Bicubic | 28.43 (28.42) +0.01 |  | 26.00 (26.00) ±0.00 |  |"
    assert lines[3] == ("| Ours | 28.43 ± 0.01 (28.42) +0.01 | 0.3000 ± 0.0100 (0.2500) +0.0500 | "
                        "25.00 ± 0.10 (26.00) -1.00 | 0.2000 ± 0.0100 (0.2500) -0.0500 |")
    assert lines[4] == "| Zeta | (30.00) | (0.2000) | (27.00) |  |"
    assert len(lines) == 5
    doc = tables.to_markdown(hand_frame, "hand")
    assert doc.startswith("# hand\n") and "## Test Table 1 (×4 · bicubic)" in doc and t.to_markdown() in doc
    assert "Measured cells: 6 of 9; seeds per cell: 1, 2." in doc


def test_paper_order_and_variants_after_their_paper_method():
    """PCL-SR Table 3 lists Set14 before Set5 and EDSR-S before RCAN (paper 001, Table 3); our variants follow the
    paper method their name extends; paper rows we did not measure come after every measured row."""
    src = "PCL-SR Table 3"
    frame = _frame([
        _row("RCAN +L1 control", "Set5", "niqe", 7.0, np.nan, 1, source=""),
        _row("RCAN", "Set5", "niqe", 7.1, np.nan, 1, 7.275, src),
        _row("HAN", "Set5", "niqe", paper=6.796, source=src),
        _row("EDSR-S +PCL", "Set5", "niqe", 7.2, np.nan, 1, 7.043, src),
        _row("EDSR-S +PCL as released", "Set5", "niqe", 7.3, np.nan, 1, source=""),
        _row("EDSR-S", "Set14", "niqe", 7.4, np.nan, 1, 6.166, src),
        _row("EDSR-S", "Set5", "niqe", 7.5, np.nan, 1, 6.917, src),
    ])
    (t,) = paper_layout(frame)
    assert list(t.text.index) == ["EDSR-S", "EDSR-S +PCL", "EDSR-S +PCL as released", "RCAN", "RCAN +L1 control",
                                  "HAN"]
    assert list(t.text.columns) == ["Set14", "Set5"] and t.text.columns.name == "Test set"
    assert t.caption == "×4 · bicubic · NIQE"
    assert t.better.loc["RCAN", "Set5"] == 1  # NIQE 7.10 < 7.275: lower is better


def test_blocks_kernel_noise_and_two_sources():
    # DASR Table 2 stacks one block per scale; the block we measured comes first.
    dasr = _frame([
        _row("DASR", "Set5", "psnr", paper=37.87, source="DASR Table 2", scale=2, setting="bicubic"),
        _row("DASR", "Set5", "psnr", 27.4, np.nan, 1, 31.99, "DASR Table 2", scale=4, setting="bicubic"),
        _row("DASR", "Set5", "psnr", 27.3, np.nan, 1, 31.92, "DASR Table 2", scale=4, setting="iso1.2"),
    ])
    blocks = paper_layout(dasr)
    assert [b.title for b in blocks] == ["DASR Table 2 · ×4", "DASR Table 2 · ×2"]
    assert list(blocks[0].text.columns) == ["bicubic", "iso1.2"] and list(blocks[1].text.columns) == ["bicubic"]

    # CRL-SR Table 4: rows (method, noise), columns the blur kernels split from the setting names.
    crl = _frame([_row(m, "Set14", "psnr", 23.0, np.nan, 1, 22.0, "CRL-SR Table 4", setting=f"{k}-n{n}")
                  for m in ("DASR", "CRL-SR") for n in (10, 5) for k in ("aniso2-1-10", "aniso2-0.2-0")])
    (t,) = paper_layout(crl)
    assert list(t.text.index) == [("DASR", "n5"), ("DASR", "n10"), ("CRL-SR", "n5"), ("CRL-SR", "n10")]
    assert list(t.text.columns) == ["aniso2-0.2-0", "aniso2-1-10"]
    md = t.to_markdown().splitlines()
    assert md[2].startswith("| DASR | n5 | 23.00 (22.00) +1.00") and md[3].startswith("|  | n10 |")

    # The same cell from two papers with the same value shows it once.
    two = _frame([_row("Bicubic", "Set5", "psnr", 28.43, np.nan, 1, 28.42, s) for s in ("DASR Table 2",
                                                                                       "PCL-SR Table 2")])
    (t,) = paper_layout(two)
    assert t.text.iloc[0, 0] == "28.43 (28.42)" and t.title == "DASR Table 2, PCL-SR Table 2"


def test_save_table_writes_markdown_only_for_paper_tables(hand_frame, tmp_path):
    csv = tables.save_table(hand_frame, tmp_path / "tables" / "hand.csv")
    md = tmp_path / "tables" / "hand.md"
    assert md.read_text() == tables.to_markdown(pd.read_csv(csv), "hand")
    first = md.read_bytes()
    tables.save_table(hand_frame, csv)
    assert md.read_bytes() == first  # deterministic
    claims = pd.DataFrame({"claim": ["d > a"], "effect": [0.1], "verdict": ["inconclusive"]})
    tables.save_table(claims, tmp_path / "tables" / "claims.csv")
    assert not (tmp_path / "tables" / "claims.md").exists()
    md.unlink()
    assert tables.main([str(tmp_path)]) == 0  # python -m srlib.tables RESULTS_DIR
    assert md.read_bytes() == first and not (tmp_path / "tables" / "claims.md").exists()
    with pytest.raises(FileNotFoundError, match="no tables folder"):
        tables.write_markdown(tmp_path / "nope")


@pytest.mark.parametrize("profile", ["small", "medium"])
def test_committed_markdown_matches_its_csv(profile):
    folder = ROOT / "results" / profile / "tables"
    paper_csvs = [p for p in sorted(folder.glob("*.csv")) if tables.is_paper_table(pd.read_csv(p, nrows=0))]
    assert paper_csvs, f"no paper-vs-ours tables in {folder}"
    for csv in paper_csvs:
        md = csv.with_suffix(".md")
        assert md.is_file(), f"{md} missing: run python -m srlib.tables results/{profile}"
        assert md.read_text() == tables.to_markdown(pd.read_csv(csv), csv.stem), f"{md} is stale"
