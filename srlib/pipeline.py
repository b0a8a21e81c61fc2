"""Run every notebook in order with papermill and collect ``results/<profile>/``.

    python -m srlib.pipeline --profile small          # what `make reproduce` runs
    python -m srlib.pipeline --profile smoke --only 00

Each notebook runs headless (kernel ``python3``, the notebooks folder as working directory, cell output logged,
per-cell timeout from the profile) with the parameters ``profile``, ``results_dir`` and ``interactive=False``.
It writes its tables and figures into a staging folder; only when the notebook succeeds are they moved into
``results/<profile>/`` (file by file, atomically), so a failing run never destroys or half-overwrites earlier
results. The run stops at the first failure and prints a summary; the failed notebook's partial outputs stay in
``results/<profile>/.staging/`` and its executed copy in ``results/<profile>/executed/`` (both git-ignored).
``results/<profile>/manifest.json`` records the git commit, the profile, the machine and each notebook's wall time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from srlib import profiles
from srlib.data import file_sha256
from srlib.fileio import atomic_write

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


def notebook_paths(notebook_dir: Path, only: list[str] | None = None) -> list[Path]:
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


def run(
    profile: str | None = None,
    only: list[str] | None = None,
    root: Path | None = None,
    data_root: str | None = None,
) -> int:
    """Execute the notebooks of the checkout at ``root`` for ``profile``; returns 0 if all succeeded, else 1."""
    import papermill as pm

    prof = profiles.resolve(profile)
    root = (root or profiles.repo_root() or Path.cwd()).resolve()
    notebook_dir = root / "notebooks"
    paths = notebook_paths(notebook_dir, only)
    final = root / "results" / prof.name
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
        entry = {"status": "ok", "error": None}
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
            entry = {"status": "failed", "error": f"{type(exc).__name__}: {getattr(exc, 'evalue', exc)}"}
            status = 1
        entry["wall_s"] = round(time.perf_counter() - t0, 1)
        entry["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        if entry["status"] == "ok":
            entry["outputs"] = _promote(staging, final)
        manifest["notebooks"][path.stem] = entry
        if status:
            break
    if status == 0 and staging.exists():
        shutil.rmtree(staging)
    manifest["wall_s"] = round(time.perf_counter() - t_run, 1)
    manifest["tables"] = {p.name: file_sha256(p) for p in sorted((final / "tables").glob("*.csv"))}
    _write_json(manifest_path, manifest)
    _print_summary(paths, manifest, final)
    return status


def _print_summary(paths: list[Path], manifest: dict, final: Path) -> None:
    print("\nnotebook                            status     wall")
    for p in paths:
        e = manifest["notebooks"].get(p.stem)
        if e is None:
            print(f"{p.stem:35s} {'not run':10s}")
            continue
        print(f"{p.stem:35s} {e['status']:10s} {e['wall_s']:7.1f} s")
        if e["status"] != "ok":
            print(f"  error: {e['error']}")
            print(f"  executed notebook (see the failing cell): {final / 'executed' / p.name}")
            print(f"  partial outputs: {final / '.staging'}  (earlier results in {final} were left intact)")
    print(f"total {manifest['wall_s']:.1f} s; results in {final}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="srlib reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", help="smoke | small | medium | paper (default: $SRLIB_PROFILE or small)")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose names start with these prefixes (00 03)")
    parser.add_argument("--data-root", default=None, help="folder with <Set>/HR/*.png (default: $SRLIB_DATA)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    # Progress bars inside notebooks print a line per refresh under papermill: refresh rarely.
    os.environ.setdefault("TQDM_MININTERVAL", "30")
    return run(args.profile, args.only, data_root=args.data_root)


if __name__ == "__main__":
    sys.exit(main())
