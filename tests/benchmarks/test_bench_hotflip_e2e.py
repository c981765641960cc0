"""(c) HotFlip for one batch, end to end: ue-bench's :func:`hotflip` (image features once, one batched
text pass per trigger position over the positions up to the end-of-text token, closed-form swap losses)
against the reference's schedule as /work/shared/DESIGN.md describes it: the gradient pass, then greedy
left to right, for each position and each candidate rank (the current token and the top-k), one full
forward of the whole model (image and text towers, the whole 77-token context) on the batch and its
loss; the best rank is kept. Equal candidates on both sides.

Default: an RN50 image tower at 224 px (the issue's choice; override: UE_BENCH_HOTFLIP_MODEL, _RES,
_BATCH, _T, _K) and captions of COCO's length (10–13 words). ue-bench saves the image forwards the
reference repeats and the text positions after the end-of-text token, which a causal text tower pooled
there never reads. Bar (the issue): ≥ 5×. Slow:
``pytest tests/benchmarks/test_bench_hotflip_e2e.py -m slow --benchmark-enable -s``.
"""

from __future__ import annotations

import os

import open_clip
import pytest
import torch
import torch.nn.functional as F

from ue_bench.attacks._hotflip import encode_text, encode_text_to_eot, hotflip, token_embedding
from ue_bench.attacks._trigger import with_trigger
from ue_bench.engine.training import normalize

from _bench_util import interleaved, one_thread, report

pytestmark = pytest.mark.slow

MODEL = os.environ.get("UE_BENCH_HOTFLIP_MODEL", "RN50")
RES = int(os.environ.get("UE_BENCH_HOTFLIP_RES", "224"))
B = int(os.environ.get("UE_BENCH_HOTFLIP_BATCH", "4"))
T = int(os.environ.get("UE_BENCH_HOTFLIP_T", "2"))
K = int(os.environ.get("UE_BENCH_HOTFLIP_K", "4"))


#: COCO-like captions (10–13 words; COCO's mean is about 10.5).
CAPTIONS = ["a man riding a wave on top of a surfboard in the ocean",
            "two plates of food on a wooden table next to a cup of coffee",
            "a red double decker bus driving down a city street",
            "a cat sitting on the hood of a parked car in the sun",
            "a group of people standing around a kitchen preparing a meal"]


def reference_hotflip(model, images, tokens, trigger, vocab, k, eot):
    """The reference schedule: per position, per candidate rank, a full forward of the whole model."""
    loss_fn = open_clip.ClipLoss()
    emb = token_embedding(model)
    rows = with_trigger(tokens, trigger, eot)
    captured = {}

    def keep(_m, _i, out):
        captured["e"] = out.detach().requires_grad_(True)
        return captured["e"]

    h = emb.register_forward_hook(keep)
    with torch.enable_grad():
        out = model(images, rows)
        loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        (grad,) = torch.autograd.grad(loss, captured["e"])
    h.remove()
    scores = -grad[:, 1:1 + trigger.shape[1]] @ emb.weight.detach()[vocab].T
    top = vocab[scores.topk(k, dim=-1).indices]
    trigger = trigger.clone()
    with torch.no_grad():
        for p in range(trigger.shape[1]):
            options = torch.cat([trigger[:, p:p + 1], top[:, p]], 1)
            best, best_loss = 0, float("inf")
            for r in range(options.shape[1]):
                trial = rows.clone()
                trial[:, 1 + p] = options[:, r]
                out = model(images, trial)
                cur = float(loss_fn(out["image_features"], out["text_features"], out["logit_scale"]))
                if cur < best_loss:
                    best, best_loss = r, cur
            trigger[:, p] = options[:, best]
            rows[:, 1 + p] = trigger[:, p]
    return trigger


@pytest.mark.benchmark(group="hotflip-e2e")
def test_hotflip_batch_against_reference_schedule(benchmark):
    one_thread()
    torch.manual_seed(0)
    model = open_clip.create_model(MODEL, pretrained=None, force_image_size=RES, output_dict=True).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    tok = open_clip.get_tokenizer(MODEL)
    eot = tok.eot_token_id
    images = normalize(torch.rand(B, 3, RES, RES))
    tokens = tok([CAPTIONS[i % len(CAPTIONS)] for i in range(B)])
    vocab = torch.arange(1000, 20000)
    trigger = vocab[torch.randint(len(vocab), (B, T))]

    def ue():
        with torch.no_grad():
            feats = F.normalize(model.encode_image(images).float(), dim=-1)
        return hotflip(model, feats, tokens, trigger, vocab, K, eot)

    def ref():
        return reference_hotflip(model, images, tokens, trigger, vocab, K, eot)

    fns = {"ue-bench hotflip": ue, "reference schedule": ref}
    med = benchmark.pedantic(interleaved, args=(fns, 2), rounds=1, iterations=1)
    ratio = med["reference schedule"] / med["ue-bench hotflip"]
    rows = with_trigger(tokens, trigger, eot)
    used = int(rows.argmax(-1).max()) + 1
    with torch.no_grad():
        t = interleaved({"i": lambda: model.encode_image(images), "t": lambda: encode_text(model, rows),
                         "e": lambda: encode_text_to_eot(model, rows, used)}, 3)
    report("hotflip one batch", {"model": f"{MODEL}@{RES}", "B,T,K": f"{B},{T},{K}",
                                 **{k: f"{v:.2f}s" for k, v in med.items()},
                                 "speed-up (bar 5x)": f"{ratio:.2f}x",
                                 "text positions used": f"{used}/{rows.shape[1]}",
                                 "image/text forward": f"{t['i'] / t['t']:.2f}",
                                 "text to end-of-text/whole": f"{t['e'] / t['t']:.2f}"})
    benchmark.extra_info.update(speedup=ratio)
    assert ratio > 1.0  # the bar (5x) is reported, not asserted: a benchmark measures
