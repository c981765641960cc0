"""Retrieval evaluation of a trained model on a clean test split (the CLIP_benchmark protocol)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ue_bench.data import PairSplit, release
from ue_bench.engine.device import autocast
from ue_bench.engine.metrics import random_guess_levels, retrieval_metrics
from ue_bench.engine.training import images_tensor, normalize, to_unit, tokenize_captions


@torch.no_grad()
def embed_split(model: torch.nn.Module, tokenizer, split: PairSplit, device: torch.device,
                batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L2-normalised image and caption embeddings (float32, CPU) and each caption's image index; the
    images are read ``batch_size`` at a time."""
    model.to(device).eval()
    images = images_tensor(split.images)
    tokens, _, counts = tokenize_captions(tokenizer, split.captions)
    img, txt = [], []
    with autocast(device):
        for i in range(0, len(images), batch_size):
            img.append(model.encode_image(normalize(to_unit(images[i:i + batch_size], device))).float())
            release(split.images)  # a memory-mapped test split stays on disk
        for i in range(0, len(tokens), batch_size):
            txt.append(model.encode_text(tokens[i:i + batch_size].to(device)).float())
    owner = torch.repeat_interleave(torch.arange(len(split)), counts)
    return F.normalize(torch.cat(img), dim=-1).cpu(), F.normalize(torch.cat(txt), dim=-1).cpu(), owner


def evaluate_retrieval(model: torch.nn.Module, tokenizer, split: PairSplit, device: torch.device) -> dict[str, float]:
    """Retrieval metrics, with ``random_<key>`` beside each: the random-guess level of the same split."""
    image_emb, text_emb, owner = embed_split(model, tokenizer, split, device)
    metrics = retrieval_metrics(image_emb, text_emb, owner)
    randoms = random_guess_levels([len(c) for c in split.captions])
    return {**metrics, **{f"random_{k}": v for k, v in randoms.items()}}
