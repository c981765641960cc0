"""``ue-bench plugin new`` and ``ue-bench plugin check``: the plugin author's commands.

``plugin new FAMILY NAME --dir DIR`` writes an installable package with a working plugin
(:mod:`ue_bench.authoring.scaffold`). ``plugin check NAME [--family F] [--param k=v ...]`` runs the conformance
checks of the plugin's family (:func:`ue_bench.testing.check_plugin`, on the ``tiny`` preset, CPU, one
thread) and prints one line per check, then a summary with the time; exit 0 when every check passed,
1 when one failed, 2 for bad input (unknown or ambiguous name, bad ``--param``). The guide is
``docs/plugins.md``.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import time
from pathlib import Path

import torch

from ue_bench import registry
from ue_bench.errors import UsageError
from ue_bench.params import build_params
from ue_bench.authoring.scaffold import new_plugin
from ue_bench.cli import validate


def add_plugin_parser(subparsers) -> None:
    p = subparsers.add_parser("plugin", help="write a new plugin package, or check a plugin against its contract")
    sub = p.add_subparsers(dest="plugin_command", required=True)

    new = sub.add_parser("new", help="write an installable package with a working plugin of FAMILY")
    new.add_argument("family", help=f"one of {', '.join(registry.FAMILIES)}")
    new.add_argument("name", help="the plugin's name (its entry point, what --attacks etc. take)")
    new.add_argument("--dir", required=True, help="folder for the package (must not exist or be empty)")
    new.set_defaults(func=cmd_new)

    check = sub.add_parser("check", help="run the harness's conformance checks on a plugin (tiny preset, CPU)")
    check.add_argument("name", help="a registered plugin name")
    check.add_argument("--family", choices=registry.FAMILIES, help="needed when NAME exists in several families")
    check.add_argument("--param", action="append", default=[], metavar="K=V",
                       help="a parameter on top of the plugin's tiny preset (repeatable)")
    check.add_argument("--threads", help="CPU threads (default: all; an attack's checks use one)")
    check.set_defaults(func=cmd_check)


def cmd_new(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    files = new_plugin(args.family, args.name, folder)
    for path in files:
        print(path)
    print(f"next: pip install -e {folder} && ue-bench plugin check {args.name} --family {args.family}",
          file=sys.stderr)
    return 0


def family_of(name: str, family: str | None) -> str:
    """The family of plugin ``name``: ``family`` if given, else the only family that has the name.

    Raises :class:`UsageError` for a name no family has, or one several have without ``family``."""
    if family is not None:
        if name not in registry.names(family):
            registry.get(family, name)  # raises with the nearest known name
        return family
    found = [f for f in registry.FAMILIES if name in registry.names(f)]
    if not found:
        every = [n for f in registry.FAMILIES for n in registry.names(f)]
        hint = difflib.get_close_matches(name, every, n=1)
        raise UsageError(f"no plugin is named {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                         + "; `ue-bench list` shows every name, and a newly declared entry point needs "
                         "`pip install -e` of its package again")
    if len(found) > 1:
        raise UsageError(f"{name!r} is a plugin of several families ({', '.join(found)}); "
                         f"say which with --family, e.g. --family {found[0]}")
    return found[0]


def _params(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param: expected K=V, got {pair!r}")
        values[key.strip()] = value.strip()
    return values


def cmd_check(args: argparse.Namespace) -> int:
    from ue_bench.testing import PRESET, check_plugin

    family = family_of(args.name, args.family)
    params = _params(args.param)
    threads = validate.threads(args.threads)
    if threads:
        torch.set_num_threads(threads)
    try:
        cls = registry.get(family, args.name)
    except UsageError:
        cls = None  # a broken plugin: check_plugin reports it as a failed "loads" check
    if cls is not None:
        build_params(f"{family[:-1]} {args.name!r}", cls.Params, {**cls.presets.get(PRESET, {}), **params})
    start = time.perf_counter()
    checks = check_plugin(family, args.name, params)
    for check in checks:
        print(check.line())
    failed = sum(not c.passed for c in checks)
    print(f"{family}:{args.name}: {len(checks) - failed} of {len(checks)} checks passed, {failed} failed, "
          f"in {time.perf_counter() - start:.1f} s (preset {PRESET}, cpu)")
    return 1 if failed else 0
