"""The tables of `emoji-threat-model/` and `attack-search/` from their run directories' cells:
`python tables.py` (in this folder).

Per attack × victim (the view is in the victim's label: `tiny-rn` is open_clip's view, the default;
`tiny-rn:augment=none` the fixed one), side by side for `emoji` and the default synthetic set (the
run folders of `emoji-threat-model/`, `attack-search/` and `../2026-12-03/threat-model`): i2t R@1 as
the mean over the seeds measured, × clean as the mean over seeds of each seed's value over the clean
cell of the same dataset, victim and seed, with its 95 % t interval and the per-seed values in seed order
when there are several seeds (`ue_bench.reports.stats.summarise`), and the seeds. A cell found in two folders is counted once.
× random: i2t R@1 over the random-guess level of the cell's test split. Protection time: the mean
`protect_s` of the protections behind the cells (one per seed; one CPU thread on shared cores).
"""
from collections import defaultdict
import json
from pathlib import Path

from ue_bench.reports.stats import summarise

HERE = Path(__file__).resolve().parent
FOLDERS = [HERE / "emoji-threat-model", HERE / "attack-search", HERE.parent / "2026-12-03" / "threat-model"]
cells = {}
for folder in FOLDERS:
    for f in sorted(folder.glob("*/cells/*.json")):
        c = json.loads(f.read_text())
        lab = c["labels"]
        if c.get("status") != "ok" or lab["defense"] != "none" or ":epochs" in lab["victim"]:
            continue
        if "surrogate_init" in lab["victim"]:
            continue
        cells.setdefault(c["cell_id"], c)
clean = {}
for c in cells.values():
    lab = c["labels"]
    if lab["attack"] == "none":
        clean[(lab["dataset"].split(":")[0], lab["victim"], lab["seed"])] = c["metrics"]["i2t_r1"]
groups = defaultdict(list)
for c in cells.values():
    lab = c["labels"]
    groups[(lab["attack"], lab["victim"], lab["dataset"].split(":")[0])].append(c)


def cell_text(group):
    if not group:
        return "—"
    r1 = [c["metrics"]["i2t_r1"] for c in group]
    group = sorted(group, key=lambda c: c["labels"]["seed"])
    ratio = [c["metrics"]["i2t_r1"] / clean[k] for c in group
             if (k := (c["labels"]["dataset"].split(":")[0], c["labels"]["victim"], c["labels"]["seed"])) in clean]
    seeds = ",".join(str(c["labels"]["seed"]) for c in group)
    x = "—"
    if group[0]["labels"]["attack"] == "none":
        x = "reference"
    elif ratio:
        s = summarise(ratio)
        x = f"{s.mean:.2f}×" if s.n < 2 else f"{s.mean:.2f}× ± {s.half:.2f} [{' '.join(f'{r:.2f}' for r in ratio)}]"
    rand = sum(c["metrics"]["i2t_r1"] / c["metrics"]["random_i2t_r1"] for c in group) / len(group)
    return f"{sum(r1) / len(r1):.3f} ({x}; {rand:.0f}× random; {seeds})"


def protect_s(group):
    if group and group[0]["labels"]["attack"] == "none":
        return "—"
    times = {c["hashes"].get("protection"): c.get("protection", {}).get("protect_s") for c in group}
    times = [t for t in times.values() if t]
    if not times:
        return "—"
    mean = sum(times) / len(times)
    return "<1" if mean < 1 else f"{mean:.0f}"


ATTACKS = ["none", "mem", "mem-eot", "em", "random", "tap", "synthetic", "mem-classwise", "t2ue", "ar", "rem",
           "ar-trigger", "mem-lowfreq", "mem-ensemble", "mem-patterns", "lowfreq-words", "mem-classwise-lowfreq"]
victims = sorted({v for (_, v, _) in groups})
labels = sorted({a for (a, _, _) in groups}, key=lambda a: (ATTACKS.index(a.split(":")[0]), a))
print("| attack | victim | emoji: i2t R@1 (× clean; × random; seeds) | synthetic: i2t R@1 (× clean; × random; seeds) | "
      "protection s (emoji / synthetic) |")
print("|---|---|---|---|---|")
for attack in labels:
    for victim in victims:
        emoji, synth = groups.get((attack, victim, "emoji"), []), groups.get((attack, victim, "synthetic"), [])
        if emoji or synth:
            print(f"| {attack} | {victim} | {cell_text(emoji)} | {cell_text(synth)} | "
                  f"{protect_s(emoji)} / {protect_s(synth)} |")
