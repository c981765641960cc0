"""The numbers behind every report, as tidy DataFrames computed from :class:`RunResults`.

Each quantity is summarised over seeds with ``stats.summarise`` (mean and Student-t 95 % interval).
Two derived quantities put a protection's retrieval in context:

* **fraction of clean**: a protected cell's victim mean recall divided by the clean baseline's (attack
  ``none``) for the same dataset, defense, victim **and seed**, then summarised over seeds. Pairing by
  seed removes the seed-to-seed spread both share (the same seed initialises and orders the victim's
  training); a protection without a clean cell of the same seed gets no fraction for that seed.
* **multiple of random**: the mean recall divided by the random-guess level of the same test split
  (``random_mean_recall``, a constant of the split), so its interval is the recall's scaled.
"""

from __future__ import annotations

import math

import pandas as pd

from ue_bench import DERIVED, METRIC_KEYS, PROTECTION, RunResults, curve_points

from .stats import summarise

ROW_KEYS = ("dataset", "attack", "surrogate", "defense", "poison_ratio")
DERIVED_KEYS = tuple(m.key for m in DERIVED)
RANDOM_ROW = "random guess"


def with_fractions(run: RunResults) -> pd.DataFrame:
    """The successful cells with ``frac_clean`` (seed-paired, see module doc) and ``x_random`` columns."""
    ok = run.ok.copy()
    clean = ok[ok["clean_attack"]][["dataset", "defense", "victim", "seed", "mean_recall"]]
    clean = clean.rename(columns={"mean_recall": "clean_mean_recall"})
    out = ok.merge(clean, on=["dataset", "defense", "victim", "seed"], how="left")
    out["frac_clean"] = out["mean_recall"] / out["clean_mean_recall"]
    out["x_random"] = out["mean_recall"] / out["random_mean_recall"]
    return out


def _row_order(df: pd.DataFrame) -> pd.DataFrame:
    """Clean rows first, then protections by defense, attack, surrogate and falling poison ratio."""
    return df.assign(_clean=~df["clean_attack"], _ratio=-df["poison_ratio"]).sort_values(
        ["dataset", "_clean", "defense", "attack", "surrogate", "_ratio"], kind="stable").drop(
        columns=["_clean", "_ratio"])


def retrieval(run: RunResults) -> pd.DataFrame:
    """Tidy retrieval table: one row per (row keys, victim, metric) with mean, half, n; plus, per
    dataset and victim, the random-guess level as a row of its own (attack ``random guess``, n 0)."""
    cells = with_fractions(run)
    rows = []
    for key, group in cells.groupby([*ROW_KEYS, "victim"], sort=False):
        for metric in (*METRIC_KEYS, *DERIVED_KEYS):
            if metric in DERIVED_KEYS and group["clean_attack"].iloc[0]:
                continue
            s = summarise(group[metric])
            rows.append({**dict(zip((*ROW_KEYS, "victim"), key)), "metric": metric, "mean": s.mean,
                         "half": s.half, "n": s.n, "clean_attack": bool(group["clean_attack"].iloc[0]),
                         "baseline_defense": bool(group["baseline_defense"].iloc[0])})
    for (dataset, victim), group in cells.groupby(["dataset", "victim"], sort=False):
        for metric in METRIC_KEYS:
            rows.append({"dataset": dataset, "attack": RANDOM_ROW, "surrogate": "", "defense": "",
                         "poison_ratio": math.nan, "victim": victim, "metric": metric,
                         "mean": float(group[f"random_{metric}"].iloc[0]), "half": math.nan, "n": 0,
                         "clean_attack": False, "baseline_defense": False, "random_row": True})
    out = pd.DataFrame(rows, columns=[*ROW_KEYS, "victim", "metric", "mean", "half", "n", "clean_attack",
                                      "baseline_defense", "random_row"])
    out["random_row"] = out["random_row"].fillna(False).astype(bool)
    return out


def upper_bound_victims(run: RunResults) -> set[str]:
    """Labels of the victims that start from the surrogate's initial weights (``surrogate_init=true``): an
    upper bound outside the threat model, shown in the retrieval table and never scored on the leaderboard."""
    return {c["labels"]["victim"] for c in run.cells.values()
            if ((c.get("config") or {}).get("victim") or {}).get("params", {}).get("surrogate_init")}


#: The leaderboard's columns before the per-victim fractions (``frac_<victim>``…) and the rank.
BOARD_COLUMNS = (*PROTECTION, "defense", "baseline_defense", "score", "half", "lo", "hi", "n", "seeds", "cells")


def leaderboard(run: RunResults) -> pd.DataFrame:
    """Protections ranked by score = victim mean recall as a fraction of clean, averaged over the
    dataset's victims, per seed; then mean ± 95 % interval over seeds. Lower protects better.

    A seed counts only if the protection has a fraction of clean for every victim of the dataset, so
    every score averages the same victims; victims with ``surrogate_init=true`` (:func:`upper_bound_victims`)
    are not among them. Ranks are per (dataset, defense): rank = 1 + the number of
    protections whose interval lies entirely below this one's (upper end < this lower end), so
    protections with overlapping intervals share a rank unless a third one separates them; without an
    interval (n < 2) a protection is its mean. Columns ``frac_<victim>`` hold the per-victim fractions.
    """
    cells = with_fractions(run)
    upper = upper_bound_victims(run)
    prot = cells[~cells["clean_attack"] & ~cells["victim"].isin(upper)]
    rows = []
    for (dataset, defense), board in prot.groupby(["dataset", "defense"], sort=False):
        victims = sorted(set(cells.loc[cells["dataset"] == dataset, "victim"].unique()) - upper)
        for key, group in board.groupby(list(PROTECTION), sort=False):
            per_seed = group.pivot_table(index="seed", columns="victim", values="frac_clean", aggfunc="mean")
            per_seed = per_seed.reindex(columns=victims).dropna()
            s = summarise(per_seed.mean(axis=1))
            row = dict(zip(BOARD_COLUMNS, (*key, defense, bool(group["baseline_defense"].iloc[0]), s.mean, s.half,
                                           s.lo, s.hi, s.n, ",".join(str(x) for x in per_seed.index),
                                           ",".join(group.sort_values(["victim", "seed"])["cell_id"]))))
            for v in victims:
                fv = summarise(group.loc[group["victim"] == v, "frac_clean"])
                row.update({f"frac_{v}": fv.mean, f"frac_{v}_half": fv.half, f"frac_{v}_n": fv.n})
            rows.append(row)
    if not rows:  # the header alone: a run without protections still gets a readable CSV
        return pd.DataFrame(columns=[*BOARD_COLUMNS, "rank", "tied"])
    out = pd.DataFrame(rows)
    out["rank"] = 0
    for _, board in out.groupby(["dataset", "defense"], sort=False):
        for i in board.index:
            out.loc[i, "rank"] = 1 + int((board["hi"] < board.loc[i, "lo"]).sum())
    out["tied"] = out.groupby(["dataset", "defense", "rank"])["rank"].transform("size") > 1
    return out.sort_values(["dataset", "defense", "rank", "score"], kind="stable").reset_index(drop=True)


def costs(run: RunResults) -> pd.DataFrame:
    """Imperceptibility and cost per protection, over seeds: one value per protection artifact (a
    protection is shared by every victim and defense of its seed, so it is counted once)."""
    prot = run.ok[~run.ok["clean_attack"]].drop_duplicates("protection_key")
    measures = ("linf_mean", "l2_mean", "psnr_mean", "ssim_mean", "protect_s")
    rows = []
    for key, group in prot.groupby(list(PROTECTION), sort=False):
        row = dict(zip(PROTECTION, key))
        for col in measures:
            s = summarise(group[col])
            row.update({col: s.mean, f"{col}_half": s.half, f"{col}_n": s.n})
        row["device"] = ", ".join(sorted(set(group["protection_device"])))
        rows.append(row)
    return pd.DataFrame(rows, columns=[*PROTECTION, *(f"{c}{s}" for c in measures for s in ("", "_half", "_n")),
                                       "device"])


#: What a cell's published data is: a defense's cost is compared with the undefended victim trained on it.
PUBLISHED = ("dataset", "attack", "surrogate", "poison_ratio", "victim", "seed")


def defense_costs(run: RunResults) -> pd.DataFrame:
    """Each defense's cost per (dataset, defense, victim), mean ± 95 % interval over seeds of each seed's
    mean over the cells' protections: ``defend`` the seconds of its data transform (each defended-data
    artifact once: a transform is shared by every victim trained on it), ``train`` the victim's training
    seconds (a training-time defense's work is in them), and ``ratio`` a cell's transform plus training
    over the undefended victim's training on the same published data (same dataset, attack, surrogate,
    poison ratio, victim and seed). Cells written before the transform time was recorded have none (NaN,
    left out)."""
    ok = run.ok
    base = ok[ok["baseline_defense"]][[*PUBLISHED, "train_s"]].drop_duplicates(list(PUBLISHED))
    cells = ok.merge(base.rename(columns={"train_s": "undefended_train_s"}), on=list(PUBLISHED), how="left")
    cells["ratio"] = (cells["defend_s"] + cells["train_s"]) / cells["undefended_train_s"]
    rows = []
    for (dataset, defense, victim), group in cells.groupby(["dataset", "defense", "victim"], sort=False):
        row = {"dataset": dataset, "defense": defense, "victim": victim,
               "baseline_defense": bool(group["baseline_defense"].iloc[0])}
        transforms = group[group["defended_key"] != ""].drop_duplicates("defended_key")
        for name, part, col in (("defend", transforms, "defend_s"), ("train", group, "train_s"),
                                ("ratio", group, "ratio")):
            s = summarise(part.groupby("seed")[col].mean())
            row.update({name: s.mean, f"{name}_half": s.half, f"{name}_n": s.n})
        rows.append(row)
    columns = ["dataset", "defense", "victim", "baseline_defense",
               *(f"{c}{s}" for c in ("defend", "train", "ratio") for s in ("", "_half", "_n"))]
    return pd.DataFrame(rows, columns=columns)


def transfer(run: RunResults) -> pd.DataFrame:
    """Victim mean recall per (dataset, defense, attack, surrogate, victim) at the run's largest poison
    ratio (the transfer question is asked at full protection), with the clean and random levels."""
    cells = with_fractions(run)
    prot = cells[~cells["clean_attack"]]
    prot = prot[prot["poison_ratio"] == prot["poison_ratio"].max()]
    out = prot.groupby(["dataset", "defense", "baseline_defense", "attack", "surrogate", "victim", "poison_ratio"],
                       sort=False).agg(
        mean_recall=("mean_recall", "mean"), n=("seed", "count"), random=("random_mean_recall", "first"),
        clean=("clean_mean_recall", "mean")).reset_index()
    return out


def poison_curve(run: RunResults) -> pd.DataFrame:
    """Victim mean recall against poison ratio per protection, with the clean baseline as ratio 0 of
    every curve (nothing protected is the clean run)."""
    ok = run.ok
    rows = []
    keys = ["dataset", "defense", "baseline_defense", "clean_attack", "attack", "surrogate", "victim", "poison_ratio"]
    for key, group in ok.groupby(keys, sort=False):
        s = summarise(group["mean_recall"])
        rows.append({**dict(zip(keys, key)),
                     "mean": s.mean, "half": s.half, "n": s.n, "random": float(group["random_mean_recall"].iloc[0])})
    df = pd.DataFrame(rows, columns=[*keys, "mean", "half", "n", "random"])
    clean = df[df["clean_attack"].astype(bool)]
    curves = df[~df["clean_attack"].astype(bool)]
    starts = curves[["dataset", "defense", "attack", "surrogate", "victim"]].drop_duplicates().merge(
        clean.drop(columns=["attack", "surrogate", "clean_attack", "baseline_defense"]),
        on=["dataset", "defense", "victim"])
    starts["baseline_defense"] = starts["defense"].map(dict(zip(df["defense"], df["baseline_defense"])))
    return pd.concat([starts, curves], ignore_index=True).sort_values(
        ["dataset", "defense", "attack", "surrogate", "victim", "poison_ratio"]).reset_index(drop=True)


#: The metrics the peak table shows (every metric's peak is in ``results.csv`` and in the table's ``csv``).
PEAK_SHOWN = ("mean_recall", "i2t_r1", "t2i_r1")
NO_CURVE = "no curve recorded"


def peaks(run: RunResults) -> pd.DataFrame:
    """Final and peak over the learning curve per (row keys, victim, metric), summarised over seeds:
    ``final`` and ``peak`` as mean, half-width and n (``stats.summarise``), ``peak_epochs`` the seeds'
    peak epochs (comma-separated, by seed) and ``without_curve`` the number of seeds whose cell has no
    curve (written before curves existed, or ``eval_every=0``): their peak is missing, never the final
    value. The peak is taken on the clean test split, an upper bound on what stopping early gets."""
    ok = run.ok
    rows = []
    for key, group in ok.groupby([*ROW_KEYS, "victim"], sort=False):
        group = group.sort_values("seed")
        for metric in METRIC_KEYS:
            final, peak = summarise(group[metric]), summarise(group[f"{metric}_peak"])
            epochs = group[f"{metric}_peak_epoch"].dropna()
            rows.append({**dict(zip((*ROW_KEYS, "victim"), key)), "metric": metric, "final": final.mean,
                         "final_half": final.half, "final_n": final.n, "peak": peak.mean, "peak_half": peak.half,
                         "peak_n": peak.n, "peak_epochs": ",".join(str(int(e)) for e in epochs),
                         "without_curve": int(group[f"{metric}_peak"].isna().sum()),
                         "clean_attack": bool(group["clean_attack"].iloc[0]),
                         "baseline_defense": bool(group["baseline_defense"].iloc[0])})
    return pd.DataFrame(rows, columns=[*ROW_KEYS, "victim", "metric", "final", "final_half", "final_n", "peak",
                                       "peak_half", "peak_n", "peak_epochs", "without_curve", "clean_attack",
                                       "baseline_defense"])


def curves(run: RunResults) -> pd.DataFrame:
    """Victim mean recall on the clean test split per epoch of the learning curves, over seeds: one row
    per (dataset, defense, attack, surrogate, poison ratio, victim, epoch) with mean, half, n, the
    random-guess level and the flags; cells without a curve contribute nothing."""
    rows = []
    labels = ["dataset", "defense", "baseline_defense", "clean_attack", "attack", "surrogate", "poison_ratio",
              "victim", "seed"]
    for row in run.ok.to_dict("records"):
        for p in curve_points(run.cells[row["cell_id"]]):
            rows.append({**{k: row[k] for k in labels}, "epoch": int(p["epoch"]),
                         "value": p.get("mean_recall", math.nan), "random": row["random_mean_recall"]})
    keys = ["dataset", "defense", "baseline_defense", "clean_attack", "attack", "surrogate", "poison_ratio",
            "victim", "epoch"]
    if not rows:
        return pd.DataFrame(columns=[*keys, "mean", "half", "n", "random"])
    df = pd.DataFrame(rows)
    out = []
    for key, group in df.groupby(keys, sort=True):
        s = summarise(group["value"])
        out.append({**dict(zip(keys, key)), "mean": s.mean, "half": s.half, "n": s.n,
                    "random": float(group["random"].iloc[0])})
    return pd.DataFrame(out)
