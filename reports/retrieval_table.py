"""The retrieval table printed at the end of ``ue-bench run``, rebuilt from the run's cell results."""

from __future__ import annotations

import pandas as pd

from ue_bench.registry import Plugin

SHOWN = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "i2t_medr", "t2i_medr", "mean_recall")


def render_text(df: pd.DataFrame) -> str:
    """One row per (attack, surrogate, defense, victim, poison ratio), metrics averaged over seeds,
    each recall followed by the random-guess level of the same split in brackets."""
    ok = df[df["status"] == "ok"]
    if ok.empty:
        return "no successful cells"
    keys = ["attack", "surrogate", "defense", "victim", "poison_ratio"]
    grouped = ok.groupby(keys, sort=False)
    mean = grouped[[*SHOWN, *(f"random_{k}" for k in SHOWN)]].mean()
    table = pd.DataFrame(index=mean.index)
    table["seeds"] = grouped["seed"].count()
    for k in SHOWN:
        fmt = "{:.1f} ({:.1f})" if k.endswith("medr") else "{:.3f} ({:.3f})"
        table[k] = [fmt.format(v, r) for v, r in zip(mean[k], mean[f"random_{k}"])]
    return "retrieval on the clean test split: value (random guess)\n" + table.reset_index().to_string(index=False)


class RetrievalTable(Plugin):
    """Plain-text retrieval table, metric (random-guess level), mean over seeds."""

    def render(self, df: pd.DataFrame) -> str:
        return render_text(df)
