"""``ue-bench report RUN_DIR [RUN_DIR ...] [--format md,csv,latex,html,png] [--out DIR]``: rebuild every
report of a run directory from its ``cells/*.json`` alone (``ue-bench run`` calls the same
``build_report``), or of several run directories read as one run."""

from __future__ import annotations

import argparse
from pathlib import Path

from .base import FORMATS
from .build import build_report, parse_formats


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
    """Exit code 0; bad input raises ``UsageError`` (exit code 2 in ``ue_bench.cli.main``)."""
    fmts = parse_formats(args.format)
    for path in build_report([Path(d) for d in args.run_dirs], fmts, Path(args.out) if args.out else None):
        print(path)
    return 0
