"""Shared fixtures and the skip policy.

Fixtures: the development data and weights located by :mod:`shared_paths` (skip when absent), and the
native-convolution switch for tests of tiny models.

Skip policy: a test may skip only for a reason the machine, not the library, is responsible for, and it says so with
one of the markers in :data:`ACCEPTED_SKIP_MARKERS` (registered here; pyproject.toml sets --strict-markers). A test
that requests the ``shared_data`` / ``shared_weights`` fixture gets ``needs_data`` / ``needs_weights``
automatically (and one requesting ``paper_text`` / ``section5`` of the reference tests ``needs_papers``). Any other
skip (a bare ``pytest.skip``, an ``importorskip`` of something the project installs, a ``skipif`` without a marker)
makes the session fail, however green the tests were. The end of the run lists every skip with its marker and
reason; with ``SRLIB_SKIP_REPORT=<file>`` the list is also written there (``.ci/run`` prints it). Notebook cells
(nbval) are collected outside this folder, so the policy covers the pytest tests only.
"""

import os
import warnings
from pathlib import Path

import pytest
from shared_paths import DATA, WEIGHTS

#: Markers that make a skip acceptable, and what each one says the machine lacks.
ACCEPTED_SKIP_MARKERS = {
    "needs_data": "the standard SR test sets (SRLIB_DATA or ../shared/data with <Set>/HR/*.png)",
    "needs_weights": "the offline development weights (SRLIB_WEIGHTS or ../shared/weights)",
    "needs_papers": "the paper texts / research notes in ../shared (papers/, research/)",
    "needs_mount_namespace": "a private mount namespace to mount a tiny tmpfs (unshare + mount)",
    "needs_gpu": "a CUDA device",
    "same_cpu_kind": "the CPU kind golden weights were recorded on (x86-64 AVX-512, 2 torch threads)",
}
#: A test requesting one of these fixtures gets the marker (the fixtures skip where ../shared lacks their files):
#: ``paper_text`` (tests/test_reference_crl.py, test_reference_pcl.py) and ``section5`` (test_reference_blind.py).
_FIXTURE_MARKERS = {"shared_data": "needs_data", "shared_weights": "needs_weights", "paper_text": "needs_papers",
                    "section5": "needs_papers"}
_SHARED = Path(__file__).resolve().parents[2] / "shared"


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _same_cpu_kind() -> bool:
    import torch

    return torch.backends.cpu.get_cpu_capability() == "AVX512" and torch.get_num_threads() == 2


#: The check a marker runs before its test (the test skips, accepted, when it fails). Markers without an entry are
#: checked by their test (needs_mount_namespace: whether this machine allows the mount).
_MARKER_CHECKS = {
    "needs_data": lambda: DATA is not None and (DATA / "Set5" / "HR").is_dir(),
    "needs_weights": lambda: WEIGHTS is not None and (WEIGHTS / "lpips_check").is_dir(),
    "needs_papers": lambda: (_SHARED / "papers").is_dir() and (_SHARED / "research").is_dir(),
    "needs_gpu": _has_gpu,
    "same_cpu_kind": _same_cpu_kind,
}
_SKIPS = pytest.StashKey[list]()
_COLLECT_SKIPS: list = []  # collection reports carry no config: kept here, emptied at configure


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The SR data root (``<root>/<Set>/HR/*.png``), or skip (the test is marked ``needs_data``)."""
    if DATA is None or not (DATA / "Set5" / "HR").is_dir():
        pytest.skip(f"SR data not found ({DATA}): set SRLIB_DATA to a folder with <Set>/HR/*.png")
    return DATA


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    """Offline weights folder (lpips backbone, lpips_check/, niqe_pris_params.npz), or skip (marked
    ``needs_weights``)."""
    if WEIGHTS is None or not (WEIGHTS / "lpips_check").is_dir():
        pytest.skip(f"offline weights not found ({WEIGHTS}): set SRLIB_WEIGHTS to the folder with lpips_check/")
    return WEIGHTS


@pytest.fixture(scope="module")
def native_conv():
    """Run the convolutions of a test module without oneDNN: it JIT-compiles a primitive per new convolution shape
    (~25 ms each), which dominates tests of tiny models with many shapes; the native CPU path computes the same
    convolution in well under a millisecond. Use with ``pytestmark = pytest.mark.usefixtures("native_conv")``."""
    import torch  # here, not at the top: the skip-policy tests load this file in fresh interpreters

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns about TF32 on oneDNN when toggling the flags
        with torch.backends.mkldnn.flags(enabled=False):
            yield


# --------------------------------------------------------------------------------------------------------------------
# Skip policy
# --------------------------------------------------------------------------------------------------------------------


def pytest_configure(config):
    for name, lacks in ACCEPTED_SKIP_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: skips (accepted) where the machine lacks {lacks}")
    config.stash[_SKIPS] = []
    _COLLECT_SKIPS.clear()


def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture, marker in _FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


def pytest_runtest_setup(item):
    """A test marked ``needs_X`` skips (accepted) where the machine lacks X: ``@pytest.mark.needs_weights`` replaces a
    hand-written ``skipif``."""
    for marker, available in _MARKER_CHECKS.items():
        if item.get_closest_marker(marker) is not None and not available():
            pytest.skip(f"this machine lacks {ACCEPTED_SKIP_MARKERS[marker]}")


def _reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        markers = sorted({m.name for m in item.iter_markers()} & set(ACCEPTED_SKIP_MARKERS))
        item.config.stash[_SKIPS].append((item.nodeid, markers, _reason(report)))
    return report


def pytest_collectreport(report):
    """A whole module skipped at import (``importorskip`` at module level): never accepted."""
    if report.skipped:
        _COLLECT_SKIPS.append((report.nodeid, [], _reason(report)))


def _all_skips(config) -> list:
    return config.stash.get(_SKIPS, []) + _COLLECT_SKIPS


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skips = _all_skips(config)
    if not skips:
        return
    bad = [s for s in skips if not s[1]]
    tr = terminalreporter
    tr.section("skips", sep="-", bold=True)
    for nodeid, markers, reason in skips:
        tag = ",".join(markers) if markers else "NO ACCEPTED MARKER"
        tr.line(f"{'unaccepted' if not markers else 'accepted'} [{tag}] {nodeid}: {reason}", red=not markers)
    tr.line(f"{len(skips) - len(bad)} skipped with an accepted marker, {len(bad)} skipped without one"
            + (" -> the session fails (see tests/conftest.py: skip policy)" if bad else ""), red=bool(bad))


def pytest_sessionfinish(session, exitstatus):
    skips = _all_skips(session.config)
    path = os.environ.get("SRLIB_SKIP_REPORT")
    if path:
        lines = [f"{'unaccepted' if not m else 'accepted'} [{','.join(m) or '-'}] {n}: {r}" for n, m, r in skips]
        Path(path).write_text("".join(line + "\n" for line in lines))
    if any(not markers for _, markers, _ in skips) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
