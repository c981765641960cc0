"""The alternating min–min loop shared by MEM and EM (and MEM's variants).

Per outer iteration: ``surrogate_steps`` AdamW steps of the surrogate on the *published* form of the
current protection (noised images, trigger-prefixed captions), then one pass over the data in which
each batch gets a HotFlip trigger update (first ``hotflip_iters`` iterations only) and PGD on the image
noise. HotFlip scores each image against its own caption carrying its trigger; with ``shuffle``, PGD
pairs each image with a random caption of the batch carrying that image's own trigger, drawn again at
every PGD step, so the noise binds to the trigger rather than to the caption content (both as the
reference's ``src/poison_train.py``). EM is the same loop with no trigger and no shuffling (the
caption is the positive).

PGD optimises the noise on top of a :class:`FixedNoise`: none for MEM and EM (zero delta, the whole
``eps`` free); a variant such as ``mem-patterns`` fixes part of the budget (and may append fixed
trigger words) and the loop is otherwise the same. PGD's loss is that of the images as published,
unless the attack gives :class:`Views` (``mem-eot``: the mean over random resize-crops).

The noise is one delta per image (:class:`SampleNoise`) or, for an attack with pseudo-classes
(``mem-classwise``), one per class shared by its images (:class:`ClassNoise`); an attack with an
:class:`Adversary` (``rem``) trains the surrogate on adversarially moved batches and lets PGD minimise
the loss at the adversary's point (min–min–max). The loop may train several independently initialised
surrogates side by side on the same batches (``mem-ensemble``): PGD then minimises the mean of their
losses and HotFlip asks one of them per batch, in turn.

Everything is bounded: the loop runs at most ``outer_iters`` iterations and stops early once the mean
PGD loss of a pass falls to ``stop_loss``.
"""

from __future__ import annotations

import abc
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_STD

from ue_bench import Attack, Protection, delta_buffer, param, release
from ue_bench.engine.device import autocast
from ue_bench.engine.pixel_box import project
from ue_bench.engine.training import PGD_STEP_COST, batches, normalize

from ._hotflip import encode_text, hotflip
from ._pgd import PGDBudgetParams, pgd
from ._surrogate import SplitTensors, SurrogateTrainer, freeze, require
from ._tiles import expand_blocks
from ._trigger import trigger_text, trigger_vocab, with_trigger

log = logging.getLogger("ue_bench.attacks")


class TriggerParams(Protocol):
    """What the loop reads of a text trigger's parameters (MEM's ``MEMParams`` provides them)."""

    trigger_len: int
    hotflip_iters: int
    candidates: int
    hotflip_select: str
    shuffle: bool


@dataclass(frozen=True)
class MinMinParams(PGDBudgetParams):
    """EM's parameters; MEM's extend them with its trigger's."""

    pgd_steps: int = param(8, lo=0, hi=1000, help="PGD steps on the noise per batch and outer iteration")
    outer_iters: int = param(8, lo=1, hi=1000, help="outer iterations (upper bound; see stop_loss)")
    surrogate_steps: int = param(30, lo=0, hi=100000, help="surrogate AdamW steps per outer iteration")
    surrogate_lr: float | None = param(1e-4, lo=0.0, hi=1.0, help="surrogate AdamW rate (the reference's 1e-4; "
                                       "None: the surrogate recipe's)")
    batch_size: int = param(64, lo=2, hi=65536, help="pairs per surrogate step and per noise batch")
    stop_loss: float | None = param(None, lo=0.0, help="stop early once a pass's mean PGD loss is at most this")

    def trigger(self) -> TriggerParams | None:
        """The text trigger's parameters; None: image noise only (EM)."""
        return None


class Views(Protocol):
    """Random views of a batch whose PGD losses are averaged (expectation over transformation).

    Called once per PGD step with normalised float ``[B, 3, H, W]`` images; returns ``[samples * B, 3,
    H, W]``, differentiable, the ``samples`` views of the batch one after the other."""

    samples: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


class FixedNoise:
    """The part of a protection that the min–min loop holds fixed while PGD optimises the rest.

    ``delta``: int16 ``[N, H, W, 3]`` in pixel units, within the budget and the pixel range of the
    images, or None: no fixed noise (nothing is held in memory); ``free``: float, broadcastable to
    ``[B, 3, H, W]``: what PGD may add per element on top of ``delta`` (pixel units out of 255);
    ``words``: long ``[N, K]`` fixed trigger token ids published after each image's optimised trigger,
    never flipped (``K`` may be 0).
    """

    def __init__(self, delta: torch.Tensor | None, free: torch.Tensor, words: torch.Tensor) -> None:
        self.delta, self.free, self.words = delta, free, words

    @classmethod
    def none(cls, n: int, eps: int) -> FixedNoise:
        """No fixed noise for ``n`` images: a zero delta, the whole ``eps`` free, no words."""
        return cls(None, torch.tensor(float(eps)), torch.zeros(n, 0, dtype=torch.long))

    def at(self, idx: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The fixed delta of images ``idx`` as float ``[B, 3, H, W]`` pixel units, on the device of
        ``like`` (the batch's pixels, whose shape it has)."""
        if self.delta is None:
            return torch.zeros_like(like)
        return self.delta[idx].to(like.device).permute(0, 3, 1, 2).float()

    def respell(self, idx: torch.Tensor, trigger: torch.Tensor) -> None:
        """Called after HotFlip set the triggers of images ``idx`` to ``trigger[B, T]``; fixed noise that
        depends on the triggers updates ``delta[idx]`` here (this one does not)."""


class Noise(Protocol):
    """What :func:`min_min` optimises: the image noise of a protection, read and written batch by batch
    (:class:`SampleNoise`, :class:`ClassNoise`, or an attack's own). ``words``: long ``[N, K]`` fixed
    trigger words published after each image's optimised trigger."""

    words: torch.Tensor

    def unit(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        """The published images of ``idx`` as float ``[B, 3, H, W]`` in [0, 1]."""

    def current(self, idx: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """The delta of ``idx`` as float ``[B, 3, H, W]`` pixel units (``images``: their clean pixels)."""

    def flipped(self, idx: torch.Tensor, trig: torch.Tensor) -> None:
        """HotFlip set the triggers ``trig[idx]`` (long ``[N, T]``, changed in place where the noise shares them)."""

    def descend(self, idx: torch.Tensor, images: torch.Tensor, d: torch.Tensor, objective: tuple[Callable, Callable],
                p: MinMinParams) -> float:
        """PGD on the noise of ``idx`` (current delta ``d``) for ``objective``; returns its loss."""

    def result(self) -> np.ndarray:
        """The published integer delta ``[N, H, W, 3]`` within ±eps."""


class MinMinAttack(Attack):
    """An attack that is :func:`min_min` with its parameters (EM's; MEM's add a trigger).

    Variants override :meth:`trigger_words` (the vocabulary of the optimised trigger) and
    :meth:`fixed_noise` (what PGD optimises on top of); both see the same seeded generator, in this order.
    """

    Params = MinMinParams

    def cost_steps(self, n_images: int) -> float:
        return cost_steps(self.params, n_images, self.surrogate_count())

    def trigger_words(self, allowed: torch.Tensor, data: SplitTensors, gen: torch.Generator) -> torch.Tensor:
        """Sorted long ids the triggers are drawn from and HotFlip may choose: every safe whole word
        (``allowed``, from :func:`~ue_bench.attacks._trigger.trigger_vocab`)."""
        return allowed

    def fixed_noise(self, data: SplitTensors, trigger: torch.Tensor, vocab: torch.Tensor, allowed: torch.Tensor,
                    gen: torch.Generator) -> FixedNoise:
        """The fixed part for the initial triggers ``trigger[N, T]`` (drawn from ``vocab``, a subset of
        ``allowed``; both sorted long ids): none (MEM, EM)."""
        return FixedNoise.none(data.n, self.params.eps)

    def pgd_views(self, seed: int) -> Views | None:
        """What PGD averages its loss over, seeded by the protection's ``seed``: None, the images as
        published (MEM, EM)."""
        return None

    def adversary(self, seed: int) -> Adversary | None:
        """The inner maximisation of a min–min–max attack (REM), seeded by ``seed``: None (MEM, EM)."""
        return None

    def surrogate_count(self) -> int:
        """Independently initialised surrogates the loop trains side by side: 1 (MEM, EM)."""
        return 1

    def pseudo_classes(self, split, surrogate, seed: int, device: torch.device,
                       gen: torch.Generator) -> tuple[torch.Tensor | None, int, dict]:
        """Each image's pseudo-class (long ``[N]``), their number and what to record, for class-wise noise
        and triggers; ``(None, 0, {})``: one noise and one trigger per image (MEM, EM). Called first, with
        the protection's generator."""
        return None, 0, {}

    def noise(self, data: SplitTensors, fixed: FixedNoise, group: torch.Tensor | None, k: int,
              device: torch.device) -> Noise:
        """The noise the loop optimises: one delta per image on top of ``fixed`` (:class:`SampleNoise`), or
        one per pseudo-class when :meth:`pseudo_classes` gave a ``group`` (:class:`ClassNoise`)."""
        if group is None:
            return SampleNoise(data, self.params.eps, fixed, device)
        return ClassNoise(data, self.params.eps, group, k)

    def protect(self, split, surrogate, seed, device):
        surrogate = require(surrogate, self.name)
        tok = surrogate.tokenizer()
        data = SplitTensors(split, tok)
        gen = torch.Generator().manual_seed(seed)
        group, k, meta = self.pseudo_classes(split, surrogate, seed, device, gen)
        trig_p = self.params.trigger()
        allowed = vocab = torch.zeros(0, dtype=torch.long)
        trig = torch.zeros(data.n, 0, dtype=torch.long)
        if trig_p is not None:
            allowed = trigger_vocab(tok)
            vocab = self.trigger_words(allowed, data, gen)
            trig = vocab[torch.randint(len(vocab), (data.n if group is None else k, trig_p.trigger_len), generator=gen)]
            trig = trig if group is None else trig[group]
        fixed = self.fixed_noise(data, trig, vocab, allowed, gen)
        noise = self.noise(data, fixed, group, k, device)
        trainers, inits = [], []
        for k in range(self.surrogate_count()):  # the first is the surrogate every other attack would build
            model, init_sha256 = surrogate.initial_model(split.resolution, seed, device, member=k)
            trainers.append(SurrogateTrainer(model, surrogate.params, device, self.params.surrogate_lr))
            inits.append(init_sha256)
        history = min_min(self.name, self.params, trainers, data, trig, vocab, noise, gen, tok.eot_token_id,
                          self.pgd_views(seed), self.adversary(seed))
        delta = noise.result()
        if len(inits) > 1:
            meta["surrogate_inits_sha256"] = inits
        meta.update({"surrogate_init_sha256": inits[0], "history": history, "iterations": len(history),
                     "surrogate_s": round(sum(h["surrogate_s"] for h in history), 2),
                     "noise_s": round(sum(h["noise_s"] for h in history), 2)})
        if trig_p is None:
            return Protection(delta=delta, meta=meta)
        triggers = [trigger_text(tok, torch.cat([trig[i], fixed.words[i]])) for i in range(data.n)]
        meta.update(trigger_vocab=len(vocab), trigger_examples=triggers[:5], distinct_triggers=len(set(triggers)))
        return Protection(delta=delta, triggers=triggers, meta=meta)


class SampleNoise:
    """One integer delta per image on top of a :class:`FixedNoise` (MEM, EM and their variants), in a
    memory-mapped ``[N, H, W, 3]`` buffer (:func:`~ue_bench.protection.delta_buffer`) read and written
    batch by batch; ``words``: the fixed trigger words, long ``[N, K]``."""

    def __init__(self, data: SplitTensors, eps: int, fixed: FixedNoise, device: torch.device) -> None:
        self.data, self.fixed, self.free, self.words = data, fixed, fixed.free.to(device), fixed.words
        self.delta = delta_buffer(data.images.shape, eps)
        if fixed.delta is not None:
            self.delta[:] = fixed.delta.numpy()

    def unit(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        """The published images of ``idx`` as float ``[B, 3, H, W]`` in [0, 1]."""
        return self.data.unit(idx, self.delta, device)

    def current(self, idx: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """The delta of ``idx`` as float ``[B, 3, H, W]`` pixel units (``images``: their clean pixels)."""
        return self.data.delta(self.delta, idx, images.device)

    def flipped(self, idx: torch.Tensor, trig: torch.Tensor) -> None:
        """HotFlip set ``trig[idx]``: fixed noise that spells the triggers follows them."""
        self.fixed.respell(idx, trig[idx])

    def descend(self, idx: torch.Tensor, images: torch.Tensor, d: torch.Tensor, objective: tuple[Callable, Callable],
                p: MinMinParams) -> float:
        """PGD on the free part of the delta of ``idx`` (current ``d``) for ``objective``; returns its loss."""
        base = images + self.fixed.at(idx, images)
        rest, loss = pgd(*objective, base, project(images + d - base, base, self.free), eps=self.free, step=p.step,
                         steps=p.pgd_steps, maximise=False)
        self.delta[idx.numpy()] = (base + rest - images).round().to(torch.int16).permute(0, 2, 3, 1).cpu().numpy()
        return loss

    def result(self) -> np.memmap:
        return self.delta


class SharedNoise(abc.ABC):
    """A noise whose values are shared between images or pixels, so that each image's delta is derived
    (``current``, projected into its pixel range on the 1/255 grid): the published images and the
    published delta follow from it. Subclasses set ``data`` and ``eps`` and define ``current``."""

    data: SplitTensors
    eps: int

    @abc.abstractmethod
    def current(self, idx: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """The delta of ``idx`` as float ``[B, 3, H, W]`` pixel units (``images``: their clean pixels)."""

    def unit(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        """The published images of ``idx`` as float ``[B, 3, H, W]`` in [0, 1]."""
        x = self.data.pixels(idx, device)
        return (x + self.current(idx, x)) / 255.0

    def result(self) -> np.memmap:
        """The per-image integer delta ``[N, H, W, 3]`` that is published, memory-mapped, written 256
        images at a time."""
        delta = delta_buffer(self.data.images.shape, self.eps)
        for idx in torch.arange(self.data.n).split(256):
            x = self.data.pixels(idx, torch.device("cpu"))
            delta[idx.numpy()] = self.current(idx, x).round().to(torch.int16).permute(0, 2, 3, 1).numpy()
            release(delta)
        return delta


class ClassNoise(SharedNoise):
    """One integer noise per pseudo-class, shared by its images (``mem-classwise``), optionally constant over
    ``block`` × ``block`` squares of pixels (``mem-classwise-lowfreq``; with one class per image, ``group =
    arange(N)``, ``mem-lowfreq``'s per-image block noise).

    ``group``: long ``[N]`` in ``range(k)``. The noise is int8 ``[k, 3, ceil(H / block), ceil(W / block)]``
    within ±``eps`` (PGD's integer steps keep it on the 1/255 grid), each value repeated over its square
    (``block`` 1: one per pixel); an image publishes its class's noise projected into its own pixel range.
    Triggers are the class's too: after HotFlip, every image of a class takes the trigger its last image in
    the batch got (the MEM reference's class-wise assignment, ``src/poison_class.py``).
    """

    def __init__(self, data: SplitTensors, eps: int, group: torch.Tensor, k: int, block: int = 1) -> None:
        self.data, self.eps, self.group, self.block = data, eps, group, block
        self.words = torch.zeros(data.n, 0, dtype=torch.long)  # no fixed words
        h, w = data.images.shape[1:3]
        self.size = (h, w)
        self.noise = torch.zeros(k, 3, -(-h // block), -(-w // block), dtype=torch.int8)
        # the images of class c are by_class[starts[c]:starts[c + 1]] (one sort, not k scans of the split)
        self.by_class = torch.argsort(group, stable=True)
        self.starts = torch.cat([torch.zeros(1, dtype=torch.long), torch.bincount(group, minlength=k).cumsum(0)])

    def expand(self, noise: torch.Tensor) -> torch.Tensor:
        """``[B, 3, h, w]`` class noise as ``[B, 3, H, W]`` pixels (each value over its square)."""
        return noise if self.block == 1 else expand_blocks(noise, self.block, self.size)

    def current(self, idx: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return project(self.expand(self.noise[self.group[idx]].to(images.device).float()), images, self.eps)

    def flipped(self, idx: torch.Tensor, trig: torch.Tensor) -> None:
        last = {int(self.group[i]): int(i) for i in idx}
        for c, i in last.items():
            trig[self.by_class[self.starts[c]:self.starts[c + 1]]] = trig[i].clone()

    def descend(self, idx: torch.Tensor, images: torch.Tensor, d: torch.Tensor, objective: tuple[Callable, Callable],
                p: MinMinParams) -> float:
        """PGD on the noise of the classes in the batch, each stepped by its images' summed gradient."""
        classes, owner = torch.unique(self.group[idx], return_inverse=True)
        owner = owner.to(images.device)
        noise, loss = pgd(*objective, images, self.noise[classes].to(images.device).float(), eps=self.eps,
                          step=p.step, steps=p.pgd_steps, maximise=False,
                          expand=lambda shared: self.expand(shared[owner]))
        self.noise[classes] = noise.round().to(torch.int8).cpu()
        return loss


#: HotFlip per batch and trigger word per 16 candidates, in surrogate training-step equivalents; measured
#: with tiny-rn, one thread, on the default synthetic set (2026-12-01: a training step 0.24 s, HotFlip
#: 0.50 s per batch and word). A PGD step counts as ``engine.training.PGD_STEP_COST``.
HOTFLIP_WORD_COST = 2.0


def cost_steps(p: MinMinParams, n: int, surrogates: int = 1) -> float:
    """Estimated work of :func:`min_min` on ``n`` images with ``surrogates`` surrogates, in surrogate
    training-step equivalents."""
    nb = -(-n // max(2, min(p.batch_size, n))) if n else 0
    work = surrogates * p.outer_iters * (p.surrogate_steps + nb * p.pgd_steps * PGD_STEP_COST)
    t = p.trigger()
    if t is None:
        return work
    per_flip = HOTFLIP_WORD_COST * t.trigger_len * max(1.0, t.candidates / 16)
    return work + min(t.hotflip_iters, p.outer_iters) * nb * per_flip


class Adversary(Protocol):
    """The inner maximisation of a min–min–max attack (REM): a perturbation of normalised float images
    ``x[B, 3, H, W]`` (detached, the same shape) that raises the CLIP loss against normalised text
    features ``text[B, D]`` at logit scale ``scale``; also applied to the surrogate's training batches."""

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, text: torch.Tensor,
                 scale: torch.Tensor) -> torch.Tensor: ...


def _mean(losses: list[torch.Tensor]) -> torch.Tensor:
    """The mean of scalar losses; a single loss as it is (one surrogate: the loss of MEM's loop, bit for bit)."""
    return losses[0] if len(losses) == 1 else torch.stack(losses).mean()


def _pgd_objective(models: list[torch.nn.Module], loss_fn: open_clip.ClipLoss,
                   text_at: Callable[[int], list[torch.Tensor]], scales: list[torch.Tensor], views: Views | None,
                   adversary: Adversary | None = None) -> tuple[Callable, Callable]:
    """PGD's image encoder and loss of its features against ``text_at(step)`` (per surrogate, normalised
    ``[B, D]``): the CLIP loss of the batch, or with ``views`` the mean of the CLIP losses of its views
    (the same views for every surrogate, each view with its own call of ``text_at``), averaged over the
    surrogates ``models`` (at their logit ``scales``); with an ``adversary``, each (view of the) batch is
    first moved by it against each surrogate, the move held fixed in the gradient (REM's min–min–max: the
    noise minimises the loss that the adversary maximises)."""

    def clip(f: torch.Tensor, text: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return loss_fn(F.normalize(f.float(), dim=-1), text, scale)

    if adversary is not None:
        def robust(x: torch.Tensor, step: int) -> torch.Tensor:
            parts = [x] if views is None else views(x).chunk(views.samples)
            return _mean([torch.stack([clip(model.encode_image(v + adversary(model, v.detach(), text, scale)), text,
                                            scale) for v in parts]).mean()
                          for model, text, scale in zip(models, text_at(step), scales)])

        return (lambda x: x), robust

    def encode(x: torch.Tensor) -> list[torch.Tensor]:
        seen = x if views is None else views(x)
        return [model.encode_image(seen) for model in models]

    def loss(features: list[torch.Tensor], step: int) -> torch.Tensor:
        if views is None:
            return _mean([clip(f, text, scale) for f, text, scale in zip(features, text_at(step), scales)])
        texts = [text_at(step) for _ in range(views.samples)]  # each view its own caption draw
        return _mean([torch.stack([clip(part, texts[j][k], scale)
                                   for j, part in enumerate(f.chunk(views.samples))]).mean()
                      for k, (f, scale) in enumerate(zip(features, scales))])

    return encode, loss


def _pgd_texts(models: list[torch.nn.Module], caps: torch.Tensor, trigger: torch.Tensor, eot: int, shuffle: bool,
               gen: torch.Generator) -> Callable[[int], list[torch.Tensor]]:
    """PGD's text features per step for a batch, one ``[B, D]`` per surrogate of ``models``: its own
    captions ``caps[B, L]`` with ``trigger[B, T]`` prefixed, or with ``shuffle`` (MEM) each image's
    trigger on a caption of the batch drawn again every step, the same draw for every surrogate (the
    reference's ``min_min_attack`` re-permutes the batch's captions at each of its steps)."""
    if not shuffle:
        with torch.no_grad():
            rows = with_trigger(caps, trigger, eot)
            fixed = [encode_text(model, rows) for model in models]
        return lambda _step: fixed

    def text_at(_step: int) -> list[torch.Tensor]:
        perm = torch.randperm(len(caps), generator=gen).to(caps.device)
        with torch.no_grad():
            rows = with_trigger(caps[perm], trigger, eot)
            return [encode_text(model, rows) for model in models]

    return text_at


def min_min(name: str, p: MinMinParams, trainers: list[SurrogateTrainer], data: SplitTensors, trig: torch.Tensor,
            vocab: torch.Tensor, noise: Noise, gen: torch.Generator, eot: int,
            views: Views | None = None, adversary: Adversary | None = None) -> list[dict]:
    """Error-minimising ``noise`` (and, where ``p.trigger()`` is set, HotFlip triggers), optimised in place.

    ``trainers``: the surrogates (one for MEM and EM), each taking its steps on the same batches; PGD
    minimises the mean of their losses and HotFlip asks surrogate ``b mod len(trainers)`` on batch ``b``
    of a pass. ``trig``: long ``[N, T]`` initial trigger ids (``T`` = 0 without a trigger), updated in place;
    ``vocab``: the ids HotFlip may choose; ``eot``: the tokenizer's end-of-text id; ``views``: PGD's
    loss is the mean over these views of each batch (None: the batch as it is); ``adversary``: the
    surrogate trains on, and PGD minimises the loss of, batches it moved (None: as they are). The noise
    stays within ±``p.eps`` and the pixel range (``noise.result()`` is the published delta), read and
    written batch by batch. Returns one record per outer iteration: its losses and seconds:
    ``surrogate_s`` (the surrogate's steps with their batches), ``noise_s`` (the pass over the data)
    and, within it, ``hotflip_s`` (the trigger update, flip iterations only) and ``pgd_s`` (PGD with its
    text features); the rest of ``noise_s`` is data movement. Each section ends in a host sync
    (``float`` of a loss), so the times hold on CUDA too.
    """
    models, device, t_p = [trainer.model for trainer in trainers], trainers[0].device, p.trigger()
    loss_fn = open_clip.ClipLoss()
    words = noise.words
    batch_size = min(p.batch_size, data.n)
    stream = itertools.chain.from_iterable(
        batches(data.n, batch_size, gen, keep_all=True) for _ in itertools.count())
    history = []
    for it in range(p.outer_iters):
        t0 = time.perf_counter()
        for model in models:
            freeze(model, False)
        sur_loss = torch.zeros((), device=device)
        for _ in range(p.surrogate_steps):
            idx = next(stream)
            rows = with_trigger(data.pick(idx, gen), torch.cat([trig[idx], words[idx]], 1), eot)
            unit = noise.unit(idx, device)
            for trainer in trainers:
                moved = unit if adversary is None else _adversarial_unit(trainer.model, adversary, unit,
                                                                         rows.to(device))
                sur_loss += trainer.step(moved, rows)
        sur_loss = float(sur_loss)  # the section's one host sync (its time holds on CUDA too)
        t1 = time.perf_counter()
        for model in models:
            model.eval()
            freeze(model, True)
        scales = [model.logit_scale.exp().detach().float() for model in models]
        flip = t_p is not None and it < t_p.hotflip_iters
        pgd_loss, flip_loss, nb = 0.0, 0.0, 0
        flip_s = pgd_s = 0.0  # timing only: HotFlip, and PGD with its text features (the rest is data movement)
        for b, idx in enumerate(batches(data.n, batch_size, gen, keep_all=True)):
            caps = data.pick(idx, gen).to(device)
            images = data.pixels(idx, device)
            d = noise.current(idx, images)
            t, w = trig[idx].to(device), words[idx].to(device)
            if flip:
                tf = time.perf_counter()
                model = models[b % len(models)]
                with torch.no_grad(), autocast(device):
                    feats = F.normalize(model.encode_image(normalize((images + d) / 255.0)).float(), dim=-1)
                t, floss = hotflip(model, feats, with_trigger(caps, w, eot), t, vocab, t_p.candidates, eot,
                                   t_p.hotflip_select)
                trig[idx] = t.cpu()
                noise.flipped(idx, trig)
                t = trig[idx].to(device)
                flip_loss += float(floss)
                flip_s += time.perf_counter() - tf
            tp = time.perf_counter()
            text_at = _pgd_texts(models, caps, torch.cat([t, w], 1), eot, t_p is not None and t_p.shuffle, gen)
            objective = _pgd_objective(models, loss_fn, text_at, scales, views, adversary)
            pgd_loss += noise.descend(idx, images, d, objective, p)
            pgd_s += time.perf_counter() - tp
            nb += 1
        t2 = time.perf_counter()
        record = {"iter": it, "surrogate_loss": sur_loss / max(1, p.surrogate_steps * len(trainers)),
                  "pgd_loss": pgd_loss / nb, "surrogate_s": round(t1 - t0, 2), "noise_s": round(t2 - t1, 2),
                  "pgd_s": round(pgd_s, 2)}
        if flip:
            record.update(hotflip_loss=flip_loss / nb, hotflip_s=round(flip_s, 2))
        history.append(record)
        log.info("%s iter %d/%d %s", name, it + 1, p.outer_iters,
                 " ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "iter"))
        if p.stop_loss is not None and record["pgd_loss"] <= p.stop_loss:
            break
    return history


def _adversarial_unit(model: torch.nn.Module, adversary: Adversary, unit: torch.Tensor,
                      rows: torch.Tensor) -> torch.Tensor:
    """A surrogate training batch ``unit`` ([0, 1] ``[B, 3, H, W]``) moved by ``adversary`` against its
    own captions ``rows``, computed in eval mode without parameter gradients (adversarial training, as
    REM's reference trains its model)."""
    model.eval()
    freeze(model, True)
    with torch.no_grad():
        text = encode_text(model, rows)
    scale = model.logit_scale.exp().detach().float()
    rho = adversary(model, normalize(unit), text, scale)
    freeze(model, False)
    return unit + rho * torch.tensor(OPENAI_DATASET_STD, device=unit.device).view(1, 3, 1, 1)
