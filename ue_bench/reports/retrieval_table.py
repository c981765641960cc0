"""The retrieval table: rows attack × surrogate × defense × poison ratio (with the clean baseline and
the random-guess level), columns victim × metric, mean ± 95 % interval over seeds (``stats``); each
protection also as a fraction of clean and a multiple of random guessing (``tables``).

``render_text`` is the plain table ``ue-bench run`` prints from ``results.csv``'s columns.
"""

from __future__ import annotations

import pandas as pd

from ue_bench import BY_KEY, METRIC_KEYS, Report, RunResults

from . import formats
from .tables import DERIVED_KEYS, retrieval


def render_text(df: pd.DataFrame) -> str:
    """One row per (attack, surrogate, defense, victim, poison ratio) of a frame with ``results.csv``'s
    columns, metrics averaged over seeds, each followed by the random-guess level of the same split; in
    the report's order: undefended rows first, then by defense, the clean baseline before protections."""
    ok = df[df["status"] == "ok"]
    if ok.empty:
        return "no successful cells"
    ok = ok.assign(_defended=~ok["baseline_defense"], _protected=~ok["clean_attack"], _ratio=-ok["poison_ratio"])
    ok = ok.sort_values(["_defended", "defense", "_protected", "attack", "surrogate", "_ratio", "victim"], kind="stable")
    keys = ["attack", "surrogate", "defense", "victim", "poison_ratio"]
    grouped = ok.groupby(keys, sort=False)
    mean = grouped[[*METRIC_KEYS, *(f"random_{k}" for k in METRIC_KEYS)]].mean()
    table = pd.DataFrame(index=mean.index)
    table["seeds"] = grouped["seed"].count()
    for k in METRIC_KEYS:
        d = BY_KEY[k].digits
        table[k] = [f"{v:.{d}f} ({r:.{d}f})" for v, r in zip(mean[k], mean[f"random_{k}"])]
    return "retrieval on the clean test split: value (random guess)\n" + table.reset_index().to_string(index=False)


ROW_COLUMNS = {"dataset": "dataset", "defense": "defense", "attack": "attack", "surrogate": "surrogate",
               "poison_ratio": "poison ratio"}


def display(long: pd.DataFrame) -> pd.DataFrame:
    """The tidy table of ``tables.retrieval`` as strings: random-guess rows first, then clean rows,
    then protections; columns (victim, metric) as a two-level header."""
    long = long.assign(text=[formats.value(m, h, n, BY_KEY[k].digits)
                             for m, h, n, k in zip(long["mean"], long["half"], long["n"], long["metric"])],
                       poison_ratio=long["poison_ratio"].map(lambda r: "" if pd.isna(r) else f"{r:g}"))
    flags = ["random_row", "baseline_defense", "clean_attack"]
    keys = [*ROW_COLUMNS, *flags]
    wide = long.pivot_table(index=keys, columns=["victim", "metric"], values="text", aggfunc="first",
                            sort=False)
    victims = sorted(long["victim"].unique())
    wide = wide.reindex(columns=pd.MultiIndex.from_product([victims, [*METRIC_KEYS, *DERIVED_KEYS]]))
    wide.columns = pd.MultiIndex.from_tuples([(v, BY_KEY[m].name) for v, m in wide.columns])
    keys_frame = wide.index.to_frame(index=False)
    order = keys_frame.assign(_random=~keys_frame["random_row"], _defended=~keys_frame["baseline_defense"],
                              _protected=~keys_frame["clean_attack"]).sort_values(
        ["_random", "_defended", "defense", "_protected", "attack", "surrogate", "poison_ratio"],
        ascending=[True] * 6 + [False], kind="stable").index
    rows = wide.reset_index().iloc[order].drop(columns=flags, level=0)
    if long["dataset"].nunique() == 1:
        rows = rows.drop(columns="dataset", level=0)
    rows.columns = pd.MultiIndex.from_tuples([("", ROW_COLUMNS[a]) if a in ROW_COLUMNS else (a, b)
                                              for a, b in rows.columns])
    return rows.astype(object).fillna(formats.DASH).reset_index(drop=True)


def per_victim(table: pd.DataFrame, victim: str) -> pd.DataFrame:
    """The row columns and one victim's metric columns of a ``display`` table, with flat headers."""
    cols = [c for c in table.columns if c[0] in ("", victim)]
    out = table[cols]
    out.columns = [b for _, b in cols]
    return out


class RetrievalTable(Report):
    """Retrieval table: attack × victim × metric, mean ± 95 % CI over seeds, vs clean and random."""

    formats = ("md", "csv", "latex", "html", "text")
    title = "Retrieval on the clean test split"
    order = 20
    NOTE = ("Mean ± 95 % Student-t interval over seeds (n = 1: no interval, n shown). Recalls are fractions "
            "of queries; medR is the median rank (lower is better). “× clean”: victim mean recall as a "
            "fraction of the clean baseline with the same defense, victim and seed, then averaged over "
            "seeds; “× random”: mean recall as a multiple of the random-guess level of the test split.")

    def render(self, run: RunResults, fmt: str) -> str:
        if fmt == "text":
            return render_text(run.frame)
        long = retrieval(run)
        if fmt == "csv":
            return long.drop(columns=["clean_attack", "baseline_defense", "random_row"]).to_csv(index=False)
        if long.empty:  # every cell failed: say so instead of an empty pivot
            return {"csv": "", "latex": "", "md": f"## {self.title}\n\nNo successful cells.\n"}.get(
                fmt, f"<section id='retrieval'><h2>{formats.esc(self.title)}</h2><p class='note'>No successful cells.</p></section>")
        table = display(long)
        if fmt in ("md", "latex"):  # one table per victim: 11 metric columns each stay readable
            parts = {v: per_victim(table, v) for v in sorted(long["victim"].unique())}
            if fmt == "latex":
                return "\n".join(formats.latex(t, f"{self.title}, victim {v}. {self.NOTE}") for v, t in parts.items())
            return f"## {self.title}\n\n{self.NOTE}\n\n" + "\n\n".join(
                f"### Victim {v}\n\n{formats.markdown(t)}" for v, t in parts.items()) + "\n"
        return (f"<section id='retrieval'><h2>{formats.esc(self.title)}</h2><p class='note'>{formats.esc(self.NOTE)}</p>"
                f"<div class='scroll'>{formats.html_table(table, 'retrieval-table')}</div></section>")
