"""Transcribed paper numbers: well-formed and consistent across papers (each paper's cells are checked against its
text in tests/test_reference_<paper>.py)."""

from srlib.reference import COLUMNS, load_reference


def test_reference_is_tidy_and_unique():
    ref = load_reference()
    assert list(ref.columns) == COLUMNS
    assert not ref.duplicated(["paper", "table", "method", "dataset", "scale", "setting", "metric"]).any()
    assert set(ref.metric) <= {"psnr", "ssim", "lpips", "niqe", "acc"}


def test_dasr_bicubic_width0_equals_pcl_bicubic_x4():
    """Two papers, one protocol: the x4 bicubic PSNR they print must agree."""
    ref = load_reference()
    ref = ref[ref.method == "Bicubic"]
    dasr = ref[(ref.paper == "DASR") & (ref.scale == 4) & (ref.setting == "bicubic")].set_index("dataset").value
    pcl = ref[(ref.paper == "PCL-SR") & (ref.metric == "psnr")].set_index("dataset").value
    for ds in ("Set5", "Set14", "B100", "Urban100"):
        assert dasr[ds] == pcl[ds]
