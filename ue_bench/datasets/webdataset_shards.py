"""Image–caption pairs from webdataset tar shards (``<key>.jpg``/``.png`` + ``<key>.txt``), as LAION
and open_clip's ``--dataset-type webdataset`` use them, read with the standard ``tarfile`` module.

A sample is the group of consecutive tar members sharing a key (the member name up to the first dot
of its file name, webdataset's own rule); it needs one image (``jpg``, ``jpeg``, ``png`` or ``webp``)
and one ``txt`` caption. Shards must be uncompressed tars (the usual case): each image is then read
straight from its byte range, without extracting anything or holding a shard in memory.

The format has one caption per sample, so a multi-caption image is stored as consecutive samples
with the same image bytes (``ue-bench protect --format webdataset`` writes it that way). Such runs
are merged back into one image with several captions; only adjacent duplicates are compared, and
only when their sizes match, which keeps indexing a single cheap pass.

A sample missing its image or its caption, a caption that is not UTF-8, and a shard that is cut short
(a member past the end of the file or no end-of-archive marker: an interrupted download) are refused
naming the shard and sample.

``path`` is a ``.tar`` file or a folder whose ``*.tar`` files are read in name order. As for CSV, the
test split is a second source (``test_path``) or ``test_fraction`` of the images held out with
``split_seed`` (ignored when ``test_path`` is set).
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

from ue_bench import Dataset, ImportStage, PairDataset, UsageError, param

from . import _example
from ._imports import HeldOutParams, Record, load_cached, relative_name, split_train_test, unique_names

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


@dataclass(frozen=True)
class Params(HeldOutParams):
    path: str = param("", help="a .tar shard or a folder of .tar shards")
    test_path: str | None = param(None, help="shard or folder with the clean test pairs; default: hold out test_fraction")


def shard_files(value: str, name: str) -> list[Path]:
    path = Path(value).expanduser()
    shards = sorted(path.glob("*.tar")) if path.is_dir() else [path] if path.is_file() else []
    if not shards:
        raise UsageError(f"dataset 'webdataset': {name} {value!r} is neither a .tar file nor a folder with .tar files")
    return shards


def _members(tar: tarfile.TarFile, shard: Path):
    """The shard's members; UsageError naming the shard and the last complete member when the tar is
    cut short (a header or data past the end of the file, or no end-of-archive marker)."""
    last = None
    try:
        for m in tar:
            last = m
            yield m
    except tarfile.TarError as exc:
        raise UsageError(f"{shard}: the tar is truncated or damaged after "
                         f"{'member ' + repr(last.name) if last else 'its start'} ({exc}); re-download or re-copy it") from None
    size = shard.stat().st_size
    end = tar.offset  # where tarfile stopped: the end-of-archive marker (two zero blocks) in a complete tar
    with open(shard, "rb") as fh:
        fh.seek(end)
        tail = fh.read(2 * tarfile.BLOCKSIZE)
    if (last is not None and last.offset_data + last.size > size) or len(tail) < 2 * tarfile.BLOCKSIZE or any(tail):
        raise UsageError(f"{shard}: the tar is truncated after {'member ' + repr(last.name) if last else 'its start'} "
                         f"(no end-of-archive marker at byte {end} of {size}): an interrupted download or copy? "
                         f"Re-download or re-copy it")


def _samples(shard: Path):
    """(key, {ext: TarInfo}) per sample, in tar order."""
    try:
        tar = tarfile.open(shard, "r:")  # uncompressed only: byte ranges must be seekable
    except tarfile.TarError as exc:
        raise UsageError(f"{shard}: not an uncompressed tar shard ({exc}); decompress .tar.gz shards first") from None
    with tar:
        key, files = None, {}
        for m in _members(tar, shard):
            if not m.isfile():
                continue
            folder, _, base = m.name.rpartition("/")
            stem, dot, ext = base.partition(".")
            if not dot:
                continue
            k = f"{folder}/{stem}" if folder else stem
            if k != key and key is not None:
                yield key, files, tar
                files = {}
            key = k
            files[ext.lower()] = m
        if key is not None:
            yield key, files, tar


def read_shards(shards: list[Path]) -> list[Record]:
    """One record per image; adjacent samples with identical image bytes become one multi-caption image
    (named after its first sample's key, see ``_imports.unique_names``)."""
    records: list[Record] = []
    for shard in shards:
        prev_bytes: bytes | None = None
        for key, files, tar in _samples(shard):
            where = f"{shard} sample {key!r}"
            ext = next((e for e in IMAGE_EXTS if e in files), None)
            if ext is None or "txt" not in files:
                lacks = "no txt caption" if ext is not None else "no image"
                raise UsageError(f"{where}: expected an image ({'/'.join(IMAGE_EXTS)}) and a txt caption, "
                                 f"got {sorted(files) or 'nothing'} ({lacks})")
            try:
                caption = tar.extractfile(files["txt"]).read().decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise UsageError(f"{where}: the txt caption is not UTF-8 (byte {exc.start}: "
                                 f"{exc.object[exc.start:exc.start + 1]!r}); captions must be UTF-8 text") from None
            if not caption:
                raise UsageError(f"{where}: empty txt caption")
            image = files[ext]
            rec = Record(where, shard, (caption,), offset=image.offset_data, size=image.size,
                         name=relative_name(f"{key}.{ext}"))
            last = records[-1] if records else None
            if last is not None and last.path == shard and last.size == rec.size:
                prev_bytes = prev_bytes if prev_bytes is not None else last.read()
                if rec.read() == prev_bytes:
                    records[-1] = replace(last, captions=last.captions + (caption,))
                    continue
            records.append(rec)
            prev_bytes = None
    return unique_names(records)


class WebdatasetShards(Dataset):
    """Webdataset tar shards (image + txt per sample), read with tarfile; duplicate-image runs merged."""

    Params = Params
    version = "1"

    def export_layout(self) -> dict:
        """``ue-bench protect`` writes this dataset back as shards."""
        return {"format": "webdataset"}

    def _splits(self) -> tuple[list[Record], list[Record]]:
        """The train and test records: what :meth:`load` and :meth:`originals` share."""
        p = self.params
        if not p.path:
            raise UsageError("dataset 'webdataset': parameter 'path' is required, e.g. --dataset webdataset:shards/")
        records = read_shards(shard_files(p.path, "path"))
        if p.test_path is not None:
            return records, read_shards(shard_files(p.test_path, "test_path"))
        return split_train_test(records, p.test_fraction, p.split_seed, str(p.path), "webdataset")

    def load(self, imports: ImportStage | None = None) -> PairDataset:
        p = self.params
        train, test = self._splits()
        meta = {"source": str(Path(p.path).resolve()), "format": "webdataset"}
        return load_cached("webdataset", "webdataset", p.resolution, [], train, test, meta,
                           p.allow_test_overlap, exact=p.publish == "original", imports=imports)

    def originals(self) -> tuple[list[Record], list[Record]]:
        """Each image's byte range in its shard, in :meth:`load`'s order, named after its sample key."""
        return self._splits()

    @classmethod
    def example(cls, folder: Path) -> dict:
        """A 24-image example written into ``folder`` (see ``_example``)."""
        return {"path": str(_example.write_shard(folder)), "resolution": 32}
