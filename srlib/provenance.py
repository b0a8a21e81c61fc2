"""What produced a committed result: the runs, the code and the data behind every table and figure (issue 13).

``results/<profile>/manifest.json`` holds, for each notebook, a ``provenance`` record written by the pipeline
(:func:`notebook_provenance`) and checked by ``srlib status`` (:mod:`srlib.status`):

* ``runs``: every training run the notebook used, as :meth:`srlib.session.Session.train` returned them while it ran:
  ``{slug: {"id": RunId fields, "fingerprint": training-code fingerprint, "folder": run folder name (slug-key),
  "data": training-data label, "precision", "code": the modules of the fingerprint}}``. ``srlib status`` rebuilds each
  run's :class:`srlib.runs.RunSpec` from the recipes (no training) and compares its fingerprint and folder key.
* ``table_code``: the notebook's own code: ``{"sha256", "files": {path: sha256}}`` over the notebook's code cells
  (markdown does not change an output) and the *table code* it imports (the transitive closure of its ``srlib``
  imports, read statically, restricted to :data:`TABLE_CODE` and :data:`TABLE_CODE_FUNCTIONS`).
  Table code is what turns trained models and test images into numbers and pictures: :mod:`srlib.methods`,
  :mod:`srlib.metrics`, :mod:`srlib.reference` (with its CSV files), :mod:`srlib.evaluate`, :mod:`srlib.tables`,
  :mod:`srlib.embeddings`, :mod:`srlib.viz`, :mod:`srlib.widgets`, :mod:`srlib.inference`, :mod:`srlib.claims`,
  :mod:`srlib.evidence` and :mod:`srlib.flops` (the compute axis of the claims), and also
  :mod:`srlib.degradation`, :mod:`srlib.data`, :mod:`srlib.imgutil` and :mod:`srlib.pcl`, which make the test LR
  images, load the test sets and draw PCL's samples (so they are training code and table code at once). Training
  code (recipes, architectures, losses, trainer) enters through the runs' fingerprints, not here; modules that never
  change a number (CLI, pipeline, locks, checkpoint I/O, ...) are :data:`NOT_RESULT_CODE`. Every module of the
  package is in exactly one of these classes or in a recipe's training code (``tests/test_provenance.py``).
* ``profile``: the profile's sizes when it ran (:data:`NON_RESULT_FIELDS` excluded when compared).
* ``data``: :func:`data_summary`: the data root's sets used and a hash of their files, or ``"embedded"``.
* ``inputs``: for notebooks that read earlier notebooks' results (:data:`INPUTS`: ``06_tables`` reads every table),
  the sha256 of each file read; ``outputs``: the sha256 of each file it wrote.
* ``device`` (where missing runs would train) and ``precision``.

Inside a notebook :meth:`Session.train <srlib.session.Session.train>` calls :func:`record_runs`, which appends to the
JSON file named by ``$SRLIB_PROVENANCE``; the pipeline sets it to ``results/<profile>/executed/<notebook>.provenance
.json`` (git-ignored) for each notebook and merges the file into the manifest when the notebook succeeds. Outside the
pipeline (a notebook opened by hand) nothing is recorded.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

PROVENANCE_VERSION = 1
ENV_FILE = "SRLIB_PROVENANCE"
"""Environment variable naming the file :func:`record_runs` appends to (set by the pipeline per notebook)."""

TABLE_CODE = ("srlib.methods", "srlib.metrics", "srlib.reference", "srlib.evaluate", "srlib.tables",
              "srlib.embeddings", "srlib.viz", "srlib.widgets", "srlib.inference", "srlib.degradation", "srlib.data",
              "srlib.imgutil", "srlib.pcl", "srlib.claims", "srlib.evidence", "srlib.flops")
"""Modules (a package: all its modules, and for :mod:`srlib.reference` its CSV files) that turn models and test
images into tables and figures."""

TABLE_CODE_FUNCTIONS = ("srlib.profiles:subsample", "srlib.train:flush_denormals", "srlib.train:load_losses")
"""Single functions of modules outside :data:`TABLE_CODE` that evaluation uses (``module:function``): which test
images are evaluated, the denormal setting of evaluation, the loss logs behind the training-curve figures."""

NOT_RESULT_CODE = ("srlib", "srlib.__main__", "srlib.cli", "srlib.pipeline", "srlib.provenance", "srlib.status",
                   "srlib.session", "srlib.profiles", "srlib.export", "srlib.checkpoint", "srlib.locks",
                   "srlib.fileio", "srlib.distributed", "srlib.train_command")
"""Modules that change no number: the command line, the runner, I/O and locks, the session glue.
A profile's sizes are compared as values (the manifest's ``profile``), not as the source of :mod:`srlib.profiles`."""

NON_RESULT_FIELDS = ("cell_timeout",)
"""Profile fields that change no output (papermill's cell timeout). ``train_only`` is not one: the notebooks ask for
the runs it selects (:meth:`srlib.session.Session.specs`), so a wider selection adds rows (e.g. a claim's arm)."""

INPUTS: dict[str, tuple[str, ...]] = {"06_tables": ("tables/*.csv",),
                                      "07_claims": ("tables/*_claim.csv", "tables/*_claims.csv", "tables/*_gains.csv")}
"""Notebooks that read earlier notebooks' results, by notebook name: globs relative to ``results/<profile>/``.
Such a notebook is stale whenever a file it read changed or the notebook that writes it is stale."""

EXTRA_SETS = ("Set5", "Set14", "RealSRSet_plus5")
"""Data-root sets the notebooks read besides the profile's ``*_sets``: the demo image
(:func:`srlib.viz.example_image`: Set5, Set14) and the real LR examples (:func:`srlib.viz.real_lr_examples`)."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest(files: Mapping[str, str]) -> str:
    """sha256 over sorted ``(name, sha256)`` pairs."""
    return _sha256_bytes(json.dumps(sorted(files.items())).encode())


# --------------------------------------------------------------------------------------------------------------------
# code


def package_dir() -> Path:
    """The folder of the ``srlib`` package in use (a copy's, when ``PYTHONPATH`` points at one)."""
    return Path(importlib.util.find_spec("srlib").origin).parent


def module_file(name: str, pkg: Path | None = None) -> Path | None:
    """The source file of the ``srlib`` module ``name`` (a package: its ``__init__.py``), found without importing
    it; None when there is none."""
    pkg = pkg or package_dir()
    parts = name.split(".")
    if parts[0] != "srlib":
        return None
    base = pkg.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py") if len(parts) > 1 else None, base / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def all_modules(pkg: Path | None = None) -> list[str]:
    """Every module of the ``srlib`` package (dotted names), in sorted order."""
    pkg = pkg or package_dir()
    out = []
    for path in sorted(pkg.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(pkg).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(["srlib", *parts]))
    return out


def _imports_of(tree: ast.AST, current: str, pkg: Path) -> set[str]:
    """``srlib`` modules a parsed source imports (anywhere: module level and inside functions), with the packages
    that importing them runs."""
    found: set[str] = set()
    package = current if module_file(current, pkg) and module_file(current, pkg).name == "__init__.py" \
        else current.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            for a in node.names:  # `from srlib.methods import crl_sr`: a submodule, when such a file exists
                if module_file(f"{base}.{a.name}", pkg) is not None:
                    found.add(f"{base}.{a.name}")
    out = set()
    for name in found:
        if name.split(".")[0] != "srlib" or module_file(name, pkg) is None:
            continue
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))  # parents' __init__ run too
    return out


def import_closure(roots: Iterable[str], pkg: Path | None = None) -> set[str]:
    """The ``srlib`` modules ``roots`` import, transitively (read from the source files, nothing is imported)."""
    pkg = pkg or package_dir()
    todo, seen = list(roots), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, pkg)
        if path is None:
            continue
        todo.extend(_imports_of(ast.parse(path.read_text(), str(path)), name, pkg) - seen)
    return seen


def notebook_code(path: str | os.PathLike) -> list[str]:
    """The sources of a notebook's code cells, in order (a notebook file is JSON; outputs and markdown excluded)."""
    try:
        nb = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable notebook ({e})") from e
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb.get("cells", []) if c.get("cell_type") == "code"]


def notebook_imports(path: str | os.PathLike, pkg: Path | None = None) -> set[str]:
    """The ``srlib`` modules a notebook's code cells import (directly)."""
    pkg = pkg or package_dir()
    out: set[str] = set()
    for i, source in enumerate(notebook_code(path)):
        lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]  # IPython magics
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError as e:
            raise ValueError(f"{path}: code cell {i} is not valid Python ({e})") from e
        out |= _imports_of(tree, "__main__", pkg)
    return out


def _is_table_code(name: str) -> bool:
    return any(name == t or name.startswith(t + ".") for t in TABLE_CODE)


def _function_source(spec: str, pkg: Path) -> str | None:
    module, _, func = spec.partition(":")
    path = module_file(module, pkg)
    if path is None:
        return None
    source = path.read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == func:
            return ast.get_source_segment(source, node)
    return None


def table_code(notebook: str | os.PathLike, root: str | os.PathLike | None = None, pkg: Path | None = None) -> dict:
    """The fingerprint of a notebook's own code: ``{"sha256": ..., "files": {path: sha256}}`` over its code cells
    (``notebooks/<name>.ipynb``) and the table code it imports transitively (``srlib/...py`` paths, the reference
    CSVs as ``srlib/reference/<name>.csv``, single functions as ``srlib/profiles.py:subsample``)."""
    pkg = pkg or package_dir()
    notebook = Path(notebook)
    files = {f"notebooks/{notebook.name}": digest({str(i): _sha256_bytes(s.encode())
                                                   for i, s in enumerate(notebook_code(notebook))})}
    closure = import_closure(notebook_imports(notebook, pkg), pkg)
    for name in sorted(n for n in closure if _is_table_code(n)):
        path = module_file(name, pkg)
        files[f"srlib/{path.relative_to(pkg).as_posix()}"] = file_sha256(path)
        if name == "srlib.reference":
            for csv in sorted(path.parent.glob("*.csv")):
                files[f"srlib/{csv.relative_to(pkg).as_posix()}"] = file_sha256(csv)
    for spec in TABLE_CODE_FUNCTIONS:
        if spec.partition(":")[0] in closure:
            source = _function_source(spec, pkg)
            module, _, func = spec.partition(":")
            rel = module_file(module, pkg).relative_to(pkg).as_posix()
            files[f"srlib/{rel}:{func}"] = _sha256_bytes((source or "<missing>").encode())
    return {"sha256": digest(files), "files": files}


def training_code(modules: Iterable[str], pkg: Path | None = None) -> dict[str, str]:
    """``{srlib/<path>.py: sha256}`` of training-code modules (a run's ``code``), for naming what changed."""
    pkg = pkg or package_dir()
    out = {}
    for name in sorted(set(modules)):
        path = module_file(name, pkg)
        if path is not None:
            out[f"srlib/{path.relative_to(pkg).as_posix()}"] = file_sha256(path)
    return out


# --------------------------------------------------------------------------------------------------------------------
# runs


def run_record(spec, data_label: str, folder: str | None = None) -> dict:
    """What the manifest keeps of one run: its id fields, training-code fingerprint, folder name (``slug-key``), the
    training data's label, precision and the modules of the fingerprint. ``folder`` is the folder the run actually
    used (default: computed from ``spec`` and ``data_label``)."""
    from srlib.runs import TRAINING_CODE

    return {"id": asdict(spec.id), "fingerprint": spec.fingerprint(),
            "folder": folder or spec.folder(".", data_label).name, "data": data_label,
            "precision": spec.config.precision, "code": sorted(set(TRAINING_CODE) | set(spec.code))}


def record_runs(specs: Sequence, results: Mapping, device=None) -> None:
    """Append the runs a notebook got from :meth:`srlib.session.Session.train` to the file named by
    ``$SRLIB_PROVENANCE`` (nothing when it is unset: a notebook run by hand records nothing).

    Args:
        specs: the :class:`srlib.runs.RunSpec` list that was trained/loaded; results: ``{RunId: TrainResult}``.
        device: where missing runs trained.
    """
    target = os.environ.get(ENV_FILE)
    if not target:
        return
    from srlib.fileio import atomic_write

    path = Path(target)
    record = json.loads(path.read_text()) if path.exists() else {"runs": {}, "devices": []}
    for spec in specs:
        if spec.id not in results:
            continue
        run_dir = Path(results[spec.id].run_dir)
        info_path = run_dir / "run.json"
        label = json.loads(info_path.read_text())["data"] if info_path.exists() else ""
        record["runs"][spec.id.slug] = run_record(spec, label, folder=run_dir.name)
    if device is not None and str(device) not in record["devices"]:
        record["devices"].append(str(device))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, binary=False) as f:
        f.write(json.dumps(record, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------------------------------------
# data


def profile_sets(profile) -> list[str]:
    """The data-root set names a profile's notebooks read: every ``*_sets`` field (also nested: ``blind.eval_sets``)
    and :data:`EXTRA_SETS`, embedded sets excluded, sorted."""
    names: set[str] = set(EXTRA_SETS)

    def walk(d: Mapping) -> None:
        for k, v in d.items():
            if isinstance(v, Mapping):
                walk(v)
            elif k.endswith("_sets") and v:
                names.update(v)

    walk(profile.to_dict())
    return sorted(n for n in names if not n.startswith("embedded"))


def data_summary(profile, data_root: str | os.PathLike | None = None) -> dict:
    """The data a profile's notebooks read: ``{"root", "sets": {name: {"files": n, "sha256": ...}}, "missing":
    [...], "sha256"}``. Each set's hash is :func:`digest` over (path relative to the set folder, sha256) of every
    image file under ``<root>/<name>/`` (HR and any shipped LR, e.g. ``LR_bicubic/``, ``LQ/``); ``sha256`` is the
    digest over the sets' hashes, or ``"embedded"`` when no set is present (the embedded images stand in)."""
    from srlib import data as sdata

    root = sdata.data_root(data_root)
    sets, missing = {}, []
    for name in profile_sets(profile):
        folder = root / name if root is not None else None
        if folder is None or not folder.is_dir():
            missing.append(name)
            continue
        files = {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*"))
                 if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
        if not files:
            missing.append(name)
            continue
        sets[name] = {"files": len(files), "sha256": digest(files)}
    overall = digest({n: s["sha256"] for n, s in sets.items()}) if sets else "embedded"
    return {"root": str(root) if root is not None else None, "sets": sets, "missing": missing, "sha256": overall}


# --------------------------------------------------------------------------------------------------------------------
# the manifest entry


def comparable_profile(profile: Mapping) -> dict:
    """A profile dict (``Profile.to_dict()`` or as read back from JSON) without :data:`NON_RESULT_FIELDS`, tuples as
    lists."""
    return {k: v for k, v in json.loads(json.dumps(dict(profile))).items() if k not in NON_RESULT_FIELDS}


def input_files(results: Path, notebook: str) -> dict[str, str]:
    """``{relative path: sha256}`` of the files under ``results`` that ``notebook`` reads (:data:`INPUTS`)."""
    out = {}
    for pattern in INPUTS.get(notebook, ()):
        for p in sorted(results.glob(pattern)):
            if p.is_file():
                out[p.relative_to(results).as_posix()] = file_sha256(p)
    return out


def notebook_provenance(notebook: Path, profile, data: dict, runs_file: Path | None, inputs: dict[str, str],
                        outputs: Path) -> dict:
    """The ``provenance`` record of one successful notebook run (see the module docstring).

    Args:
        notebook: the notebook file; profile: the resolved profile; data: :func:`data_summary`.
        runs_file: the ``$SRLIB_PROVENANCE`` file the notebook's kernel wrote (absent: it trained nothing).
        inputs: :func:`input_files` taken before it ran; outputs: the folder it wrote (the staging folder).
    """
    recorded = json.loads(runs_file.read_text()) if runs_file is not None and runs_file.exists() \
        else {"runs": {}, "devices": []}
    runs = recorded["runs"]
    return {
        "version": PROVENANCE_VERSION,
        "runs": runs,
        "training_code": training_code({m for r in runs.values() for m in r["code"]}),
        "table_code": table_code(notebook),
        "profile": comparable_profile(profile.to_dict()),
        "data": data,
        "inputs": inputs,
        "outputs": {p.relative_to(outputs).as_posix(): file_sha256(p) for p in sorted(outputs.rglob("*"))
                    if p.is_file()},
        "devices": recorded.get("devices", []),
        "precision": sorted({r["precision"] for r in runs.values()}) or [profile.precision],
    }
