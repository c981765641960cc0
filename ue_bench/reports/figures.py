"""Seaborn figures: the transferability heatmap (surrogate × victim, one panel per attack) and the
poison-ratio curve. Both plot victim mean recall with the random-guess level as the reference: the
heatmap's diverging colour scale is white exactly at random guessing (blue below: the victim learned
less than chance; red above, up to the clean level), the curve draws it as a dashed line.

Matplotlib runs with the Agg backend (no display) inside an ``rc_context``, so rendering a report does
not change the caller's matplotlib state.
"""

from __future__ import annotations

import abc
import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from . import formats  # noqa: E402
from ue_bench import NO_SURROGATE, Report, RunResults  # noqa: E402

from .tables import poison_curve, transfer  # noqa: E402

STYLE = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook"), "figure.dpi": 110}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def transfer_png(df: pd.DataFrame) -> bytes:
    """Rows of panels per (dataset, defense), one panel per attack: surrogate × victim mean recall,
    annotated with the value and its multiple of random guessing; one shared colour scale."""
    boards = sorted(df.groupby(["dataset", "defense", "baseline_defense"]),
                    key=lambda b: (b[0][0], not b[0][2], b[0][1]))
    attacks = sorted(df["attack"].unique())
    random = float(df["random"].iloc[0])
    top = max(float(np.nanmax(df[["mean_recall", "clean"]].to_numpy())), random * 1.01)
    norm = TwoSlopeNorm(vmin=0.0, vcenter=random, vmax=top)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(boards), len(attacks), squeeze=False, layout="constrained",
                                 figsize=(1.5 + 3.0 * len(attacks), 0.8 + 2.8 * len(boards)))
        for r, ((dataset, defense, _), board) in enumerate(boards):
            for c, attack in enumerate(attacks):
                ax = axes[r][c]
                sub = board[board["attack"] == attack]
                if sub.empty:
                    ax.axis("off")
                    continue
                grid = sub.pivot_table(index="surrogate", columns="victim", values="mean_recall")
                labels = grid.map(lambda v: f"{v:.3f}\n{v / random:.1f}× rnd")
                sns.heatmap(grid, ax=ax, cmap="RdBu_r", norm=norm, annot=labels, fmt="", cbar=False,
                            linewidths=0.5, linecolor="white", annot_kws={"fontsize": 9})
                ax.set_title(f"{attack} · defense {defense} · ratio {sub['poison_ratio'].iloc[0]:g}", fontsize=10)
                ax.set_xlabel("victim")
                ax.set_ylabel("surrogate" if c == 0 else "")
                ax.tick_params(axis="y", rotation=0)
        bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="RdBu_r"), ax=axes, shrink=0.8)
        bar.set_label(f"victim mean recall (white = random guess {random:.3f})")
        bar.ax.axhline(random, color="black", linewidth=1)
        fig.suptitle("Transferability: victim mean recall on clean test data", fontsize=12)
        return _png(fig)


def curve_png(df: pd.DataFrame) -> bytes:
    """One panel per (defense, victim): mean recall ± 95 % interval against poison ratio, one line
    per attack ← surrogate, random guessing dashed. Lines are shifted sideways by a small step each
    so that overlapping error bars stay apart."""
    df = df.assign(protection=[a if s == NO_SURROGATE else f"{a} ← {s}" for a, s in zip(df["attack"], df["surrogate"])])
    baseline = dict(zip(df["defense"], df["baseline_defense"]))
    defenses = sorted(df["defense"].unique(), key=lambda d: (not baseline[d], d))
    victims = sorted(df["victim"].unique())
    names = sorted(df["protection"].unique())
    palette = dict(zip(names, sns.color_palette("colorblind", len(names))))
    step = 0.012 * (df["poison_ratio"].max() or 1.0)
    shift = {name: (i - (len(names) - 1) / 2) * step for i, name in enumerate(names)}
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(defenses), len(victims), squeeze=False, sharey=True,
                                 figsize=(1.0 + 4.2 * len(victims), 0.8 + 3.4 * len(defenses)))
        for r, defense in enumerate(defenses):
            for c, victim in enumerate(victims):
                ax = axes[r][c]
                sub = df[(df["defense"] == defense) & (df["victim"] == victim)]
                for name, line in sub.groupby("protection"):
                    ax.errorbar(line["poison_ratio"] + shift[name], line["mean"], yerr=line["half"].fillna(0), marker="o",
                                capsize=3, label=name, color=palette[name])
                if not sub.empty:
                    ax.axhline(sub["random"].iloc[0], color="grey", linestyle="--", linewidth=1, label="random guess")
                ax.set_title(f"victim {victim}, defense {defense}", fontsize=11)
                ax.set_xlabel("poison ratio (0 = clean)")
                ax.set_ylabel("victim mean recall" if c == 0 else "")
                ax.set_xticks(sorted(df["poison_ratio"].unique()))
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(labels), 4),
                   frameon=False)
        fig.suptitle("Victim mean recall against poison ratio (± 95 % interval over seeds)", fontsize=12)
        fig.tight_layout()
        return _png(fig)


class _Figure(Report):
    """A figure in ``png``, linked from the Markdown, embedded in the HTML page, its data in ``csv``."""

    formats = ("md", "csv", "html", "png")
    note = ""

    @abc.abstractmethod
    def data(self, run: RunResults) -> pd.DataFrame:
        """The numbers the figure shows (also its ``csv``)."""

    @abc.abstractmethod
    def draw(self, data: pd.DataFrame) -> bytes:
        """The figure as PNG bytes."""

    def render(self, run: RunResults, fmt: str) -> str | bytes:
        data = self.data(run)
        if fmt == "csv":
            return data.to_csv(index=False)
        if data.empty:
            return "" if fmt != "png" else b""
        if fmt == "md":
            return f"## {self.title}\n\n{self.note}\n\n![{self.title}]({self.name}.png)\n"
        key = f"png:{self.name}"
        if key not in run.memo:  # the page and the PNG file share one rendering
            run.memo[key] = self.draw(data)
        if fmt == "png":
            return run.memo[key]
        src = "data:image/png;base64," + base64.b64encode(run.memo[key]).decode()
        return (f"<section id='{self.name}'><h2>{formats.esc(self.title)}</h2><p class='note'>"
                f"{formats.esc(self.note)}</p><img alt='{formats.esc(self.title)}' src='{src}'></section>")


class TransferHeatmap(_Figure):
    """Transferability heatmap: surrogate × victim mean recall per attack, scale centred at random guess."""

    title = "Transferability"
    order = 30
    note = ("Victim mean recall (mean over seeds) at the run's largest poison ratio for each surrogate the "
            "protection was made with and each victim trained on it; white is the random-guess level, blue "
            "below it, red above it up to the clean baseline.")

    def data(self, run: RunResults) -> pd.DataFrame:
        return transfer(run)

    def draw(self, data: pd.DataFrame) -> bytes:
        return transfer_png(data)


class PoisonCurve(_Figure):
    """Poison-ratio curve: victim mean recall ± 95 % CI against the fraction of protected images."""

    title = "Poison ratio"
    order = 40
    note = ("Victim mean recall ± 95 % interval over seeds against the fraction of training images "
            "protected; ratio 0 is the clean baseline; dashed: random guessing.")

    def data(self, run: RunResults) -> pd.DataFrame:
        return poison_curve(run)

    def draw(self, data: pd.DataFrame) -> bytes:
        return curve_png(data)
