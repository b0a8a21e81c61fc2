"""Shared by the benchmark scripts: timing and the machine's measured compute peak."""

import time

import torch


def timed(fn) -> float:
    """Wall time of one call, in seconds."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def best_time(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    fn()
    return min(timed(fn) for _ in range(repeats))


def matmul_peak(sizes=(1024, 2048, 3072), repeats: int = 5) -> float:
    """Best float32 GFLOP/s of square matmuls: the practical compute peak of this machine."""
    best = 0.0
    for n in sizes:
        a, b = torch.rand(n, n), torch.rand(n, n)
        best = max(best, 2 * n**3 / best_time(lambda a=a, b=b: a @ b, repeats) / 1e9)
    return best
