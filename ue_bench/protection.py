"""What an attack returns, how it is published, and the harness's checks on it.

A protection is expressed in the form a data owner can publish: an integer pixel delta within the
budget and, for text-side attacks, a trigger prefix per image as real text. The harness, never the
plugin, checks it, so a buggy or over-budget attack cannot produce a number on the leaderboard.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from .data import HASH_CHUNK, PairSplit
from .errors import ProtectionRejected


#: Images checked per step, bounding the memory of the checks.
CHUNK = 1024


@dataclass(frozen=True)
class Protection:
    """``delta``: int16 ``[N,H,W,3]`` pixel units (or None: images untouched); ``triggers``: per-image
    text placed before every caption of that image (or None: captions untouched)."""

    delta: np.ndarray | None = None
    triggers: list[str] | None = None
    meta: dict = field(default_factory=dict)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        if self.delta is not None:
            h.update(str(self.delta.shape).encode())
            for start in range(0, len(self.delta), HASH_CHUNK):
                h.update(np.ascontiguousarray(self.delta[start:start + HASH_CHUNK], dtype=np.int16).tobytes())
        for t in self.triggers or []:
            h.update(t.encode("utf-8") + b"\x1f")
        return h.hexdigest()


def publish(split: PairSplit, protection: Protection) -> PairSplit:
    """The protected copy: ``clip(image + delta, 0, 255)`` as uint8 and ``"<trigger> <caption>"``."""
    images = split.images
    if protection.delta is not None:
        images = np.clip(images.astype(np.int16) + protection.delta, 0, 255).astype(np.uint8)
    captions = split.captions
    if protection.triggers is not None:
        captions = [[f"{t} {c}" if t else c for c in caps] for t, caps in zip(protection.triggers, split.captions)]
    return PairSplit(images, captions, meta={**split.meta, "protected": True})


def verify(name: str, protection: Protection, split: PairSplit, eps: int, tokenizer=None) -> None:
    """Refuse a protection that breaks the contract, naming the plugin and the first bad sample.

    Checks: delta shape and integer dtype, no NaN, L∞ ≤ ``eps`` pixel units; one trigger per image,
    and (with a tokenizer) that each trigger survives encode → decode → encode unchanged, since a
    trigger that a scraper's tokenizer would split differently is not what the attack optimised.
    """
    n = len(split)
    d = protection.delta
    if d is not None:
        if d.shape != split.images.shape:
            raise ProtectionRejected(f"attack {name!r}: delta shape {d.shape} != images {split.images.shape}")
        if not np.issubdtype(d.dtype, np.integer):
            bad = np.argwhere(~np.isfinite(d.reshape(n, -1)).all(1)) if np.issubdtype(d.dtype, np.floating) else []
            where = f" (sample {int(bad[0][0])} has NaN/inf)" if len(bad) else ""
            raise ProtectionRejected(f"attack {name!r}: delta must be integer pixel units, got {d.dtype}{where}")
        for start in range(0, n, CHUNK):  # chunked: an int32 copy of a large delta would not fit in memory
            linf = np.abs(d[start:start + CHUNK].reshape(-1, d[0].size).astype(np.int32)).max(1)
            if (linf > eps).any():
                i = int(np.argmax(linf > eps))
                raise ProtectionRejected(
                    f"attack {name!r}: sample {start + i} has L∞ {int(linf[i])} > budget {eps}/255")
    t = protection.triggers
    if t is not None:
        if len(t) != n:
            raise ProtectionRejected(f"attack {name!r}: {len(t)} triggers for {n} images")
        for i, trig in enumerate(t):
            if not isinstance(trig, str) or trig != trig.strip() or "\n" in trig:
                raise ProtectionRejected(f"attack {name!r}: sample {i} trigger {trig!r} is not a clean text prefix")
            if tokenizer is not None and trig and not trigger_round_trips(tokenizer, trig):
                raise ProtectionRejected(
                    f"attack {name!r}: sample {i} trigger {trig!r} does not survive decode → re-tokenise")


def trigger_round_trips(tokenizer, trigger: str) -> bool:
    """True if the trigger's token ids are unchanged after decoding to text and tokenising again."""
    ids = tokenizer.encode(trigger)
    return tokenizer.encode(tokenizer.decode(ids).strip()) == ids
