"""The data contract every plugin speaks.

A split is what a data owner could publish: ``uint8`` images ``[N, H, W, 3]`` and, per image, a
list of caption strings. Keeping images as bytes (never normalised floats) means a protection is
judged on exactly what could be put online, and keeping captions as text means a text trigger has
to survive the tokenizer a scraper would use.
"""

from __future__ import annotations

import functools
import hashlib
import mmap
from dataclasses import dataclass, field

import numpy as np

#: Images hashed per step by the fingerprints (bounded memory, same digest as hashing all at once).
HASH_CHUNK = 1024


@dataclass(frozen=True)
class PairSplit:
    """N images with their captions (``captions[i]`` belongs to ``images[i]``)."""

    images: np.ndarray
    captions: list[list[str]]
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        imgs = self.images
        if not isinstance(imgs, np.ndarray) or imgs.dtype != np.uint8 or imgs.ndim != 4 or imgs.shape[-1] != 3:
            raise ValueError(
                f"images must be a uint8 array [N, H, W, 3], got {getattr(imgs, 'dtype', type(imgs))} "
                f"{getattr(imgs, 'shape', '')}"
            )
        if len(self.captions) != len(imgs):
            raise ValueError(f"{len(imgs)} images but {len(self.captions)} caption lists")
        for i, caps in enumerate(self.captions):
            if not caps or not all(isinstance(c, str) and c.strip() for c in caps):
                raise ValueError(f"image {i} needs at least one non-empty caption string, got {caps!r}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[1])

    def subset(self, idx: np.ndarray) -> PairSplit:
        """The pairs at ``idx``; the split itself, not a copy, when ``idx`` is every pair in order (the
        usual poison ratio of 1, where a copy would double the memory of a large split)."""
        if len(idx) == len(self) and np.array_equal(idx, np.arange(len(self))):
            return self
        return PairSplit(self.images[idx], [self.captions[i] for i in idx], meta=self.meta)

    def flat_captions(self) -> tuple[list[str], np.ndarray]:
        """All captions in image order, and for each the index of its image."""
        texts = [c for caps in self.captions for c in caps]
        owner = np.repeat(np.arange(len(self)), [len(c) for c in self.captions])
        return texts, owner

    def fingerprint(self) -> str:
        """sha256 over the image bytes and the captions: the identity of this split's content.

        Computed once per split object (splits are never modified in place: the contract), since
        every stage key of every cell asks for it and a large split takes seconds to hash."""
        return self._fingerprint

    @functools.cached_property
    def _fingerprint(self) -> str:
        hasher = SplitHasher(self.images.shape)
        for start in range(0, len(self.images), HASH_CHUNK):  # chunked: memory-mapped splits stay on disk
            hasher.add(self.images[start:start + HASH_CHUNK], self.captions[start:start + HASH_CHUNK])
            if start % (16 * HASH_CHUNK) == 0:
                release(self.images)
        release(self.images)
        return hasher.hexdigest()


def _mapping(array) -> mmap.mmap | None:
    """The ``mmap`` behind a memory-mapped array (or a view of one), else None."""
    seen = 0
    while array is not None and seen < 16:
        if isinstance(array, mmap.mmap):
            return array
        m = getattr(array, "_mmap", None)
        if isinstance(m, mmap.mmap):
            return m
        array, seen = getattr(array, "base", None), seen + 1
    return None


def release(array) -> None:
    """Drop the pages of a memory-mapped ``array`` from this process's resident set (the page cache
    keeps them; the next read faults them back in cheaply). Without it, a pass over a memory-mapped
    split leaves every page it touched resident, so the process's RSS grows with the dataset even
    though nothing is copied. A no-op for in-memory arrays and where ``madvise`` is unavailable."""
    m = _mapping(array)
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if m is None or advice is None or m.closed:
        return
    try:
        m.madvise(advice)
    except (OSError, ValueError):
        pass


class SplitHasher:
    """:meth:`PairSplit.fingerprint` fed chunk by chunk (sha256 over the shape, the image bytes in order,
    then every image's captions), so that a split only ever seen in chunks, like a published copy, is
    hashed without being materialised."""

    def __init__(self, shape: tuple) -> None:
        self._h = hashlib.sha256(str(tuple(shape)).encode())
        self._captions: list[list[str]] = []

    def add(self, images: np.ndarray, captions: list[list[str]]) -> None:
        """The next ``images`` (uint8 ``[n, H, W, 3]``) and their captions, in split order."""
        self._h.update(np.ascontiguousarray(images).tobytes())
        self._captions.extend(captions)

    def hexdigest(self) -> str:
        h = self._h.copy()
        for caps in self._captions:
            h.update(b"\x1e")
            h.update("\x1f".join(caps).encode("utf-8"))
        return h.hexdigest()


@dataclass(frozen=True)
class PairDataset:
    """A train split to protect and learn from, and a clean test split to evaluate retrieval on."""

    name: str
    train: PairSplit
    test: PairSplit

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(self.train.fingerprint().encode())
        h.update(self.test.fingerprint().encode())
        return h.hexdigest()


def save_chunked(path, shape: tuple, dtype, parts) -> None:
    """Write a ``.npy`` file of ``shape`` and ``dtype`` from ``parts``, consecutive row blocks in order,
    with plain file writes (no mapping, no whole-array copy), so that writing an array the size of the
    dataset holds one block at a time. Raises ``ValueError`` if the blocks do not add up to ``shape``."""
    dtype = np.dtype(dtype)
    rows = 0
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                  "fortran_order": False, "shape": tuple(shape)})
        for part in parts:
            part = np.ascontiguousarray(part, dtype=dtype)
            if part.shape[1:] != tuple(shape[1:]):
                raise ValueError(f"block of shape {part.shape} does not fit an array of shape {tuple(shape)}")
            fh.write(part.data)
            rows += len(part)
            release(part)
    if rows != shape[0]:
        raise ValueError(f"wrote {rows} rows of an array of {shape[0]}")
