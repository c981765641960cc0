"""The alternating min–min loop shared by MEM and EM.

Per outer iteration: ``surrogate_steps`` AdamW steps of the surrogate on the *published* form of the
current protection (noised images, trigger-prefixed captions), then one pass over the data in which
each batch gets a HotFlip trigger update (first ``hotflip_iters`` iterations only) and PGD on the image
noise. With ``shuffle`` each image is paired, during PGD and HotFlip, with a random caption of the batch
carrying that image's own trigger, so the noise binds to the trigger rather than to the caption
content. EM is the same loop with no trigger and no shuffling (the caption is the positive). With
``patterns`` part of the budget is fixed noise that spells each image's trigger words
(:class:`WordPatterns`) and PGD optimises the rest on top of it.

Everything is bounded: the loop runs at most ``outer_iters`` iterations and stops early once the mean
PGD loss of a pass falls to ``stop_loss``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ue_bench.attack import Attack
from ue_bench.data import PairSplit
from ue_bench.device import autocast
from ue_bench.errors import UsageError
from ue_bench.params import param
from ue_bench.protection import Protection
from ue_bench.training import normalize

from ._hotflip import clip_batch_loss, encode_text, hotflip
from ._pgd import PGDBudgetParams, pgd, project
from ._surrogate import SplitTensors, SurrogateTrainer, batches, fresh_model, freeze, require
from ._tiles import sign_tiles, tile_over
from ._trigger import trigger_text, trigger_vocab, with_trigger

log = logging.getLogger("ue_bench.attacks")


@dataclass(frozen=True)
class MinMinSettings:
    eps: int
    step: int
    pgd_steps: int
    outer_iters: int
    surrogate_steps: int
    batch_size: int
    trigger_len: int = 0
    hotflip_iters: int = 0
    candidates: int = 0
    shuffle: bool = False
    novel_words: bool = False
    words: int | None = None
    stop_loss: float | None = None
    surrogate_lr: float | None = None
    patterns: int = 0
    pattern_patch: int = 4
    pattern_words: int = 0
    pattern_vocab: int = 16
    pattern_layout: str = "sum"
    pattern_share: float = 1.0


@dataclass(frozen=True)
class MinMinParams(PGDBudgetParams):
    """The parameters EM and MEM share (MEM adds its trigger's)."""

    pgd_steps: int = param(8, lo=0, hi=1000, help="PGD steps on the noise per batch and outer iteration")
    outer_iters: int = param(8, lo=1, hi=1000, help="outer iterations (upper bound; see stop_loss)")
    surrogate_steps: int = param(30, lo=0, hi=100000, help="surrogate AdamW steps per outer iteration")
    surrogate_lr: float | None = param(1e-4, lo=0.0, hi=1.0, help="surrogate AdamW rate (the reference's 1e-4; "
                                       "None: the surrogate recipe's)")
    batch_size: int = param(64, lo=2, hi=65536, help="pairs per surrogate step and per noise batch")
    stop_loss: float | None = param(None, lo=0.0, help="stop early once a pass's mean PGD loss is at most this")


class MinMinAttack(Attack):
    """An attack that is :func:`min_min` with its parameters as settings."""

    Params = MinMinParams

    def settings(self) -> MinMinSettings:
        names = {f.name for f in dataclasses.fields(MinMinSettings)}
        return MinMinSettings(**{k: v for k, v in dataclasses.asdict(self.params).items() if k in names})

    def cost_steps(self, n_images: int) -> float:
        return cost_steps(self.settings(), n_images)

    def protect(self, split, surrogate, seed, device):
        return min_min(self.name, split, surrogate, seed, device, self.settings())


#: PGD step on the image tower, and HotFlip per batch and trigger word per 16 candidates, in surrogate
#: training-step equivalents; measured on 2 CPU cores with tiny-rn (a noise pass without HotFlip: 16 s
#: for 22 batches × 8 PGD steps; with HotFlip on 3 words and 16 candidates: 75–88 s).
PGD_STEP_COST = 0.3
HOTFLIP_WORD_COST = 3.0


def cost_steps(s: MinMinSettings, n: int) -> float:
    """Estimated work of :func:`min_min` on ``n`` images, in surrogate training-step equivalents."""
    nb = -(-n // max(2, min(s.batch_size, n))) if n else 0
    flips = min(s.hotflip_iters, s.outer_iters) if s.trigger_len else 0
    per_flip = HOTFLIP_WORD_COST * s.trigger_len * max(1.0, s.candidates / 16)
    return s.outer_iters * (s.surrogate_steps + nb * s.pgd_steps * PGD_STEP_COST) + flips * nb * per_flip


class WordPatterns:
    """Fixed noise that spells each image's trigger (MEM's ``patterns``).

    Every trigger word gets a random sign tile of ``patch`` px, tiled over the image and clipped to the
    pixel range. With layout ``sum`` an image's pattern is the sum of its words' ±``ceil(budget /
    trigger_len)`` tiles, clipped to ±budget; with ``split`` each tile element belongs to one word
    (seeded, at random) and carries that word's sign at the full ±budget, so every word's feature has
    ``trigger_len``× the energy of ``sum``'s. With ``share`` < 1 only that (seeded) share of the tile's
    elements carries a pattern at all and PGD gets the whole eps on the others: under an L∞ budget this
    leaves the optimised part far more room than a smaller ``budget`` does. A word shared by many images
    is then one feature that any image tower can read off linearly, as Yu et al.'s synthetic class
    patterns are, while the optimised noise fits the surrogate.
    """

    def __init__(self, vocab: torch.Tensor, trigger_len: int, budget: int, patch: int, gen: torch.Generator,
                 layout: str = "sum", share: float = 1.0) -> None:
        self.vocab, self.budget = vocab, budget
        self.signs = sign_tiles(len(vocab), patch, gen)
        if layout == "split":
            owner = torch.randint(trigger_len, (patch, patch, 3), generator=gen)
            self.weight = F.one_hot(owner, trigger_len).permute(3, 0, 1, 2).to(torch.int16) * budget
        else:
            self.weight = torch.full((trigger_len, 1, 1, 1), -(-budget // trigger_len), dtype=torch.int16)
        # drawn only when share < 1, so that protections without a share keep their random stream
        self.carrier = torch.rand(patch, patch, 3, generator=gen) < share if share < 1 else \
            torch.ones(patch, patch, 3, dtype=torch.bool)
        self.weight = self.weight * self.carrier

    def free_budget(self, eps: int, h: int, w: int) -> torch.Tensor:
        """float ``[3, H, W]``: what PGD may add per element on top of the patterns (eps − budget where
        a pattern lies, eps elsewhere)."""
        carried = tile_over(self.carrier[None], h, w)[0].permute(2, 0, 1)
        return eps - self.budget * carried.float()

    def __call__(self, trig: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """int16 ``[B, H, W, 3]`` patterns for triggers ``trig[B, T]`` on uint8 ``images[B, H, W, 3]``."""
        _, h, w, _ = images.shape
        words = self.signs[torch.searchsorted(self.vocab, trig)]
        tile = (words * self.weight).sum(1).clamp(-self.budget, self.budget)
        delta = tile_over(tile.to(torch.int16), h, w)
        pixels = images.to(torch.int16)
        return torch.maximum(torch.minimum(delta, 255 - pixels), -pixels)


def min_min(name: str, split: PairSplit, surrogate, seed: int, device: torch.device, s: MinMinSettings) -> Protection:
    """Error-minimising image noise (and, with ``trigger_len > 0``, per-image text triggers) for ``split``."""
    surrogate = require(surrogate, name)
    tok = surrogate.tokenizer()
    eot = tok.eot_token_id
    data = SplitTensors(split, tok)
    n = data.n
    gen = torch.Generator().manual_seed(seed)
    model = fresh_model(surrogate, split.resolution, seed, device)
    trainer = SurrogateTrainer(model, surrogate.params, device, s.surrogate_lr)
    batch_size = min(s.batch_size, n)
    delta = torch.zeros(split.images.shape, dtype=torch.int16)
    allowed = trigger_vocab(tok) if s.trigger_len else torch.zeros(0, dtype=torch.long)
    vocab = allowed
    if s.novel_words:
        vocab = vocab[~torch.isin(vocab, data.tokens.unique())]
    if s.words is not None and s.trigger_len:
        vocab = vocab[torch.randperm(len(vocab), generator=gen)[:s.words]].sort().values
    trig = vocab[torch.randint(len(vocab), (n, s.trigger_len), generator=gen)] if s.trigger_len else \
        torch.zeros(n, 0, dtype=torch.long)
    if s.patterns > s.eps:
        raise UsageError(f"attack {name!r}: patterns={s.patterns} exceeds the budget eps={s.eps}")
    # the patterns spell MEM's own words, or extra fixed words after them (pattern_words)
    pw = torch.zeros(n, 0, dtype=torch.long)
    spelled, spelled_vocab = trig, vocab
    if s.pattern_words and s.trigger_len:
        spelled_vocab = allowed[torch.randperm(len(allowed), generator=gen)[:s.pattern_vocab]].sort().values
        spelled = pw = spelled_vocab[torch.randint(len(spelled_vocab), (n, s.pattern_words), generator=gen)]
    spell = WordPatterns(spelled_vocab, spelled.shape[1], s.patterns, s.pattern_patch, gen, s.pattern_layout,
                         s.pattern_share) \
        if s.patterns and s.trigger_len else None
    fixed = spell(spelled, data.images) if spell else torch.zeros_like(delta)
    respell = spell is not None and not s.pattern_words  # HotFlip changes MEM's words, never pattern words
    h, w = data.images.shape[1:3]
    free = spell.free_budget(s.eps, h, w).to(device) if spell else s.eps
    delta = fixed.clone()
    stream = itertools.chain.from_iterable(batches(n, batch_size, gen) for _ in itertools.count())
    history = []
    for it in range(s.outer_iters):
        t0 = time.perf_counter()
        freeze(model, False)
        sur_loss = torch.zeros(())
        for _ in range(s.surrogate_steps):
            idx = next(stream)
            rows = with_trigger(data.pick(idx, gen), torch.cat([trig[idx], pw[idx]], 1), eot)
            sur_loss += trainer.step(data.unit(idx, delta, device), rows).cpu()
        t1 = time.perf_counter()
        model.eval()
        freeze(model, True)
        scale = model.logit_scale.exp().detach().float()
        flip = it < s.hotflip_iters and s.trigger_len > 0
        pgd_loss, flip_loss, nb = 0.0, 0.0, 0
        for idx in batches(n, batch_size, gen):
            caps = data.pick(idx, gen).to(device)
            if s.shuffle:
                caps = caps[torch.randperm(len(idx), generator=gen).to(device)]
            images = data.pixels(idx, device)
            d = delta[idx].to(device).permute(0, 3, 1, 2).float()
            t = trig[idx].to(device)
            fixed_words = pw[idx].to(device)
            if flip:
                with torch.no_grad(), autocast(device):
                    feats = F.normalize(model.encode_image(normalize((images + d) / 255.0)).float(), dim=-1)
                t, floss = hotflip(model, feats, with_trigger(caps, fixed_words, eot), t, vocab, s.candidates, eot)
                trig[idx] = t.cpu()
                if respell:
                    fixed[idx] = spell(trig[idx], data.images[idx])
                flip_loss += float(floss)
            with torch.no_grad():
                text = encode_text(model, with_trigger(caps, torch.cat([t, fixed_words], 1), eot))
            # PGD moves the optimised part only, on top of the fixed patterns (zero unless ``patterns``)
            base = images + fixed[idx].to(device).permute(0, 3, 1, 2).float()
            rest = project(images + d - base, base, free)
            rest, loss = pgd(model.encode_image,
                             lambda f, text=text: clip_batch_loss(F.normalize(f.float(), dim=-1), text, scale),
                             base, rest, eps=free, step=s.step, steps=s.pgd_steps, maximise=False)
            delta[idx] = (base + rest - images).round().to(torch.int16).permute(0, 2, 3, 1).cpu()
            pgd_loss += loss
            nb += 1
        t2 = time.perf_counter()
        record = {"iter": it, "surrogate_loss": float(sur_loss) / max(1, s.surrogate_steps),
                  "pgd_loss": pgd_loss / nb, "surrogate_s": round(t1 - t0, 2), "noise_s": round(t2 - t1, 2)}
        if flip:
            record["hotflip_loss"] = flip_loss / nb
        history.append(record)
        log.info("%s iter %d/%d %s", name, it + 1, s.outer_iters,
                 " ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "iter"))
        if s.stop_loss is not None and record["pgd_loss"] <= s.stop_loss:
            break
    triggers = [trigger_text(tok, torch.cat([trig[i], pw[i]])) for i in range(n)] if s.trigger_len else None
    meta = {"history": history, "iterations": len(history),
            "surrogate_s": round(sum(h["surrogate_s"] for h in history), 2),
            "noise_s": round(sum(h["noise_s"] for h in history), 2)}
    if triggers is not None:
        meta.update(trigger_vocab=len(vocab), trigger_examples=triggers[:5],
                    distinct_triggers=len(set(triggers)))
    return Protection(delta=delta.numpy(), triggers=triggers, meta=meta)
