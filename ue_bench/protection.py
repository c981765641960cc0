"""What an attack returns, how it is published, and the harness's checks on it.

A protection is expressed in the form a data owner can publish: an integer pixel delta within the
budget and, for text-side attacks, a trigger prefix per image as real text. The harness, never the
plugin, checks it, so a buggy or over-budget attack cannot produce a number on the leaderboard.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field, replace

import numpy as np

from ue_bench.data import HASH_CHUNK, PairSplit, release
from ue_bench.engine.lift import LiftSettings
from ue_bench.engine.lift import lift as lift_noise
from ue_bench.errors import ProtectionRejected


#: Images checked per step, bounding the memory of the checks.
CHUNK = 1024


def delta_dtype(eps: int) -> np.dtype:
    """The dtype a delta within ±``eps`` pixel units is stored in: int8 up to 127 (half the bytes of
    int16, the same values), int16 above."""
    return np.dtype(np.int8) if eps <= 127 else np.dtype(np.int16)


def delta_buffer(shape: tuple[int, ...], eps: int) -> np.memmap:
    """A zero delta of ``shape`` (``[N, H, W, 3]``) in :func:`delta_dtype` of ``eps``, memory-mapped in an
    unlinked temporary file, so that an attack building the noise of a large split batch by batch never
    holds it in memory (release its pages with :func:`ue_bench.data.release` as it goes; the stage copies
    it out). The file is gone once the array is."""
    with tempfile.TemporaryFile(prefix="ue-bench-delta-") as fh:
        return np.memmap(fh, dtype=delta_dtype(eps), mode="w+", shape=shape)


@dataclass(frozen=True)
class Protection:
    """``delta``: integer ``[N,H,W,3]`` pixel units, int16 or int8 (or None: images untouched);
    ``triggers``: per-image text placed before every caption of that image (or None: captions untouched).
    The fingerprint hashes the delta as int16 whatever its dtype, so an int8 copy hashes the same."""

    delta: np.ndarray | None = None
    triggers: list[str] | None = None
    meta: dict = field(default_factory=dict)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        if self.delta is not None:
            h.update(str(self.delta.shape).encode())
            for start in range(0, len(self.delta), HASH_CHUNK):
                h.update(np.ascontiguousarray(self.delta[start:start + HASH_CHUNK], dtype=np.int16).tobytes())
                release(self.delta)
        for t in self.triggers or []:
            h.update(t.encode("utf-8") + b"\x1f")
        return h.hexdigest()


def with_trigger_text(trigger: str, captions: list[str]) -> list[str]:
    """One image's captions as published with its ``trigger``: ``"<trigger> <caption>"`` (unchanged if empty)."""
    return [f"{trigger} {c}" if trigger else c for c in captions]


def published_pixels(pixels: np.ndarray, delta: np.ndarray | None, eps: int = 0, lift: LiftSettings | None = None,
                     index: int = 0) -> np.ndarray:
    """The one way a protection is published onto pixels: uint8 ``clip(pixels + delta, 0, 255)``.

    Without ``lift``: ``pixels`` and ``delta`` (integer pixel units) of one shape, one image
    ``[H, W, 3]`` or a batch ``[N, H, W, 3]``. With ``lift`` (:class:`~ue_bench.engine.lift.LiftSettings`):
    ``pixels`` is one full-size original ``[H, W, 3]`` and ``delta`` ``[R, R, 3]`` the noise on its view
    at ``R`` px, carried onto the original pixels by :func:`~ue_bench.engine.lift.lift` (within
    ±``eps`` and the pixel range), its random views seeded by ``lift.seed + index`` (image ``index`` of
    a split, so each image's noise depends on that image alone). ``delta`` None: the pixels themselves."""
    if delta is None:
        return pixels
    if lift is not None:
        delta = lift_noise(pixels, np.asarray(delta), eps, replace(lift, seed=int(lift.seed + index)))
    return np.clip(pixels.astype(np.int16) + delta, 0, 255).astype(np.uint8)


def publish(split: PairSplit, protection: Protection) -> PairSplit:
    """The protected copy: :func:`published_pixels` of each image and ``"<trigger> <caption>"``."""
    images = split.images
    if protection.delta is not None:
        images = published_pixels(images, protection.delta)
    captions = split.captions
    if protection.triggers is not None:
        captions = [with_trigger_text(t, caps) for t, caps in zip(protection.triggers, split.captions)]
    return PairSplit(images, captions, meta={**split.meta, "protected": True})


def published_chunks(split: PairSplit, protection: Protection, size: int = CHUNK):
    """``(start, protected PairSplit)`` per chunk of ``size`` images, through :func:`publish`, so a
    protected copy can be measured or written without being held in memory whole."""
    for a in range(0, len(split), size):
        b = min(len(split), a + size)
        part = PairSplit(split.images[a:b], split.captions[a:b], meta=split.meta)
        delta = None if protection.delta is None else protection.delta[a:b]
        triggers = None if protection.triggers is None else protection.triggers[a:b]
        yield a, publish(part, Protection(delta=delta, triggers=triggers))
        if a % (16 * size) == 0:
            release(split.images)
            release(protection.delta)


def _check_type(protection, split, eps, tokenizer) -> str | None:
    if not isinstance(protection, Protection):
        return f"returned {type(protection).__name__}, expected ue_bench.protection.Protection"
    d = protection.delta
    if d is not None and not isinstance(d, np.ndarray):
        return f"delta is a {type(d).__name__}, expected a numpy array"
    t = protection.triggers
    if t is not None and not isinstance(t, (list, tuple)):
        return f"triggers is a {type(t).__name__}, expected a list of strings"
    return None


def _check_shape(protection, split, eps, tokenizer) -> str | None:
    d = protection.delta
    if d is not None and d.shape != split.images.shape:
        return f"delta shape {d.shape} != images {split.images.shape}"
    return None


def _finite_rows(d: np.ndarray, start: int, stop: int) -> np.ndarray:
    return np.isfinite(d[start:stop].reshape(stop - start, -1)).all(1)


def _check_finite(protection, split, eps, tokenizer) -> str | None:
    d = protection.delta
    if d is None or not np.issubdtype(d.dtype, np.floating):
        return None
    for start in range(0, len(d), CHUNK):
        ok = _finite_rows(d, start, min(len(d), start + CHUNK))
        release(d)
        if not ok.all():
            return f"sample {start + int(np.argmin(ok))} has NaN/inf in its delta"
    return None


def _check_integer(protection, split, eps, tokenizer) -> str | None:
    d = protection.delta
    if d is not None and not np.issubdtype(d.dtype, np.integer):
        return f"delta must be integer pixel units (0..255 scale), got {d.dtype}"
    return None


def _check_budget(protection, split, eps, tokenizer) -> str | None:
    d = protection.delta
    if d is None or not np.issubdtype(d.dtype, np.number):
        return None
    for start in range(0, len(d), CHUNK):  # chunked: a wide copy of a large delta would not fit in memory
        part = d[start:start + CHUNK].reshape(len(d[start:start + CHUNK]), -1)
        linf = np.abs(part.astype(np.float64)).max(1)
        release(d)
        bad = ~(linf <= eps)  # NaN counts as over budget
        if bad.any():
            i = int(np.argmax(bad))
            return f"sample {start + i} has L∞ {linf[i]:g} > budget {eps}/255"
    return None


def _check_triggers(protection, split, eps, tokenizer) -> str | None:
    t = protection.triggers
    if t is None:
        return None
    if len(t) != len(split):
        return f"{len(t)} triggers for {len(split)} images"
    for i, trig in enumerate(t):
        if not isinstance(trig, str) or trig != trig.strip() or "\n" in trig:
            return f"sample {i} trigger {trig!r} is not a clean text prefix"
        if tokenizer is not None and trig and not trigger_round_trips(tokenizer, trig):
            return f"sample {i} trigger {trig!r} does not survive decode → re-tokenise"
    return None


#: The harness's checks on every protection, in order: (name, check). A check returns None when the
#: protection passes it, else one line naming the first bad sample. Later checks assume earlier ones.
CHECKS = (("type", _check_type), ("delta-shape", _check_shape), ("delta-finite", _check_finite),
          ("delta-integer", _check_integer), ("budget", _check_budget), ("triggers", _check_triggers))


def verify(name: str, protection: Protection, split: PairSplit, eps: int, tokenizer=None) -> None:
    """Refuse a protection that breaks the contract (raises :class:`ProtectionRejected` with one line
    naming the plugin, the check and the first bad sample).

    Checks (:data:`CHECKS`): a :class:`Protection`; delta shape; no NaN; integer dtype; L∞ ≤ ``eps``
    pixel units; one trigger per image, a clean text prefix that (with a tokenizer) survives encode →
    decode → encode unchanged, since a trigger that a scraper's tokenizer would split differently is
    not what the attack optimised.
    """
    for check, fn in CHECKS:
        problem = fn(protection, split, eps, tokenizer)
        if problem:
            raise ProtectionRejected(f"attack {name!r} failed check {check}: {problem}")


def trigger_round_trips(tokenizer, trigger: str) -> bool:
    """True if the trigger's token ids are unchanged after decoding to text and tokenising again."""
    ids = tokenizer.encode(trigger)
    return tokenizer.encode(tokenizer.decode(ids).strip()) == ids
