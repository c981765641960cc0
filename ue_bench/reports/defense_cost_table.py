"""What each defense costs: the seconds of its data transform (JPEG, D-VAE's two VAE trainings, …), the
victim's training seconds (adversarial training, UEraser's K views and early stopping's validation
work in them) and the two together as a multiple of the undefended victim's training on the same
published data, mean ± 95 % interval (``tables.defense_costs``). Times are wall seconds on the cell's
device (provenance) and hold only beside cells of the same machine and load."""

from __future__ import annotations

import pandas as pd

from . import formats
from ue_bench import Report, RunResults

from .tables import defense_costs

NOTE = ("Data transform: seconds of the defense's transform of the published training split, once per "
        "transformed split (0 for a defense that transforms nothing). Training: the victim's training seconds, "
        "which hold a training-time defense's work. × undefended: (transform + training) over the undefended "
        "victim's training on the same published data (same attack, surrogate, poison ratio, victim and seed). "
        "Each: mean ± 95 % interval over seeds of the seed's mean over protections. Wall times of shared "
        "machines: compare within one run.")


def display(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(_d=~df["baseline_defense"]).sort_values(["dataset", "_d", "defense", "victim"], kind="stable")
    out = pd.DataFrame({"defense": df["defense"], "victim": df["victim"]})
    if df["dataset"].nunique() > 1:
        out.insert(0, "dataset", df["dataset"])
    for col, name, digits in (("defend", "data transform (s)", 2), ("train", "training (s)", 1),
                              ("ratio", "× undefended training", 2)):
        out[name] = formats.values(df, col, digits)
    return out.reset_index(drop=True)


class DefenseCostTable(Report):
    """Defense cost: data-transform and training seconds, and their sum × the undefended victim's training."""

    formats = ("md", "csv", "latex", "html")
    title = "Defense cost"
    order = 55

    def render(self, run: RunResults, fmt: str) -> str:
        df = defense_costs(run)
        return formats.table_section(fmt, df, None if df.empty else display(df), title=self.title, note=NOTE,
                                     anchor="defense-cost", empty="no finished cells in this run")
