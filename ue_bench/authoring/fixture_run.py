"""A fixture run directory of hand-chosen cells, for report plugins' tests and conformance checks.

``write(run_dir)`` writes ``run_dir/cells/*.json`` in the layout of
:meth:`ue_bench.bench.runner.Runner.run_cell`: a clean baseline and protections (MEM, EM from two surrogates,
two poison ratios, a single-seed random noise, a JPEG-defended board) for two victims over three
seeds, and one failed cell. Every victim trains ``95 + seed`` seconds; the JPEG transform takes
``DEFEND_S["jpeg"] + seed`` seconds once per protection and seed. The values are chosen so that means, intervals and ranks can be computed by
hand: a protection's victim mean recall for seed s is ``clean[victim][s] * f``, where the fraction of
clean f is ``SCORES[protection][s] -/+ 0.01`` for tiny-rn/tiny-vit, so the leaderboard score (the
per-seed fraction of clean averaged over victims) is exactly ``SCORES[...][s]``. Each recall is a fixed
multiple of the mean recall (``SHAPE``), so ``mean_recall`` is their mean as in the harness.

Cells without a defense carry a learning curve (every 5 of 30 epochs, the last point the final
metrics): a clean victim's mean recall rises to its final value (``CLEAN_CURVE``); a protected one
rises towards clean and falls back (``PROTECTED_CURVE``: learned early, forgotten, its peak at epoch 10).
The JPEG-defended cells have none, as cells written before curves were recorded (2026-12-06).
"""

from __future__ import annotations

import json
from pathlib import Path

from ue_bench.store.artifacts import canonical_sha256 as sha
from ue_bench.engine.metrics import random_guess_levels

SEEDS = (0, 1, 2)
VICTIMS = ("tiny-rn", "tiny-vit")
SPLIT = {"tiny-rn": -0.01, "tiny-vit": +0.01}
DEFEND_S = {"none": 0.0, "jpeg": 4.0}  # defense -> its data transform's seconds at seed 0 (+ seed after)
CLEAN = {  # defense -> victim -> per-seed clean mean recall
    "none": {"tiny-rn": (0.60, 0.62, 0.64), "tiny-vit": (0.50, 0.55, 0.60)},
    "jpeg": {"tiny-rn": (0.58, 0.60, 0.62), "tiny-vit": (0.48, 0.50, 0.52)},
}
SCORES = {  # (attack, surrogate, poison_ratio, defense) -> per-seed fraction of clean, mean over victims
    ("mem", "tiny-rn", 1.0, "none"): (0.05, 0.06, 0.07),
    ("mem", "tiny-vit", 1.0, "none"): (0.07, 0.08, 0.09),
    ("em", "tiny-rn", 1.0, "none"): (0.30, 0.32, 0.34),
    ("em", "tiny-vit", 1.0, "none"): (0.34, 0.36, 0.38),
    ("mem", "tiny-rn", 0.5, "none"): (0.50, 0.55, 0.60),
    ("mem", "tiny-vit", 0.5, "none"): (0.55, 0.60, 0.65),
    ("em", "tiny-rn", 0.5, "none"): (0.80, 0.85, 0.90),
    ("em", "tiny-vit", 0.5, "none"): (0.85, 0.90, 0.95),
    ("random", "none", 1.0, "none"): (0.95,),  # one seed only: no interval
    ("mem", "tiny-rn", 1.0, "jpeg"): (0.60, 0.70, 0.80),
}
SHAPE = {"i2t_r1": 0.5, "i2t_r5": 1.1, "i2t_r10": 1.4, "t2i_r1": 0.4, "t2i_r5": 1.1, "t2i_r10": 1.5}
ATTACK_PARAMS = {"none": {}, "mem": {"eps": 8, "trigger_len": 3}, "em": {"eps": 8}, "random": {"eps": 8},
                 "tap": {"eps": 8}}
PROTECTION = {  # attack -> (l2_mean base, protect_s base, psnr, ssim); em has no psnr/ssim recorded
    "mem": (250.0, 120.0, 34.0, 0.91), "em": (310.0, 60.0, None, None), "random": (443.0, 0.02, 30.1, 0.83),
}
RANDOM = random_guess_levels([5] * 200)
CURVE_EPOCHS = (5, 10, 15, 20, 25, 30)
#: Clean victim mean recall per curve epoch, as a fraction of its final value.
CLEAN_CURVE = (0.5, 0.75, 0.9, 0.95, 1.0, 1.0)
#: A protected victim's mean recall per curve epoch: final + this share of (clean final − final).
PROTECTED_CURVE = (0.4, 0.6, 0.4, 0.2, 0.1, 0.0)
PACKAGES = {"ue-bench": "0.1.0", "torch": "2.5.1", "open_clip_torch": "2.29.0", "numpy": "2.1.3",
            "pandas": "2.2.3", "pillow": "11.0.0"}


def spec(name: str, params: dict | None = None) -> dict:
    return {"name": name, "version": "1", "params": params or {}}


def victim_spec(name: str) -> dict:
    return spec(name, {"epochs": 30, "batch_size": 64, "lr": 0.001, "weight_decay": 0.1, "warmup": 0.05})


def _metrics(mean_recall: float) -> dict[str, float]:
    metrics = {k: round(mean_recall * f, 12) for k, f in SHAPE.items()}
    metrics.update(i2t_medr=float(round(2.0 / mean_recall)), t2i_medr=float(round(2.5 / mean_recall)),
                   mean_recall=round(mean_recall, 12))
    return metrics


def _curve(mean_recall: float, clean: float | None) -> dict:
    values = ([mean_recall * f for f in CLEAN_CURVE] if clean is None
              else [mean_recall + (clean - mean_recall) * f for f in PROTECTED_CURVE])
    return {"every": 5, "eval_s": 6.0,
            "points": [{"epoch": e, **_metrics(v)} for e, v in zip(CURVE_EPOCHS, values)]}


def _cell(attack: str, surrogate: str, ratio: float, defense: str, victim: str, seed: int,
         mean_recall: float | None, clean: float | None = None) -> dict:
    config = {"dataset": spec("synthetic", {"size": 1400, "resolution": 32}),
              "attack": spec(attack, ATTACK_PARAMS[attack]),
              "surrogate": victim_spec(surrogate) if surrogate != "none" else None,
              "defense": spec(defense, {"quality": 75} if defense == "jpeg" else {}),
              "victim": victim_spec(victim), "seed": seed, "poison_ratio": ratio}
    cell_id = sha(config)[:16]
    prot_key = sha([config["dataset"], config["attack"], config["surrogate"], seed, ratio])[:16]
    out = {"cell_id": cell_id, "config": config,
           "baseline": {"clean_attack": attack == "none", "baseline_defense": defense == "none"},
           "labels": {"dataset": "synthetic", "attack": attack, "surrogate": surrogate, "defense": defense,
                      "victim": victim, "seed": seed, "poison_ratio": ratio},
           "provenance": {"code_version": "0.1.0+g1a2b3c4", "packages": PACKAGES, "python": "3.11.2",
                          "platform": "Linux-6.1.0-x86_64-with-glibc2.36", "device": "cpu (2 threads)",
                          "seed": seed}}
    if mean_recall is None:
        out.update(status="failed", wall_s=3.5, error="RuntimeError: surrogate diverged (loss is NaN)",
                   traceback="Traceback (most recent call last):\n  ...\nRuntimeError: surrogate diverged (loss is NaN)\n")
        return out
    metrics = _metrics(mean_recall)
    metrics.update({f"random_{k}": v for k, v in RANDOM.items()})
    protection = {"key": prot_key, "device": "cpu", "n_poisoned": int(round(1000 * ratio)),
                  "protection_sha256": sha(["delta", prot_key]), "attack_meta": {}, "protect_s": 0.0}
    if attack in PROTECTION:
        l2, seconds, psnr, ssim = PROTECTION[attack]
        protection.update(linf_mean=8.0, l2_mean=l2 + seed, protect_s=seconds * ratio + seed)
        if psnr is not None:
            protection.update(psnr_mean=psnr + 0.1 * seed, ssim_mean=ssim)
    train_key = sha([cell_id, "victim"])[:16]
    defended = sha([prot_key, defense, seed])[:16]
    out.update(status="ok", metrics=metrics, protection=protection,
               defense={"key": defended, "defend_s": DEFEND_S[defense] + seed if DEFEND_S[defense] else 0.0},
               train={"loss_per_epoch": [4.1, 3.2, 2.5], "train_s": 95.0 + seed, "eval_s": 1.2,
                      "key": train_key, "device": "cpu", "trained_on_sha256": sha([train_key, "data"])},
               hashes={"dataset": sha("synthetic")[:16], "published_train": sha([prot_key, "pub"])[:16],
                       "trained_on": sha([prot_key, defense])[:16], "protection": prot_key,
                       "defended": defended, "victim": train_key},
               wall_s=round(100.0 + seed + protection["protect_s"], 2))
    if defense == "none":
        out["curve"] = _curve(mean_recall, None if attack == "none" else clean)
    return out


def cells() -> list[dict]:
    """Every cell record of the fixture run."""
    out = []
    for defense, clean in CLEAN.items():
        out += [_cell("none", "none", 0.0, defense, v, s, clean[v][s]) for v in VICTIMS for s in SEEDS]
    for (attack, surrogate, ratio, defense), scores in SCORES.items():
        out += [_cell(attack, surrogate, ratio, defense, v, s, CLEAN[defense][v][s] * (f + SPLIT[v]),
                      CLEAN[defense][v][s])
                for v in VICTIMS for s, f in zip(SEEDS, scores)]
    out.append(_cell("tap", "tiny-rn", 1.0, "none", "tiny-rn", 0, None))
    return out


def write(run_dir: Path) -> None:
    """Write the fixture run's ``cells/*.json`` under ``run_dir``."""
    (run_dir / "cells").mkdir(parents=True, exist_ok=True)
    for c in cells():
        (run_dir / "cells" / f"{c['cell_id']}.json").write_text(json.dumps(c, indent=2, sort_keys=True) + "\n")
