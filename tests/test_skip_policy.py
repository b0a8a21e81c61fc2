"""The skip policy of tests/conftest.py, run on a throw-away test folder: a skip without an accepted marker fails the
session (even when every test passed), a marked skip does not, a ``needs_X`` marker skips its test by itself where the
machine lacks X, and the skip report lists every skip."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

_TESTS = textwrap.dedent("""
    import pytest

    def test_passes():
        assert 1 + 1 == 2

    def test_bare_skip():
        pytest.skip("srlib.something is broken")

    @pytest.mark.needs_data
    def test_marked_skip():
        raise AssertionError("never runs: the marker skips it where the data are missing")

    @pytest.mark.needs_papers
    def test_papers():
        raise AssertionError("never runs: this folder has no ../shared")

    def test_fixture_marks_itself(shared_data):
        pass

    @pytest.mark.skipif(True, reason="a skipif without an accepted marker")
    def test_skipif_unmarked():
        pass

    @pytest.mark.xfail(reason="expected failure is not a skip", strict=True)
    def test_xfail():
        assert False
""")


@pytest.fixture
def suite(tmp_path):
    for name in ("conftest.py", "shared_paths.py"):
        shutil.copy(HERE / name, tmp_path / name)
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider --strict-markers\n")
    (tmp_path / "test_policy_demo.py").write_text(_TESTS)
    return tmp_path


def _pytest(folder: Path, *args: str) -> tuple[int, str, str]:
    report = folder / "skips.txt"
    env = {**os.environ, "SRLIB_DATA": str(folder / "no-such-data"), "SRLIB_SKIP_REPORT": str(report)}
    res = subprocess.run([sys.executable, "-m", "pytest", str(folder), "-q", "-rs", *args], cwd=folder,
                         capture_output=True, text=True, env=env, timeout=300)
    return res.returncode, res.stdout, report.read_text() if report.exists() else ""


def test_unmarked_skips_fail_the_session(suite):
    rc, out, report = _pytest(suite)
    assert rc == 1, out  # every test passed or skipped, yet the session fails
    assert "1 passed" in out and "5 skipped" in out and "1 xfailed" in out
    assert "3 skipped with an accepted marker, 2 skipped without one -> the session fails" in out
    lines = sorted(report.splitlines())
    assert lines == sorted([
        "accepted [needs_data] test_policy_demo.py::test_marked_skip: this machine lacks the standard SR test sets "
        "(SRLIB_DATA or ../shared/data with <Set>/HR/*.png)",
        "accepted [needs_papers] test_policy_demo.py::test_papers: this machine lacks the paper texts / research "
        "notes in ../shared (papers/, research/)",
        "accepted [needs_data] test_policy_demo.py::test_fixture_marks_itself: this machine lacks the standard SR "
        "test sets (SRLIB_DATA or ../shared/data with <Set>/HR/*.png)",
        "unaccepted [-] test_policy_demo.py::test_bare_skip: srlib.something is broken",
        "unaccepted [-] test_policy_demo.py::test_skipif_unmarked: a skipif without an accepted marker",
    ])


def test_marked_skips_are_accepted(suite):
    rc, out, report = _pytest(suite, "-k", "not unmarked and not bare")
    assert rc == 0, out
    assert "3 skipped with an accepted marker, 0 skipped without one" in out
    assert all(line.startswith("accepted [needs_") for line in report.splitlines()) and report


def test_module_level_importorskip_fails_the_session(suite):
    (suite / "test_policy_demo.py").unlink()
    (suite / "test_module_skip.py").write_text("import pytest\npytest.importorskip('no_such_module_xyz')\n\n"
                                                 "def test_never():\n    pass\n")
    (suite / "test_fine.py").write_text("def test_fine():\n    pass\n")
    rc, out, report = _pytest(suite)
    assert rc == 1, out
    assert report.startswith("unaccepted [-] test_module_skip.py")


def test_a_mistyped_marker_is_an_error(suite):
    (suite / "test_policy_demo.py").write_text("import pytest\n\n@pytest.mark.needs_dta\ndef test_x():\n    pass\n")
    rc, out, _ = _pytest(suite)
    assert rc != 0 and "'needs_dta' not found in `markers`" in out
