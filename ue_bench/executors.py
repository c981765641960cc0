"""Where cells run: in this process (``local``) or as Ray tasks (``ray``).

Both executors go through the same :class:`~ue_bench.harness.Runner`, the same artifact store and the
same per-cell JSON files, so a matrix gives the same ``results.csv`` whichever runs it. With Ray the
run and cache folders must be on a path every worker sees (a shared file system on a cluster).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import torch

from . import import_cache, stages
from .data import PairDataset
from .device import auto_device
from .errors import UsageError
from .harness import Cell, Runner, dataset_key

log = logging.getLogger("ue_bench.executors")


def run_local(cells: list[Cell], out: Path, cache: Path, device: str, threads: int | None,
              loaded: dict[str, PairDataset]) -> list[dict[str, Any]]:
    if threads:
        torch.set_num_threads(threads)
    runner = Runner(out, cache, auto_device(device), loaded)
    results = []
    for i, cell in enumerate(cells, 1):
        print(f"[{i}/{len(cells)}] {cell.labels()}", file=sys.stderr)
        results.append(runner.run_cell(cell))
    return results


def _remote_protect(cell: Cell, out: str, cache: str, device: str, threads: int) -> None:
    torch.set_num_threads(threads)
    with import_cache.using_root(cache):  # a worker loading a real dataset reads its import from --cache
        Runner(Path(out), Path(cache), auto_device(device)).protect_only(cell)


def _remote_cell(cell: Cell, out: str, cache: str, device: str, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    with import_cache.using_root(cache):
        return Runner(Path(out), Path(cache), auto_device(device)).run_cell(cell)


def run_ray(cells: list[Cell], out: Path, cache: Path, device: str, threads: int | None,
            address: str | None, loaded: dict[str, PairDataset]) -> list[dict[str, Any]]:
    """Protections first (one task per distinct protection, so none is built twice), then one task
    per cell. Each task asks for ``threads`` CPUs and, when the cluster has GPUs, one GPU."""
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'ue-bench[ray]'") from None
    threads = threads or 1
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": max(threads, torch.get_num_threads())}))
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    opts = {"num_cpus": threads, "num_gpus": gpus, "max_retries": 0}
    protect = ray.remote(_remote_protect).options(**opts)
    run = ray.remote(_remote_cell).options(**opts)
    args = (str(out.resolve()), str(cache.resolve()), device, threads)
    distinct = {}
    for cell in cells:
        keys = stages.stage_keys(cell, loaded[dataset_key(cell.dataset)])
        distinct.setdefault(keys["protection"], cell)
    ray.get([protect.remote(c, *args) for c in distinct.values()])
    refs = [run.remote(c, *args) for c in cells]
    results = []
    for i, ref in enumerate(refs, 1):
        results.append(ray.get(ref))
        print(f"[{i}/{len(cells)}] {cells[i - 1].labels()} {results[-1]['status']}", file=sys.stderr)
    return results
