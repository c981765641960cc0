"""``ue-bench report RUN_DIR [RUN_DIR ...] [--format md,csv,latex,html,png] [--out DIR]``: rebuild every
report of run directories from their cells alone (:func:`ue_bench.bench.render.build_report`), holding
a shared lock on each run directory (refused while a ``run`` writes it) and the lock of ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from ue_bench.bench.render import build_report, parse_formats
from ue_bench.report import FORMATS
from ue_bench.store.atomic import lock_path, locked


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``report`` sub-command on the ``ue-bench`` parser's subparsers."""
    p = subparsers.add_parser("report", help="rebuild tables, figures and the leaderboard of run directories")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="a run directory (holds cells/*.json); several are reported as one run")
    p.add_argument("--format", default=",".join(FORMATS),
                   help=f"comma-separated outputs among {','.join(FORMATS)} (default: all)")
    p.add_argument("--out", help="where to write the reports (default: RUN_DIR/report; required with several)")
    p.set_defaults(func=cmd_report)
    return p


def cmd_report(args: argparse.Namespace) -> int:
    """Exit code 0; bad input raises ``UsageError`` (exit code 2 in :func:`ue_bench.cli.main`), as does a
    run directory that a ``ue-bench run`` is writing (its lock is held) or an ``--out`` that another
    report is writing."""
    fmts = parse_formats(args.format)
    with contextlib.ExitStack() as stack:
        for d in args.run_dirs:
            if Path(d).is_dir():
                stack.enter_context(locked(lock_path(Path(d)), f"run directory {d}", shared=True))
        if args.out and Path(args.out).parent.is_dir():
            stack.enter_context(locked(lock_path(Path(args.out)), f"--out {args.out}"))
        for path in build_report([Path(d) for d in args.run_dirs], fmts, Path(args.out) if args.out else None):
            print(path)
    return 0
