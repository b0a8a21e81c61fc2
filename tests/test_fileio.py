"""Atomic writes: the previous file survives a failed write, and files get open()'s default permissions."""

import os
import stat

import pytest

from srlib.fileio import atomic_write


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
