"""(b) MEM generation against its floor: the passes the configured algorithm needs × the measured time of
one such pass, divided by the wall time of ``protect``, overall and per phase.

What the floor counts, from the attack's Params (``n`` a multiple of ``batch_size``, so every batch is
full; ``nb = n / batch_size`` batches per pass; ``it`` outer iterations run, ``flips = min(hotflip_iters,
it)`` of them update the triggers):

- surrogate: ``it × surrogate_steps`` training steps, each a forward and backward of both towers on a
  batch and an AdamW step;
- HotFlip, per batch of a flip iteration: one image-tower forward (the image features, fixed during the
  flip), one text-tower forward and backward to the token embeddings (the gradient that ranks tokens),
  and per trigger position one text-tower forward of the ``batch × candidates`` new rows (the current
  token's features are already known: the gradient pass's forward, then the previous position's pick);
  HotFlip's text passes cover the positions up to the end-of-text token, as the implementation's do;
- PGD, per batch: ``pgd_steps`` image-tower forward+backward steps w.r.t. the input against fixed text
  features, plus, in an iteration without HotFlip, one text-tower forward for those features (after a
  flip, HotFlip's last features are them).

Each pass is timed on its own (bare, on a fresh tiny-rn of the same shapes, a few in a row as the loop
runs them), interleaved medians, half of the rounds before and half after the MEM run, in the same
process on one thread. The wall time is split with the timings the min–min loop records:
``surrogate_s``, ``hotflip_s``, ``pgd_s``, the rest of ``noise_s`` (data movement: caption picks, pixels
and delta to and from the device, write-back) and the rest of the wall (setup: tokenising, the trigger
vocabulary, the fresh model). Also printed: the work the implementation does beyond the floor (HotFlip's
ranking of the whole vocabulary, its re-encoding of the current rows and of the current token among
each position's options, PGD's text features re-encoded after a flip), and the share of wall time the
process was on a CPU during the pass timings and during MEM (the load on a shared machine, in figures).

The allocator matters on CPU: with glibc's default mmap threshold, activations above it are fresh
pages on every call. Before HotFlip stopped at the end-of-text token its candidate activations were,
and it ran at ~0.7 of its floor (docs/results/2026-11-30/performance); since, they fit the heap
(docs/results/2026-12-01/performance).

Bar (the performance issue): ≥ 0.85 of the floor; printed, not asserted (one shared CPU core is noisy
and this is a measurement, not a timed test). Slow: ``pytest tests/benchmarks/test_bench_mem_floor.py
-m slow --benchmark-enable -s`` (about 1.5 minutes on one core).
"""

from __future__ import annotations

import time

import open_clip
import pytest
import torch
import torch.nn.functional as F

from ue_bench import registry
from ue_bench.attacks._hotflip import encode_text, encode_text_to_eot, hotflip, token_embedding
from ue_bench.attacks._trigger import trigger_vocab
from ue_bench.engine.training import make_optimizer, normalize

from _bench_util import interleaved, one_thread, report

pytestmark = pytest.mark.slow

N, RES = 512, 32
CONFIG = {"outer_iters": 3, "surrogate_steps": 16, "pgd_steps": 8, "hotflip_iters": 1, "candidates": 16,
          "trigger_len": 3, "batch_size": 32}
ROUNDS = 6  # per side of the MEM run


def pass_timers(surrogate, p, tokens: torch.Tensor) -> dict:
    """Bare passes of each kind the floor counts, on a fresh surrogate with MEM's batch shapes: name →
    (a function running ``reps`` such passes in a row, as the loop runs them, ``reps``). Fixed features are
    computed once here, as the floor does not count them again. Timed alongside, not in the floor:
    HotFlip's ranking of the vocabulary (embedding gather, scores, top-k: not a pass) and one whole
    :func:`hotflip` call on a batch (the implementation out of the loop)."""
    b, k = p.batch_size, p.candidates
    model = surrogate.create_model(RES, "cpu")
    params = list(model.parameters())
    opt = make_optimizer(model, 1e-4, 0.1)
    loss_fn = open_clip.ClipLoss()
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (b, 3, RES, RES), generator=g).float()
    rows = tokens[:b]
    cand_rows = tokens[torch.arange(b * k) % len(tokens)]
    with torch.no_grad():
        img_feats = F.normalize(model.encode_image(normalize(pixels / 255.0)), dim=-1)
        text_feats = F.normalize(model.encode_text(rows), dim=-1)
    scale = model.logit_scale.exp().detach()

    def frozen(yes: bool):
        model.train(not yes)
        for q in params:
            q.requires_grad_(not yes)

    def train_step():
        out = model(normalize(pixels / 255.0), rows)
        loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def pgd_step():
        delta = torch.zeros_like(pixels).requires_grad_(True)
        loss = loss_fn(F.normalize(model.encode_image(normalize((pixels + delta) / 255.0)), dim=-1), text_feats,
                       scale)
        (grad,) = torch.autograd.grad(loss, delta)
        (delta.detach() - grad.sign()).clamp(-8, 8)

    # HotFlip's text passes stop at the end-of-text token of the trigger-prefixed captions
    used = min(int(rows.argmax(-1).max()) + 1 + p.trigger_len, rows.shape[1])

    def text_forward(t, length=None):
        with torch.no_grad():
            encode_text(model, t) if length is None else encode_text_to_eot(model, t, length)

    def image_forward():
        with torch.no_grad():
            F.normalize(model.encode_image(normalize(pixels / 255.0)), dim=-1)

    vocab = trigger_vocab(surrogate.tokenizer())
    emb = token_embedding(model)
    grad_rows = torch.randn(b, p.trigger_len, emb.weight.shape[1], generator=g)

    def ranking():
        table = emb.weight.detach()[vocab].float()
        vocab[(-grad_rows @ table.T).topk(min(k, len(vocab)), dim=-1).indices]

    trigger = vocab[torch.randint(len(vocab), (b, p.trigger_len), generator=g)]

    def hotflip_call():
        hotflip(model, img_feats, rows, trigger, vocab, k, surrogate.tokenizer().eot_token_id)

    def text_gradient():
        captured = {}

        def keep(_m, _i, out):
            captured["e"] = out.detach().requires_grad_(True)
            return captured["e"]

        h = token_embedding(model).register_forward_hook(keep)
        try:
            loss = loss_fn(img_feats, encode_text_to_eot(model, rows, used), scale)
            torch.autograd.grad(loss, captured["e"])
        finally:
            h.remove()

    def run(fn, train: bool, reps: int):
        def go():
            frozen(not train)
            for _ in range(reps):
                fn()
        return go, reps

    return {"train": run(train_step, True, 4), "pgd": run(pgd_step, False, p.pgd_steps),
            "text_b": run(lambda: text_forward(rows), False, 4),
            "text_bk": run(lambda: text_forward(cand_rows, used), False, p.trigger_len),
            "image": run(image_forward, False, 4), "text_grad": run(text_gradient, False, 4),
            "ranking": run(ranking, False, 4), "hotflip_call": run(hotflip_call, False, 1)}


def clocked(fn):
    """``fn()``, with the process's CPU seconds and the wall seconds it took."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall


@pytest.mark.benchmark(group="mem-floor")
def test_mem_efficiency_against_its_floor(benchmark):
    one_thread()
    split = registry.create("datasets", "synthetic", {"size": N, "test_size": 16, "resolution": RES}).load().train
    surrogate = registry.create("victims", "tiny-rn")
    attack = registry.create("attacks", "mem", CONFIG)
    p = attack.params
    assert N % p.batch_size == 0
    tok = surrogate.tokenizer()
    tokens = tok([f"xx yy zz {c[0]}" for c in split.captions])
    timers = pass_timers(surrogate, p, tokens)
    fns = {k: fn for k, (fn, _) in timers.items()}

    interleaved(fns, 1)  # warm-up
    before, cpu_b, wall_b = clocked(lambda: benchmark.pedantic(interleaved, args=(fns, ROUNDS), rounds=1,
                                                                iterations=1))
    prot, mem_cpu, wall = clocked(lambda: attack.protect(split, surrogate, 0, torch.device("cpu")))
    after, cpu_a, wall_a = clocked(lambda: interleaved(fns, ROUNDS))
    t = {k: (before[k] + after[k]) / 2 / reps for k, (_, reps) in timers.items()}  # seconds per pass

    hist = prot.meta["history"]
    it, nb = len(hist), N // p.batch_size
    flips = min(p.hotflip_iters, it)
    floor = {
        "surrogate": it * p.surrogate_steps * t["train"],
        "hotflip": flips * nb * (t["image"] + t["text_grad"] + p.trigger_len * t["text_bk"]),
        "pgd": it * nb * p.pgd_steps * t["pgd"] + (it - flips) * nb * t["text_b"],
    }
    spent = {"surrogate": sum(h["surrogate_s"] for h in hist),
             "hotflip": sum(h.get("hotflip_s", 0.0) for h in hist), "pgd": sum(h["pgd_s"] for h in hist)}
    spent["data movement"] = sum(h["noise_s"] for h in hist) - spent["hotflip"] - spent["pgd"]
    spent["setup"] = wall - sum(h["surrogate_s"] + h["noise_s"] for h in hist)
    # work the implementation does beyond the floor (the gap, explained): HotFlip's vocabulary ranking, its
    # re-encode of the current rows and the current token among each position's options, and PGD's text
    # features re-encoded after a flip
    beyond = {"hotflip": flips * nb * (t["ranking"] + t["text_b"] + p.trigger_len * t["text_bk"] / p.candidates),
              "pgd": flips * nb * t["text_b"]}
    hotflip_bare = flips * nb * (t["image"] + t["hotflip_call"])  # the loop's HotFlip section, timed bare
    total_floor = sum(floor.values())
    eff = total_floor / wall
    # the load caveat in figures: the share of wall time this (one-thread) process was on a CPU while the
    # passes were timed and while MEM ran; the ratio corrected for a difference in load between the two
    share_passes, share_mem = (cpu_b + cpu_a) / (wall_b + wall_a), mem_cpu / wall
    eff_cpu = eff * share_passes / share_mem

    report("mem floor", {"config": f"n={N} res={RES} " + ",".join(f"{k}={v}" for k, v in CONFIG.items()),
                         "pass ms": ", ".join(f"{k} {1000 * v:.1f}" for k, v in t.items()),
                         "wall": f"{wall:.2f}s", "floor": f"{total_floor:.2f}s",
                         "efficiency (bar 0.85)": f"{eff:.3f}",
                         "CPU share passes/MEM": f"{share_passes:.3f}/{share_mem:.3f}",
                         "efficiency on CPU time": f"{eff_cpu:.3f}"})
    report("mem floor by phase", {k: f"spent {spent[k]:.2f}s floor {floor.get(k, 0.0):.2f}s"
                                  + (f" efficiency {floor[k] / spent[k]:.3f}" if k in floor and spent[k] else "")
                                  + (f" (floor + work beyond it {floor[k] + beyond[k]:.2f}s)" if k in beyond else "")
                                  + (f" (hotflip() called bare {hotflip_bare:.2f}s)" if k == "hotflip" else "")
                                  for k in spent})
    benchmark.extra_info.update(efficiency=eff, efficiency_cpu_time=eff_cpu, wall_s=wall, floor_s=total_floor,
                                **{f"{k}_efficiency": floor[k] / spent[k] for k in floor if spent[k]})
    assert all(v > 0 for v in t.values()), t
    # the floor is below the wall up to timing noise (passes and MEM are timed apart on a shared core)
    assert 0 < total_floor < 1.15 * wall, (total_floor, wall)
    # the loop's sections nest: HotFlip and PGD within the noise pass (up to the records' 2-decimal
    # rounding), the loop within protect
    assert spent["data movement"] >= -0.01 * 3 * it and spent["setup"] > 0, spent
