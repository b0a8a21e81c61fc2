"""Crash safety, proven by killing (issue 12, item 2).

* ``srlib train`` (one cheap smoke run, 12 steps, a checkpoint every 2) is SIGKILLed at a random moment -- a random
  time after start, a random time into training, or the instant a checkpoint's temporary file appears (during the
  write) -- restarted, maybe killed again, and finally run to the end. The finished run's weights are bit-identical to
  an uninterrupted run's, ``losses.csv`` has every step exactly once with the uninterrupted run's values, the
  restarted process resumed from the checkpoint the kill left (it trained only the missing steps), and after every
  kill ``checkpoint.pt`` is absent or a complete, verified checkpoint. One trial kills a process that stopped itself
  inside the first checkpoint's write (temporary file complete, not yet renamed): the polled "write" moment can miss
  a write faster than a poll, so the mid-write case is not left to chance.
* The same for a tiny two-process DDP run under ``torchrun`` (gloo; tests/distributed/kill_worker.py).
* A truncated or zeroed ``checkpoint.pt`` makes ``srlib train`` exit 2 with a message naming the file and
  ``--restart`` (no traceback), leaving the file and the log as they were; ``--restart`` retrains the run.

Kill moments come from ``random.Random(seed)``: a failing seed reproduces with ``-k "seed3"`` (a run that finished
before its kill is deleted and started again with an earlier moment: every trial kills). The child processes import
a snapshot of srlib taken when the module starts, so that edits to the working tree during the tests change nothing.
CI runs a few seeds; ``SRLIB_KILL_REPEATS=20`` runs seeds 0..19 of each kill test (the issue's "20 times in a row"),
e.g. ``SRLIB_KILL_REPEATS=20 .venv/bin/python -m pytest tests/test_crash_safety.py -k killed -s``.
"""

import csv
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import srlib
from srlib.checkpoint import load_checkpoint

RUN_GLOB = "crl-sr-crl-a-*"  # the cheapest smoke run: 12 steps, a checkpoint every 2
ITERATIONS, CHECKPOINT_EVERY = 12, 2
SRLIB_TRAIN = [sys.executable, "-m", "srlib", "train", "--profile", "smoke", "--only", RUN_GLOB, "--quiet"]
DDP_WORKER = Path(__file__).parent / "distributed" / "kill_worker.py"
DDP_ITERATIONS, DDP_STEP_SLEEP = 8, 0.3
REPEATS = int(os.environ.get("SRLIB_KILL_REPEATS", "0"))
SEEDS = list(range(REPEATS)) if REPEATS else [0, 1]
DDP_SEEDS = list(range(REPEATS)) if REPEATS else [0]  # seed 0: killed during a checkpoint write
TMP_GLOB = ".checkpoint.pt.*.tmp"  # srlib.fileio.atomic_write's temporary file of checkpoint.pt
TIMEOUT = 600
RETRIES = 3  # new kill moments for a run that finished before its kill


@dataclass(frozen=True)
class Snapshot:
    """A copy of the srlib package taken when the module starts, which every child process imports (``PYTHONPATH``,
    started in ``root``): the run folder's name hashes the training code, and a working tree edited while the tests
    run (several people at once) would otherwise move the run to another folder, or change it, between a reference
    run and its killed twin."""

    root: Path

    def env(self, runs: Path | None = None) -> dict:
        """The environment of the child processes: the snapshot first on the path, no torchrun variables of an outer
        job, the embedded training images (no SRLIB_DATA), one thread (the same in every run, so that results can
        be compared bit for bit), caches and results in the snapshot's folder."""
        drop = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SRLIB_DATA",
                "SRLIB_PROFILE"}
        env = {k: v for k, v in os.environ.items() if k not in drop}
        path = [str(self.root), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(path),
                   SRLIB_CACHE=str(self.root / "cache"), SRLIB_RESULTS=str(self.root / "results"))
        if runs is not None:
            env["SRLIB_RUNS"] = str(runs)
        return env


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Snapshot:
    root = tmp_path_factory.mktemp("srlib-snapshot")
    shutil.copytree(Path(srlib.__file__).parent, root / "srlib", ignore=shutil.ignore_patterns("__pycache__"))
    snap = Snapshot(root)
    where = subprocess.run([sys.executable, "-c", "import srlib; print(srlib.__file__)"], env=snap.env(), cwd=root,
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert Path(where.stdout.strip()) == root / "srlib" / "__init__.py", where.stdout + where.stderr
    return snap


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_cmd(run_dir: Path, step_sleep: float) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(_free_port()), str(DDP_WORKER), str(run_dir), "--step-sleep", str(step_sleep)]


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc/<pid>/task/*/children), recursively."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                kids = [int(c) for c in children.read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def _signal(pids, sig) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` and every process below it, all at one moment (as a crash or a killed job would).

    ``killpg`` of the child's session alone is not enough under torchrun: it starts each worker in a session of its
    own, and workers outliving their launcher would go on writing the run. So every process of the tree is stopped
    (SIGSTOP, repeated until the tree stops growing), then all are killed."""
    stopped: set[int] = set()
    while True:
        tree = {proc.pid, *_descendants(proc.pid)}
        if tree <= stopped:
            break
        _signal(tree - stopped, signal.SIGSTOP)
        stopped |= tree
    _signal(stopped, signal.SIGKILL)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


@dataclass(frozen=True)
class Moment:
    """When to kill: ``kind`` ``"start"`` (``value`` seconds after the process started), ``"train"`` (``value``
    seconds after ``losses.csv`` appeared), ``"write"`` (as soon as the temporary file of checkpoint number
    ``value`` or a later one appears, i.e. during that checkpoint's write, if the poll sees it) or ``"pause"``
    (certainly inside the write of checkpoint number ``value``: the process stops itself once that checkpoint's
    temporary file is complete, before the rename, see :data:`PAUSE_IN_WRITE`; ``srlib train`` only)."""

    kind: str
    value: float

    def __str__(self) -> str:
        return f"{self.kind}#{int(self.value)}" if self.kind in ("write", "pause") else f"{self.kind}@{self.value:.2f}"


# ``python -c PAUSE_IN_WRITE N train ...`` runs ``python -m srlib train ...`` in a process that SIGSTOPs itself
# just before the N-th ``os.replace`` onto a ``checkpoint.pt`` (the temporary file written and synced, the
# checkpoint not yet in place): a kill there lands inside the write on any machine, however fast the write is.
PAUSE_IN_WRITE = """
import os, runpy, signal, sys
from pathlib import Path
target, replace, seen = int(sys.argv.pop(1)), os.replace, []
def paused_replace(src, dst, *args, **kwargs):
    if Path(dst).name == "checkpoint.pt":
        seen.append(dst)
        if len(seen) == target:
            os.kill(os.getpid(), signal.SIGSTOP)
    return replace(src, dst, *args, **kwargs)
os.replace = paused_replace
runpy.run_module("srlib", run_name="__main__", alter_sys=True)
"""


def _paused(cmd: list[str], moment: Moment) -> list[str]:
    """``cmd`` (``python -m srlib ...``) run so that it stops itself inside checkpoint write number ``moment.value``."""
    assert cmd[1:3] == ["-m", "srlib"], cmd
    return [cmd[0], "-c", PAUSE_IN_WRITE, str(int(moment.value)), *cmd[3:]]


def _stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped by a signal (state ``T`` in ``/proc/<pid>/stat``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def _draw(rng: random.Random, kind: str, start_s: float, train_s: float, checkpoints: int) -> Moment:
    if kind == "start":
        return Moment("start", rng.uniform(0.0, start_s))
    if kind == "train":
        return Moment("train", rng.uniform(0.0, train_s))
    return Moment("write", rng.randint(1, checkpoints))


def _run_until(cmd: list[str], env: dict, run_dir: Path, moment: Moment | None, log: Path, cwd: Path
               ) -> tuple[str, int | None]:
    """Start ``cmd`` (in ``cwd``) and kill its whole process tree at ``moment`` (None: let it finish).

    Returns:
        (what happened: ``"killed"``, ``"killed mid-write"`` (a checkpoint temporary file was still there after the
        kill) or ``"finished"``; the exit status when it finished, else None).
    """
    before = {p.name for p in run_dir.glob(TMP_GLOB)}  # left by an earlier kill (removed by the next save)
    if moment is not None and moment.kind == "pause":
        cmd = _paused(cmd, moment)
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        t0 = time.monotonic()
        try:
            fire = _wait_for(proc, run_dir, moment, t0, before) if moment is not None else False
            if not fire:
                return "finished", proc.wait(timeout=TIMEOUT)
            _kill_tree(proc)
        except BaseException:
            _kill_tree(proc)
            raise
    mid_write = {p.name for p in run_dir.glob(TMP_GLOB)} - before
    return ("killed mid-write" if mid_write else "killed"), None


def _wait_for(proc: subprocess.Popen, run_dir: Path, moment: Moment, t0: float, before: set[str]) -> bool:
    """Poll until ``moment`` has come (True) or the process has exited (False); ``before``: temporary files that
    were there before the start."""
    seen: set[str] = set()
    train_t0 = None
    while proc.poll() is None:
        now = time.monotonic()
        if now - t0 > TIMEOUT:
            raise TimeoutError(f"{proc.args} ran for more than {TIMEOUT} s")
        if moment.kind == "start" and now - t0 >= moment.value:
            return True
        if moment.kind == "pause" and _stopped(proc.pid):
            return True
        if moment.kind == "train":
            if train_t0 is None and (run_dir / "losses.csv").exists():
                train_t0 = now
            if train_t0 is not None and now - train_t0 >= moment.value:
                return True
        if moment.kind == "write":
            try:
                names = {e.name for e in os.scandir(run_dir) if e.name.startswith(".checkpoint.pt.")} - before
            except FileNotFoundError:
                names = set()
            if names - seen:
                seen |= names
                if len(seen) >= moment.value:
                    return True
        time.sleep(0.0005 if moment.kind == "write" else 0.005)
    return False


def _checkpoint_step(run_dir: Path, iterations: int, every: int) -> int:
    """The step of the checkpoint a kill left (0 when there is none), after checking that it is complete."""
    path = run_dir / "checkpoint.pt"
    if not path.exists():
        return 0
    state = load_checkpoint(path, required=("model", "optimizer", "step", "generators"))  # raises if incomplete
    step = int(state["step"])
    assert 0 < step <= iterations and (step % every == 0 or step == iterations), f"{path}: step {step}"
    return step


def _same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bytes (stricter than ``torch.equal``, which takes -0.0 for 0.0)."""
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.reshape(-1).view(torch.uint8),
                                                                     b.reshape(-1).view(torch.uint8))


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]


def _log_rows(run_dir: Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of ``losses.csv`` without the ``seconds`` column (wall time, the only column that may differ)."""
    with open(run_dir / "losses.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    keep = [i for i, name in enumerate(header) if name != "seconds"]
    return [header[i] for i in keep], [[r[i] for i in keep] for r in rows]


def _assert_same_run(run_dir: Path, ref_dir: Path, iterations: int, what: str) -> None:
    header, rows = _log_rows(run_dir)
    ref_header, ref_rows = _log_rows(ref_dir)
    steps = [int(r[0]) for r in rows]
    assert steps == list(range(1, iterations + 1)), f"{what}: losses.csv steps {steps}, expected each of " \
                                                    f"1..{iterations} once"
    assert header == ref_header
    diff = [(a, b) for a, b in zip(rows, ref_rows, strict=True) if a != b]
    assert not diff, f"{what}: losses.csv differs from the uninterrupted run's (first: {diff[0]})"
    got, ref = _weights(run_dir), _weights(ref_dir)
    assert got.keys() == ref.keys()
    changed = [k for k in ref if not _same_bytes(got[k], ref[k])]
    assert not changed, f"{what}: weights differ from the uninterrupted run's in {changed}"


@dataclass(frozen=True)
class Reference:
    """An uninterrupted run: its folder, the wall time of its process and the training time in its log."""

    run_dir: Path
    wall_s: float
    train_s: float


def _one_run_dir(runs: Path) -> Path:
    found = [p for p in (runs / "smoke").glob(RUN_GLOB) if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, snapshot) -> Reference:
    runs = tmp_path_factory.mktemp("reference")
    t0 = time.monotonic()
    done = subprocess.run(SRLIB_TRAIN, env=snapshot.env(runs), cwd=snapshot.root, capture_output=True, text=True,
                          timeout=TIMEOUT)
    wall = time.monotonic() - t0
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = _one_run_dir(runs)
    with open(run_dir / "losses.csv", newline="") as f:
        train_s = float(list(csv.DictReader(f))[-1]["seconds"])
    return Reference(run_dir, wall, train_s)


@pytest.fixture(scope="module")
def ddp_reference(tmp_path_factory, snapshot) -> Reference:
    run_dir = tmp_path_factory.mktemp("ddp-reference") / "run"
    t0 = time.monotonic()
    done = subprocess.run(_torchrun_cmd(run_dir, 0.0), env=snapshot.env(), cwd=snapshot.root, capture_output=True,
                          text=True, timeout=TIMEOUT)
    wall = time.monotonic() - t0
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"kill_worker: trained {DDP_ITERATIONS} steps" in done.stdout + done.stderr
    return Reference(run_dir, wall, DDP_ITERATIONS * DDP_STEP_SLEEP)


def _trial(seed: int, rng: random.Random, cmd: Callable[[], list[str]], snapshot: Snapshot, env: dict,
           run_dir: Path, log: Path, start_s: float, train_s: float, iterations: int, first: Moment | None = None
           ) -> tuple[list[str], int, str | None]:
    """Kill once or twice (the first kill's kind cycles with the seed, or is ``first``), then run to the end.

    A run that finished before any kill landed (the machine was faster than the reference run) is deleted and
    started again with an earlier moment of the same kind (at most :data:`RETRIES` times): a trial without a kill
    proves nothing. ``cmd()`` gives the command line of each start (torchrun's gets a fresh port every time).

    Returns (what each start did, the checkpoint step before the final run, the final run's output)."""
    kinds = ("write", "train", "start")
    checkpoints = iterations // CHECKPOINT_EVERY
    moments = [first or _draw(rng, kinds[seed % 3], start_s, train_s, checkpoints)]
    if rng.random() < 0.5:
        moments.append(_draw(rng, rng.choice(kinds), start_s, train_s, checkpoints))
    events, step, retries, i = [], 0, 0, 0
    while i < len(moments):
        what, rc = _run_until(cmd(), env, run_dir, moments[i], log, snapshot.root)
        events.append(f"{moments[i]}: {what}" + (f" (exit {rc})" if rc is not None else ""))
        assert rc in (None, 0), f"seed {seed}: {events}; output:\n{log.read_text()[-3000:]}"
        step = _checkpoint_step(run_dir, iterations, CHECKPOINT_EVERY) if run_dir.exists() else 0
        events[-1] += f", checkpoint at step {step}"
        killed = any(": killed" in e for e in events)
        if not killed and retries < RETRIES:
            retries += 1
            shutil.rmtree(run_dir)
            events[-1] += " (deleted: no kill yet)"
            scale = 0.5 ** retries
            moments[i] = _draw(rng, moments[i].kind, start_s * scale, train_s * scale, checkpoints)
            continue
        i += 1
    assert any(": killed" in e for e in events), \
        f"seed {seed}: no kill landed before the run finished ({events}): the trial proves nothing"
    mark = log.stat().st_size
    what, rc = _run_until(cmd(), env, run_dir, None, log, snapshot.root)
    final = log.read_bytes()[mark:].decode(errors="replace")
    assert rc == 0, f"seed {seed}: the restarted run failed ({events}):\n{final[-3000:]}"
    return events, step, final


def _srlib_trial(seed: int, reference: Reference, snapshot: Snapshot, tmp_path: Path, first: Moment | None = None):
    runs = tmp_path / "runs"
    run_dir = runs / "smoke" / reference.run_dir.name
    rng = random.Random(seed)
    t0 = time.monotonic()
    events, step, final = _trial(seed, rng, lambda: SRLIB_TRAIN, snapshot, snapshot.env(runs), run_dir,
                                 tmp_path / "log.txt", reference.wall_s, reference.train_s, ITERATIONS, first)
    # the restart resumed from the checkpoint the kills left: it trained only the missing steps
    slug = reference.run_dir.name.rsplit("-", 1)[0]
    expected = f"{slug}: finished before, loaded" if step == ITERATIONS else \
        f"{slug}: trained {ITERATIONS - step} steps"
    assert expected in final, f"seed {seed} ({events}): expected {expected!r} in the restarted run's output:\n{final}"
    _assert_same_run(run_dir, reference.run_dir, ITERATIONS, f"seed {seed} ({events})")
    assert not list(run_dir.glob(TMP_GLOB)), "a finished run keeps no temporary checkpoint file"
    print(f"\nsrlib train seed {seed}: {'; '.join(events)}; resumed from step {step}; bit-identical "
          f"({time.monotonic() - t0:.1f} s)")
    return events


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_killed_srlib_train_resumes_bit_identical(seed, reference, snapshot, tmp_path):
    _srlib_trial(seed, reference, snapshot, tmp_path)


def test_killed_during_the_first_checkpoint_write_resumes_bit_identical(reference, snapshot, tmp_path):
    """The first checkpoint is special: killed while writing it, the run has a log (steps 1..2, flushed just before
    the write) but no checkpoint yet; the restart must start from scratch without keeping those rows."""
    events = _srlib_trial(100, reference, snapshot, tmp_path, first=Moment("pause", 1))
    assert events[0].startswith("pause#1: killed mid-write, checkpoint at step 0"), events


@pytest.mark.parametrize("seed", DDP_SEEDS, ids=[f"seed{s}" for s in DDP_SEEDS])
def test_killed_ddp_run_resumes_bit_identical(seed, ddp_reference, snapshot, tmp_path):
    run_dir = tmp_path / "run"
    rng = random.Random(seed)
    t0 = time.monotonic()
    ref = ddp_reference
    events, step, final = _trial(seed, rng, lambda: _torchrun_cmd(run_dir, DDP_STEP_SLEEP), snapshot, snapshot.env(),
                                 run_dir, tmp_path / "log.txt", ref.wall_s + ref.train_s, ref.train_s, DDP_ITERATIONS)
    expected = f"kill_worker: trained {DDP_ITERATIONS - step} steps"
    assert expected in final, f"DDP seed {seed} ({events}): expected {expected!r} in the restarted run's output:\n" \
                              f"{final[-3000:]}"
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == DDP_ITERATIONS and len(ckpt["generators"]) == 2
    _assert_same_run(run_dir, ref.run_dir, DDP_ITERATIONS, f"DDP seed {seed} ({events})")
    print(f"\ntorchrun seed {seed}: {'; '.join(events)}; resumed from step {step}; bit-identical "
          f"({time.monotonic() - t0:.1f} s)")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _zero(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid: mid + 4096] = bytes(4096)
    path.write_bytes(bytes(data))


def test_corrupt_checkpoint_is_an_error_and_restart_retrains(reference, snapshot, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(reference.run_dir.parent, runs / "smoke")
    run_dir = runs / "smoke" / reference.run_dir.name
    ckpt, log = run_dir / "checkpoint.pt", run_dir / "losses.csv"
    good = ckpt.read_bytes()
    for damage in (_truncate, _zero):
        ckpt.write_bytes(good)
        damage(ckpt)
        bad, log_before = ckpt.read_bytes(), log.read_bytes()
        done = subprocess.run(SRLIB_TRAIN, env=snapshot.env(runs), cwd=snapshot.root, capture_output=True, text=True,
                              timeout=TIMEOUT)
        what = f"{damage.__name__}: exit {done.returncode}\nstdout:\n{done.stdout[-2000:]}\nstderr:\n" \
               f"{done.stderr[-3000:]}"
        assert done.returncode == 2, what
        assert str(ckpt) in done.stderr and "--restart" in done.stderr, what
        assert "Traceback" not in done.stderr, what
        assert "trained" not in done.stdout, what
        # never a silent retrain over it: the file and the log are as they were
        assert ckpt.read_bytes() == bad and log.read_bytes() == log_before, what
    done = subprocess.run([*SRLIB_TRAIN, "--restart"], env=snapshot.env(runs), cwd=snapshot.root,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"trained {ITERATIONS} steps" in done.stdout, done.stdout
    _assert_same_run(run_dir, reference.run_dir, ITERATIONS, "after --restart")
