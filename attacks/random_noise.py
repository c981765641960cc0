"""Uniform random noise: the floor every optimised attack should beat."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ue_bench.attack import Attack
from ue_bench.params import param
from ue_bench.protection import Protection, delta_dtype

#: Values drawn per step of :func:`uniform_int16_stream` (bounds its working memory to a few MB).
DRAW_CHUNK = 1 << 20


@dataclass(frozen=True)
class RandomParams:
    eps: int = param(8, lo=0, hi=32, help="L∞ budget, pixel units out of 255: each value uniform in [-eps, eps]")


def uniform_int16_stream(rng: np.random.Generator, eps: int, size: int, out: np.ndarray,
                         chunk: int = DRAW_CHUNK) -> np.ndarray:
    """Fill ``out`` (flat, ``size`` values, any integer dtype holding ±``eps``) with exactly the values
    ``rng.integers(-eps, eps + 1, size=size, dtype=np.int16)`` returns, ``chunk`` values at a time.

    numpy draws bounded 16-bit integers by Lemire's method on a stream of 16-bit words, each 32-bit
    output of the bit generator split low half first (PCG64's 32-bit outputs are in turn the halves of
    its 64-bit ones, low first): a word ``v`` gives ``m = v * (2 eps + 1)``, rejected when
    ``m mod 2**16 < (2**16 - 1 - 2 eps) mod (2 eps + 1)``, else the value ``(m >> 16) - eps``. Doing
    the same here, vectorised on ``random_raw`` words, reproduces the draw bit for bit (a test checks
    it against numpy) without the int16 array of the whole split that the single call needs.
    """
    if not isinstance(rng.bit_generator, np.random.PCG64) or np.little_endian is False:
        out[:] = rng.integers(-eps, eps + 1, size=size, dtype=np.int16)
        return out
    span = 2 * eps
    if span == 0:
        out[:] = 0
        return out
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
        out[filled:filled + take] = (m[accepted[:take]] >> 16).astype(np.int32) - eps
        pending = words[accepted[take - 1] + 1:] if take else words
        filled += take
    return out


class RandomNoise(Attack):
    """Uniform random integer noise in ±ε per pixel and sample (no model involved)."""

    Params = RandomParams
    uses_surrogate = False

    def protect(self, split, surrogate, seed, device):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x52414E44]))
        eps = self.params.eps
        delta = np.empty(split.images.shape, dtype=delta_dtype(eps))  # int8: half the memory of int16
        uniform_int16_stream(rng, eps, delta.size, delta.reshape(-1))
        return Protection(delta=delta, meta={"distribution": f"uniform integers in [-{eps}, {eps}]"})
