"""(c) HotFlip for one batch, end to end: ue-bench's :func:`hotflip` (image features once, one batched
text pass per trigger position, closed-form swap losses) against the reference's schedule as
/work/shared/DESIGN.md describes it: the gradient pass, then greedy left to right, for each position
and each candidate rank (the current token and the top-k), one full forward of the whole model (image
and text towers) on the batch and its loss; the best rank is kept. Equal candidates on both sides.

The image tower is the one the reference recomputes needlessly, so the ratio grows with it; on CPU the
default is ViT-B-16 at 224 px (override: UE_BENCH_HOTFLIP_MODEL, _RES, _BATCH, _T, _K). The text
passes per candidate are the same on both sides, so the ratio is bounded by about
(image + text cost) / text cost per batch. Bar (the issue): ≥ 5×. Slow:
``pytest tests/benchmarks/test_bench_hotflip_e2e.py -m slow --benchmark-enable -s``.
"""

from __future__ import annotations

import os

import open_clip
import pytest
import torch
import torch.nn.functional as F

from ue_bench.attacks._hotflip import encode_text, hotflip, token_embedding
from ue_bench.attacks._trigger import with_trigger
from ue_bench.training import normalize

from _bench_util import interleaved, one_thread, report

pytestmark = pytest.mark.slow

MODEL = os.environ.get("UE_BENCH_HOTFLIP_MODEL", "ViT-B-16")
RES = int(os.environ.get("UE_BENCH_HOTFLIP_RES", "224"))
B = int(os.environ.get("UE_BENCH_HOTFLIP_BATCH", "4"))
T = int(os.environ.get("UE_BENCH_HOTFLIP_T", "2"))
K = int(os.environ.get("UE_BENCH_HOTFLIP_K", "4"))


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
    tokens = tok([f"a photo of thing {i}" for i in range(B)])
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
    with torch.no_grad():
        t_img = interleaved({"i": lambda: model.encode_image(images)}, 2)["i"]
        t_txt = interleaved({"t": lambda: encode_text(model, tokens)}, 2)["t"]
    report("hotflip one batch", {"model": f"{MODEL}@{RES}", "B,T,K": f"{B},{T},{K}",
                                 **{k: f"{v:.2f}s" for k, v in med.items()},
                                 "speed-up (bar 5x)": f"{ratio:.2f}x",
                                 "image/text forward": f"{t_img / t_txt:.2f}",
                                 "bound (img+txt)/txt": f"{(t_img + t_txt) / t_txt:.2f}x"})
    benchmark.extra_info.update(speedup=ratio)
    assert ratio > 1.0  # the bar (5x) is reported, not asserted: it needs a larger image tower than CPU allows
