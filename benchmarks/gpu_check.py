"""The device check of the performance issue, as one JSON line (run by benchmarks/gpu_check.sh).

* victim training img/s for rn50 and vitb32 at ``--res`` px, batch ``--batch``, bf16 autocast
  (ue-bench's ``train_clip`` on a random uint8 split, per step after ``--warmup`` steps);
* MEM generation pairs/s with the rn50 surrogate at the paper preset on a ``--pairs`` synthetic slice
  (``--outer`` outer iterations, so it fits the time budget; pairs/s = pairs × iterations / seconds);
* peak GPU memory of each part.

On a CPU it runs too (``--tiny``: tiny-rn/tiny-vit, 32 px, a few steps), which is how it is tested here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from ue_bench import registry
from ue_bench.data import PairSplit
from ue_bench.engine.device import auto_device
from ue_bench.params import build_params
from ue_bench.engine.training import train_clip


def _peak_reset(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_gb(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        return round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
    return None


def train_rate(arch, res, batch, steps, warmup, device) -> dict:
    victim = registry.get("victims", arch)()
    n = batch * (steps + warmup)
    rng = np.random.default_rng(0)
    split = PairSplit(rng.integers(0, 256, (n, res, res, 3), dtype=np.uint8), [[f"photo {i}"] for i in range(n)])
    warm = PairSplit(split.images[:batch * warmup], split.captions[:batch * warmup])
    model = victim.create_model(res, device)
    tok = victim.tokenizer()
    kw = dict(epochs=1, batch_size=batch, lr=5e-4, weight_decay=0.2, warmup=0.0, seed=0, device=device)
    train_clip(model, tok, warm, **kw)
    _peak_reset(device)
    timed = PairSplit(split.images[batch * warmup:], split.captions[batch * warmup:])
    start = time.perf_counter()
    train_clip(model, tok, timed, **kw)
    if device.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - start
    return {"img_per_s": round(len(timed) / secs, 1), "step_s": round(secs / steps, 4), "peak_gb": _peak_gb(device)}


def mem_rate(surrogate, res, pairs, outer, device, preset) -> dict:
    from ue_bench.datasets.synthetic import Synthetic
    ds = Synthetic(build_params("synthetic", Synthetic.Params, {"size": pairs, "test_size": 8, "resolution": res}))
    train = ds.load().train
    attack_cls = registry.get("attacks", "mem")
    params = {**attack_cls.presets.get(preset, {}), "outer_iters": outer}
    attack = attack_cls(build_params("mem", attack_cls.Params, params))
    sur_cls = registry.get("victims", surrogate)
    sur = sur_cls(build_params(surrogate, sur_cls.Params, dict(sur_cls.presets.get(preset, {}))))
    _peak_reset(device)
    start = time.perf_counter()
    prot = attack.protect(train, sur, 0, device)
    secs = time.perf_counter() - start
    meta = prot.meta
    return {"pairs_per_s": round(pairs * len(meta["history"]) / secs, 2), "seconds": round(secs, 1),
            "iterations": len(meta["history"]), "surrogate_s": meta["surrogate_s"], "noise_s": meta["noise_s"],
            "params": params, "peak_gb": _peak_gb(device)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="CPU smoke sizes (tiny models, 32 px)")
    ap.add_argument("--res", type=int, default=224)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--outer", type=int, default=1)
    a = ap.parse_args(argv)
    if a.tiny:
        a.res, a.batch, a.steps, a.warmup, a.pairs = 32, 8, 2, 1, 32
    archs = ("tiny-rn", "tiny-vit") if a.tiny else ("rn50", "vitb32")
    surrogate, preset = ("tiny-rn", "tiny") if a.tiny else ("rn50", "paper")
    device = auto_device("auto")
    out = {"device": str(device), "torch": torch.__version__,
           "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
           "res": a.res, "batch": a.batch, "precision": "bf16 autocast" if device.type == "cuda" else "fp32"}
    for arch in archs:
        out[f"train_{arch}"] = train_rate(arch, a.res, a.batch, a.steps, a.warmup, device)
    out[f"mem_{surrogate}"] = mem_rate(surrogate, a.res, a.pairs, a.outer, device, preset)
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
