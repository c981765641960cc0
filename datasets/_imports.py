"""Shared import path of the real-data plugins: decode once, store as memory-mapped uint8, reuse.

Real datasets arrive as compressed files of every size (Flickr/COCO JPEGs of ~500 px, LAION shards).
The data contract wants ``uint8 [N, H, W, 3]`` at the run's resolution, so each image is decoded once:

* **Resize + center crop**, the same geometry as CLIP's and open_clip's evaluation transform: the
  shorter side is resized to ``resolution`` with bicubic filtering, then the central square is cut.
  Nothing is padded or stretched, so a victim sees undistorted content. JPEGs are decoded with
  ``Image.draft`` (DCT downscaling to no less than the target size) because it makes import several
  times faster on large photos at small resolutions; the bytes then differ slightly from a full
  decode, which is fine since the cached array, not the JPEG, is what every stage reads.
* **Memory-mapped cache.** Pixels are appended image by image to a raw ``.u8`` file that every
  stage then opens with ``np.memmap``; neither import nor later stages hold the dataset in RAM, so
  memory stays flat in the number of images. The cache lives in ``$UE_BENCH_CACHE/imports/<key>`` (default
  ``~/.cache/ue-bench/imports``) and is built in a temporary folder renamed into place when complete,
  so an interrupted import leaves nothing that could be mistaken for a finished one.
* **Keyed by the source's hash:** the sha256 of the index files' bytes (CSV, Karpathy JSON), of every
  record (path, byte range in a tar, captions, split) and of each image file's size and mtime, plus
  the resolution and the import code's version. Hashing stat data instead of every image's bytes
  keeps a cache hit cheap for COCO-sized folders (tens of GB) while any edit, replacement or move
  of a file still invalidates it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from ue_bench.data import PairDataset, PairSplit
from ue_bench.errors import UsageError

log = logging.getLogger(__name__)

#: Bump when decoding or geometry changes, so that old caches are not reused.
IMPORT_VERSION = "1"


@dataclass(frozen=True)
class Record:
    """One image to import: where its bytes are (a whole file, or a byte range inside a tar) and its
    captions. ``where`` names the source location for error messages (file and row or member)."""

    where: str
    path: Path
    captions: tuple[str, ...]
    offset: int = 0
    size: int = -1  # -1: the whole file

    def read(self) -> bytes:
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            return fh.read(self.size)


def cache_root() -> Path:
    return Path(os.environ.get("UE_BENCH_CACHE") or Path.home() / ".cache" / "ue-bench") / "imports"


def decode(data: bytes, resolution: int, where: str) -> np.ndarray:
    """``uint8 [resolution, resolution, 3]``: bicubic resize of the shorter side, then center crop."""
    try:
        img = Image.open(io.BytesIO(data))
        img.draft("RGB", (resolution, resolution))
        img = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UsageError(f"{where}: cannot decode the image ({exc}); expected a JPEG, PNG or other PIL-readable file") from None
    w, h = img.size
    scale = resolution / min(w, h)
    nw, nh = max(resolution, round(w * scale)), max(resolution, round(h * scale))
    img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - resolution) // 2, (nh - resolution) // 2
    return np.asarray(img.crop((left, top, left + resolution, top + resolution)), dtype=np.uint8)


def source_key(kind: str, resolution: int, index_files: list[Path], splits: dict[str, list[Record]]) -> str:
    """The cache key (see the module docstring); raises UsageError naming a missing image file."""
    h = hashlib.sha256(json.dumps([kind, IMPORT_VERSION, resolution]).encode())
    for f in index_files:
        h.update(hashlib.sha256(f.read_bytes()).digest())
    stats: dict[Path, tuple[int, int]] = {}
    for split, records in splits.items():
        h.update(split.encode() + b"\x1d")
        for r in records:
            if r.path not in stats:
                try:
                    st = r.path.stat()
                except OSError:
                    raise UsageError(f"{r.where}: image file {r.path} does not exist") from None
                stats[r.path] = (st.st_size, st.st_mtime_ns)
            h.update(json.dumps([str(r.path), r.offset, r.size, stats[r.path], r.captions]).encode())
    return h.hexdigest()[:24]


def _write(folder: Path, split: str, records: list[Record], resolution: int, label: str) -> None:
    """Decode ``records`` into ``<split>.u8`` one image at a time, appended with plain writes: unlike
    writing through a memmap, no dirty mapped pages pile up in the process, so its resident memory
    stays flat however many images are imported."""
    if not records:
        return
    log.info("importing %d %s images of %s into %s", len(records), split, label, folder.parent)
    with open(folder / f"{split}.u8", "wb") as fh:
        for r in tqdm(records, desc=f"import {label} {split}", unit="img", file=sys.stderr, mininterval=1.0,
                      disable=not sys.stderr.isatty()):  # as training does: a bar only where it redraws
            fh.write(decode(r.read(), resolution, r.where).tobytes())


def _open(folder: Path, split: str, n: int, resolution: int) -> np.ndarray:
    shape = (n, resolution, resolution, 3)
    if n == 0:
        return np.empty(shape, dtype=np.uint8)
    return np.memmap(folder / f"{split}.u8", dtype=np.uint8, mode="r", shape=shape)


def load_cached(name: str, kind: str, resolution: int, index_files: list[Path],
                train: list[Record], test: list[Record], meta: dict) -> PairDataset:
    """The dataset of ``train``/``test`` records, decoded into the import cache on first use."""
    splits = {"train": train, "test": test}
    key = source_key(kind, resolution, index_files, splits)
    folder = cache_root() / key
    if not (folder / "captions.json").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            for split, records in splits.items():
                _write(tmp, split, records, resolution, name)
            # written last: its presence marks a complete import
            (tmp / "captions.json").write_text(json.dumps({s: [list(r.captions) for r in rs] for s, rs in splits.items()}))
            try:
                os.replace(tmp, folder)
            except OSError:  # another process finished the same import first: use theirs
                if not (folder / "captions.json").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    captions = json.loads((folder / "captions.json").read_text())
    out = {}
    for split in ("train", "test"):
        images = _open(folder, split, len(captions[split]), resolution)
        out[split] = PairSplit(images, captions[split],
                               meta={**meta, "split": split, "import_key": key, "import_dir": str(folder)})
    return PairDataset(name, out["train"], out["test"])


def held_out(n: int, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of the ``round(n * fraction)`` items drawn as test split with ``seed``."""
    k = int(round(n * fraction))
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(np.random.SeedSequence([seed, 0x54455354])).permutation(n)[:k]] = True
    return mask


def split_train_test(records: list, fraction: float, seed: int, source: str, dataset: str) -> tuple[list, list]:
    """Hold out ``fraction`` of ``records`` as the test split (seeded); refuse an empty train split."""
    mask = held_out(len(records), fraction, seed)
    train = [r for r, m in zip(records, mask) if not m]
    if not train:
        raise UsageError(f"dataset {dataset!r}: no train images left in {source} (test_fraction={fraction})")
    return train, [r for r, m in zip(records, mask) if m]
