"""``ue-bench run``: the protect → defend → train → evaluate matrix of a run configuration.

The flags (or a TOML run file, or a preset) name the plugins of each axis
(:mod:`ue_bench.bench.runconfig`); every value is checked, the datasets loaded and the cells checked
against them (:mod:`ue_bench.cli.validate`) before anything is written. ``--dry-run`` stops there and
prints the plan; otherwise the cells run (:mod:`ue_bench.bench.runner`) and the reports are rendered.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch

from ue_bench.bench.dry_run import describe_plan
from ue_bench.bench.matrix import dataset_key, plan
from ue_bench.bench.render import build_report, render_text
from ue_bench.bench.runconfig import PATHS, build_run_config
from ue_bench.bench.runner import run_cells
from ue_bench.cli import validate
from ue_bench.errors import UsageError
from ue_bench.results import write_results_csv
from ue_bench.store.artifacts import ArtifactStore
from ue_bench.store.atomic import lock_path, locked, write_json
from ue_bench.store.paths import default_cache, prepare_writable


def add_run_parser(subparsers) -> None:
    """Register the ``run`` sub-command on the ``ue-bench`` parser's subparsers."""
    p = subparsers.add_parser("run", help="run a protect → defend → train → evaluate matrix")
    p.add_argument("-c", "--config", help="TOML file with the same keys as these flags, out and cache "
                   "included (relative to the file's folder); flags override it")
    p.add_argument("--preset", help="packaged preset: tiny, smoke (default) or paper")
    p.add_argument("--dataset", help="dataset plugin[:k=v,...] (default: synthetic)")
    p.add_argument("--attacks", help="comma-separated attack plugins[:k=v,...] (default: none)")
    p.add_argument("--surrogates", help="victims the attacks optimise against (default: tiny-rn)")
    p.add_argument("--defenses", help="comma-separated defense plugins[:k=v,...] (default: none)")
    p.add_argument("--victims", help="comma-separated victim plugins[:k=v,...] (default: tiny-rn)")
    p.add_argument("--victim-init", help="open_clip state-dict file every victim is fine-tuned from")
    p.add_argument("--seeds", help="comma-separated seeds (default: 0)")
    p.add_argument("--poison-ratio", help="comma-separated fractions of protected train images (default: 1.0)")
    p.add_argument("--device", help="auto (CUDA when present; default), cpu, cuda, cuda:N")
    p.add_argument("--executor", help="local (default) or ray")
    p.add_argument("--ray-address", help="address of a running Ray cluster (default: start a local one)")
    p.add_argument("--threads", help="CPU threads per cell, and processes that decode an import "
                   "(default: all for local, at most 8 decoding; 1 per Ray task)")
    p.add_argument("--out", help="run directory (default: runs/<timestamp>); rerun with it to resume")
    p.add_argument("--cache", help="artifact store (default: $UE_BENCH_CACHE or ~/.cache/ue-bench)")
    p.add_argument("--dry-run", action="store_true", help="print the planned cells, what is cached and the estimated cost")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        return _run(args, stack)


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    flags = {"dataset": args.dataset, "attacks": args.attacks, "surrogates": args.surrogates,
             "defenses": args.defenses, "victims": args.victims, "seeds": args.seeds,
             "poison_ratio": args.poison_ratio, "device": args.device, "executor": args.executor,
             "threads": args.threads, "out": args.out, "cache": args.cache}
    cfg = build_run_config(flags, args.config, args.preset)
    datasets = cfg.plugins("dataset")
    for ds in datasets:
        validate.lift_used(ds, ds.publishes_originals(), "add publish=original to train the victims on that copy")
    attacks = cfg.plugins("attacks")
    surrogates = cfg.plugins("surrogates")
    defenses = cfg.plugins("defenses")
    if args.victim_init and not Path(args.victim_init).is_file():
        raise UsageError(f"--victim-init: {args.victim_init} is not a file (expected an open_clip state dict)")
    victims = cfg.plugins("victims", {"init": args.victim_init} if args.victim_init else None)
    seeds = validate.seeds(str(cfg.values["seeds"]), "--seeds")
    ratios = validate.ratios(str(cfg.values["poison_ratio"]), "--poison-ratio")
    executor = str(cfg.values["executor"])
    if executor not in ("local", "ray"):
        raise UsageError(f"--executor: expected 'local' or 'ray', got {executor!r}")
    threads = validate.threads(cfg.values["threads"])
    out_arg, cache_arg = cfg.values.get("out"), cfg.values.get("cache")
    out = prepare_writable(Path(out_arg) if out_arg else Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
    cache = prepare_writable(Path(cache_arg) if cache_arg else default_cache(), "--cache")
    device = validate.device(str(cfg.values["device"]))
    cells = plan(datasets, attacks, surrogates, defenses, victims, seeds, ratios)
    # imports of real datasets go under --cache, and are published only once the run is accepted
    imports = stack.enter_context(ArtifactStore(cache).imports(workers=threads, staged=True))
    loaded = {dataset_key(ds): ds.load(imports) for ds in datasets}
    validate.check_datasets(datasets, loaded, victims)
    validate.check_cells(cells, loaded)
    if args.dry_run:
        if threads:  # the calibration's steps are timed with the threads the cells will run with
            torch.set_num_threads(threads)
        print(describe_plan(cells, loaded, out if out_arg else None, cache, device))
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    # one run per run directory: a second run (or a report) of the same --out is refused until it ends
    stack.enter_context(locked(lock_path(out), f"--out {out}"))
    imports.commit()
    out.mkdir(parents=True, exist_ok=True)
    warn_foreign_cells(out, {c.cell_id for c in cells})
    matrix = {k: v for k, v in cfg.values.items() if k not in PATHS}  # what ran; where it ran is argv and sources
    write_json(out / "run.json", {"argv": sys.argv, "config": matrix, "params": cfg.params,
                                         "sources": cfg.sources, "cells": [c.cell_id for c in cells]})
    print(f"{len(cells)} cell(s) on {device}, executor {executor}; results in {out}, artifacts in {cache}",
          file=sys.stderr)
    results = run_cells(cells, out, cache, str(cfg.values["device"]), threads, executor, loaded, args.ray_address)
    write_results_csv(out, [c.cell_id for c in cells])
    print(render_text(out))
    build_report(out)
    print(f"report: {out / 'report'}", file=sys.stderr)
    failed = sum(r["status"] != "ok" for r in results)
    if failed:
        print(f"ue-bench: {failed} of {len(cells)} cell(s) failed; see {out}/cells/*.json", file=sys.stderr)
        return 1
    return 0


def warn_foreign_cells(out: Path, planned: set[str]) -> None:
    """Warn (one line) when ``out`` already holds cells this command does not plan: an earlier, different
    command's. They stay: the report and the printed table read every ``cells/*.json``, while
    ``results.csv`` and ``run.json`` describe this command only."""
    foreign = sorted(p.stem for p in (out / "cells").glob("*.json") if p.stem not in planned)
    if foreign:
        print(f"ue-bench: warning: --out {out} holds {len(foreign)} cell(s) of an earlier command that this one "
              f"does not plan ({', '.join(foreign[:3])}{', …' if len(foreign) > 3 else ''}); its report includes "
              f"them, results.csv and run.json describe this command only (give a new --out to keep them apart)",
              file=sys.stderr)
