"""Final against peak: each protection's victim retrieval at the last epoch (what every other table
shows) beside its best value over the cell's learning curve on the clean test split and the epoch of
that best, mean ± 95 % interval over seeds (``stats``; ``tables.peaks``).

Unlearnable examples are often learned early and forgotten (Sandoval-Segura et al., "Poisons that are
learned faster are more effective", 2022, who recommend reporting the peak over epochs): a protection
that holds at the last epoch may not hold at an earlier one. The peak is chosen on the test split, so it
is an upper bound on what a trainer who stops early gets; the ``early-stop`` defense measures what one
gets by choosing on held-out published pairs. A cell recorded without a curve shows no peak (never its
final value).
"""

from __future__ import annotations

import pandas as pd

from ue_bench import BY_KEY, Report, RunResults

from . import formats
from .tables import NO_CURVE, PEAK_SHOWN, peaks


def _peak_text(row) -> str:
    if row["peak_n"] == 0:
        return NO_CURVE
    text = formats.value(row["peak"], row["peak_half"], row["peak_n"], BY_KEY[row["metric"]].digits)
    return text + (f" ({row['without_curve']} seed(s) without a curve)" if row["without_curve"] else "")


def display(long: pd.DataFrame, victim: str) -> pd.DataFrame:
    """One victim's rows (clean first), with final, peak and the seeds' peak epochs of each shown metric."""
    part = long[(long["victim"] == victim) & long["metric"].isin(PEAK_SHOWN)]
    part = part.assign(_clean=~part["clean_attack"], _defended=~part["baseline_defense"]).sort_values(
        ["dataset", "_defended", "defense", "_clean", "attack", "surrogate", "poison_ratio"], kind="stable")
    rows = []
    for key, group in part.groupby(["dataset", "defense", "attack", "surrogate", "poison_ratio"], sort=False):
        row = {"dataset": key[0], "defense": key[1], "attack": key[2], "surrogate": key[3],
               "poison ratio": f"{key[4]:g}"}
        for r in group.itertuples(index=False):
            r = r._asdict()
            name = BY_KEY[r["metric"]].name
            row[f"{name} final"] = formats.value(r["final"], r["final_half"], r["final_n"], BY_KEY[r["metric"]].digits)
            row[f"{name} peak"] = _peak_text(r)
            row[f"{name} peak epoch"] = r["peak_epochs"] or formats.DASH
        rows.append(row)
    out = pd.DataFrame(rows)
    if long["dataset"].nunique() == 1 and not out.empty:
        out = out.drop(columns="dataset")
    return out


class PeakTable(Report):
    """Final and peak retrieval over the learning curve, with the epoch of the peak (upper bound on early stopping)."""

    formats = ("md", "csv", "latex", "html")
    title = "Final and peak over epochs"
    order = 25
    NOTE = ("Victim retrieval on the clean test split of the evaluated model (final: the last epoch's, or the "
            "kept epoch's under a defense that selects one, such as early-stop) and at the best epoch of its "
            "learning curve (peak: the highest recall, the lowest median rank), mean ± 95 % interval over seeds; "
            "peak epoch lists each seed's. The peak is chosen on the test split itself: an upper bound on what "
            "a trainer who stops early gets (the early-stop defense chooses on held-out published pairs "
            "instead). Cells recorded without a curve (before 2026-12-06, or eval_every=0) show " + NO_CURVE +
            "; results.csv has every metric's peak.")

    def render(self, run: RunResults, fmt: str) -> str:
        long = peaks(run)
        if fmt == "csv":
            return long.drop(columns=["clean_attack", "baseline_defense"]).to_csv(index=False)
        if long.empty:
            return {"latex": "", "md": f"## {self.title}\n\nNo successful cells.\n"}.get(
                fmt, f"<section id='peaks'><h2>{formats.esc(self.title)}</h2><p class='note'>No successful cells.</p></section>")
        parts = {v: display(long, v) for v in sorted(long["victim"].unique())}
        if fmt == "latex":
            return "\n".join(formats.latex(t, f"{self.title}, victim {v}. {self.NOTE}") for v, t in parts.items())
        if fmt == "md":
            return f"## {self.title}\n\n{self.NOTE}\n\n" + "\n\n".join(
                f"### Victim {v}\n\n{formats.markdown(t)}" for v, t in parts.items()) + "\n"
        return (f"<section id='peaks'><h2>{formats.esc(self.title)}</h2><p class='note'>{formats.esc(self.NOTE)}</p>"
                + "".join(f"<h3>Victim {formats.esc(v)}</h3><div class='scroll'>{formats.html_table(t, 'peak-table')}</div>"
                          for v, t in parts.items()) + "</section>")
