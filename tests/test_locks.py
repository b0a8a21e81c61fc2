"""Run-folder and LR-cache locks, tested with real processes: the second process waits (or skips) with a message,
the work is done once, the files are intact; a killed holder leaves no stale lock. A control without the lock shows
that the same two processes do corrupt the run, so the tests can fail."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from srlib.locks import LockTimeout, holder, lock_file, path_lock, run_lock

# A stand-in for training a run: if the run is not finished, log this pid in work.log and write result.txt slowly
# (20 lines, one every 50 ms), then mark it done. Two unlocked writers interleave and both log. Each worker writes
# <started>.ready just before it asks for the lock; given a partner's ready file, a worker pauses half-way through
# its writing until the partner is ready (+0.3 s), so the partner always arrives while the run is being written.
_WORKER = textwrap.dedent("""
    import os, sys, time
    from contextlib import nullcontext
    from pathlib import Path
    from srlib.locks import run_lock

    run_dir, mode, started = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    timeout = None if sys.argv[4] == "-" else float(sys.argv[4])
    partner = None if sys.argv[5] == "-" else Path(sys.argv[5])
    Path(f"{started}.ready").write_text("1")
    lock = nullcontext(True) if mode == "nolock" else run_lock(run_dir, wait=mode != "skip", timeout=timeout)
    with lock as held:
        if not held:
            print("SKIPPED", flush=True)
            sys.exit(0)
        started.write_text(str(os.getpid()))
        if not (run_dir / "done").exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            with open(run_dir / "work.log", "a") as f:
                f.write(f"{os.getpid()}\\n")
            with open(run_dir / "result.txt", "w") as f:
                for i in range(20):
                    f.write(f"{os.getpid()} {i}\\n")
                    f.flush()
                    time.sleep(0.05)
                    t0 = time.monotonic()
                    while i == 10 and partner is not None and not partner.exists() and time.monotonic() - t0 < 60:
                        time.sleep(0.01)
                    if i == 10 and partner is not None:
                        time.sleep(0.3)
            (run_dir / "done").write_text("ok")
        if mode == "hang":
            time.sleep(600)
    print("DONE", flush=True)
""")


def _start(run_dir: Path, mode: str, started: Path, timeout: str = "-", partner: Path | None = None):
    return subprocess.Popen([sys.executable, "-c", _WORKER, str(run_dir), mode, str(started), timeout,
                             str(partner) if partner else "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, limit: float = 60.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < limit, f"{path} not written within {limit} s"
        time.sleep(0.01)


def _two(tmp_path: Path, mode_a: str, mode_b: str, timeout_b: str = "-"):
    """Start A, wait until it is inside its block, then start B; return both (returncode, stdout, stderr)."""
    run_dir = tmp_path / "runs" / "crl-x4-seed0"
    a = _start(run_dir, mode_a, tmp_path / "a.started", partner=tmp_path / "b.started.ready")
    _wait_for(tmp_path / "a.started", a)
    b = _start(run_dir, mode_b, tmp_path / "b.started", timeout_b)
    out_b = b.communicate(timeout=120)
    out_a = a.communicate(timeout=120)
    return run_dir, (a.returncode, *out_a), (b.returncode, *out_b), a.pid


def _result_is_one_writers(run_dir: Path, pid: int) -> bool:
    return (run_dir / "result.txt").read_text() == "".join(f"{pid} {i}\n" for i in range(20))


def test_second_process_waits_then_finds_the_run_done(tmp_path):
    run_dir, a, b, pid_a = _two(tmp_path, "wait", "wait")
    assert a[0] == 0 and b[0] == 0, (a, b)
    assert a[1].strip() == "DONE" and b[1].strip() == "DONE"
    assert (run_dir / "work.log").read_text() == f"{pid_a}\n"  # trained once, by A
    assert _result_is_one_writers(run_dir, pid_a)
    assert f"{run_dir} is in use by process {pid_a}" in b[2] and "(training, since" in b[2]
    assert "waiting for it to finish" in b[2] and "is free after" in b[2]
    assert a[2] == ""  # A never waited
    assert holder(run_dir) is None  # released: the holder file is gone


def test_second_process_can_skip_instead(tmp_path):
    run_dir, a, b, pid_a = _two(tmp_path, "wait", "skip")
    assert a[0] == 0 and b[0] == 0 and b[1].strip() == "SKIPPED"
    assert f"{run_dir} is in use by process {pid_a}" in b[2] and "skipping it" in b[2]
    assert (run_dir / "work.log").read_text() == f"{pid_a}\n" and _result_is_one_writers(run_dir, pid_a)


def test_control_without_lock_corrupts_the_run(tmp_path):
    """The same two workers without the lock both train and interleave their writes: what the lock prevents."""
    run_dir, a, b, pid_a = _two(tmp_path, "nolock", "nolock")
    assert a[0] == 0 and b[0] == 0
    assert len((run_dir / "work.log").read_text().split()) == 2
    assert not _result_is_one_writers(run_dir, pid_a)


def test_wait_with_timeout_raises_lock_timeout(tmp_path):
    run_dir, a, b, _ = _two(tmp_path, "wait", "wait", "0.3")
    assert a[0] == 0 and b[0] != 0
    assert "LockTimeout" in b[2] and "still in use by process" in b[2] and "after 0.3 s" in b[2]


def test_killed_holder_leaves_no_stale_lock(tmp_path):
    run_dir = tmp_path / "runs" / "r"
    a = _start(run_dir, "hang", tmp_path / "a.started")
    try:
        _wait_for(tmp_path / "a.started", a)
        with path_lock(run_dir, wait=False, stream=open(os.devnull, "w")) as held:
            assert not held  # A holds it
        os.kill(a.pid, signal.SIGKILL)
        a.wait(timeout=30)
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
    assert holder(run_dir)["pid"] == a.pid  # its note is left behind, but the kernel released its flock
    t0 = time.monotonic()
    with run_lock(run_dir, wait=False) as held:
        assert held and holder(run_dir)["pid"] == os.getpid()
    assert time.monotonic() - t0 < 1.0


def test_lock_is_reentrant_in_one_process_and_beside_the_folder(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "r"
    with run_lock(run_dir) as outer:
        with run_lock(run_dir, wait=False) as inner:
            assert outer and inner
        assert holder(run_dir)["pid"] == os.getpid()  # the inner release did not drop the outer hold
    assert capsys.readouterr().err == ""  # no "in use" message for our own lock
    assert lock_file(run_dir) == tmp_path / "runs" / ".r.lock" and lock_file(run_dir).exists()
    assert not run_dir.exists()  # the lock never creates or writes the run folder itself


def test_lock_timeout_in_process(tmp_path):
    """The in-process API against a holder in another process: LockTimeout names the folder."""
    run_dir = tmp_path / "runs" / "r"
    a = _start(run_dir, "hang", tmp_path / "a.started")
    try:
        _wait_for(tmp_path / "a.started", a)
        with pytest.raises(LockTimeout, match=str(run_dir)) as info:
            with run_lock(run_dir, timeout=0.2, stream=open(os.devnull, "w")):
                pass
        assert info.value.path == run_dir
    finally:
        a.kill()
        a.wait()


# --------------------------------------------------------------------------------------------------------------------
# The LR cache: two processes asking for the same cached set
# --------------------------------------------------------------------------------------------------------------------

# Each process asks for the same cached LR set; the degradation logs every call, so the test sees who degraded what.
# Role "a" degrades slowly: at its first image it waits until "b" is about to ask for the set, then takes 0.3 s per
# image. Prints the sha256 of the LR images it got.
_CACHE_WORKER = textwrap.dedent("""
    import hashlib, os, sys, time
    from pathlib import Path
    import numpy as np
    import torch.nn.functional as F
    from srlib.data import ImageSet, cached_lr_set

    cache, log, started, role = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    b_ready = started.parent / "b.ready"

    class SlowBox:
        scale = 2
        name = "x2-slowbox"
        def to_dict(self):
            return {"kind": "slowbox", "scale": 2}
        def apply(self, hr, generator):
            with open(log, "a") as f:
                f.write(f"{os.getpid()}\\n")
            started.write_text("1")
            t0 = time.monotonic()
            while role == "a" and not b_ready.exists() and time.monotonic() - t0 < 60:
                time.sleep(0.01)
            time.sleep(0.3)
            return F.avg_pool2d(hr, 2).round()

    rng = np.random.default_rng(0)
    images = {f"img{i}": rng.integers(0, 256, (16, 20, 3), dtype=np.uint8) for i in range(5)}
    if role == "b":
        b_ready.write_text("1")
    pairs = cached_lr_set(ImageSet.from_arrays("toy", images), SlowBox(), seed=0, cache_dir=cache)
    print(hashlib.sha256(b"".join(p.lr.tobytes() for p in pairs)).hexdigest())
""")


def test_two_processes_share_one_lr_cache_generation(tmp_path):
    cache, log = tmp_path / "cache", tmp_path / "degrade.log"

    def start(role):
        return subprocess.Popen([sys.executable, "-c", _CACHE_WORKER, str(cache), str(log),
                                 str(tmp_path / f"{role}.started"), role],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    a = start("a")
    _wait_for(tmp_path / "a.started", a)  # A is degrading its first image (and waits for B to be ready)
    b = start("b")
    out_b, err_b = b.communicate(timeout=120)
    out_a, err_a = a.communicate(timeout=120)
    assert a.returncode == 0 and b.returncode == 0, (err_a, err_b)
    assert out_a.strip() == out_b.strip() and len(out_a.strip()) == 64  # both got the same LR images
    assert log.read_text().split() == [str(a.pid)] * 5  # each image degraded once, all by A
    assert f"in use by process {a.pid}" in err_b and "generating the LR cache" in err_b and "waiting" in err_b
    assert not (tmp_path / "b.started").exists()  # B never degraded anything
    (folder,) = [p for p in (cache / "toy" / "x2").iterdir() if p.is_dir()]  # one folder, no temporary ones
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["images"]:
        assert hashlib.sha256((folder / entry["lr_file"]).read_bytes()).hexdigest() == entry["lr_sha256"]
