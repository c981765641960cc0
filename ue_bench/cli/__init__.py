"""The ``ue-bench`` command line.

Every flag is validated (plugins resolved, parameters bounded, output folder writable) before any
work starts or any file is written; bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from pathlib import Path

from ue_bench import registry

from ue_bench.store import imports as import_cache
from ue_bench.store.atomic import lock_path, locked, write_json
from ue_bench.engine.device import auto_device
from ue_bench.errors import UsageError, disk_error
from ue_bench.params import describe
from ue_bench.store.paths import default_cache, prepare_writable
from ue_bench.bench.runconfig import build_run_config


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise UsageError(f"{flag}: expected non-negative integers, got {text!r}")
    return values


#: Seeds must fit every RNG they seed (numpy, torch, Python): 32 bits.
MAX_SEED = 2**32 - 1


def _ratio_list(text: str, flag: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"{flag}: expected comma-separated fractions, got {text!r}") from None
    if not values or any(not 0.0 < v <= 1.0 for v in values):
        raise UsageError(f"{flag}: each poison ratio must be in (0, 1], got {text!r}")
    return values


def check_cells(cells, loaded) -> None:
    """Refuse, before anything runs, values a plugin cannot honour on this data: a poison ratio that
    protects no image, an attack's or surrogate's batch larger than the protected subset it works on,
    a victim or surrogate whose image tower does not fit the data's resolution, and the upper bound
    ``surrogate_init=true`` on a victim of another architecture than a surrogate it is paired with."""
    from ue_bench.bench import stages
    from ue_bench.bench.matrix import dataset_key
    inits = set()
    for cell in cells:
        data = loaded[dataset_key(cell.dataset)]
        n, label = len(data.train), cell.dataset.label()
        for flag, model in (("--victims", cell.victim), ("--surrogates", cell.surrogate)):
            problem = model.resolution_problem(data.train.resolution) if model is not None else None
            if problem:
                raise UsageError(f"{flag} {model.label()}: {problem} (the images of --dataset {label})")
        init = (cell.victim.label(), data.train.resolution)
        if cell.victim.params.init and init not in inits:  # an unreadable or unfitting checkpoint
            inits.add(init)                                # is refused now, not by every cell
            cell.victim.create_model(data.train.resolution, "cpu")
        sur = cell.surrogate
        if cell.victim.params.surrogate_init and sur is not None and sur.arch != cell.victim.arch:
            raise UsageError(f"--victims {cell.victim.label()}: surrogate_init=true shares the surrogate's initial "
                             f"weights, which needs the surrogate's architecture, but --surrogates "
                             f"{sur.label()} is {sur.arch} and the victim {cell.victim.arch}")
        if cell.attack.is_clean:
            continue
        k = len(stages.poisoned_indices(n, cell.poison_ratio, cell.seed))
        if k == 0:
            raise UsageError(f"--poison-ratio {cell.poison_ratio:g} protects 0 of the {n} train images of "
                             f"--dataset {label}; give a larger ratio")
        where = f"the {k} protected images (--poison-ratio {cell.poison_ratio:g} of {n} in --dataset {label})"
        batch = getattr(cell.attack.params, "batch_size", None)
        if batch is not None and batch > k:
            raise UsageError(f"--attacks {cell.attack.label()}: batch_size {batch} is larger than {where}")
        if cell.surrogate is not None and cell.surrogate.params.batch_size > k:
            raise UsageError(f"--surrogates {cell.surrogate.label()}: batch_size {cell.surrogate.params.batch_size} "
                             f"is larger than {where}, which the attack {cell.attack.name} trains it on")


def cmd_list(args: argparse.Namespace) -> int:
    """Every registered plugin with its summary (and parameters with ``-v``); broken plugins are listed
    last per family with their entry point, distribution and error, and do not stop the listing."""
    families = [args.family] if args.family else list(registry.FAMILIES)
    for family in families:
        print(f"{family}:")
        broken = registry.broken(family)
        for name in registry.usable(family):
            cls = registry.get(family, name)
            print(f"  {name:<16} {cls.summary()}")
            if args.verbose:
                for p in describe(cls.Params):
                    bounds = f" [{p['lo']}, {p['hi']}]" if p["lo"] is not None or p["hi"] is not None else ""
                    choices = f" one of {list(p['choices'])}" if p["choices"] else ""
                    print(f"      {p['name']}: {p['type']} = {p['default']!r}{bounds}{choices}  {p['help']}")
        for b in broken:
            print(f"  {b.entry.name:<16} BROKEN: {b.error}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        return _run(args, stack)


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    from ue_bench.bench.matrix import dataset_key, plan
    from ue_bench.bench.render import build_report, render_text
    from ue_bench.results import write_results_csv
    from ue_bench.bench.runner import run_cells

    flags = {"dataset": args.dataset, "attacks": args.attacks, "surrogates": args.surrogates,
             "defenses": args.defenses, "victims": args.victims, "seeds": args.seeds,
             "poison_ratio": args.poison_ratio, "device": args.device, "executor": args.executor,
             "threads": args.threads}
    cfg = build_run_config(flags, args.config, args.preset)
    datasets = cfg.plugins("dataset")
    attacks = cfg.plugins("attacks")
    surrogates = cfg.plugins("surrogates")
    defenses = cfg.plugins("defenses")
    if args.victim_init and not Path(args.victim_init).is_file():
        raise UsageError(f"--victim-init: {args.victim_init} is not a file (expected an open_clip state dict)")
    victims = cfg.plugins("victims", {"init": args.victim_init} if args.victim_init else None)
    seeds = _int_list(str(cfg.values["seeds"]), "--seeds")
    if max(seeds) > MAX_SEED:
        raise UsageError(f"--seeds: each seed must be at most {MAX_SEED} (2**32 - 1), got {max(seeds)}")
    ratios = _ratio_list(str(cfg.values["poison_ratio"]), "--poison-ratio")
    executor = str(cfg.values["executor"])
    if executor not in ("local", "ray"):
        raise UsageError(f"--executor: expected 'local' or 'ray', got {executor!r}")
    threads = cfg.values["threads"]
    threads = _int_list(str(threads), "--threads")[0] if threads not in (None, "") else None
    if threads == 0:
        raise UsageError("--threads: expected a positive integer, got 0")
    out = prepare_writable(Path(args.out) if args.out else Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
    cache = prepare_writable(Path(args.cache) if args.cache else default_cache(), "--cache")
    device = auto_device(str(cfg.values["device"]))
    cells = plan(datasets, attacks, surrogates, defenses, victims, seeds, ratios)
    # imports of real datasets go under --cache, and are published only once the run is accepted
    stack.enter_context(import_cache.using_root(cache))
    stack.enter_context(import_cache.decoding_with(threads))
    staging = stack.enter_context(import_cache.staged())
    loaded = {dataset_key(ds): ds.load() for ds in datasets}
    for ds in datasets:
        label, data = ds.label(), loaded[dataset_key(ds)]
        if len(data.test) == 0:
            raise UsageError(f"--dataset {label}: the test split is empty; retrieval needs test pairs "
                             f"(give test_path or a test_fraction above 0)")
        for plugin in [*victims, *surrogates]:
            if plugin.params.batch_size > len(data.train):
                raise UsageError(f"--victims/--surrogates {plugin.label()}: batch_size {plugin.params.batch_size} "
                                 f"is larger than the training split of --dataset {label} ({len(data.train)} images)")
    check_cells(cells, loaded)
    if args.dry_run:
        from ue_bench.bench.dry_run import describe_plan
        if threads:  # the calibration's steps are timed with the threads the cells will run with
            import torch
            torch.set_num_threads(threads)
        print(describe_plan(cells, loaded, out, cache, device))
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    # one run per run directory: a second run (or a report) of the same --out is refused until it ends
    stack.enter_context(locked(lock_path(out), f"--out {out}"))
    staging.commit()
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "run.json", {"argv": sys.argv, "config": cfg.values, "params": cfg.params,
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


class _Parser(argparse.ArgumentParser):
    """argparse, its errors ending in the same ``ue-bench: error:`` line as every other refusal."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"ue-bench: error: {self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ue-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered plugins")
    p.add_argument("family", nargs="?", choices=registry.FAMILIES)
    p.add_argument("-v", "--verbose", action="store_true", help="also list each plugin's parameters")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run a protect → defend → train → evaluate matrix")
    p.add_argument("-c", "--config", help="TOML file with the same keys as these flags (flags override it)")
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

    from ue_bench.cli.plugin import add_plugin_parser
    from ue_bench.cli.protect import add_protect_parser
    from ue_bench.bench.render import add_report_parser
    add_report_parser(sub)
    add_protect_parser(sub)
    add_plugin_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("ue_bench").setLevel(logging.INFO)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"ue-bench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if not disk_error(exc):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"ue-bench: error: {exc.strerror or exc}{where}; finished artifacts and cells are kept, "
              f"rerun the same command once there is space", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
