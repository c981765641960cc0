"""Contrastive training of an open_clip model on the published form of a split.

Victims always see what a scraper would see: ``uint8`` images and caption strings, tokenised here with
open_clip's tokenizer. The loop keeps the loss on the device and reads it once per epoch, so there is
no per-step host synchronisation on a GPU.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from tqdm.auto import tqdm

from ue_bench.engine.views import training_view
from ue_bench.data import PairSplit, release
from ue_bench.engine.device import autocast
from ue_bench.errors import UsageError

log = logging.getLogger("ue_bench.train")

_MEAN = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)


#: One PGD step on a batch (the image tower's forward and backward, no parameter gradients) in training
#: steps of the same model and batch: what every cost estimate with PGD in it (the min-min attacks'
#: ``cost_steps``, ``adv-train``'s ``train_cost``) counts it as. Measured with tiny-rn, one CPU thread:
#: 2026-12-01 a training step 0.24 s, a PGD step 0.077 s; 2026-12-06 ``adv-train`` at 10 steps 2.9-4.6×
#: an undefended training (``docs/results/2026-12-06/defenses``).
PGD_STEP_COST = 0.3


def to_unit(images_u8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``uint8 [B,H,W,3]`` → float ``[B,3,H,W]`` in [0, 1] on ``device``."""
    return images_u8.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)


def images_tensor(images) -> torch.Tensor:
    """A uint8 tensor viewing the ``[N, H, W, 3]`` images without copying them. A read-only memory-mapped
    split makes torch warn that it cannot protect the array from writes; nothing writes through this
    view, so that warning is silenced here rather than shown on every run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(images)


def read_batch(array: np.ndarray, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` of ``array`` (``[N, ...]``: a split's images or a delta over them) as a CPU tensor
    copy. The pages of a memory-mapped ``array`` are released (:func:`ue_bench.data.release`) right
    after: the kernel maps whole large folios (up to 2 MiB) per row read, so without it a pass over a
    large split would leave the split resident."""
    out = torch.from_numpy(np.asarray(array[idx.numpy()]))
    release(array)
    return out


def normalize(unit: torch.Tensor) -> torch.Tensor:
    """[0, 1] images → the CLIP-normalised input the models expect (differentiable, for attacks)."""
    return (unit - _MEAN.to(unit.device)) / _STD.to(unit.device)


def tokenize_captions(tokenizer, captions: list[list[str]], desc: str = "") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All captions tokenised once: ``tokens[M, L]``, the first row of each image, and its caption count.
    Captions the tokenizer truncates to its context length are counted and reported on stderr."""
    counts = torch.tensor([len(c) for c in captions])
    offsets = torch.cumsum(counts, 0) - counts
    texts = [c for caps in captions for c in caps]
    tokens = tokenizer(texts)
    warn_truncated(tokenizer, texts, tokens, desc)
    return tokens, offsets, counts


_warned: set[tuple] = set()


def count_truncated(tokenizer, texts: list[str], tokens: torch.Tensor) -> int:
    """How many of ``texts`` did not fit the ``tokens.shape[1]``-token context: a row whose last
    position is not padding (0) filled the context; with open_clip's BPE ``encode`` the exact fits
    (start + text + end == context) are told apart from the truncated ones."""
    full = (tokens[:, -1] != 0).nonzero().flatten().tolist()
    encode = getattr(tokenizer, "encode", None)
    if encode is None or getattr(tokenizer, "reduction_fn", None) is not None:
        return len(full)
    return sum(len(encode(texts[i])) + 2 > tokens.shape[1] for i in full)


def warn_truncated(tokenizer, texts: list[str], tokens: torch.Tensor, desc: str = "") -> int:
    """Print (once per split and model) how many captions the tokenizer truncated; returns the count."""
    n = count_truncated(tokenizer, texts, tokens)
    key = (desc, n, len(texts), tokens.shape[1])
    if n and key not in _warned:
        _warned.add(key)
        print(f"ue-bench: {n} of {len(texts)} captions are longer than the {tokens.shape[1]}-token context of the "
              f"text tower{f' ({desc})' if desc else ''} and are truncated", file=sys.stderr)
    return n


def clip_loss(model: torch.nn.Module, loss_fn: open_clip.ClipLoss, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's symmetric InfoNCE on normalised images and token ids."""
    out = model(images, tokens)
    return loss_fn(out["image_features"], out["text_features"], out["logit_scale"])


def cosine_with_warmup(optimizer: torch.optim.Optimizer, total_steps: int, warmup_frac: float,
                       warmup_steps: int | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay to zero, per step (open_clip's ``cosine`` schedule; the MEM
    reference's ``cosine_scheduler``). The warm-up lasts ``warmup_steps`` steps, else the fraction
    ``warmup_frac`` of ``total_steps``; a warm-up longer than the run never reaches the peak rate, as in
    the reference on Flickr8K (10,000 warm-up steps, about 7,500 in all)."""
    if warmup_steps is not None:
        warmup = warmup_steps
    else:
        warmup = max(1, round(total_steps * warmup_frac)) if warmup_frac > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.98),
                   eps: float = 1e-6, decay_embeddings: bool = False) -> torch.optim.AdamW:
    """AdamW with no decay on gains, biases and the logit scale (as open_clip's trainer and the MEM
    reference), nor on the token and positional embeddings unless ``decay_embeddings``. Defaults:
    open_clip's betas (0.9, 0.98) and eps 1e-6 (the MEM reference: (0.9, 0.999), 1e-8).

    Its multi-tensor (``foreach``) implementation, which torch picks by default on CUDA only: on CPU it
    updates exactly the same values as the per-parameter loop (bit for bit, tested) in about 0.8 of its
    time (tiny-rn)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        embedding = "embedding" in name
        exclude = ((p.ndim < 2 and not embedding) or "bn" in name or "ln" in name or "bias" in name
                   or "logit_scale" in name or (embedding and not decay_embeddings))
        (no_decay if exclude else decay).append(p)
    groups = [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=True)


def batches(n: int, batch_size: int, generator: torch.Generator, *, keep_all: bool = False) -> list[torch.Tensor]:
    """A seeded permutation of ``range(n)`` cut into int64 index batches of ``batch_size``.

    A trailing batch of one pair has no negative for the contrastive loss. Training drops it
    (``keep_all=False``: the next epoch's permutation visits that image again); an attack's pass over
    the data, where every image needs its noise, merges it into the previous batch (``keep_all=True``).
    """
    parts = list(torch.randperm(n, generator=generator).split(batch_size))
    if len(parts[-1]) < 2:
        tail = parts.pop()
        if keep_all and parts:
            parts[-1] = torch.cat([parts[-1], tail])
        elif keep_all:
            parts.append(tail)
    return parts


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimiser steps per epoch of :func:`train_clip` over ``n`` items (images or caption rows, see its
    ``epoch_unit``; a trailing batch of one pair is dropped)."""
    return n // batch_size + (1 if n % batch_size >= 2 else 0)


def epoch_items(split: PairSplit, epoch_unit: str) -> int:
    """What one epoch of :func:`train_clip` visits: the split's images, or its caption rows."""
    return len(split) if epoch_unit == "images" else sum(len(c) for c in split.captions)


def between_epochs(fn: Callable[[int, torch.nn.Module], bool | None], epoch: int, model: torch.nn.Module,
                   device: torch.device) -> bool:
    """``fn(epoch, model)`` with the model in eval mode, no gradients and the global RNG (CPU, and the
    device's on CUDA) restored afterwards; the model goes back to train mode. Returns ``bool`` of its result."""
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), torch.no_grad():
        model.eval()
        try:
            return bool(fn(epoch, model))
        finally:
            model.train()


def train_clip(
    model: torch.nn.Module,
    tokenizer,
    split: PairSplit,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    warmup: float,
    seed: int,
    device: torch.device,
    desc: str = "train",
    augment: str = "none",
    batch_loss: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, int], torch.Tensor] | None = None,
    epoch_unit: str = "images",
    warmup_steps: int | None = None,
    betas: tuple[float, float] = (0.9, 0.98),
    adam_eps: float = 1e-6,
    decay_embeddings: bool = False,
    after_epoch: Callable[[int, torch.nn.Module], bool | None] | None = None,
) -> list[float]:
    """Train ``model`` in place on ``split``; returns the mean loss of each epoch.

    With ``epoch_unit="images"`` each epoch visits every image once, paired with one of its captions
    drawn at random (seeded), as CLIP trainers do with multi-caption datasets; with ``"captions"`` it
    visits every caption row once with its image (open_clip's CSV trainer, the MEM reference), so one
    batch may hold two captions of an image. ``augment`` is the training-time view of the images
    (:mod:`ue_bench.engine.views`: ``none``, the pixels as published; ``openclip``, open_clip's default
    training transform, redrawn every step). ``batch_loss(model, unit_images, tokens, step)`` lets a
    training-time defense replace the plain loss on those [0, 1] images. ``seed`` draws the batch order,
    the caption picks and the views; the initial weights are the caller's. AdamW and the warm-up follow
    :func:`make_optimizer` and :func:`cosine_with_warmup`. Raises :class:`UsageError` when
    ``batch_size`` exceeds the split.

    ``after_epoch(epoch, model)``, if given, is called after every epoch (``epoch`` counted from 1) with the
    model in eval mode, under ``torch.no_grad()`` and a forked RNG (:func:`between_epochs`), and the model
    is put back in train mode afterwards: what it does (e.g. evaluate retrieval) consumes none of the
    training's random draws and updates no BatchNorm statistics, so the trained weights are bit for bit
    those of a run without it (tested). A true return stops training after that epoch (early stopping;
    the learning-rate schedule stays the one planned for ``epochs``).
    """
    if batch_size > len(split):
        raise UsageError(f"{desc}: batch_size {batch_size} is larger than the training split ({len(split)} images)")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images = split.images  # read batch by batch: a memory-mapped split stays on disk
    view = training_view(augment, split.resolution)
    tokens, offsets, counts = tokenize_captions(tokenizer, split.captions, desc)
    owners = torch.repeat_interleave(torch.arange(len(split)), counts)
    n_items = epoch_items(split, epoch_unit)
    model.to(device).train()
    optimizer = make_optimizer(model, lr, weight_decay, betas, adam_eps, decay_embeddings)
    scheduler = cosine_with_warmup(optimizer, epochs * steps_per_epoch(n_items, batch_size), warmup, warmup_steps)
    loss_fn = open_clip.ClipLoss()

    def default_loss(m, unit, tok, _step):
        return clip_loss(m, loss_fn, normalize(unit), tok)

    compute = batch_loss or default_loss
    history, step = [], 0
    show = sys.stderr.isatty()
    for epoch in range(epochs):
        start = time.perf_counter()
        total = torch.zeros((), device=device)
        order = batches(n_items, batch_size, gen)
        if epoch_unit == "images":
            rows = offsets + (torch.rand(len(split), generator=gen) * counts).long()
        for idx in tqdm(order, desc=f"{desc} {epoch + 1}/{epochs}", leave=False, disable=not show):
            if epoch_unit == "images":
                row = rows[idx]
            else:
                row, idx = idx, owners[idx]
            batch = read_batch(images, idx)
            unit = to_unit(batch, device) if view is None else view(batch, seed, step).to(device, non_blocking=True)
            tok = tokens[row].to(device, non_blocking=True)
            with autocast(device):
                loss = compute(model, unit, tok, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            lr_used = optimizer.param_groups[0]["lr"]  # the rate of this step, logged for the epoch's last
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            total += loss.detach()
            step += 1
        mean = total.item() / len(order)
        history.append(mean)
        log.info("%s epoch %d/%d loss %.4f lr %.2e %.1fs", desc, epoch + 1, epochs, mean,
                 lr_used, time.perf_counter() - start)
        if after_epoch is not None and between_epochs(after_epoch, epoch + 1, model, device):
            log.info("%s stopped after epoch %d/%d", desc, epoch + 1, epochs)
            break
    model.eval()
    return history
