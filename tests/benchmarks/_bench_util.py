"""Helpers shared by the ratio benchmarks: one thread, interleaved rounds, medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def one_thread() -> None:
    torch.set_num_threads(1)


def interleaved(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each function over ``rounds`` rounds, run A B C A B C … so that the load of a
    shared machine falls on all of them alike (every comparison is a ratio within one process)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def report(title: str, lines: dict[str, object]) -> None:
    print(f"\n[{title}] " + "; ".join(f"{k} {v}" for k, v in lines.items()), flush=True)
