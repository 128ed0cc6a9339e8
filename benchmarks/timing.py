"""Timing helper shared by the benchmark scripts."""

import time

import jax


def best_of(fn, repeats: int = 3) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn`` (after one warm-up call that
    compiles), waiting for the device each time."""
    jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best
