"""Table of open_clip's trainer on the full-resolution copies: its own validation metric (1 caption per
clean test photo) and ue-bench's retrieval evaluation of the last checkpoint (all 5 captions of the 300
clean test photos, imported at 32 px), per copy, view and trainer seed.

usage: python collect.py /work/fr OUT.json
"""
import json
import re
import sys
from pathlib import Path

import torch

from ue_bench import import_cache, registry
from ue_bench.evaluate import evaluate_retrieval

torch.set_num_threads(1)
root, out = Path(sys.argv[1]), Path(sys.argv[2])
with import_cache.using_root(root / "cache"):
    test = registry.create("datasets", "folder", {"path": "/work/photos/test", "test_fraction": 0,
                                                  "resolution": 32}).load().train
rows = []
for log in sorted(root.glob("copy-*/logs/*/out.log")):
    attack, run = log.parts[-4].removeprefix("copy-"), log.parts[-2]
    view, seed = run.rsplit("-s", 1)
    evals = re.findall(r"Eval Epoch: (\d+) .*?image_to_text_R@1: ([0-9.]+)", log.read_text())
    ckpts = sorted(log.parent.glob("checkpoints/epoch_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    if not evals or not ckpts or int(evals[-1][0]) != 8:
        continue
    victim = registry.create("victims", "tiny-rn", {"init": str(ckpts[-1])})
    model = victim.create_model(32, "cpu").eval()
    m = evaluate_retrieval(model, victim.tokenizer(), test, torch.device("cpu"))
    rows.append({"attack": attack, "view": view, "seed": int(seed), "open_clip_val_i2t_r1": float(evals[-1][1]),
                 "ue_bench_i2t_r1": m["i2t_r1"], "ue_bench_t2i_r1": m["t2i_r1"], "mean_recall": m["mean_recall"],
                 "checkpoint": str(ckpts[-1])})
    print(json.dumps(rows[-1]), flush=True)
out.write_text(json.dumps(rows, indent=1))
