"""The ``ue-bench`` command line: the parser, ``list``, and :func:`main`; each other command is a
module of this package (:mod:`~ue_bench.cli.run`, :mod:`~ue_bench.cli.protect`,
:mod:`~ue_bench.cli.report`, :mod:`~ue_bench.cli.plugin`), their input checks one module
(:mod:`~ue_bench.cli.validate`). Nothing outside this package imports it.

Every flag is validated (plugins resolved, parameters bounded, output folder writable) before any
work starts or any file is written; bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ue_bench import registry
from ue_bench.errors import UsageError, disk_error
from ue_bench.params import describe


def cmd_list(args: argparse.Namespace) -> int:
    """Every registered plugin with its summary (with ``-v``, its parameters and what each preset sets);
    broken plugins are listed last per family with their entry point, distribution and error, and do not
    stop the listing. A plugin that another package provides names that package after its summary."""
    families = [args.family] if args.family else list(registry.FAMILIES)
    # one summary column for every family listed: the longest name's
    width = max([16, *(len(name) for f in families for name in registry.usable(f)),
                 *(len(b.entry.name) for f in families for b in registry.broken(f))])
    for family in families:
        print(f"{family}:")
        broken = registry.broken(family)
        names = registry.usable(family)
        for name in names:
            cls = registry.get(family, name)
            origin = registry.distribution(family, name)
            print(f"  {name:<{width}} {cls.summary()}" + ("" if origin.split()[0] == "ue-bench" else f"  [{origin}]"))
            if args.verbose:
                for p in describe(cls.Params):
                    choices = f" one of {list(p['choices'])}" if p["choices"] else ""
                    print(f"      {p['name']}: {p['type']} = {_shown(p['default'])}{_bounds(p['lo'], p['hi'])}"
                          f"{choices}  {p['help']}")
                for preset, values in sorted(cls.presets.items()):
                    shown = ",".join(f"{k}={v if isinstance(v, str) else _shown(v)}" for k, v in values.items())
                    print(f"      --preset {preset}: {shown or '(the defaults)'}")
        for b in broken:
            print(f"  {b.entry.name:<{width}} BROKEN: {b.error}")
    return 0


def _shown(value) -> str:
    """A default as ``list -v`` prints it: floats to 6 significant digits, the rest as Python writes them."""
    return f"{value:.6g}" if isinstance(value, float) else repr(value)


def _bounds(lo, hi) -> str:
    """`` [lo, hi]``, `` ≥ lo`` or `` ≤ hi`` (nothing without bounds)."""
    if lo is not None and hi is not None:
        return f" [{_shown(lo)}, {_shown(hi)}]"
    if lo is not None:
        return f" ≥ {_shown(lo)}"
    return f" ≤ {_shown(hi)}" if hi is not None else ""


class _Parser(argparse.ArgumentParser):
    """argparse, its errors the same single ``ue-bench: error:`` line as every other refusal (naming the
    sub-command, if any; ``--help`` gives the usage)."""

    def error(self, message: str):
        command = self.prog.removeprefix("ue-bench").strip()
        self.exit(2, f"ue-bench: error: {command + ': ' if command else ''}{message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ue-bench", description="ue-bench: unlearnable-example attacks on "
                     "CLIP, benchmarked (protect, defend, train, evaluate); 'ue-bench COMMAND --help' for each command")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered plugins")
    p.add_argument("family", nargs="?", choices=registry.FAMILIES)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also list each plugin's parameters and what each --preset sets")
    p.set_defaults(func=cmd_list)

    from ue_bench.cli.plugin import add_plugin_parser
    from ue_bench.cli.protect import add_protect_parser
    from ue_bench.cli.report import add_report_parser
    from ue_bench.cli.run import add_run_parser
    add_run_parser(sub)
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
    except BrokenPipeError:  # the reader of stdout left (`ue-bench list | head`): stop as a pipe's writer does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 1
    except OSError as exc:
        if not disk_error(exc):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"ue-bench: error: {exc.strerror or exc}{where}; finished artifacts and cells are kept, "
              f"rerun the same command once there is space", file=sys.stderr)
        return 1
