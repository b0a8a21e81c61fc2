"""Two ``srlib train`` processes on one runs folder (issue 12, item 3's acceptance test).

Two real processes, started together on the same ``$SRLIB_RUNS``, train three smoke runs (two CRL-SR runs and PCL-SR's
EDSR-S pre-training). Each run folder's lock (:func:`srlib.locks.run_lock`) lets one process train it while the other
skips it, and later waits for it. Checked against independent truths: both exit 0; the trained counts of their JSON
summaries add up to the number of runs (every run trained exactly once); every ``losses.csv`` has each step once;
every checkpoint's weights equal, byte for byte, those of the same runs trained by a single process in another folder.
The processes import a snapshot of srlib taken at the start of the test (see :func:`_snapshot`).
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

import srlib

ONLY = ("crl-sr-crl-[ad]-*", "pcl-sr-pcl-base-EDSR-S-*")
CMD = [sys.executable, "-m", "srlib", "train", "--profile", "smoke", *(a for g in ONLY for a in ("--only", g)),
       "--quiet"]
N_RUNS = 3
TIMEOUT = 600


def _snapshot(root: Path) -> Path:
    """A copy of the srlib package under ``root`` for the child processes to import: the run folders' names hash the
    training code, and a working tree edited during the test (several people at once) would otherwise give the single
    and the concurrent processes different folders."""
    shutil.copytree(Path(srlib.__file__).parent, root / "srlib", ignore=shutil.ignore_patterns("__pycache__"))
    _lengthen(root / "srlib" / "profiles.py")
    return root


LONGER = {"iterations=12, batch_size=4": "iterations=400, batch_size=4",
          "pretrain_iterations=10": "pretrain_iterations=300"}
"""The snapshot's smoke runs last seconds instead of ~0.3 s each, so that the two processes, which start within a
second of each other, certainly meet at a run folder's lock (with the smoke sizes, one could finish all three runs
before the other had imported torch)."""


def _lengthen(profiles_py: Path) -> None:
    text = profiles_py.read_text()
    for old, new in LONGER.items():
        assert text.count(old) == 1, f"{profiles_py}: expected one {old!r}"
        text = text.replace(old, new)
    profiles_py.write_text(text)


def _env(snapshot: Path, runs: Path) -> dict:
    """The snapshot first on the path, no torchrun variables of an outer job, the embedded training images (no
    SRLIB_DATA), one thread in every process (so that the runs of the single and the concurrent processes compare
    bit for bit)."""
    drop = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SRLIB_DATA",
            "SRLIB_PROFILE"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    path = [str(snapshot), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(path),
               SRLIB_RUNS=str(runs), SRLIB_CACHE=str(snapshot / "cache"), SRLIB_RESULTS=str(snapshot / "results"))
    return env


def _summary(stdout: str) -> dict:
    """The JSON summary line ``{"runs": n, "trained": t, "loaded": l}`` that ``srlib train`` prints last."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no JSON summary in:\n{stdout[-3000:]}"
    return json.loads(lines[-1])


def _run_dirs(runs: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted((runs / "smoke").iterdir()) if p.is_dir()}


def _steps_once(run_dir: Path) -> list[int]:
    with open(run_dir / "losses.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    return steps


def _same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bytes (stricter than ``torch.equal``, which takes -0.0 for 0.0)."""
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.reshape(-1).view(torch.uint8),
                                                                     b.reshape(-1).view(torch.uint8))


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]


def test_two_concurrent_srlib_train_processes_train_every_run_once(tmp_path):
    single, shared = tmp_path / "single", tmp_path / "shared"
    snap = _snapshot(tmp_path / "snapshot")
    t0 = time.monotonic()
    ref = subprocess.run(CMD, env=_env(snap, single), cwd=snap, capture_output=True, text=True, timeout=TIMEOUT)
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]
    assert _summary(ref.stdout) == {"runs": N_RUNS, "trained": N_RUNS, "loaded": 0}
    t_single = time.monotonic() - t0

    t0 = time.monotonic()
    logs = [(open(tmp_path / f"out{i}.txt", "w+"), open(tmp_path / f"err{i}.txt", "w+")) for i in range(2)]
    procs = [subprocess.Popen(CMD, env=_env(snap, shared), cwd=snap, stdout=o, stderr=e, text=True) for o, e in logs]
    try:
        codes = [p.wait(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    outs, errs = [], []
    for o, e in logs:
        o.seek(0), e.seek(0)
        outs.append(o.read()), errs.append(e.read())
        o.close(), e.close()
    t_two = time.monotonic() - t0
    what = "\n".join(f"process {i}: exit {c}\nstdout:\n{out[-2500:]}\nstderr:\n{err[-2500:]}"
                     for i, (c, out, err) in enumerate(zip(codes, outs, errs, strict=True)))
    assert codes == [0, 0], what
    assert "Traceback" not in "".join(errs), what
    summaries = [_summary(out) for out in outs]
    assert [s["runs"] for s in summaries] == [N_RUNS, N_RUNS], what
    assert sum(s["trained"] for s in summaries) == N_RUNS, f"runs trained twice or never: {summaries}\n{what}"
    assert all(s["trained"] + s["loaded"] == N_RUNS for s in summaries), what
    # the processes did run at the same time: one found a run folder locked by the other (skipped or waited)
    assert any("is in use by process" in err for err in errs), f"the two processes never met at a lock:\n{what}"

    got, ref_dirs = _run_dirs(shared), _run_dirs(single)
    assert sorted(got) == sorted(ref_dirs) and len(got) == N_RUNS, (sorted(got), sorted(ref_dirs))
    for name, run_dir in got.items():
        iterations = json.loads((run_dir / "config.json").read_text())["iterations"]
        assert _steps_once(run_dir) == list(range(1, iterations + 1)), f"{name}: steps {_steps_once(run_dir)}"
        mine, theirs = _weights(run_dir), _weights(ref_dirs[name])
        assert mine.keys() == theirs.keys()
        differ = [k for k in mine if not _same_bytes(mine[k], theirs[k])]
        assert not differ, f"{name}: weights differ from the single process's in {differ}"
        assert not list(run_dir.glob(".*.tmp")), f"{name}: temporary files left behind"
    print(f"\nsingle process {t_single:.1f} s; two processes {t_two:.1f} s; trained "
          f"{[s['trained'] for s in summaries]}")
