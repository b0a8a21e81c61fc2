"""The papermill runner: runs notebooks in order, promotes outputs only on success, stops at the first failure."""

import json
import os
import subprocess
import sys
import time

import nbformat
import pytest

from srlib import pipeline

PARAMS = "profile = None\nresults_dir = None\ninteractive = None\ndata_root = None"


def _notebook(path, *cells):
    """A notebook: the parameters cell, then ``cells`` (code, or markdown when a string starts with '# md:')."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_markdown_cell(c[5:]) if c.startswith("# md:") else
                           nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


EARLIER_ENTRY = {"status": "ok", "error": None, "outputs": ["tables/b.csv"], "wall_s": 1.0,
                 "finished_at": "2025-01-01T00:00:00+00:00"}


@pytest.fixture
def checkout(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    write = "from pathlib import Path\n(Path(results_dir) / 'tables').mkdir(exist_ok=True)\n"
    _notebook(nbs / "00_first.ipynb", write + "(Path(results_dir) / 'tables' / 'a.csv').write_text(profile)")
    _notebook(nbs / "01_second.ipynb", "# md:Writes b.csv, then fails in its fourth cell (index 3).",
              write + "(Path(results_dir) / 'tables' / 'b.csv').write_text('new')",
              "\nvalue = 41 + 1\nraise RuntimeError(f'deliberate failure {value}')")
    _notebook(nbs / "02_third.ipynb", write + "(Path(results_dir) / 'tables' / 'c.csv').write_text('never')")
    earlier = tmp_path / "results" / "smoke"
    (earlier / "tables").mkdir(parents=True)
    (earlier / "tables" / "b.csv").write_text("earlier")  # promoted by an earlier successful run of 01
    (earlier / "manifest.json").write_text(json.dumps({"notebooks": {"01_second": EARLIER_ENTRY}}))
    return tmp_path


def _check_failed_run(checkout, summary: str):
    out = checkout / "results" / "smoke"
    assert (out / "tables" / "a.csv").read_text() == "smoke"  # promoted after 00 succeeded
    assert (out / "tables" / "b.csv").read_text() == "earlier"  # 01 failed: its output was not promoted
    assert not (out / "tables" / "c.csv").exists()  # 02 never ran
    assert (out / ".staging" / "tables" / "b.csv").read_text() == "new"  # partial output kept for inspection
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["profile"]["name"] == "smoke" and manifest["machine"]["cpu_count"] >= 1
    assert manifest["notebooks"]["00_first"]["status"] == "ok"
    assert manifest["notebooks"]["01_second"] == EARLIER_ENTRY  # still describes the b.csv that is there
    assert "02_third" not in manifest["notebooks"]
    executed = nbformat.read(out / "executed" / "01_second.ipynb", as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in executed.cells for o in c.get("outputs", []))
    # The summary names the failing cell (index in the source notebook, first line) and the error.
    assert "01_second                           failed" in summary and "not run" in summary
    # In [4]: the parameters cell, papermill's injected cell, the writing cell, then this one.
    assert "failed at: cell 3 (0-based) of 01_second.ipynb, In [4] in the executed copy: value = 41 + 1" in summary
    assert "error: RuntimeError: deliberate failure 42" in summary
    failure = (out / "executed" / "01_second.failure.txt").read_text()
    assert "failed at: cell 3 (0-based) of 01_second.ipynb" in failure and "value = 41 + 1" in failure
    assert "deliberate failure 42" in failure.split("finished at:")[1]  # the traceback follows
    assert "\x1b[" not in failure


def test_failing_notebook_stops_the_run_keeps_results_and_names_the_cell(checkout, capsys):
    assert pipeline.run("smoke", root=checkout) == 1
    _check_failed_run(checkout, capsys.readouterr().out)


def test_make_reproduce_exits_non_zero_on_a_failing_notebook(checkout):
    """What `make reproduce` runs, as a process: its exit status is what make (and CI) see."""
    env = {**os.environ, "TQDM_MININTERVAL": "30"}
    env.pop("SRLIB_PROFILE", None)
    res = subprocess.run([sys.executable, "-m", "srlib.pipeline", "--profile", "smoke"], cwd=checkout,
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    _check_failed_run(checkout, res.stdout)


def test_unknown_parameter_is_an_error(checkout):
    nb = checkout / "notebooks" / "00_first.ipynb"
    with pytest.raises(SystemExit, match="has no parameters"):
        pipeline._check_parameters(nb, {"profile": "smoke", "n_iters": 3})


def test_second_pipeline_on_the_same_results_waits(tmp_path):
    """Two `make reproduce` processes on one checkout: the second waits for the first (with a message) instead of
    sharing its staging folder and manifest; the notebook runs never overlap."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "00_slow.ipynb",
              "import time\nfrom pathlib import Path\nroot = Path(results_dir).parents[2]\n"
              "with open(root / 'log.txt', 'a') as f:\n    f.write('start\\n')\n"
              "(root / 'in_notebook').write_text('1')\nt0 = time.time()\n"
              "while not (root / 'release').exists() and time.time() - t0 < 120:\n    time.sleep(0.05)\n"
              "with open(root / 'log.txt', 'a') as f:\n    f.write('end\\n')")
    env = {**os.environ, "TQDM_MININTERVAL": "30"}
    cmd = [sys.executable, "-m", "srlib.pipeline", "--profile", "smoke"]
    with open(tmp_path / "a.err", "w") as a_err, open(tmp_path / "b.err", "w") as b_err:
        a = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=a_err)
        b = None
        try:
            t0 = time.monotonic()
            while not (tmp_path / "in_notebook").exists():
                assert a.poll() is None and time.monotonic() - t0 < 120, (tmp_path / "a.err").read_text()[-2000:]
                time.sleep(0.05)
            b = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=b_err)
            while "waiting for it to finish" not in (tmp_path / "b.err").read_text():
                assert b.poll() is None and time.monotonic() - t0 < 240, (tmp_path / "b.err").read_text()[-2000:]
                time.sleep(0.05)
            (tmp_path / "release").write_text("1")
            assert a.wait(timeout=300) == 0 and b.wait(timeout=300) == 0, (tmp_path / "b.err").read_text()[-2000:]
        finally:
            for p in (a, b):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
    assert (tmp_path / "log.txt").read_text() == "start\nend\nstart\nend\n"
    err_b = (tmp_path / "b.err").read_text()
    assert f"is in use by process {a.pid}" in err_b and "make reproduce (profile smoke)" in err_b
    assert "is free after" in err_b
