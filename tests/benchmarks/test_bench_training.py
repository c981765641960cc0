"""(a) Victim training throughput: ue-bench's ``train_clip`` against a bare minimal loop (same model,
batch, in-memory tensors, AdamW, ClipLoss) and against open_clip's own trainer
(``open_clip_train.train.train_one_epoch`` with the AdamW its ``main`` builds, fed pre-normalised
in-memory float batches, i.e. its data loading excluded), interleaved in one process on one thread.

Per step after warm-up, as the issue defines it: each loop stamps the clock when a step begins (train_clip
through its ``batch_loss`` hook, open_clip_train when its loader yields, the bare loop at the top of its
loop); a step's time is the gap to the next stamp, and the first step of every call is left out, so
per-call setup (tokenising, building the optimizer) is not counted. Whole calls are reported beside.

Bars (the performance issue): ≥ 0.95× the bare loop and ≥ 1.0× open_clip_train (with 5 % tolerance
for timing noise on a shared CPU). Slow: ``pytest tests/benchmarks -m slow --benchmark-enable -s``.
"""

from __future__ import annotations

import statistics
import time
import types

import numpy as np
import open_clip
import pytest
import torch

from ue_bench import registry
from ue_bench.data import PairSplit
from ue_bench.engine.training import clip_loss, make_optimizer, normalize, to_unit, train_clip

from _bench_util import one_thread, report

pytestmark = pytest.mark.slow

RES, BATCH, STEPS, ROUNDS = 64, 32, 8, 5


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


class Stamps:
    """Clock readings at the start of each step of one call; :meth:`steps` gives the step times after
    the first (the gaps to the next stamp; the last step, which has none, is not counted)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self) -> None:
        self.times.append(time.perf_counter())

    def steps(self) -> list[float]:
        return [b - a for a, b in zip(self.times[1:], self.times[2:])]


def _bare(model, images_u8: torch.Tensor, tokens: torch.Tensor, stamp):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = open_clip.ClipLoss()
    perm = torch.randperm(len(images_u8))
    for s in range(STEPS):
        stamp()
        idx = perm[s * BATCH:(s + 1) * BATCH]
        out = model(normalize(to_unit(images_u8[idx], torch.device("cpu"))), tokens[idx])
        loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


class _Loader:
    def __init__(self, x, t, stamp):
        self.x, self.t, self.stamp = x, t, stamp
        self.num_batches, self.num_samples = STEPS, STEPS * BATCH

    def __iter__(self):
        for s in range(STEPS):
            self.stamp()
            yield self.x[s * BATCH:(s + 1) * BATCH], self.t[s * BATCH:(s + 1) * BATCH]

    def __len__(self):
        return STEPS


def _open_clip_train(model, float_images, tokens, stamp):
    from open_clip_train.train import train_one_epoch
    args = types.SimpleNamespace(
        device="cpu", precision="fp32", distill=False, accum_freq=1, skip_scheduler=True, horovod=False,
        grad_clip_norm=None, log_every_n_steps=10 ** 9, batch_size=BATCH, world_size=1, rank=0, local_rank=0,
        wandb=False, save_logs=False, distributed=False, grad_checkpointing=False)
    info = types.SimpleNamespace(dataloader=_Loader(float_images, tokens, stamp), set_epoch=lambda e: None)
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
    loss_fn = open_clip.ClipLoss()

    def ue(stamp):
        def stamped_loss(model, unit, tok, _step):  # train_clip's own loss, with a stamp
            stamp()
            return clip_loss(model, loss_fn, normalize(unit), tok)
        train_clip(models["ue"], tok, split, epochs=1, batch_size=BATCH, lr=1e-4, weight_decay=0.1, warmup=0.0,
                   seed=0, device=torch.device("cpu"), batch_loss=stamped_loss)

    loops = {"ue-bench train_clip": ue,
             "bare loop": lambda stamp: _bare(models["bare"], images_u8, tokens, stamp),
             "open_clip_train": lambda stamp: _open_clip_train(models["oct"], float_images, tokens, stamp)}
    steps: dict[str, list[float]] = {k: [] for k in loops}

    def rounds(n: int) -> dict[str, float]:
        """Medians of whole calls; each call's step times are kept in ``steps``."""
        calls: dict[str, list[float]] = {k: [] for k in loops}
        for _ in range(n):
            for name, loop in loops.items():
                stamp = Stamps()
                start = time.perf_counter()
                loop(stamp)
                calls[name].append(time.perf_counter() - start)
                steps[name].extend(stamp.steps())
        return {k: statistics.median(v) for k, v in calls.items()}

    rounds(1)  # warm-up
    for v in steps.values():
        v.clear()
    whole = benchmark.pedantic(rounds, args=(ROUNDS,), rounds=1, iterations=1)
    per_step = {k: statistics.median(v) for k, v in steps.items()}
    pps = {k: BATCH / v for k, v in per_step.items()}
    vs_bare = pps["ue-bench train_clip"] / pps["bare loop"]
    vs_oct = pps["ue-bench train_clip"] / pps["open_clip_train"]
    whole_bare = whole["bare loop"] / whole["ue-bench train_clip"]
    whole_oct = whole["open_clip_train"] / whole["ue-bench train_clip"]
    report("training pairs/s per step", {**{k: f"{v:.1f}" for k, v in pps.items()},
                                         "steps": len(steps["bare loop"]),
                                         "ratio vs bare (bar 0.95)": f"{vs_bare:.3f}",
                                         "ratio vs open_clip_train (bar 1.0)": f"{vs_oct:.3f}",
                                         "whole calls vs bare": f"{whole_bare:.3f}",
                                         "whole calls vs open_clip_train": f"{whole_oct:.3f}"})
    benchmark.extra_info.update(ratio_vs_bare=vs_bare, ratio_vs_open_clip_train=vs_oct)
    assert vs_bare >= 0.95 * 0.95 and vs_oct >= 1.0 * 0.95, (vs_bare, vs_oct)
