"""Seaborn figures: the transferability heatmap (surrogate × victim, one panel per attack), the
poison-ratio curve and the learning curves (test mean recall per epoch, clean against protected). All
plot victim mean recall with the random-guess level as the reference: the heatmap's diverging colour
scale is white exactly at random guessing (blue below: the victim learned less than chance; red above,
up to the clean level), the curves draw it as a dashed line.

Labels can be long (``tiny-rn:augment=none,init=/a/path/model.pt``): every title, tick label and legend
entry goes through :func:`wrap`, and panel sizes grow with the wrapped labels' lines, so nothing overlaps.

Matplotlib runs with the Agg backend (no display) inside an ``rc_context``, so rendering a report does
not change the caller's matplotlib state.
"""

from __future__ import annotations

import abc
import base64
import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from . import formats  # noqa: E402
from ue_bench import NO_SURROGATE, Report, RunResults  # noqa: E402

from .tables import NO_CURVE, curves, poison_curve, transfer  # noqa: E402

STYLE = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook"), "figure.dpi": 110}
#: Characters per line of a wrapped label, and the inches a character of an 8-9 pt label takes.
LABEL_WIDTH, CHAR_IN = 24, 0.075


def wrap(text: str, width: int = 24) -> str:
    """``text`` on lines of at most ``width`` characters, broken after ``,`` ``:`` ``=`` ``/`` or a space
    where possible (a plugin label's separators), else inside a word."""
    lines, line = [], ""
    for part in re.split(r"(?<=[,:=/ ])", str(text)):
        while len(part) > width:  # a piece longer than a line: cut it
            if line:
                lines.append(line)
                line = ""
            lines.append(part[:width])
            part = part[width:]
        if len(line) + len(part) > width and line:
            lines.append(line)
            line = ""
        line += part
    if line:
        lines.append(line)
    return "\n".join(x.rstrip() for x in lines)


def _lines(texts) -> int:
    """The most lines any of ``texts`` takes once wrapped."""
    return max((wrap(t).count("\n") + 1 for t in texts), default=1)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def transfer_png(df: pd.DataFrame) -> bytes:
    """:func:`transfer_figure` as PNG bytes."""
    with plt.rc_context(STYLE):
        return _png(transfer_figure(df))


def transfer_figure(df: pd.DataFrame):
    """Rows of panels per (dataset, defense), one panel per attack: surrogate × victim mean recall,
    annotated with the value and its multiple of random guessing; one shared colour scale. Tick labels
    are wrapped (:func:`wrap`) and horizontal, and each cell is sized to its wrapped labels."""
    boards = sorted(df.groupby(["dataset", "defense", "baseline_defense"]),
                    key=lambda b: (b[0][0], not b[0][2], b[0][1]))
    attacks = sorted(df["attack"].unique())
    random = float(df["random"].iloc[0])
    top = max(float(np.nanmax(df[["mean_recall", "clean"]].to_numpy())), random * 1.01)
    norm = TwoSlopeNorm(vmin=0.0, vcenter=random, vmax=top)
    victims, surrogates = df["victim"].unique(), df["surrogate"].unique()
    cell_w = max(1.1, min(LABEL_WIDTH, max(len(v) for v in victims)) * CHAR_IN + 0.15)
    cell_h = max(0.6, 0.17 * _lines(surrogates) + 0.2)
    panel_w = min(LABEL_WIDTH, max(len(x) for x in surrogates)) * CHAR_IN + 0.5 + cell_w * len(victims)
    title_lines = max(_lines([f"{a} · defense {d}" for a in attacks for d in df["defense"].unique()]), 1) + 1
    panel_h = 0.2 * title_lines + cell_h * len(surrogates) + 0.17 * _lines(victims) + 0.5
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(boards), len(attacks), squeeze=False, layout="constrained",
                                 figsize=(1.4 + panel_w * len(attacks), 0.7 + panel_h * len(boards)))
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
                ax.set_title(wrap(f"{attack} · defense {defense} · ratio {sub['poison_ratio'].iloc[0]:g}",
                                  max(LABEL_WIDTH, int(panel_w / CHAR_IN) - 4)), fontsize=10)
                ax.set_xticks(ax.get_xticks(), [wrap(v) for v in grid.columns], rotation=0, fontsize=8)
                ax.set_yticks(ax.get_yticks(), [wrap(v) for v in grid.index], rotation=0, fontsize=8)
                ax.set_xlabel("victim")
                ax.set_ylabel("surrogate" if c == 0 else "")
        bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="RdBu_r"), ax=axes, shrink=0.8)
        bar.set_label(wrap(f"victim mean recall (white = random guess {random:.3f})", 40))
        bar.ax.axhline(random, color="black", linewidth=1)
        fig.suptitle("Transferability: victim mean recall on clean test data", fontsize=12)
        return fig


def curve_png(df: pd.DataFrame) -> bytes:
    """:func:`curve_figure` as PNG bytes."""
    with plt.rc_context(STYLE):
        return _png(curve_figure(df))


def curve_figure(df: pd.DataFrame):
    """One panel per (defense, victim): mean recall ± 95 % interval against poison ratio, one line
    per attack ← surrogate, random guessing dashed. Lines are shifted sideways by a small step each
    so that overlapping error bars stay apart; titles and legend entries are wrapped (:func:`wrap`)."""
    df = df.assign(protection=[a if s == NO_SURROGATE else f"{a} ← {s}" for a, s in zip(df["attack"], df["surrogate"])])
    baseline = dict(zip(df["defense"], df["baseline_defense"]))
    defenses = sorted(df["defense"].unique(), key=lambda d: (not baseline[d], d))
    victims = sorted(df["victim"].unique())
    names = sorted(df["protection"].unique())
    palette = dict(zip(names, sns.color_palette("colorblind", len(names))))
    step = 0.012 * (df["poison_ratio"].max() or 1.0)
    shift = {name: (i - (len(names) - 1) / 2) * step for i, name in enumerate(names)}
    with plt.rc_context(STYLE):
        lines = _lines([f"victim {v}, defense {d}" for v in victims for d in defenses])
        fig, axes = plt.subplots(len(defenses), len(victims), squeeze=False, sharey=True, layout="constrained",
                                 figsize=(1.0 + 4.2 * len(victims), 1.2 + (3.2 + 0.2 * lines) * len(defenses)))
        for r, defense in enumerate(defenses):
            for c, victim in enumerate(victims):
                ax = axes[r][c]
                sub = df[(df["defense"] == defense) & (df["victim"] == victim)]
                for name, line in sub.groupby("protection"):
                    ax.errorbar(line["poison_ratio"] + shift[name], line["mean"], yerr=line["half"].fillna(0), marker="o",
                                capsize=3, label=name, color=palette[name])
                if not sub.empty:
                    ax.axhline(sub["random"].iloc[0], color="grey", linestyle="--", linewidth=1, label="random guess")
                ax.set_title(wrap(f"victim {victim}, defense {defense}", 40), fontsize=10)
                ax.set_xlabel("poison ratio (0 = clean)")
                ax.set_ylabel("victim mean recall" if c == 0 else "")
                ax.set_xticks(sorted(df["poison_ratio"].unique()))
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, [wrap(x, 40) for x in labels], loc="outside lower center",
                   ncol=max(1, min(len(labels), len(victims) * 2)), frameon=False, fontsize=9)
        fig.suptitle("Victim mean recall against poison ratio (± 95 % interval over seeds)", fontsize=12)
        return fig


def learning_png(df: pd.DataFrame) -> bytes:
    """:func:`learning_figure` as PNG bytes."""
    with plt.rc_context(STYLE):
        return _png(learning_figure(df))


def learning_figure(df: pd.DataFrame, columns: int = 4):
    """One panel per (dataset, defense, victim) and protection (attack ← surrogate at a poison ratio),
    ``columns`` to a row: the victim's mean recall on the clean test split after each evaluated epoch,
    mean over seeds with its 95 % interval as a band, for the clean baseline of the same dataset, defense
    and victim (dark grey) and the protection (a colour, never grey); a star marks each curve's peak, the dashed line random
    guessing. A board with no protection shows its clean curve alone. Titles are wrapped (:func:`wrap`)."""
    df = df.assign(protection=[f"{a}{'' if s == NO_SURROGATE else f' ← {s}'} · ratio {r:g}"
                               for a, s, r in zip(df["attack"], df["surrogate"], df["poison_ratio"])])
    boards = sorted(df.groupby(["dataset", "defense", "baseline_defense", "victim"]),
                    key=lambda b: (b[0][0], not b[0][2], b[0][1], b[0][3]))
    panels = []
    for (dataset, defense, _, victim), board in boards:
        names = sorted(board.loc[~board["clean_attack"].astype(bool), "protection"].unique()) or [None]
        panels += [(f"victim {victim} · defense {defense}", name, board) for name in names]
    colours = [c for i, c in enumerate(sns.color_palette("colorblind", 10)) if i != 7]  # 7 is grey: the clean line's
    palette = {name: colours[i % len(colours)] for i, name in enumerate(sorted(df["protection"].unique()))}
    titles = [(name or "clean baseline", head) for head, name, _ in panels]
    lines = max(_lines([a], ) + _lines([b]) for a, b in titles) if titles else 1
    ncols = min(columns, len(panels))
    nrows = -(-len(panels) // ncols)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, squeeze=False, sharey=True, layout="constrained",
                                 figsize=(0.8 + 3.8 * ncols, 0.9 + (2.6 + 0.19 * lines) * nrows))
        for ax in axes.flat[len(panels):]:
            ax.axis("off")
        for ax, (head, name, board), (t1, t2) in zip(axes.flat, panels, titles):
            series = [("clean baseline", board[board["clean_attack"].astype(bool)], "0.35")]
            if name is not None:
                series.append(("protected", board[board["protection"] == name], palette[name]))
            for label, part, colour in series:
                if part.empty:
                    continue
                part = part.sort_values("epoch")
                half = part["half"].fillna(0.0)
                ax.plot(part["epoch"], part["mean"], marker="o", markersize=3, color=colour, label=label)
                ax.fill_between(part["epoch"], part["mean"] - half, part["mean"] + half, color=colour, alpha=0.2,
                                linewidth=0)
                best = part.loc[part["mean"].idxmax()]
                ax.plot([best["epoch"]], [best["mean"]], marker="*", markersize=12, color=colour,
                        markeredgecolor="black", linestyle="none", label="peak (best epoch)")
            ax.axhline(board["random"].iloc[0], color="grey", linestyle="--", linewidth=1, label="random guess")
            ax.set_title(wrap(t1, 40) + "\n" + wrap(t2, 40), fontsize=9)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("test mean recall")
            ax.yaxis.set_tick_params(labelleft=True)
        handles, labels = [], []
        for ax in axes.flat:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        labels = [("protected (its colour per panel)" if lab == "protected" else lab) for lab in labels]
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
        fig.suptitle(wrap("Learning curves: victim mean recall on the clean test split per epoch "
                          "(± 95 % interval over seeds)", 30 * ncols), fontsize=11)
        return fig


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


class LearningCurves(_Figure):
    """Learning curves: test mean recall per epoch, clean against protected, ± 95 % CI over seeds."""

    title = "Learning curves"
    order = 45
    note = ("Victim mean recall on the clean test split after each evaluated epoch (the recipe's eval_every, "
            "and the last), mean ± 95 % interval over seeds; grey: the clean baseline with the same defense "
            "and victim; a star marks each curve's peak. The peak is picked on the test split itself, so it "
            "is an upper bound on what a trainer who stops early can get: the early-stop defense, which "
            "picks its epoch on held-out published pairs, measures what one does get. Cells recorded without "
            "a curve (before 2026-12-06, or eval_every=0) are left out here: " + NO_CURVE + ".")

    def data(self, run: RunResults) -> pd.DataFrame:
        return curves(run)

    def render(self, run: RunResults, fmt: str) -> str | bytes:
        """As every figure; a run none of whose cells recorded a curve says so in ``md`` and ``html``."""
        if fmt in ("md", "html") and not run.ok.empty and self.data(run).empty:
            text = ("No cell of this run recorded a learning curve (cells written before 2026-12-06, or "
                    "victims with eval_every=0): no peak is shown for them.")
            return (f"## {self.title}\n\n{text}\n" if fmt == "md" else
                    f"<section id='{self.name}'><h2>{formats.esc(self.title)}</h2><p class='note'>{formats.esc(text)}</p></section>")
        return super().render(run, fmt)

    def draw(self, data: pd.DataFrame) -> bytes:
        return learning_png(data)
