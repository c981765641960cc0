"""(a) Victim training throughput: ue-bench's ``train_clip`` against a bare minimal loop (same model,
batch, in-memory tensors, AdamW, ClipLoss) and against open_clip's own trainer
(``open_clip_train.train.train_one_epoch``, fed pre-normalised in-memory float batches, i.e. its data
loading excluded), per step after a warm-up, interleaved in one process on one thread.

Bars (the performance issue): ≥ 0.95× the bare loop and ≥ 1.0× open_clip_train (with 5 % tolerance
for timing noise on a shared CPU). Slow: ``pytest tests/benchmarks -m slow --benchmark-enable -s``.
"""

from __future__ import annotations

import types

import numpy as np
import open_clip
import pytest
import torch

from ue_bench import registry
from ue_bench.data import PairSplit
from ue_bench.training import make_optimizer, normalize, to_unit, train_clip

from _bench_util import interleaved, one_thread, report

pytestmark = pytest.mark.slow

RES, BATCH, STEPS, ROUNDS = 64, 32, 6, 5


def _setup():
    one_thread()
    victim = registry.get("victims", "tiny-rn")()
    tok = victim.tokenizer()
    n = BATCH * STEPS
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, RES, RES, 3), dtype=np.uint8)
    split = PairSplit(images, [[f"a picture number {i}"] for i in range(n)])
    tokens = tok([c[0] for c in split.captions])
    return victim, tok, split, tokens


def _bare(model, images_u8: torch.Tensor, tokens: torch.Tensor):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = open_clip.ClipLoss()
    perm = torch.randperm(len(images_u8))
    for s in range(STEPS):
        idx = perm[s * BATCH:(s + 1) * BATCH]
        out = model(normalize(to_unit(images_u8[idx], torch.device("cpu"))), tokens[idx])
        loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


class _Loader:
    def __init__(self, x, t):
        self.x, self.t = x, t
        self.num_batches, self.num_samples = STEPS, STEPS * BATCH

    def __iter__(self):
        for s in range(STEPS):
            yield self.x[s * BATCH:(s + 1) * BATCH], self.t[s * BATCH:(s + 1) * BATCH]

    def __len__(self):
        return STEPS


def _open_clip_train(model, float_images, tokens):
    from open_clip_train.train import train_one_epoch
    args = types.SimpleNamespace(
        device="cpu", precision="fp32", distill=False, accum_freq=1, skip_scheduler=True, horovod=False,
        grad_clip_norm=None, log_every_n_steps=10 ** 9, batch_size=BATCH, world_size=1, rank=0, local_rank=0,
        wandb=False, save_logs=False, distributed=False, grad_checkpointing=False)
    info = types.SimpleNamespace(dataloader=_Loader(float_images, tokens), set_epoch=lambda e: None)
    groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in make_optimizer(model, 1e-4, 0.1).param_groups]
    opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.98), eps=1e-6)  # as open_clip_train.main builds it
    train_one_epoch(model, {"train": info}, open_clip.ClipLoss(), 0, opt, None, lambda step: None, None, args)


@pytest.mark.benchmark(group="training")
def test_train_clip_against_bare_and_open_clip_train(benchmark):
    pytest.importorskip("open_clip_train")
    victim, tok, split, tokens = _setup()
    images_u8 = torch.from_numpy(split.images)
    float_images = normalize(to_unit(images_u8, torch.device("cpu")))
    models = {k: victim.create_model(RES, "cpu") for k in ("ue", "bare", "oct")}
    fns = {
        "ue-bench train_clip": lambda: train_clip(models["ue"], tok, split, epochs=1, batch_size=BATCH, lr=1e-4,
                                                  weight_decay=0.1, warmup=0.0, seed=0,
                                                  device=torch.device("cpu")),
        "bare loop": lambda: _bare(models["bare"], images_u8, tokens),
        "open_clip_train": lambda: _open_clip_train(models["oct"], float_images, tokens),
    }
    interleaved(fns, 1)  # warm-up
    med = benchmark.pedantic(interleaved, args=(fns, ROUNDS), rounds=1, iterations=1)
    pps = {k: BATCH * STEPS / v for k, v in med.items()}
    vs_bare = pps["ue-bench train_clip"] / pps["bare loop"]
    vs_oct = pps["ue-bench train_clip"] / pps["open_clip_train"]
    report("training pairs/s", {**{k: f"{v:.1f}" for k, v in pps.items()},
                                "ratio vs bare (bar 0.95)": f"{vs_bare:.3f}",
                                "ratio vs open_clip_train (bar 1.0)": f"{vs_oct:.3f}"})
    benchmark.extra_info.update(ratio_vs_bare=vs_bare, ratio_vs_open_clip_train=vs_oct)
    assert vs_bare >= 0.95 * 0.95 and vs_oct >= 1.0 * 0.95, (vs_bare, vs_oct)
