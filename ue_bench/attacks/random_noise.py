"""Uniform random noise: the floor every optimised attack should beat."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ue_bench import Attack, Protection, delta_buffer, param, release

#: Values drawn per step of :func:`uniform_int16_stream` (bounds its working memory to a few MB).
DRAW_CHUNK = 1 << 20


@dataclass(frozen=True)
class RandomParams:
    eps: int = param(8, lo=0, hi=32, help="L∞ budget, pixel units out of 255: each value uniform in [-eps, eps]")


def uniform_int16_chunks(rng: np.random.Generator, eps: int, size: int, chunk: int = DRAW_CHUNK):
    """Exactly the values of ``rng.integers(-eps, eps + 1, size=size, dtype=np.int16)``, yielded in
    consecutive blocks of at most ``chunk`` (int32 arrays), so that the noise of a large split never has
    to exist as one int16 array.

    numpy draws bounded 16-bit integers by Lemire's method on a stream of 16-bit words, each 32-bit
    output of the bit generator split low half first (PCG64's 32-bit outputs are in turn the halves of
    its 64-bit ones, low first): a word ``v`` gives ``m = v * (2 eps + 1)``, rejected when
    ``m mod 2**16 < (2**16 - 1 - 2 eps) mod (2 eps + 1)``, else the value ``(m >> 16) - eps``. Doing
    the same here, vectorised on ``random_raw`` words (the words left over by a block carried to the
    next), reproduces the single call bit for bit; a test checks it against numpy.
    """
    if not isinstance(rng.bit_generator, np.random.PCG64) or not np.little_endian:
        yield rng.integers(-eps, eps + 1, size=size, dtype=np.int16).astype(np.int32)
        return
    span = 2 * eps
    if span == 0:
        for a in range(0, size, chunk):
            yield np.zeros(min(chunk, size - a), np.int32)
        return
    excl = np.uint32(span + 1)
    threshold = (0xFFFF - span) % (span + 1)
    filled, pending = 0, np.empty(0, np.uint32)
    while filled < size:
        want = min(chunk, size - filled)
        words = np.concatenate([pending, rng.bit_generator.random_raw(want // 4 + 8).view(np.uint16)
                                .astype(np.uint32)])
        m = words * excl
        accepted = np.flatnonzero((m & 0xFFFF) >= threshold)
        take = min(want, len(accepted))
        pending = words[accepted[take - 1] + 1:] if take else words
        filled += take
        if take:
            yield (m[accepted[:take]] >> 16).astype(np.int32) - eps


def uniform_int16_stream(rng: np.random.Generator, eps: int, size: int, out: np.ndarray,
                         chunk: int = DRAW_CHUNK) -> np.ndarray:
    """Fill the flat ``out`` (any integer dtype holding ±``eps``) with :func:`uniform_int16_chunks`,
    releasing its pages as it goes when it is memory-mapped."""
    a = 0
    for i, block in enumerate(uniform_int16_chunks(rng, eps, size, chunk)):
        out[a:a + len(block)] = block
        a += len(block)
        if i % 16 == 15:
            release(out)
    release(out)
    return out


class RandomNoise(Attack):
    """Uniform random integer noise in ±ε per pixel and sample (no model involved)."""

    Params = RandomParams
    uses_surrogate = False

    def protect(self, split, surrogate, seed, device):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x52414E44]))
        eps = self.params.eps
        # filled a chunk at a time and released as it goes: the noise of a large split is never in memory
        delta = delta_buffer(split.images.shape, eps)
        uniform_int16_stream(rng, eps, delta.size, delta.reshape(-1))
        return Protection(delta=delta, meta={"distribution": f"uniform integers in [-{eps}, {eps}]"})
