"""Atomic writes: the previous file survives a failed write, files get open()'s default permissions, and a full disk,
a file-size limit or a read-only file system gives a clear error naming the file while the previous tables, figures
and checkpoints stay byte for byte as they were.

The full-disk and read-only cases use a real 512 KiB tmpfs mounted in a private mount namespace of a child process
(``unshare``; the mount is invisible to the rest of the machine and disappears with the child). Running as root does
not help here: root ignores ``chmod``, but not a full or read-only file system.
"""

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest

from srlib.fileio import WriteError, atomic_write


def test_atomic_write_replaces_on_success_and_keeps_old_on_failure(tmp_path):
    p = tmp_path / "sub" / "t.csv"
    with atomic_write(p, binary=False) as f:
        f.write("v1\n")
    assert p.read_text() == "v1\n"
    with pytest.raises(RuntimeError):
        with atomic_write(p, binary=False) as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert p.read_text() == "v1\n"
    assert sorted(x.name for x in p.parent.iterdir()) == ["t.csv"]


def test_atomic_write_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.bin") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o644


# --------------------------------------------------------------------------------------------------------------------
# OS errors: each written file type (table, figure, checkpoint) against a real full / read-only / size-limited target
# --------------------------------------------------------------------------------------------------------------------

# Writes a table, a figure and a checkpoint into DIR, records their folders' bytes, then (per MODE) makes the next
# writes fail and tries to overwrite all three with bigger content. Prints one JSON line: per file the error and
# whether its folder is exactly as before (same files, same bytes: nothing changed, no temporary file left).
_CHILD = textwrap.dedent("""
    import json, os, subprocess, sys
    from pathlib import Path
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import torch
    from srlib.checkpoint import save_checkpoint
    from srlib.fileio import WriteError
    from srlib.tables import save_table
    from srlib.viz import save_figure

    d, mode = Path(sys.argv[1]), sys.argv[2]
    if mode == "tmpfs-full" or mode == "tmpfs-ro":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(d)], check=True)

    def figure(n):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot(range(n), [i * i for i in range(n)])
        return fig

    def table(p, big):
        save_table(pd.DataFrame({"x": range(5000 if big else 3)}), p)

    def fig(p, big):
        save_figure(figure(400 if big else 3), p, dpi=200 if big else 30)

    def ckpt(p, big):
        save_checkpoint(p, {"step": 2 if big else 1, "model": {"w": torch.rand(300_000 if big else 10)}})

    writers = {"table": (d / "tables" / "t.csv", table), "figure": (d / "figures" / "f.png", fig),
               "checkpoint": (d / "run" / "checkpoint.pt", ckpt)}
    before, listing = {}, {}
    for name, (p, write) in writers.items():
        write(p, False)
        before[name] = {f.name: f.read_bytes() for f in p.parent.iterdir()}  # a table also writes its .md
    if mode == "tmpfs-full":
        with open(d / "filler", "wb", buffering=0) as f:  # fill the file system to the last page
            try:
                while True:
                    f.write(b"\\0" * 4096)
            except OSError:
                pass
    elif mode == "tmpfs-ro":
        subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True)
    elif mode == "fsize":
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing us
        limit = max(len(b) for files in before.values() for b in files.values()) + 4096
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    out = {}
    for name, (p, write) in writers.items():
        try:
            write(p, True)
            out[name] = {"error": None}
        except WriteError as e:
            out[name] = {"error": str(e), "errno": e.errno, "filename": e.filename, "type": "WriteError"}
        except BaseException as e:
            out[name] = {"error": repr(e), "type": type(e).__name__}
        after = {f.name: f.read_bytes() for f in p.parent.iterdir()}
        out[name]["intact"] = after == before[name]  # same files (no temporary file left), same bytes
        out[name]["listing"] = sorted(after)
    print(json.dumps(out))
""")


def _unshare_prefix() -> list[str] | None:
    """A command prefix that runs a child in its own mount namespace where it may mount a tmpfs, or None."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return None
    for prefix in (["unshare", "--mount", "--propagation", "private"],
                   ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]):
        probe = subprocess.run([*prefix, "sh", "-c", 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d"; '
                                'r=$?; umount "$d"; rmdir "$d"; exit $r'], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return prefix
    return None


def _run_child(prefix: list[str], folder, mode: str) -> dict:
    folder.mkdir(exist_ok=True)
    env = {**os.environ, "MPLBACKEND": "Agg"}
    res = subprocess.run([*prefix, sys.executable, "-c", _CHILD, str(folder), mode],
                         capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


_EXPECTED_FILES = {"table": "t.csv", "figure": "f.png", "checkpoint": "checkpoint.pt"}


def _assert_clear_failures(out: dict, errnos: set[int], words: str):
    for name, r in out.items():
        assert r.get("type") == "WriteError", (name, r)
        assert r["errno"] in errnos, (name, r)
        msg = r["error"]
        assert r["filename"] in msg and r["filename"].endswith(_EXPECTED_FILES[name]), (name, msg)
        assert words in msg and "the previous file is unchanged" in msg, (name, msg)
        assert r["intact"], f"{name}: previous files changed or a temporary file was left: {r['listing']}"


@pytest.fixture(scope="module")
def unshare_prefix():
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip("cannot mount a tmpfs in a private mount namespace here (no unshare/mount, or neither root nor "
                    "unprivileged user namespaces allowed): the full-disk and read-only cases need one")
    return prefix


@pytest.mark.needs_mount_namespace
def test_full_disk_fails_clearly_and_keeps_previous_files(tmp_path, unshare_prefix):
    out = _run_child(unshare_prefix, tmp_path / "mnt", "tmpfs-full")
    _assert_clear_failures(out, {errno.ENOSPC}, "No space left on device (the disk is full")


@pytest.mark.needs_mount_namespace
def test_read_only_file_system_fails_clearly_and_keeps_previous_files(tmp_path, unshare_prefix):
    out = _run_child(unshare_prefix, tmp_path / "mnt", "tmpfs-ro")
    _assert_clear_failures(out, {errno.EROFS}, "Read-only file system (the file system is mounted read-only")


def test_file_size_limit_fails_clearly_and_keeps_previous_files(tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse writes past a size (EFBIG), also for root: a real OS error mid-file."""
    out = _run_child([], tmp_path / "d", "fsize")
    _assert_clear_failures(out, {errno.EFBIG}, "File too large")


@pytest.mark.parametrize("where, err", [
    ("mkstemp", errno.EACCES),  # unwritable folder (as a non-root user would see it)
    ("fsync", errno.EIO),
    ("replace", errno.EROFS),
])
def test_os_error_at_each_step_is_a_write_error_and_leaves_nothing_behind(tmp_path, monkeypatch, where, err):
    import srlib.fileio as fileio

    p = tmp_path / "t.csv"
    p.write_text("old\n")

    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err))

    target = {"mkstemp": (fileio.tempfile, "mkstemp"), "fsync": (fileio.os, "fsync"),
              "replace": (fileio.os, "replace")}[where]
    monkeypatch.setattr(*target, fail)
    with pytest.raises(WriteError) as info:
        with atomic_write(p, binary=False) as f:
            f.write("new\n")
    monkeypatch.undo()
    assert info.value.errno == err and info.value.filename == str(p)
    assert str(p) in str(info.value) and os.strerror(err) in str(info.value)
    assert isinstance(info.value, OSError)
    assert p.read_text() == "old\n" and sorted(x.name for x in tmp_path.iterdir()) == ["t.csv"]


def test_non_os_errors_in_the_block_propagate_unchanged(tmp_path):
    with pytest.raises(KeyError):
        with atomic_write(tmp_path / "x.bin") as f:
            f.write(b"x")
            raise KeyError("caller's bug")
    assert list(tmp_path.iterdir()) == []
