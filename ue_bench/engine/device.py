"""Device choice: CUDA with bf16 autocast when present, else the CPU in fp32; timing a step on a device."""

from __future__ import annotations

import contextlib
import re
import statistics
import time
from collections.abc import Callable

import torch

from ue_bench.errors import UsageError


def auto_device(requested: str = "auto", flag: str = "--device") -> torch.device:
    """``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; anything else, or a
    CUDA device this machine does not have, is a :class:`UsageError` naming ``flag``."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    match = re.fullmatch(r"(cpu|cuda)(?::(\d+))?", requested)
    if not match or (match[1] == "cpu" and match[2] is not None):
        raise UsageError(f"{flag}: expected auto, cpu, cuda or cuda:N, got {requested!r}")
    if match[1] == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(match[2] or 0)
        if index >= count:
            have = f"only {count} CUDA device(s) (cuda:0..cuda:{count - 1})" if count else "no CUDA device"
            raise UsageError(f"{flag}: {requested} asked for, but this machine has {have}")
    return torch.device(requested)


def autocast(device: torch.device):
    """bf16 autocast on CUDA (as open_clip's trainer does with --precision amp_bf16); a no-op on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{torch.get_num_threads()} threads"


#: The largest batch timed on the CPU; larger recipe batches are timed at this size and scaled linearly.
CPU_CALIBRATION_BATCH = 16


def calibration_batch(batch_size: int, device: torch.device) -> int:
    """The batch a training step is timed at for a recipe batch of ``batch_size`` on ``device`` (scaled
    linearly to ``batch_size`` by the caller)."""
    return batch_size if device.type != "cpu" else min(batch_size, CPU_CALIBRATION_BATCH)


def sync(device: torch.device) -> None:
    """Wait for ``device``'s queued work (a no-op off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_step_seconds(step: Callable[[], object], device: torch.device, steps: int = 3,
                        min_seconds: float = 0.0) -> float:
    """Median seconds of ``step()`` on ``device`` over ``steps`` calls after a warm-up one, more calls
    while the timed ones add up to less than ``min_seconds`` (short steps are noisy)."""
    times: list[float] = []
    while len(times) < steps + 1 or sum(times[1:]) < min_seconds:
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return float(statistics.median(times[1:]))
