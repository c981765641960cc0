"""The tables of this folder's README from its run directories' cells: `python tables.py`.

Per attack × victim (× view): i2t R@1 and mean recall as the mean over the seeds measured, each seed's
value as a fraction of the clean cell of the same victim, view and seed (× clean, mean over the seeds
that have both), and i2t R@1 as a multiple of its random-guess level (× random). A cell found in two
folders (a cached copy) is counted once.
"""
import glob
import json
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent
cells = {}
for f in sorted(HERE.glob("*/cells/*.json")):
    c = json.loads(f.read_text())
    if c.get("status") == "ok" and not c["labels"]["victim"].startswith(("tiny-rn:epochs", "tiny-vit:epochs")):
        cells.setdefault(c["cell_id"], c)
clean = {}
for c in cells.values():
    lab = c["labels"]
    if lab["attack"] == "none" and lab["defense"] == "none":
        clean[(lab["victim"], lab["seed"])] = c["metrics"]
rows = defaultdict(list)
for c in cells.values():
    lab = c["labels"]
    rows[(lab["victim"], lab["attack"].split(":")[0], lab["defense"])].append(c)
print("| victim | attack | defense | seeds | i2t R@1 | × clean | × random | mean recall | × clean |")
print("|---|---|---|---|---|---|---|---|---|")
for (victim, attack, defense), group in sorted(rows.items()):
    seeds = sorted(c["labels"]["seed"] for c in group)
    r1 = [c["metrics"]["i2t_r1"] for c in group]
    mr = [c["metrics"]["mean_recall"] for c in group]
    paired = [(c["metrics"], clean[(victim, c["labels"]["seed"])]) for c in group if (victim, c["labels"]["seed"]) in clean]
    x_r1 = [m["i2t_r1"] / k["i2t_r1"] for m, k in paired]
    x_mr = [m["mean_recall"] / k["mean_recall"] for m, k in paired]
    rand = sum(c["metrics"]["i2t_r1"] / c["metrics"]["random_i2t_r1"] for c in group) / len(group)
    mean = lambda v: sum(v) / len(v)
    fmt = lambda v, n: f"{mean(v):.3f}" + (f" (n={len(v)})" if len(v) != n else "") if v else "—"
    print(f"| {victim} | {attack} | {defense} | {','.join(map(str, seeds))} | {mean(r1):.3f} | {fmt(x_r1, len(group))} | "
          f"{rand:.0f}× | {mean(mr):.3f} | {fmt(x_mr, len(group))} |")
