"""Issue 29's deliverable-5 table from the cells of this folder's runs: `python tables.py`.

Per victim, defense and attack (seeds measured so far): i2t R@1 of the evaluated model (final: the last
epoch's; under `early-stop` the kept epoch's, which it names), its peak over the learning curve on the
clean test split with the peak's epoch (an upper bound on early stopping: chosen on the test split),
× clean (each seed over the clean cell of the same defense, victim and seed: what the protection still
does under the defense), × undefended clean (over the clean cell without a defense: what the defender
gets back), and the cost: the
defense's data-transform seconds plus the victim's training seconds over the undefended victim's
training on the same published data (same attack, victim and seed). One CPU thread on shared cores.
With several seeds each ratio is the mean over seeds of each seed's ratio, with its 95 % t interval and
the per-seed values in seed order (`ue_bench.reports.stats.summarise`).
"""
from collections import defaultdict
import json
from pathlib import Path

from ue_bench.reports.stats import summarise

HERE = Path(__file__).resolve().parent
cells = {}
for f in sorted(HERE.glob("*/cells/*.json")):
    c = json.loads(f.read_text())
    if c.get("status") == "ok":
        cells.setdefault(c["cell_id"], c)
by = {(c["labels"]["victim"], c["labels"]["defense"], c["labels"]["attack"], c["labels"]["seed"]): c
      for c in cells.values()}
groups = defaultdict(list)
for (victim, defense, attack, seed), c in by.items():
    groups[(victim, defense, attack)].append(c)


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def peak(c):
    points = (c.get("curve") or {}).get("points") or []
    if not points:
        return None
    best = max(points, key=lambda p: (p["i2t_r1"], -p["epoch"]))
    return best["i2t_r1"], best["epoch"]


def ratio_text(values):
    s = summarise(values)
    if not s.n:
        return "—"
    return f"{s.mean:.2f}×" if s.n < 2 else f"{s.mean:.2f}× ± {s.half:.2f} [{' '.join(f'{v:.2f}' for v in values)}]"


def row(victim, defense, attack):
    group = sorted(groups[(victim, defense, attack)], key=lambda c: c["labels"]["seed"])
    seeds = sorted(c["labels"]["seed"] for c in group)
    final = mean([c["metrics"]["i2t_r1"] for c in group])
    peaks = [peak(c) for c in group]
    peak_text = "—" if None in peaks else (f"{mean([p[0] for p in peaks]):.3f} (ep. "
                                           f"{','.join(str(p[1]) for p in peaks)})")
    kept = [c["train"].get("selection", {}).get("epoch") for c in group]
    final_text = f"{final:.3f}" + (f" (kept ep. {','.join(str(k) for k in kept)})" if any(kept) else "")
    ratios = [c["metrics"]["i2t_r1"] / by[k]["metrics"]["i2t_r1"] for c in group
              if (k := (victim, defense, "none", c["labels"]["seed"])) in by]
    x_clean = ratio_text(ratios) if attack != "none" else "—"
    plain = [c["metrics"]["i2t_r1"] / by[k]["metrics"]["i2t_r1"] for c in group
             if (k := (victim, "none", "none", c["labels"]["seed"])) in by]
    x_plain = ratio_text(plain)
    costs = []
    for c in group:
        base = by.get((victim, "none", attack, c["labels"]["seed"]))
        if base and "defense" in c:
            costs.append((c["defense"]["defend_s"] + c["train"]["train_s"]) / base["train"]["train_s"])
    cost = f"{mean(costs):.2f}×" if costs else "—"
    return (f"| {victim} | {defense} | {attack} | {final_text} | {peak_text} | {x_clean} | {x_plain} | {cost} | "
            f"{','.join(map(str, seeds))} |")


ATTACKS = ["none", "mem", "mem-eot", "mem-lowfreq"]
DEFENSES = ["none", "early-stop", "jpeg", "dvae", "ueraser", "adv-train"]
print("| victim | defense | attack | i2t R@1 final | i2t R@1 peak (epoch) | final × clean (same defense) | "
      "final × undefended clean | cost × undefended training | seeds |")
print("|---|---|---|---|---|---|---|---|---|")
for victim, defense, attack in sorted(groups, key=lambda k: (k[0], DEFENSES.index(k[1].split(":")[0]),
                                                           ATTACKS.index(k[2].split(":")[0]), k)):
    print(row(victim, defense, attack))
