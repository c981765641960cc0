"""Where cells run: in this process (``local``) or as Ray tasks (``ray``), through the same code.

Both executors call :meth:`Runner.run_cell` against the same artifact store and write the same per-cell
JSON files, so a matrix gives the same ``results.csv`` whichever runs it. A finished cell (its JSON says
``ok``) is skipped, so re-running the same command after a crash resumes where it stopped; a failing cell
is recorded with its error and traceback and the matrix goes on. With Ray the run and cache folders
must be on a path every worker sees (a shared file system on a cluster).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch


from ue_bench.bench import stages
from ue_bench.store.atomic import write_json
from ue_bench.store.artifacts import ArtifactStore
from ue_bench.data import PairDataset
from ue_bench.dataset import Dataset
from ue_bench.engine.device import auto_device
from ue_bench.errors import UsageError, disk_error
from ue_bench.bench.matrix import Cell, dataset_key
from ue_bench.bench.environment import environment
from ue_bench.results import cell_finished, cell_path, cell_title

log = logging.getLogger("ue_bench.bench.runner")


class Runner:
    """Runs cells of one run directory against one artifact store, on one device."""

    def __init__(self, out_dir: Path, cache_dir: Path, device: torch.device,
                 datasets: dict[str, PairDataset] | None = None, threads: int | None = None) -> None:
        """``datasets``: already loaded datasets by :func:`~ue_bench.bench.matrix.dataset_key`; one that
        is not is loaded through the store's import stage, decoding with ``threads`` processes."""
        self.out_dir = out_dir
        self.device = device
        self.store = ArtifactStore(cache_dir)
        self.imports = self.store.imports(workers=threads)
        self._datasets: dict[str, PairDataset] = dict(datasets or {})
        self._env = environment(device)

    def dataset(self, plugin: Dataset) -> PairDataset:
        key = dataset_key(plugin)
        if key not in self._datasets:
            self._datasets[key] = plugin.load(self.imports)
        return self._datasets[key]

    def protect(self, cell: Cell) -> stages.ProtectionArtifact:
        return stages.protect(self.store, cell.attack, cell.surrogate, self.dataset(cell.dataset).train,
                              cell.seed, cell.poison_ratio, self.device)

    @staticmethod
    def publication(cell: Cell) -> dict[str, Any]:
        """How the cell's protected images are published (the keyword arguments of
        :func:`~ue_bench.bench.stages.publish_split`): with the dataset's ``publish=original``, as the
        trainer's view of the full-size files ``ue-bench protect`` writes with the dataset's lift
        settings (:meth:`~ue_bench.dataset.Dataset.lift`, seeded by the cell's seed, as ``protect
        --seed``; the originals listed only if that view must be built); else (``{}``) the protected import."""
        if not cell.dataset.publishes_originals():
            return {}
        return {"originals": lambda: cell.dataset.originals()[0], "eps": cell.attack.budget(),
                "lift": cell.dataset.lift(cell.seed)}

    def protect_only(self, cell: Cell) -> None:
        """Build (or find) the cell's protection; errors surface again, recorded, in :meth:`run_cell`."""
        try:
            if cell_finished(self.out_dir, cell.cell_id, self.dataset(cell.dataset).fingerprint()):
                return
            self.protect(cell)
        except Exception as exc:
            log.error("protection for cell %s failed: %s", cell.cell_id, exc)

    def finished(self, cell: Cell) -> bool:
        """Whether the run directory holds the cell's record, made from the same data (a rerun reads it)."""
        return cell_finished(self.out_dir, cell.cell_id, self.dataset(cell.dataset).fingerprint())

    def run_cell(self, cell: Cell) -> dict[str, Any]:
        """The cell's result record (see the README's *Run directory*), written to ``cells/<id>.json``."""
        path = cell_path(self.out_dir, cell.cell_id)
        if self.finished(cell):
            return json.loads(path.read_text())
        start = time.perf_counter()
        result: dict[str, Any] = {"cell_id": cell.cell_id, "config": cell.config(), "labels": cell.labels(),
                                  "baseline": cell.baseline()}
        try:
            data = self.dataset(cell.dataset)
            protection = self.protect(cell)
            publication = self.publication(cell)
            published = stages.publish_split(data.train, protection, **publication)
            defended = stages.defend(self.store, cell.defense, cell.seed, protection.key, published)
            trained = stages.train(self.store, cell.victim, cell.defense, cell.seed, defended, self.device,
                                   desc=f"{cell.victim.name}|{cell.attack.name}|{cell.defense.name}", test=data.test)
            metrics, eval_s = stages.evaluate(cell.victim, trained.model, data.test, self.device)
            result.update(
                status="ok",
                metrics=metrics,
                protection={"key": protection.key, **protection.info},
                defense={"key": defended.key, "defend_s": defended.defend_s},
                train={"key": trained.key, **{k: v for k, v in trained.info.items() if k != "curve"},
                       "eval_s": eval_s},
                curve=trained.info.get("curve"),
                hashes={"dataset": data.fingerprint(), "published_train": published.fingerprint(),
                        "trained_on": trained.info["trained_on_sha256"], "protection": protection.key,
                        "defended": defended.key, "victim": trained.key,
                        "victim_init_sha256": trained.info.get("victim_init_sha256"),
                        "surrogate_init_sha256": (protection.info.get("attack_meta") or {}).get(
                            "surrogate_init_sha256")},
            )
            if publication:  # the lift the full-size copy was made with, defaults included
                result["publication"] = {"publish": "original", "eps": publication["eps"],
                                         "lift": asdict(publication["lift"])}
        except Exception as exc:  # a failing cell is recorded and the matrix goes on
            if disk_error(exc):  # ... unless the disk is full: every later cell would fail the same way
                raise
            log.error("cell %s failed: %s", cell.cell_id, exc)
            result.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        result["wall_s"] = time.perf_counter() - start
        result["provenance"] = {**self._env, "seed": cell.seed}
        write_json(path, result)
        return result


def run_cells(cells: list[Cell], out: Path, cache: Path, device: str, threads: int | None, executor: str,
              loaded: dict[str, PairDataset], ray_address: str | None = None) -> list[dict[str, Any]]:
    """Run ``cells`` with the ``local`` or ``ray`` executor; the result record of each, in order."""
    if executor == "ray":
        return _run_ray(cells, out, cache, device, threads, ray_address, loaded)
    if threads:
        torch.set_num_threads(threads)
    runner = Runner(out, cache, auto_device(device), loaded, threads)
    results = []
    for i, cell in enumerate(cells, 1):
        done = runner.finished(cell)
        print(f"[{i}/{len(cells)}] {cell_title(cell.labels())}" + (" · finished before" if done else ""),
              file=sys.stderr)
        results.append(runner.run_cell(cell))
        print(f"[{i}/{len(cells)}] {outcome(results[-1])}", file=sys.stderr)
    return results


def outcome(result: dict[str, Any]) -> str:
    """A cell record in a few words for the progress lines: its status, i2t R@1 and mean recall on the
    clean test split and its wall time; for a failed cell, where its record is (its error is logged once,
    when it fails)."""
    if result["status"] != "ok":
        return f"{result['status']} · {result['wall_s']:.0f} s · see cells/{result['cell_id']}.json"
    m = result["metrics"]
    return f"ok · i2t R@1 {m['i2t_r1']:.3f} · mean recall {m['mean_recall']:.3f} · {result['wall_s']:.0f} s"


def _remote(method: str, cell: Cell, out: str, cache: str, device: str, threads: int):
    torch.set_num_threads(threads)  # a worker loading a real dataset reads its import from --cache
    return getattr(Runner(Path(out), Path(cache), auto_device(device), threads=threads), method)(cell)


def _run_ray(cells: list[Cell], out: Path, cache: Path, device: str, threads: int | None,
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
    task = ray.remote(_remote).options(num_cpus=threads, num_gpus=gpus, max_retries=0)
    args = (str(out.resolve()), str(cache.resolve()), device, threads)
    distinct = {}
    for cell in cells:
        train = loaded[dataset_key(cell.dataset)].train
        key = stages.protection_key(train, cell.attack, cell.surrogate, cell.seed, cell.poison_ratio)
        distinct.setdefault(key, cell)
    ray.get([task.remote("protect_only", c, *args) for c in distinct.values()])
    refs = [task.remote("run_cell", c, *args) for c in cells]
    results = []
    for i, ref in enumerate(refs, 1):
        results.append(ray.get(ref))
        print(f"[{i}/{len(cells)}] {cell_title(cells[i - 1].labels())} · {outcome(results[-1])}", file=sys.stderr)
    return results
