"""The ``ue-bench`` command line.

Every flag is validated (plugins resolved, parameters bounded, output folder writable) before any
work starts or any file is written; bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from . import registry
from .device import auto_device
from .errors import UsageError
from .params import describe


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise UsageError(f"{flag}: expected non-negative integers, got {text!r}")
    return values


def _ratio_list(text: str, flag: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"{flag}: expected comma-separated fractions, got {text!r}") from None
    if not values or any(not 0.0 < v <= 1.0 for v in values):
        raise UsageError(f"{flag}: each poison ratio must be in (0, 1], got {text!r}")
    return values


def _prepare_out(path: Path) -> Path:
    """Check ``--out`` is creatable and writable without leaving anything behind if it is not."""
    existing = next((p for p in [path, *path.parents] if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise UsageError(f"--out: {path} cannot be created ({existing} is not a directory)")
    probe_dir = path if path.exists() else existing
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise UsageError(f"--out: {path} is not writable (no write permission on {probe_dir})")
    return path


def cmd_list(args: argparse.Namespace) -> int:
    families = [args.family] if args.family else list(registry.FAMILIES)
    for family in families:
        print(f"{family}:")
        for name in registry.names(family):
            cls = registry.get(family, name)
            print(f"  {name:<16} {cls.summary()}")
            if args.verbose:
                for p in describe(cls.Params):
                    bounds = f" [{p['lo']}, {p['hi']}]" if p["lo"] is not None or p["hi"] is not None else ""
                    choices = f" one of {list(p['choices'])}" if p["choices"] else ""
                    print(f"      {p['name']}: {p['type']} = {p['default']!r}{bounds}{choices}  {p['help']}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .harness import Runner, plan, write_results_csv
    from .reports.retrieval_table import render_text

    datasets = registry.create_many("datasets", args.dataset, "--dataset")
    attacks = registry.create_many("attacks", args.attacks, "--attacks")
    surrogates = registry.create_many("victims", args.surrogates, "--surrogates")
    defenses = registry.create_many("defenses", args.defenses, "--defenses")
    victims = registry.create_many("victims", args.victims, "--victims")
    seeds = _int_list(args.seeds, "--seeds")
    ratios = _ratio_list(args.poison_ratio, "--poison-ratio")
    out = _prepare_out(Path(args.out) if args.out else Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
    device = auto_device(args.device)
    cells = plan(datasets, attacks, surrogates, defenses, victims, seeds, ratios)
    runner = Runner(out, device)
    for ds in datasets:
        n_train = len(runner.dataset(ds).train)
        for vic in {c.victim.label(): c.victim for c in cells}.values():
            if vic.params.batch_size > n_train:
                raise UsageError(f"--victims {vic.label()}: batch_size {vic.params.batch_size} is larger than "
                                 f"the training split of --dataset {ds.label()} ({n_train} images)")
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(cells)} cell(s) on {device}; results in {out}", file=sys.stderr)
    failed = 0
    for i, cell in enumerate(cells, 1):
        print(f"[{i}/{len(cells)}] {cell.labels()}", file=sys.stderr)
        failed += runner.run_cell(cell)["status"] != "ok"
    df = write_results_csv(out)
    print(render_text(df))
    if failed:
        print(f"ue-bench: {failed} of {len(cells)} cell(s) failed; see {out}/cells/*.json", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ue-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered plugins")
    p.add_argument("family", nargs="?", choices=registry.FAMILIES)
    p.add_argument("-v", "--verbose", action="store_true", help="also list each plugin's parameters")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run a protect → defend → train → evaluate matrix")
    p.add_argument("--dataset", default="synthetic", help="dataset plugin[:k=v,...] (default: synthetic)")
    p.add_argument("--attacks", default="none", help="comma-separated attack plugins[:k=v,...]")
    p.add_argument("--surrogates", default="tiny-rn", help="victims used by attacks as surrogates")
    p.add_argument("--defenses", default="none", help="comma-separated defense plugins[:k=v,...]")
    p.add_argument("--victims", default="tiny-rn", help="comma-separated victim plugins[:k=v,...]")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    p.add_argument("--poison-ratio", default="1.0", help="comma-separated fractions of protected train images")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--out", default=None, help="run directory (default: runs/<timestamp>)")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"ue-bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
