"""Retrieval evaluation of a trained model on a clean test split (the CLIP_benchmark protocol)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ue_bench.data import PairSplit, release
from ue_bench.engine.device import autocast
from ue_bench.engine.metrics import random_guess_levels, retrieval_metrics
from ue_bench.engine.training import images_tensor, normalize, to_unit, tokenize_captions


class RetrievalProbe:
    """The retrieval metrics (:func:`~ue_bench.engine.metrics.retrieval_metrics`) of a model on one split,
    asked for repeatedly — after every few epochs of a learning curve, or on a validation share: the
    captions are tokenised once, here, not at every call.

    ``probe(model)`` returns ``{metric key: float}`` (recalls in [0, 1], medians in ranks) for the
    ``METRIC_KEYS``, embedding the images ``batch_size`` at a time in the model's current mode (the
    caller sets eval mode; :func:`embed_split` does); ``probe.random`` holds the random-guess level of
    every key on the same split."""

    def __init__(self, tokenizer, split: PairSplit, device: torch.device, batch_size: int = 256) -> None:
        self.split, self.device, self.batch_size = split, device, batch_size
        self.tokens, _, counts = tokenize_captions(tokenizer, split.captions)
        self.owner = torch.repeat_interleave(torch.arange(len(split)), counts)
        self.random = random_guess_levels(counts.tolist())

    @torch.no_grad()
    def embeddings(self, model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised image and caption embeddings, float32 on the CPU: ``[N, D]`` and ``[M, D]``."""
        images = images_tensor(self.split.images)
        img, txt = [], []
        with autocast(self.device):
            for i in range(0, len(images), self.batch_size):
                img.append(model.encode_image(normalize(to_unit(images[i:i + self.batch_size], self.device))).float())
                release(self.split.images)  # a memory-mapped test split stays on disk
            for i in range(0, len(self.tokens), self.batch_size):
                txt.append(model.encode_text(self.tokens[i:i + self.batch_size].to(self.device)).float())
        return F.normalize(torch.cat(img), dim=-1).cpu(), F.normalize(torch.cat(txt), dim=-1).cpu()

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        image_emb, text_emb = self.embeddings(model)
        return retrieval_metrics(image_emb, text_emb, self.owner)


@torch.no_grad()
def embed_split(model: torch.nn.Module, tokenizer, split: PairSplit, device: torch.device,
                batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L2-normalised image and caption embeddings (float32, CPU) and each caption's image index; the
    model is put in eval mode and the images are read ``batch_size`` at a time."""
    model.to(device).eval()
    probe = RetrievalProbe(tokenizer, split, device, batch_size)
    return (*probe.embeddings(model), probe.owner)


def evaluate_retrieval(model: torch.nn.Module, tokenizer, split: PairSplit, device: torch.device) -> dict[str, float]:
    """Retrieval metrics, with ``random_<key>`` beside each: the random-guess level of the same split."""
    model.to(device).eval()
    probe = RetrievalProbe(tokenizer, split, device)
    return {**probe(model), **{f"random_{k}": v for k, v in probe.random.items()}}
