"""Run every notebook in order with papermill and collect ``results/<profile>/``.

    python -m srlib.pipeline --profile small          # what `make reproduce` runs
    python -m srlib.pipeline --profile smoke --only 00

Each notebook runs headless (kernel ``python3``, the notebooks folder as working directory, cell output logged,
per-cell timeout from the profile) with the parameters ``profile``, ``results_dir`` and ``interactive=False``.
It writes its tables and figures into a staging folder; only when the notebook succeeds are they moved into
``results/<profile>/`` (file by file, atomically), so a failing run never destroys or half-overwrites earlier
results. The run stops at the first failure, prints a summary naming the failing cell (its index, first source line
and error) and exits non-zero; the failed notebook's partial outputs stay in ``results/<profile>/.staging/``, its
executed copy and ``<name>.failure.txt`` (the summary and the traceback) in ``results/<profile>/executed/`` (both
git-ignored).
``results/<profile>/manifest.json`` records the git commit, the profile, the machine and each notebook's wall time,
and per notebook its provenance (:mod:`srlib.provenance`): the runs it used (recorded by ``Session.train`` into
``executed/<name>.provenance.json``, named to the kernel by ``$SRLIB_PROVENANCE``, merged here and left out of the
promoted results), its table code's fingerprint, the data, the files it read and wrote; ``made_by`` maps every table
and figure to its notebook. ``srlib status`` compares this with the checkout.

By default every notebook runs; ``--stale`` (what ``make reproduce`` and ``srlib reproduce`` pass) runs only the
notebooks ``srlib status`` finds stale or never run (:func:`srlib.status.notebooks_to_run`), ``--force`` all of them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from srlib import profiles
from srlib import provenance as prov
from srlib.data import file_sha256
from srlib.fileio import atomic_write
from srlib.locks import path_lock

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


def notebook_paths(notebook_dir: Path, only: Sequence[str] | None = None) -> list[Path]:
    """Numbered notebooks in order; ``only`` keeps those whose name starts with one of the given prefixes."""
    paths = sorted(notebook_dir.glob(NOTEBOOK_GLOB))
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
        if not paths:
            raise SystemExit(f"no notebook in {notebook_dir} matches {only}")
    if not paths:
        raise SystemExit(f"no notebooks matching {NOTEBOOK_GLOB} in {notebook_dir}")
    return paths


def _git_state(root: Path) -> dict:
    def git(*args):
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return out.stdout.strip() if out.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def machine_info() -> dict:
    """What ran the pipeline: enough to tell whether two timings or two CSVs are comparable."""
    import torch

    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
    }


def _promote(staging: Path, final: Path) -> list[str]:
    """Move every file under ``staging`` to the same place under ``final`` (atomic per file)."""
    moved = []
    for src in sorted(p for p in staging.rglob("*") if p.is_file()):
        rel = src.relative_to(staging)
        dst = final / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        moved.append(rel.as_posix())
    return moved


def _write_json(path: Path, obj: dict) -> None:
    with atomic_write(path, binary=False) as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _check_parameters(path: Path, parameters: dict) -> None:
    """papermill only warns about parameters a notebook does not declare; treat that as an error."""
    import papermill as pm

    declared = set(pm.inspect_notebook(str(path)))
    unknown = sorted(set(parameters) - declared)
    if unknown:
        raise SystemExit(f"{path.name} has no parameters {unknown} (declared: {sorted(declared)})")


def _first_line(source: str) -> str:
    lines = [ln.strip() for ln in source.splitlines() if ln.strip()]
    return lines[0] if lines else ""


def _error_text(exc: BaseException) -> str:
    """``Name: message`` of a notebook failure (papermill's error carries the cell's exception name and value)."""
    if hasattr(exc, "ename"):
        text = f"{exc.ename}: {exc.evalue}" if exc.evalue else exc.ename
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:497] + "..."


def _cell_failed(cell) -> bool:
    if cell.get("cell_type") != "code":
        return False
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error" and not (out.get("ename") == "SystemExit"
                                                      and out.get("evalue") in ("", "0")):
            return True
    return bool(cell.get("metadata", {}).get("papermill", {}).get("exception"))


def failing_cell(executed: Path, exc: BaseException) -> dict:
    """Where a notebook failed: ``index`` (0-based, of the cell in the source notebook), ``execution_count``,
    ``first_line`` of its source and ``error`` (``Name: message``).

    Read from the executed copy (the cell with an error output, or that papermill marked as failing: a timeout or a
    dead kernel), skipping the cells papermill adds (injected parameters, the error banner); from the exception
    alone where the copy is missing. Unknown fields are None.
    """
    info = {"index": None, "execution_count": getattr(exc, "exec_count", None),
            "first_line": _first_line(getattr(exc, "source", "") or "") or None, "error": _error_text(exc)}
    try:
        import nbformat

        nb = nbformat.read(str(executed), as_version=4)
    except Exception:  # no executed copy (the kernel never started): the exception is all there is
        return info
    index = 0
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
            continue
        if _cell_failed(cell):
            info.update(index=index, execution_count=cell.get("execution_count"),
                        first_line=_first_line(cell.source) or None)
            break
        index += 1
    return info


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def _write_failure(executed_dir: Path, path: Path, entry: dict, exc: BaseException) -> Path:
    """``executed/<notebook>.failure.txt``: the summary and the cell's traceback (git-ignored, beside the copy)."""
    cell = entry["failed_cell"]
    tb = getattr(exc, "traceback", None)
    tb_text = _strip_ansi("\n".join(tb)) if isinstance(tb, list) and tb else _strip_ansi(str(exc))
    out = executed_dir / f"{path.stem}.failure.txt"
    with atomic_write(out, binary=False) as f:
        f.write(f"notebook: {path}\nexecuted copy: {executed_dir / path.name}\n"
                f"failed at: {_cell_words(cell, path)}\nerror: {cell['error']}\n"
                f"finished at: {entry['finished_at']}\n\n{tb_text}\n")
    return out


def _cell_words(cell: dict, path: Path) -> str:
    where = f"cell {cell['index']} (0-based) of {path.name}" if cell["index"] is not None else f"a cell of {path.name}"
    if cell["execution_count"] is not None:
        where += f", In [{cell['execution_count']}] in the executed copy"
    return where + (f": {cell['first_line']}" if cell["first_line"] else "")


def run(
    profile: str | None = None,
    only: list[str] | None = None,
    root: Path | None = None,
    data_root: str | None = None,
    stale_only: bool = False,
) -> int:
    """Execute the notebooks of the checkout at ``root`` for ``profile``; returns 0 if all succeeded, else 1.

    A notebook's outputs are promoted into ``results/<profile>/`` only when it succeeds. At the first failure the
    run stops: results promoted earlier (in this run or before) stay as they are, and so does the failed notebook's
    entry in ``manifest.json`` (it still describes the files its last successful run promoted); the executed copy
    (``executed/<name>.ipynb``) and a summary naming the failing cell with its traceback
    (``executed/<name>.failure.txt``) are written, and the summary is printed. A second pipeline started on the same
    ``results/<profile>/`` waits for the first (with a message on stderr).

    With ``stale_only``, only those of the selected notebooks that are stale or were never run for this profile run
    (decided under the lock, after any pipeline that held it has finished); when none is, nothing is touched.
    """
    prof = profiles.resolve(profile)
    root = (root or profiles.repo_root() or Path.cwd()).resolve()
    notebook_dir = root / "notebooks"
    paths = notebook_paths(notebook_dir, only or prof.notebooks)  # a ladder profile runs notebook 07 only
    final = root / "results" / prof.name
    # Two pipelines on one results folder would share .staging and overwrite each other's manifest: the second waits.
    # (The lock file goes into the git-ignored executed/ folder: results/<profile>/executed/.pipeline.lock.)
    with path_lock(final / "executed" / "pipeline", what=f"make reproduce (profile {prof.name})"):
        if stale_only:
            paths = _stale_paths(prof, paths, root, data_root)
            if not paths:
                print(f"results/{prof.name}: nothing is stale (srlib status --profile {prof.name}); "
                      f"make reproduce FORCE=1 reruns every notebook")
                return 0
        return _run_notebooks(prof, paths, notebook_dir, final, root, data_root)


def _stale_paths(prof, paths: list[Path], root: Path, data_root: str | None) -> list[Path]:
    from srlib.status import notebooks_to_run

    stale = notebooks_to_run(prof.name, root=root, data_root=data_root)
    print(f"results/{prof.name}: {len(stale)} notebook(s) to run (make reproduce FORCE=1 runs all):")
    for name, reasons in stale.items():
        print(f"  {name}: {'; '.join(reasons)}")
    return [p for p in paths if p.stem in stale]


def _run_notebooks(prof, paths: list[Path], notebook_dir: Path, final: Path, root: Path,
                   data_root: str | None) -> int:
    """The body of :func:`run`, called while holding the lock of ``final``."""
    import papermill as pm

    staging, executed = final / ".staging", final / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    manifest_path = final / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.update(
        profile=prof.to_dict(),
        git=_git_state(root),
        machine=machine_info(),
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        data_root=data_root or os.environ.get("SRLIB_DATA"),
    )
    manifest.setdefault("notebooks", {})
    manifest["provenance_version"] = prov.PROVENANCE_VERSION
    data = prov.data_summary(prof, data_root)
    this_run: dict[str, dict] = {}
    status = 0
    t_run = time.perf_counter()
    for path in paths:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        parameters = {"profile": prof.name, "results_dir": str(staging), "interactive": False}
        if data_root:
            parameters["data_root"] = str(data_root)
        _check_parameters(path, parameters)
        print(f"\n=== {path.name} (profile {prof.name}) ===", flush=True)
        t0 = time.perf_counter()
        (executed / f"{path.stem}.failure.txt").unlink(missing_ok=True)
        entry = {"status": "ok", "error": None}
        failure = None
        runs_file = executed / f"{path.stem}.provenance.json"  # Session.train appends the runs it returns
        runs_file.unlink(missing_ok=True)
        inputs = prov.input_files(final, path.stem)
        previous = os.environ.get(prov.ENV_FILE)
        os.environ[prov.ENV_FILE] = str(runs_file)  # the kernel inherits the environment
        try:
            pm.execute_notebook(
                str(path),
                str(executed / path.name),
                parameters=parameters,
                kernel_name="python3",
                cwd=str(notebook_dir),
                log_output=True,
                progress_bar=False,
                execution_timeout=prof.cell_timeout,
            )
        except Exception as exc:  # papermill raises PapermillExecutionError, or kernel/timeout errors
            failure = exc
            cell = failing_cell(executed / path.name, exc)
            entry = {"status": "failed", "error": cell["error"], "failed_cell": cell}
            status = 1
        finally:
            if previous is None:
                os.environ.pop(prov.ENV_FILE, None)
            else:
                os.environ[prov.ENV_FILE] = previous
        entry["wall_s"] = round(time.perf_counter() - t0, 1)
        entry["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        if failure is None:
            entry["provenance"] = prov.notebook_provenance(path, prof, data, runs_file, inputs, staging)
            entry["outputs"] = _promote(staging, final)
            manifest["notebooks"][path.stem] = entry
        else:
            entry["summary_file"] = str(_write_failure(executed, path, entry, failure))
        this_run[path.stem] = entry
        if status:
            break
    if status == 0 and staging.exists():
        shutil.rmtree(staging)
    manifest["wall_s"] = round(time.perf_counter() - t_run, 1)
    manifest["tables"] = {p.name: file_sha256(p) for p in sorted((final / "tables").glob("*.csv"))}
    manifest["made_by"] = {out: name for name, e in sorted(manifest["notebooks"].items())
                           for out in e.get("outputs", [])}
    _write_json(manifest_path, manifest)
    _print_summary(paths, this_run, final, manifest["wall_s"])
    return status


def _print_summary(paths: list[Path], this_run: dict[str, dict], final: Path, wall_s: float) -> None:
    print("\nnotebook                            status     wall")
    for p in paths:
        e = this_run.get(p.stem)
        if e is None:
            print(f"{p.stem:35s} {'not run':10s}")
            continue
        print(f"{p.stem:35s} {e['status']:10s} {e['wall_s']:7.1f} s")
        if e["status"] != "ok":
            print(f"  failed at: {_cell_words(e['failed_cell'], p)}")
            print(f"  error: {e['error']}")
            print(f"  executed notebook: {final / 'executed' / p.name}")
            print(f"  summary and traceback: {e['summary_file']}")
            print(f"  partial outputs: {final / '.staging'}  (earlier results in {final} were left intact)")
    print(f"total {wall_s:.1f} s; results in {final}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="srlib reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", help="smoke | small | medium | paper (default: $SRLIB_PROFILE or small)")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose names start with these prefixes (00 03)")
    parser.add_argument("--data-root", default=None, help="folder with <Set>/HR/*.png (default: $SRLIB_DATA)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--stale", action="store_true",
                       help="run only the notebooks `srlib status` finds stale or never run (make reproduce)")
    which.add_argument("--force", action="store_true", help="run every notebook (the default of this runner)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    # Progress bars inside notebooks print a line per refresh under papermill: refresh rarely.
    os.environ.setdefault("TQDM_MININTERVAL", "30")
    return run(args.profile, args.only, data_root=args.data_root, stale_only=args.stale and not args.force)


if __name__ == "__main__":
    sys.exit(main())
