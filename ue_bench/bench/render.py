"""Rendering the report plugins over run directories: every registered plugin, every requested format,
from ``cells/*.json`` alone.

``ue-bench report`` (:mod:`ue_bench.cli.report`) and ``ue-bench run`` call the same
:func:`build_report`; ``run`` also prints the plugins' ``text`` format (:func:`render_text`).

Files go to ``RUN_DIR/report/`` (or ``--out``, which a report of several run directories needs):
``report.md`` and ``report.html`` (the plugins' sections joined in ``order``), and ``<plugin>.csv``,
``<plugin>.tex``, ``<plugin>.png``. The HTML page is self-contained:
inline CSS, figures as data URIs, provenance in ``<details>`` elements — no script, no external asset,
so it opens offline and can be archived as one file.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from ue_bench import registry
from ue_bench.store.atomic import write_file
from ue_bench.errors import UsageError
from ue_bench.report import EXTENSIONS, FORMATS, Report
from ue_bench.results import RunResults, load_run

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem auto;max-width:1400px;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}h3{font-size:1rem}
.note{color:#555;max-width:75ch}.scroll{overflow-x:auto}
table.report{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:.5rem 0}
table.report th,table.report td{border-bottom:1px solid #e5e5e5;padding:.25rem .5rem;text-align:right;white-space:nowrap;vertical-align:top}
table.report th{background:#f6f6f6;text-align:center}
table.report td:nth-child(-n+4){text-align:left}
table.leaderboard td:last-child{text-align:left;white-space:normal;min-width:14rem}
img{max-width:100%;border:1px solid #eee}
details.cell{margin:.15rem 0}details summary{cursor:pointer}
table.prov{border-collapse:collapse;margin:.3rem 0 .6rem 1rem;font-size:12px}
table.prov th{text-align:left;vertical-align:top;padding-right:1rem;color:#555}
pre{margin:0;font-size:12px;white-space:pre-wrap;word-break:break-all;max-width:90ch}
"""


def plugins() -> list[Report]:
    """Every registered report plugin, in page order (then by name)."""
    found = [registry.create("reports", name) for name in registry.usable("reports")]
    return sorted(found, key=lambda p: (p.order, p.name))


def parse_formats(text: str) -> list[str]:
    wanted = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in wanted if f not in FORMATS]
    if bad or not wanted:
        raise UsageError(f"--format: expected a comma-separated subset of {','.join(FORMATS)}, got {text!r}")
    return wanted


def html_page(run: RunResults, sections: list[str]) -> str:
    title = f"ue-bench report: {run.name}"
    ok, failed = len(run.ok), len(run.failed)
    sources = ", ".join(f"<code>{html.escape(str(d))}/cells/*.json</code>" for d in run.run_dirs)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(str(title))}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(str(title))}</h1><p class='note'>{ok} successful and {failed} failed cells, "
            f"rebuilt from {sources}.</p>"
            + "".join(sections) + "</body></html>\n")


def build_report(run_dirs: Path | str | Sequence[Path | str], fmts: Sequence[str] = FORMATS,
                 out_dir: Path | None = None) -> list[Path]:
    """Render every plugin in every requested format it supports; return the files written.
    Markdown links each figure's PNG, so ``md`` also writes the PNGs. The report of several run
    directories belongs to none of them, so it needs ``out_dir``."""
    run = load_run(run_dirs)
    if out_dir is None and len(run.run_dirs) > 1:
        raise UsageError("--out: required when reporting several run directories")
    out = Path(out_dir) if out_dir else run.run_dirs[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    written, sections = [], {"md": [], "html": []}
    file_formats = [f for f in FORMATS if f in fmts or (f == "png" and "md" in fmts)]
    for plugin in plugins():
        for fmt in plugin.formats:
            if fmt in sections and fmt in fmts:
                sections[fmt].append(plugin.render(run, fmt))
            elif fmt in file_formats and fmt not in sections:
                content = plugin.render(run, fmt)
                if content:
                    path = out / f"{plugin.name}.{EXTENSIONS[fmt]}"
                    write_file(path, content)
                    written.append(path)
    if "md" in fmts:
        text = f"# ue-bench report: {run.name}\n\n" + "\n".join(s for s in sections["md"] if s)
        write_file(out / "report.md", text)
        written.append(out / "report.md")
    if "html" in fmts:
        write_file(out / "report.html", html_page(run, sections["html"]))
        written.append(out / "report.html")
    return written


def render_text(run_dirs: Path | Sequence[Path]) -> str:
    """The ``text`` format of every report plugin that has one, for the terminal."""
    run = load_run(run_dirs)
    parts = [plugin.render(run, "text") for plugin in plugins() if "text" in plugin.formats]
    return "\n\n".join(p for p in parts if p)
