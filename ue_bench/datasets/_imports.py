"""Shared import path of the real-data plugins: decode once, store as memory-mapped uint8, reuse.

Real datasets arrive as compressed files of every size (Flickr/COCO JPEGs of ~500 px, LAION shards).
The data contract wants ``uint8 [N, H, W, 3]`` at the run's resolution, so each image is decoded once:

* **Decoding** is :func:`ue_bench.engine.images.decode_image`, the one image decoder of ue-bench: EXIF
  orientation applied, every PIL mode turned into 8-bit RGB as a viewer shows it (16-bit as
  ``value // 257``, transparency on white), undecodable or oversized images refused naming the row.
* **Resize + center crop**, the same geometry as CLIP's and open_clip's evaluation transform: the
  shorter side is resized to ``resolution`` with bicubic filtering, then the central square is cut.
  Nothing is padded or stretched, so a victim sees undistorted content. JPEGs are decoded with
  ``Image.draft`` (DCT downscaling to no less than the target size) because it makes import several
  times faster on large photos at small resolutions; the bytes then differ slightly from a full
  decode, which is fine since the cached array, not the JPEG, is what every stage reads.
* **Memory-mapped cache.** Pixels are appended image by image to a raw ``.u8`` file that every
  stage then opens with ``np.memmap``; neither import nor later stages hold the dataset in RAM, so
  memory stays flat in the number of images. The cache lives in ``<cache>/imports/<key>``, where
  ``<cache>`` is the run's ``--cache`` (the import stage of its artifact store, handed to
  ``Dataset.load``), else ``$UE_BENCH_CACHE``, else ``~/.cache/ue-bench`` (see :mod:`ue_bench.store.imports`). It is built in a temporary folder renamed into place when complete,
  so an interrupted import leaves nothing that could be mistaken for a finished one; while the
  command line is still checking its input (``--dry-run``, a run refused with exit 2) the rename is
  deferred and the temporary folder deleted if the command stops there.
* **Verified before use.** ``manifest.json`` (written last) records each split's image count and
  fingerprint (sha256 of pixels and captions) and each image's content hash; a cache whose files do
  not match it — bytes flipped, a file cut short — is rebuilt, never used. The fingerprint computed
  to verify is the one every later stage key uses, so verification costs no extra pass.
* **Keyed by the source's hash:** the sha256 of the index files' bytes (CSV, Karpathy JSON), of every
  record (path, byte range in a tar, captions, split) and of each image file's size and mtime, plus
  the resolution and the import code's version. Hashing stat data instead of every image's bytes
  keeps a cache hit cheap for COCO-sized folders (tens of GB) while any edit, replacement or move
  of a file still invalidates it.
* **Original files.** Each record also carries its relative output name (:func:`unique_names`), so
  that a plugin's ``originals()`` can hand ``ue-bench protect`` the files as given, in ``load()``'s
  order, under names that mirror the input's.
* **No leakage:** a test split that shares images with the train split (the same file, or another
  file with the same decoded pixels) is refused unless ``allow_test_overlap=true`` (:func:`check_overlap`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import multiprocessing
import os
import posixpath
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ue_bench import ImportStage, PairDataset, PairSplit, PublishParams, UsageError, default_imports, param
from ue_bench.engine.images import TooSmall, decode_image, fit, smallest_side

log = logging.getLogger(__name__)

#: Bump when decoding or geometry changes, so that old caches are not reused.
IMPORT_VERSION = "3"  # 3: images under images.MIN_SIDE px are refused

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class _InputParams:
    path: str = param("", help="the input file or folder")
    test_path: str | None = param(None, help="input with the clean test pairs; default: hold out test_fraction")
    test_fraction: float = param(0.1, lo=0.0, hi=0.9,
                                 help="fraction of images held out as test split when test_path is not given")
    split_seed: int = param(0, lo=0, help="seed of the held-out draw")
    allow_test_overlap: bool = param(False, help="accept a test split sharing images (same file or same decoded "
                                                 "pixels) with the train split; refused by default")
    resolution: int = param(224, lo=16, hi=1024, help="image side in pixels after resize + center crop")


@dataclass(frozen=True)
class HeldOutParams(PublishParams, _InputParams):
    """What the file-based datasets share: an input path and a test split that is a second input or
    a seeded held-out share of the first (subclasses override ``path``/``test_path`` to say which files),
    then ``publish`` and the lift settings (:class:`ue_bench.PublishParams`)."""


@dataclass(frozen=True)
class Record:
    """One image to import: where its bytes are (a whole file, or a byte range inside a tar) and its
    captions. ``where`` names the source location for error messages (file and row or member).

    ``name`` is the image's relative output name, a POSIX relative path such as ``photos/cat``, which
    ``ue-bench protect``'s copy mirrors. A plugin sets it to the name as found *with* its extension
    (``photos/cat.jpg``, see :func:`relative_name`) and passes its records through :func:`unique_names`,
    which drops the extension. It is last so that positional calls stay valid, and it is not part of
    :func:`source_key`, so caches built before it existed stay valid."""

    where: str
    path: Path
    captions: tuple[str, ...]
    offset: int = 0
    size: int = -1  # -1: the whole file
    name: str = ""

    def read(self) -> bytes:
        """The image file's bytes, as given (decoded by :func:`decode`)."""
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            return fh.read(self.size)


def relative_name(path: str) -> str:
    """``path`` (a ``/``-separated path as written in an index file, relative to the index's folder) as
    a normalised POSIX relative path: itself when it stays inside that folder (``./a/../b.jpg`` →
    ``b.jpg``), else its base name (an absolute path, or one that climbs out with ``..``)."""
    parts = PurePosixPath(posixpath.normpath(path))
    if parts.is_absolute() or parts.parts[:1] == ("..",):
        return parts.name
    return str(parts)


def unique_names(records: list[Record]) -> list[Record]:
    """``records`` with each ``name`` (a relative path with its extension, e.g. ``photos/cat.jpg``) made
    the output name: the extension dropped (``photos/cat``), except where two records of the list would
    then share a name (``a.jpg`` and ``a.png``): those keep it (names ``a.jpg`` and ``a.png``). A name
    that still repeats (the same relative path twice: base names of files outside the index's folder,
    a key found in two shards) gets ``-2``, ``-3``, ... in list order. Deterministic: the same records
    give the same names. Raises UsageError for a name that is not valid UTF-8 (:func:`check_utf8_name`)."""
    for r in records:
        check_utf8_name(r.name, r.where)
    stems = [str(PurePosixPath(r.name).with_suffix("")) for r in records]
    count = Counter(stems)
    used: set[str] = set()
    out = []
    for r, stem in zip(records, stems):
        base = stem if count[stem] == 1 else r.name
        name, k = base, 2
        while name in used:
            name, k = f"{base}-{k}", k + 1
        used.add(name)
        out.append(replace(r, name=name))
    return out


def shown(path: str | os.PathLike) -> str:
    """``path`` for a message: its bytes as the file system holds them, those that are not UTF-8 escaped
    (``caf\\xe9.jpg``), instead of Python's surrogate escapes (``caf\\udce9.jpg``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def check_utf8_name(name: str, where: str) -> None:
    """UsageError naming ``where`` when ``name`` (the image's output name, relative to its input) is not
    valid UTF-8 (file names as ``unzip`` or a Windows/Shift-JIS tool may write them, which Python reads
    with surrogate escapes): the copy's CSV index and sidecars are UTF-8 text, and trainers read them so."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{shown(where)}: the name {shown(name)} is not valid UTF-8 (bytes shown escaped); rename it to "
                         f"UTF-8 first, e.g. convmv -f latin1 -t utf-8 --notest -r FOLDER (or -f shift-jis)") from None


def caption_lines(text: str) -> list[str]:
    """``text`` split into lines at ``\\n``, ``\\r\\n`` and ``\\r`` only: a caption may hold U+2028, NEL
    or a form feed, which ``str.splitlines`` would also split at (open_clip's readers do not)."""
    return re.split(r"\r\n|\r|\n", text)


def input_path(dataset: str, name: str, value: str | None, folder: bool, example: str) -> Path:
    """The path of a dataset's file (or ``folder``) parameter ``name``; UsageError when it is missing
    (naming ``example``, a ``--dataset`` value) or is not an existing file (folder)."""
    if not value:
        raise UsageError(f"dataset {dataset!r}: parameter {name!r} is required, e.g. --dataset {example}")
    path = Path(value).expanduser()
    if not (path.is_dir() if folder else path.is_file()):
        raise UsageError(f"dataset {dataset!r}: {name} {value!r} is not a {'folder' if folder else 'file'}")
    return path


def read_utf8(path: Path, dataset: str, kind: str) -> str:
    """The text of ``path`` (UTF-8, a BOM accepted); UsageError naming the file when it cannot be read,
    and its line and byte when it is not UTF-8 (``kind`` says what the file should be, e.g. "JSON files")."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"dataset {dataset!r}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UsageError(f"{path} line {line}: byte 0x{raw[exc.start]:02x} is not valid UTF-8; "
                         f"{kind} must be UTF-8 text") from None


def content_hash(img: Image.Image) -> str:
    """sha256 of an image's decoded RGB pixels and size: equal for byte-identical files (and for
    re-encodings that decode to the same pixels), whatever their names."""
    h = hashlib.sha256(f"{img.size}".encode())
    h.update(img.tobytes())
    return h.hexdigest()[:32]


def decode(data: bytes, resolution: int, where: str, hashes: list[str] | None = None, exact: bool = False) -> np.ndarray:
    """The image in ``data`` decoded by :func:`ue_bench.engine.images.decode_image` (EXIF orientation, 8-bit
    RGB as a viewer shows it), resized and center-cropped by :func:`fit`; the content hash of the
    decoded image is appended to ``hashes`` when given. UsageError names ``where``; TooSmall is raised
    for an image whose shorter side is under :func:`~ue_bench.engine.images.smallest_side` of ``resolution``."""
    img = decode_image(data, name=where, draft=None if exact else (resolution, resolution),
                       min_side=smallest_side(resolution))
    if hashes is not None:
        hashes.append(content_hash(img))
    return fit(img, resolution)


def source_key(kind: str, resolution: int, index_files: list[Path], splits: dict[str, list[Record]],
               exact: bool = False) -> str:
    """The cache key (see the module docstring); raises UsageError naming a missing image file."""
    h = hashlib.sha256(json.dumps([kind, IMPORT_VERSION, resolution] + (["exact"] if exact else [])).encode())
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


#: Imports smaller than this decode in this process: starting workers would cost more than it saves.
POOL_FROM = 64


def _decode_record(r: Record, resolution: int, exact: bool) -> tuple[bytes | None, str]:
    """One record's pixels (:func:`decode`) as bytes, and its content hash; run in a worker process.
    An image too small for ``resolution`` gives ``(None, "where (WxH px)")``, so that the import can
    name and count every such image before refusing them."""
    hashes: list[str] = []
    try:
        return decode(r.read(), resolution, r.where, hashes, exact).tobytes(), hashes[0]
    except TooSmall as small:
        return None, str(small)


def _decoded(records: list[Record], resolution: int, exact: bool, workers: int) -> Iterator[tuple[bytes, str]]:
    """:func:`_decode_record` of each record, in order: in ``workers``
    processes (a pool whose results come back in order; the first error is raised here, as it would be
    in this process), or in this process for one worker or fewer than :data:`POOL_FROM` records."""
    job = functools.partial(_decode_record, resolution=resolution, exact=exact)
    n = min(workers, len(records))
    if n < 2 or len(records) < POOL_FROM:
        yield from map(job, records)
        return
    with multiprocessing.get_context().Pool(n) as pool:
        yield from pool.imap(job, records, chunksize=8)


def _write(folder: Path, split: str, records: list[Record], resolution: int, label: str, exact: bool,
           workers: int) -> list[str]:
    """Decode ``records`` (:func:`_decoded`) into ``<split>.u8``, appended in order with plain writes:
    unlike writing through a memmap, no dirty mapped pages pile up in the process, so its resident
    memory stays flat however many images are imported. Returns the images' content hashes; raises
    UsageError with the count and the first few of images too small for ``resolution``, once all are
    decoded (the import is then discarded)."""
    hashes: list[str] = []
    small: list[str] = []
    if not records:
        return hashes
    log.info("importing %d %s images of %s into %s", len(records), split, label, folder.parent)
    with open(folder / f"{split}.u8", "wb") as fh:
        for pixels, h in tqdm(_decoded(records, resolution, exact, workers), total=len(records), unit="img",
                              desc=f"import {label} {split}", file=sys.stderr, mininterval=1.0,
                              disable=not sys.stderr.isatty()):  # as training does: a bar only where it redraws
            if pixels is None:
                small.append(h)
                continue
            fh.write(pixels)
            hashes.append(h)
    if small:
        listed = "; ".join(small[:3]) + (" …" if len(small) > 3 else "")
        raise UsageError(f"{len(small)} of {len(records)} {split} images are smaller than {smallest_side(resolution)} px "
                         f"on their shorter side: {listed}; a trainer's centre crop of such a strip or dot is a few "
                         f"pixels enlarged to {resolution} px, and its own pixels cannot carry a protection: "
                         f"remove them from the input")
    return hashes


def _open(folder: Path, split: str, n: int, resolution: int) -> np.ndarray:
    shape = (n, resolution, resolution, 3)
    if n == 0:
        return np.empty(shape, dtype=np.uint8)
    return np.memmap(folder / f"{split}.u8", dtype=np.uint8, mode="r", shape=shape)


def _build(folder: Path, key: str, name: str, resolution: int, splits: dict[str, list[Record]], exact: bool,
           workers: int) -> None:
    """Decode every split into ``folder`` with a manifest of what each holds (written last: its
    presence marks a complete import)."""
    captions = {s: [list(r.captions) for r in rs] for s, rs in splits.items()}
    hashes = {s: _write(folder, s, rs, resolution, name, exact, workers) for s, rs in splits.items()}
    (folder / "captions.json").write_text(json.dumps(captions))
    manifest = {"version": IMPORT_VERSION, "key": key, "resolution": resolution, "content_hashes": hashes,
                "splits": {}}
    for s in splits:
        split = PairSplit(_open(folder, s, len(captions[s]), resolution), captions[s])
        manifest["splits"][s] = {"n": len(split), "fingerprint": split.fingerprint()}
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _read(folder: Path, resolution: int) -> tuple[dict, dict[str, PairSplit]] | None:
    """The verified import in ``folder``, or None when it is absent, incomplete or does not match its
    manifest (a file's bytes or size changed): such a cache is rebuilt, never used. Verification
    computes each split's fingerprint, which the split keeps, so the stage keys computed later from
    the same fingerprints cost nothing more."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        captions = json.loads((folder / "captions.json").read_text())
        out = {}
        for s, info in manifest["splits"].items():
            n = info["n"]
            expected = n * resolution * resolution * 3
            if n and (folder / f"{s}.u8").stat().st_size != expected:
                raise ValueError(f"{s}.u8 is not {expected} bytes")
            split = PairSplit(_open(folder, s, n, resolution), captions[s])
            if split.fingerprint() != info["fingerprint"]:
                raise ValueError(f"{s} split does not match its fingerprint")
            out[s] = split
        return manifest, out
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if folder.exists():
            log.warning("import cache %s failed verification (%s); rebuilding it", folder, exc)
            print(f"ue-bench: the import cache {folder} failed verification ({exc}); rebuilding it", file=sys.stderr)
        return None


def load_cached(name: str, kind: str, resolution: int, index_files: list[Path],
                train: list[Record], test: list[Record], meta: dict,
                allow_test_overlap: bool = False, exact: bool = False,
                imports: ImportStage | None = None) -> PairDataset:
    """The dataset of ``train``/``test`` records, decoded on first use into ``imports`` (the import stage
    ``Dataset.load`` was handed; None: :func:`~ue_bench.store.imports.default_imports`), which says
    where, with how many processes, and when a new import is published. A test split that
    shares images with the train split is refused unless ``allow_test_overlap`` (see :func:`check_overlap`).
    ``exact`` decodes JPEGs in full, without ``Image.draft``, so the import is exactly the resize + crop of
    the original pixels (``publish=original``); it has its own cache key."""
    splits = {"train": train, "test": test}
    key = source_key(kind, resolution, index_files, splits, exact)
    imports = imports if imports is not None else default_imports()
    folder = imports.root / key
    found = _read(folder, resolution)
    if found is None:
        tmp = imports.new_temp(key)
        try:
            _build(tmp, key, name, resolution, splits, exact, imports.workers())
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        found = _read(tmp, resolution)
        if found is None:
            raise RuntimeError(f"the import just written to {tmp} does not verify")
        metas: list[dict] = []
        where = imports.finish(tmp, folder, lambda final: [m.update(import_dir=str(final)) for m in metas],
                                    lambda final: _read(final, resolution) is not None)
    else:
        metas, where = [], folder
    manifest, loaded = found
    overlap = check_overlap(name, train, test, manifest["content_hashes"], allow_test_overlap)
    out = {}
    for split in ("train", "test"):
        m = {**meta, "split": split, "import_key": key, "import_dir": str(where)}
        if overlap:
            m["test_overlap"] = overlap
        metas.append(m)
        out[split] = PairSplit(loaded[split].images, loaded[split].captions, meta=m)
        out[split].__dict__["_fingerprint"] = loaded[split].fingerprint()  # verified above: not hashed again
    return PairDataset(name, out["train"], out["test"])


def check_overlap(dataset: str, train: list[Record], test: list[Record], hashes: dict[str, list[str]],
                  allow: bool) -> dict:
    """Refuse (UsageError) a test split that shares images with the train split: the same decoded
    pixels (by :func:`content_hash`), which covers the same file named twice and a copy under another
    name. The message names the first shared pairs and the count. With ``allow``
    (``allow_test_overlap=true``) the count is printed and returned for the dataset's meta instead."""
    first: dict[str, Record] = {}
    for r, h in zip(train, hashes.get("train", [])):
        first.setdefault(h, r)
    shared = [(r, first[h]) for r, h in zip(test, hashes.get("test", [])) if h in first]
    if not shared:
        return {}
    same_file = sum((t.path.resolve(), t.offset) == (r.path.resolve(), r.offset) for t, r in shared)
    kinds = ", ".join(k for k in (f"{same_file} the same file" if same_file else "",
                                  f"{len(shared) - same_file} a copy with the same decoded pixels"
                                  if len(shared) > same_file else "") if k)
    summary = f"{len(shared)} test image(s) are also in the train split ({kinds})"
    if not allow:
        shown = "; ".join(f"{t.where} = {r.where}" for t, r in shared[:3]) + (" …" if len(shared) > 3 else "")
        raise UsageError(f"dataset {dataset!r}: {summary}: {shown}; retrieval on images the victim trained on "
                         f"measures memorisation, not protection: remove them from one split, or pass the "
                         f"dataset parameter allow_test_overlap=true to keep them")
    print(f"ue-bench: warning: dataset {dataset!r}: {summary}; kept (allow_test_overlap=true)", file=sys.stderr)
    return {"test_overlap_images": len(shared), "test_overlap_same_file": same_file}


def report_skipped(path: Path, skipped: list[str], what: str = "bad row(s)", option: str = "on_bad_rows=skip",
                   key: str = "skipped_rows") -> dict:
    """Print how many inputs of ``path`` a skip option dropped (``skipped``: one "where: why" each) and
    the first few, on stderr, and return ``{key: count, "skipped_examples": the first 10}`` for the
    dataset's meta (``{}`` when none was skipped)."""
    if not skipped:
        return {}
    shown = "; ".join(skipped[:3]) + (" …" if len(skipped) > 3 else "")
    print(f"ue-bench: warning: {path}: skipped {len(skipped)} {what} ({option}): {shown}", file=sys.stderr)
    return {key: len(skipped), "skipped_examples": skipped[:10]}


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
