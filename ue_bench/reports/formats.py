"""Plain writers for display tables (DataFrames of strings): Markdown, LaTeX, HTML, and the one
number format all reports share. Written here rather than with ``DataFrame.to_markdown``/``to_latex``,
which need the optional ``tabulate``/``jinja2`` packages."""

from __future__ import annotations

import html
import math

import pandas as pd

from .stats import Summary, format_summary

DASH = "—"


def value(mean: float, half: float, n: int, digits: int = 3) -> str:
    """``mean ± half`` (see ``stats.format_summary``); ``n == 0`` marks a constant such as a random-guess
    level, shown bare; a missing value is ``—``."""
    if n == 0 and not (mean is None or math.isnan(mean)):
        return f"{mean:.{digits}f}"
    return format_summary(Summary(mean, half, n), digits)


def values(df: pd.DataFrame, col: str, digits: int = 3) -> list[str]:
    """Column ``col`` of a summary frame (with ``<col>_half`` and ``<col>_n`` beside it) as :func:`value` texts."""
    return [value(m, h, n, digits) for m, h, n in zip(df[col], df[f"{col}_half"], df[f"{col}_n"])]


def _headers(df: pd.DataFrame) -> list[str]:
    if isinstance(df.columns, pd.MultiIndex):
        return [" ".join(str(p) for p in col if str(p)) for col in df.columns]
    return [str(c) for c in df.columns]


def markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; ``|`` in cells is escaped."""
    def esc(x) -> str:
        return str(x).replace("|", "\\|")
    head = _headers(df)
    lines = ["| " + " | ".join(esc(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(esc(x) for x in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
          "±": r"$\pm$", "—": "---", "×": r"$\times$", "∞": r"$\infty$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def latex(df: pd.DataFrame, caption: str) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
    head = _headers(df)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{latex_escape(caption)}}}",
             r"\begin{tabular}{" + "l" * len(head) + "}", r"\toprule",
             " & ".join(latex_escape(h) for h in head) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(x) for x in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def html_table(df: pd.DataFrame, table_id: str) -> str:
    """An escaped HTML table with two header rows for (victim, metric) columns."""
    return df.to_html(index=False, escape=True, border=0, na_rep=DASH, table_id=table_id, classes="report")


def esc(text) -> str:
    return html.escape(str(text))


def table_section(fmt: str, data: pd.DataFrame, table: pd.DataFrame | None, *, title: str, note: str, anchor: str,
                  empty: str) -> str:
    """A report that is one table: ``data`` as CSV, or ``table`` (its display form; None when there is
    nothing to show, then ``empty`` is said) as a Markdown or HTML section titled ``title`` with ``note``
    under it, or a LaTeX table captioned with both; ``anchor`` is the HTML section's id (the table's is
    ``<anchor>-table``)."""
    if fmt == "csv":
        return data.to_csv(index=False)
    if fmt == "md":
        return f"## {title}\n\n{note}\n\n{markdown(table) if table is not None else empty}\n"
    if fmt == "latex":
        return latex(table, f"{title}. {note}") if table is not None else ""
    body = html_table(table, f"{anchor}-table") if table is not None else f"<p>{esc(empty)}</p>"
    return (f"<section id='{anchor}'><h2>{esc(title)}</h2><p class='note'>{esc(note)}</p>"
            f"<div class='scroll'>{body}</div></section>")
