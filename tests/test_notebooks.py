"""Notebook hygiene: committed without outputs, kernel python3, a parameters cell of literals that the pipeline
can inject into (papermill cannot parse expressions there)."""

import ast
import json
from pathlib import Path

import pytest

from srlib import pipeline

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PIPELINE_PARAMETERS = {"profile", "results_dir", "interactive", "data_root"}
#: The notebooks DESIGN.md lays out, in pipeline order (adding one means adding it here and there).
EXPECTED = ("00_degradation_explorer", "01_cde_training", "02_cfr_training", "03_pcl_training",
            "04_blind_baselines", "05_ablations", "06_tables", "07_claims")


def test_the_designed_notebooks_exist_and_the_pipeline_runs_them_in_order():
    assert [p.stem for p in NOTEBOOKS] == list(EXPECTED)
    assert pipeline.notebook_paths(ROOT / "notebooks") == NOTEBOOKS
    design = (ROOT / "DESIGN.md").read_text()
    assert [name for name in EXPECTED if name not in design] == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"code cells {dirty} have outputs: strip them (nbstripout) before committing"
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one cell must be tagged 'parameters'"
    tree = ast.parse("".join(params[0]["source"]))
    names = set()
    for node in tree.body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, "parameters cell: only `name = literal` lines"
        ast.literal_eval(node.value)  # raises on anything but a literal
        names.add(node.targets[0].id)
    assert PIPELINE_PARAMETERS <= names, f"missing parameters {PIPELINE_PARAMETERS - names}"
