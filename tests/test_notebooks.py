"""Notebook hygiene: committed without outputs, kernel python3, a parameters cell of literals that the pipeline
can inject into (papermill cannot parse expressions there)."""

import ast
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PIPELINE_PARAMETERS = {"profile", "results_dir", "interactive", "data_root"}


def test_there_are_notebooks():
    assert NOTEBOOKS, "no numbered notebooks found"


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
