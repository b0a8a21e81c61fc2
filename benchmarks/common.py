"""Shared by the benchmark scripts: timing, the machine's measured compute peaks, and how busy the machine was."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch


def timed(fn) -> float:
    """Wall time of one call, in seconds (CUDA work is synchronised before and after)."""
    _sync()
    t = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - t


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def best_time(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    fn()
    return min(timed(fn) for _ in range(repeats))


def matmul_peak(sizes=(1024, 2048, 3072), repeats: int = 5, dtype: torch.dtype = torch.float32,
                device: str | torch.device = "cpu") -> float:
    """Best GFLOP/s of square ``dtype`` matmuls (``2 n^3`` FLOPs each) on ``device``: the practical compute peak.

    float32 and bfloat16 are measured the same way (same sizes, repeats, threads), one right after the other, so the
    two peaks are comparable; on a CPU with AMX / avx512-bf16, oneDNN runs the bfloat16 matmul on those units.
    """
    best = 0.0
    g = torch.Generator(device=device).manual_seed(0)
    for n in sizes:
        a = torch.rand(n, n, generator=g, device=device).to(dtype)
        b = torch.rand(n, n, generator=g, device=device).to(dtype)
        best = max(best, 2 * n**3 / best_time(lambda a=a, b=b: a @ b, repeats) / 1e9)
    return best


def matmul_peaks(device: str | torch.device = "cpu", **kwargs) -> dict[str, float]:
    """``{"fp32": GFLOP/s, "bf16": GFLOP/s}``: :func:`matmul_peak` in both precisions, measured back to back."""
    return {"fp32": matmul_peak(dtype=torch.float32, device=device, **kwargs),
            "bf16": matmul_peak(dtype=torch.bfloat16, device=device, **kwargs)}


def _busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat (None where there is none)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    return total - idle, total


class CpuLoad:
    """How many CPU cores *other* processes kept busy while a block ran: ``with CpuLoad() as load: ...``, then
    ``load.others`` (cores, 0 .. os.cpu_count()) and ``load.ours`` (cores used by this process).

    Other processes' share = all CPUs' busy time (/proc/stat) minus this process's CPU time (``os.times``), divided
    by the wall time. On a shared machine this says how far a measurement is from a quiet one; NaN where /proc/stat
    is missing.
    """

    others: float = float("nan")
    ours: float = float("nan")

    def __enter__(self) -> CpuLoad:
        self._t, self._cpu, self._jiffies = time.perf_counter(), _own_cpu(), _busy_jiffies()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self._t
        own = _own_cpu() - self._cpu
        end = _busy_jiffies()
        self.ours = own / wall if wall > 0 else float("nan")
        if self._jiffies is None or end is None or wall <= 0:
            return
        tick = os.sysconf("SC_CLK_TCK")
        busy = (end[0] - self._jiffies[0]) / tick
        self.others = max(0.0, (busy - own) / wall)


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def machine_state() -> str:
    """One line: load averages (1, 5, 15 min) and cores, to print beside measurements."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return f"{os.cpu_count()} cores"
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def wait_quiet(max_others: float = 0.3, window: float = 2.0, timeout: float = 0.0) -> float:
    """Wait (at most ``timeout`` seconds) until other processes keep fewer than ``max_others`` cores busy over a
    ``window``-second sample; returns the last sample (cores). ``timeout=0`` samples once and returns at once."""
    deadline = time.perf_counter() + timeout
    while True:
        with CpuLoad() as load:
            time.sleep(window)
        if load.others < max_others or time.perf_counter() >= deadline:
            return load.others


def quiet_matmul_peaks(device: str | torch.device = "cpu", max_others: float = 0.3, timeout: float = 0.0,
                       **kwargs) -> tuple[dict[str, float], float]:
    """:func:`matmul_peaks` measured while other processes use fewer than ``max_others`` cores, retrying (and keeping
    the best of every attempt) for up to ``timeout`` seconds. Returns (peaks, other processes' load during the
    attempt that gave the float32 peak, in cores)."""
    deadline = time.perf_counter() + timeout
    best: dict[str, float] = {}
    best_load = float("nan")
    while True:
        if timeout > 0:
            wait_quiet(max_others, timeout=max(0.0, deadline - time.perf_counter()))
        with CpuLoad() as load:
            peaks = matmul_peaks(device, **kwargs)
        if not best or peaks["fp32"] > best["fp32"]:
            best_load = load.others
        best = {k: max(v, best.get(k, 0.0)) for k, v in peaks.items()}
        if load.others < max_others or time.perf_counter() >= deadline:
            return best, best_load


def update_csv(path, table, key: list[str]):
    """Write ``table`` into the CSV at ``path``, keeping the rows of earlier runs whose ``key`` it does not hold (a
    rerun of an arm replaces that arm's rows), sorted by ``key``; returns what was written."""
    import pandas as pd

    path = Path(path)
    if path.exists():
        old = pd.read_csv(path, keep_default_na=False, dtype={k: table[k].dtype for k in key})
        table = pd.concat([old[~old.set_index(key).index.isin(table.set_index(key).index)], table])
    path.parent.mkdir(parents=True, exist_ok=True)
    table = table.sort_values(key).reset_index(drop=True)
    table.to_csv(path, index=False)
    return table
