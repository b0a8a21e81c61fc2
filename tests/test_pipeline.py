"""The papermill runner: runs notebooks in order, promotes outputs only on success, stops at the first failure."""

import json

import nbformat
import pytest

from srlib import pipeline

PARAMS = "profile = None\nresults_dir = None\ninteractive = None\ndata_root = None"


def _notebook(path, body):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def checkout(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    write = "from pathlib import Path\n(Path(results_dir) / 'tables').mkdir(exist_ok=True)\n"
    _notebook(nbs / "00_first.ipynb", write + "(Path(results_dir) / 'tables' / 'a.csv').write_text(profile)")
    _notebook(nbs / "01_second.ipynb", write + "(Path(results_dir) / 'tables' / 'b.csv').write_text('new')\n"
              "raise RuntimeError('deliberate failure')")
    _notebook(nbs / "02_third.ipynb", write + "(Path(results_dir) / 'tables' / 'c.csv').write_text('never')")
    earlier = tmp_path / "results" / "smoke" / "tables"
    earlier.mkdir(parents=True)
    (earlier / "b.csv").write_text("earlier")
    return tmp_path


def test_pipeline_stops_at_first_failure_and_keeps_earlier_results(checkout, capsys):
    assert pipeline.run("smoke", root=checkout) == 1
    out = checkout / "results" / "smoke"
    assert (out / "tables" / "a.csv").read_text() == "smoke"  # promoted after 00 succeeded
    assert (out / "tables" / "b.csv").read_text() == "earlier"  # 01 failed: its output was not promoted
    assert not (out / "tables" / "c.csv").exists()  # 02 never ran
    assert (out / ".staging" / "tables" / "b.csv").read_text() == "new"  # partial output kept for inspection
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["profile"]["name"] == "smoke" and manifest["machine"]["cpu_count"] >= 1
    assert manifest["notebooks"]["00_first"]["status"] == "ok"
    assert manifest["notebooks"]["01_second"]["status"] == "failed"
    assert "deliberate failure" in manifest["notebooks"]["01_second"]["error"]
    assert "02_third" not in manifest["notebooks"]
    assert (out / "executed" / "01_second.ipynb").exists()
    summary = capsys.readouterr().out
    assert "deliberate failure" in summary and "not run" in summary


def test_unknown_parameter_is_an_error(checkout):
    nb = checkout / "notebooks" / "00_first.ipynb"
    with pytest.raises(SystemExit, match="has no parameters"):
        pipeline._check_parameters(nb, {"profile": "smoke", "n_iters": 3})
