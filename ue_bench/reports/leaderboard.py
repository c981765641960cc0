"""The leaderboard: protections ranked by the score of ``tables.leaderboard`` (victim mean recall as a
fraction of clean, averaged over victims; lower protects better), with 95 % intervals and tied ranks
where intervals overlap. In HTML each entry opens onto the cells behind it and their provenance."""

from __future__ import annotations

import pandas as pd

from . import formats
from ue_bench import Report, RunResults

from .provenance import cell_details
from .tables import leaderboard

NOTE = ("Score: the victim's mean recall (mean of i2t/t2i R@1/5/10) on the clean test split as a fraction "
        "of the clean baseline's, paired by seed (same dataset, defense, victim and seed), averaged over the "
        "victims (never a surrogate_init=true victim, the upper bound outside the threat model); then mean ± 95 % "
        "Student-t interval over seeds. Lower protects better; 1 = no protection. "
        "Rank = 1 + the number of protections whose interval lies entirely below this one's, so overlapping "
        "intervals share a rank (marked =). Ranked separately per dataset and defense.")


def display(board: pd.DataFrame) -> pd.DataFrame:
    """One board (a dataset and defense) as strings."""
    victims = [c[5:] for c in board.columns if c.startswith("frac_") and not c.endswith(("_half", "_n"))]
    out = pd.DataFrame({
        "rank": [f"{r}=" if t else str(r) for r, t in zip(board["rank"], board["tied"])],
        "attack": board["attack"], "surrogate": board["surrogate"],
        "poison ratio": board["poison_ratio"].map(lambda r: f"{r:g}"),
        "score (× clean)": [formats.value(m, h, n) for m, h, n in zip(board["score"], board["half"], board["n"])],
        "seeds": board["seeds"]})
    for v in victims:
        out[f"{v} × clean"] = formats.values(board, f"frac_{v}")
    return out.reset_index(drop=True)


def boards(run: RunResults):
    """(dataset, defense, ranked rows) per board, the undefended board first."""
    lb = leaderboard(run)
    if lb.empty:
        return []
    keys = lb[["dataset", "defense", "baseline_defense"]].drop_duplicates()
    keys = keys.assign(_d=~keys["baseline_defense"]).sort_values(["dataset", "_d", "defense"])
    out = []
    for d, f in zip(keys["dataset"], keys["defense"]):
        board = lb[(lb["dataset"] == d) & (lb["defense"] == f)]
        victims = [c[5:] for c in board.columns if c.startswith("frac_") and not c.endswith(("_half", "_n"))]
        absent = [f"frac_{v}{s}" for v in victims if board[f"frac_{v}"].isna().all() for s in ("", "_half", "_n")]
        out.append((d, f, board.drop(columns=absent)))
    return out


class Leaderboard(Report):
    """Leaderboard: protections ranked by victim mean recall as a fraction of clean, tied where CIs overlap."""

    formats = ("md", "csv", "latex", "html")
    title = "Leaderboard"
    order = 10

    def render(self, run: RunResults, fmt: str) -> str:
        if fmt == "csv":
            return leaderboard(run).to_csv(index=False)
        parts = [(f"dataset {d}, defense {f}", board) for d, f, board in boards(run)]
        if fmt == "md":
            body = "\n\n".join(f"### {name}\n\n{formats.markdown(display(b))}" for name, b in parts)
            return f"## {self.title}\n\n{NOTE}\n\n{body or 'no protections with a clean baseline'}\n"
        if fmt == "latex":
            return "\n".join(formats.latex(display(b), f"{self.title}, {name}. {NOTE}") for name, b in parts)
        return (f"<section id='leaderboard'><h2>{self.title}</h2><p class='note'>{formats.esc(NOTE)}</p>"
                + "".join(self._html_board(run, name, b) for name, b in parts) + "</section>")

    @staticmethod
    def _html_board(run: RunResults, name: str, board: pd.DataFrame) -> str:
        """The board as a table whose last column opens the entry's cells with their provenance."""
        table = display(board)
        head = "".join(f"<th>{formats.esc(c)}</th>" for c in [*table.columns, "cells"])
        rows = []
        for (_, row), cell_ids in zip(table.iterrows(), board["cells"]):
            ids = cell_ids.split(",")
            details = (f"<details><summary>{len(ids)} cells</summary>"
                       + "".join(cell_details(run.cells[c], run.sources[c]) for c in ids) + "</details>")
            rows.append("<tr>" + "".join(f"<td>{formats.esc(v)}</td>" for v in row) + f"<td>{details}</td></tr>")
        return (f"<h3>{formats.esc(name)}</h3><div class='scroll'><table class='report leaderboard'>"
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
