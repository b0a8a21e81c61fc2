"""Transcribed paper numbers: well-formed, and a few cells checked against the paper text in ../shared/papers."""

import re
from pathlib import Path

import pytest

from srlib.reference import COLUMNS, load_reference

PAPERS = Path(__file__).resolve().parents[2] / "shared" / "papers"


def test_reference_is_tidy_and_unique():
    ref = load_reference()
    assert list(ref.columns) == COLUMNS
    assert not ref.duplicated(["paper", "table", "method", "dataset", "scale", "setting", "metric"]).any()
    assert set(ref.metric) <= {"psnr", "ssim", "lpips", "niqe", "acc"}


def test_pcl_table2_bicubic_row_matches_paper_text():
    text = PAPERS / "001_67fbacc1342bbd07.txt"
    if not text.exists():
        pytest.skip(f"paper text not found at {text}")
    line = next(ln for ln in text.read_text().splitlines() if ln.startswith("Bicubic\t"))
    numbers = [float(x) for x in re.findall(r"\d*\.\d+", line)]  # the extraction splits "0.8104" into "0." ".8104"
    numbers = [n for n in numbers if n != 0.0]
    ref = load_reference("PCL-SR", "Table 2").set_index(["dataset", "metric"]).value
    expected = [ref[(d, m)] for d in ("Set5", "Set14", "B100", "Urban100", "Manga109") for m in ("psnr", "ssim")]
    assert numbers == pytest.approx(expected)


def test_dasr_bicubic_width0_equals_pcl_bicubic_x4():
    """Two papers, one protocol: the x4 bicubic PSNR they print must agree."""
    ref = load_reference()
    dasr = ref[(ref.paper == "DASR") & (ref.scale == 4) & (ref.setting == "bicubic")].set_index("dataset").value
    pcl = ref[(ref.paper == "PCL-SR") & (ref.metric == "psnr")].set_index("dataset").value
    for ds in ("Set5", "Set14", "B100", "Urban100"):
        assert dasr[ds] == pcl[ds]
