"""Writing a protected copy of a split that CLIP trainers read as they are.

Two layouts, both open_clip's own:

* ``csv``: ``images/<i>.png`` and ``train.csv`` with one row per caption (image path relative to the
  folder, protected caption), in the columns and separator of the input when it was a CSV, else
  open_clip's defaults (``filepath``/``title``, tab). Train with ``--dataset-type csv`` from inside
  the folder, since open_clip resolves image paths against its working directory.
* ``webdataset``: ``shards/<n>.tar`` with one sample per caption (``<i>_<j>.png`` + ``.txt``): the
  format has one caption per sample, so an image with five captions is stored five times, and
  ue-bench's webdataset reader merges such runs back.

Beside the train copy: the clean test split as open_clip's validation data in the same layout
(``val.csv`` + ``val/``, or ``val_shards/``), one caption per image (the first), since open_clip's
retrieval metric counts every other caption of the same image as a wrong match; and the victim's
model config as ``model/open_clip_config.json`` (``{"model_cfg": …}``, at the copy's resolution),
the folder ``--model local-dir:model`` reads.

Images are PNG by default because the protection lives in the lowest bits: JPEG at any usual
quality rounds most of a ±8/255 delta away, which would publish unprotected data while looking fine.
A lossy format is therefore refused unless explicitly forced.

Everything is written into a temporary sibling folder, the manifest last, and renamed to the output
folder at the end, so an error leaves no half-written copy. The protected split is never
materialised: it is published, hashed and written in chunks of images read from the memory-mapped
source and delta, so memory does not grow with the dataset.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ue_bench.publish.manifest import write_manifest
from ue_bench.store.atomic import building, write_json
from ue_bench.store.artifacts import file_sha256
from ue_bench.data import PairSplit, SplitHasher
from ue_bench.errors import UsageError
from ue_bench.protection import Protection, published_chunks

LOSSLESS = ("png",)
LOSSY = ("jpg",)
CHUNK = 256


@dataclass(frozen=True)
class Layout:
    """How the copy is written: ``format`` csv, webdataset or folder (a full-resolution copy's
    ``NAME.png`` + ``NAME.txt`` beside the csv index); CSV column names and separator."""

    format: str = "csv"
    img_key: str = "filepath"
    caption_key: str = "title"
    sep: str = "\t"
    shard_size: int = 10000  # samples (captions) per tar shard


def check_image_format(image_format: str, force_lossy: bool) -> None:
    """Refuse a lossy image format unless forced, saying why."""
    if image_format in LOSSY and not force_lossy:
        raise UsageError(
            f"--image-format {image_format}: lossy compression rounds away most of a protection's "
            f"±eps/255 noise, so the published copy would not be protected; use png, or pass --force-lossy "
            f"to write {image_format} anyway (e.g. to measure how much protection survives)")
    if image_format not in LOSSLESS + LOSSY:
        raise UsageError(f"--image-format: expected one of {list(LOSSLESS + LOSSY)}, got {image_format!r}")


def _encode(image: np.ndarray, image_format: str) -> bytes:
    buf = io.BytesIO()
    if image_format == "png":
        Image.fromarray(image).save(buf, format="PNG")
    else:
        Image.fromarray(image).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _write_csv(tmp: Path, parts, layout: Layout, image_format: str, split: str = "train") -> dict:
    """``<split>.csv`` and its images (``images/`` for train, ``val/`` for val)."""
    folder = "images" if split == "train" else split
    (tmp / folder).mkdir()
    with open(tmp / f"{split}.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=layout.sep)
        writer.writerow([layout.img_key, layout.caption_key])
        for a, part in parts:
            for j, (image, caps) in enumerate(zip(part.images, part.captions)):
                name = f"{folder}/{a + j:08d}.{image_format}"
                (tmp / name).write_bytes(_encode(image, image_format))
                writer.writerows([name, c] for c in caps)
    checked = trainer_misreads(tmp / f"{split}.csv", layout) if split == "train" else {}
    return {"files": {f"{split}.csv": file_sha256(tmp / f"{split}.csv")}, "open_clip_args": csv_args(layout, split),
            **checked}


def trainer_misreads(path: Path, layout: Layout) -> dict:
    """The rows of the CSV index ``path`` that open_clip's trainer reads differently from what was
    written: it reads the file with ``pandas.read_csv(path, sep=...)`` and uses ``str()`` of each value,
    so a caption pandas takes for a missing value (``NA``, ``None``, ``null``, ...) becomes ``nan`` and a
    column of numbers ``7.0``. Prints one warning line and returns ``{"trainer_misreads": count,
    "trainer_misreads_examples": [...]}`` for the manifest (``{}`` when every row reads as written)."""
    with open(path, newline="", encoding="utf-8") as fh:
        written = list(csv.reader(fh, delimiter=layout.sep))[1:]
    frame = pd.read_csv(path, sep=layout.sep)
    read = zip(frame[layout.img_key].tolist(), frame[layout.caption_key].tolist())
    differ = [f"row {i + 1}: {tuple(w)!r} is read as {(str(a), str(b))!r}"
              for i, (w, (a, b)) in enumerate(zip(written, read)) if tuple(w) != (str(a), str(b))]
    if len(frame) != len(written):
        differ.insert(0, f"{len(written)} rows written, {len(frame)} read")
    if not differ:
        return {}
    print(f"ue-bench: warning: {path}: open_clip's trainer (pandas.read_csv) reads {len(differ)} row(s) "
          f"differently from what was written: {'; '.join(differ[:3])}{' …' if len(differ) > 3 else ''}",
          file=sys.stderr)
    return {"trainer_misreads": len(differ), "trainer_misreads_examples": differ[:10]}


def csv_args(layout: Layout, split: str) -> list[str]:
    """open_clip's arguments that read ``<split>.csv`` of a copy in ``layout`` (train, or val)."""
    data = [f"--{split}-data", f"{split}.csv"]
    if split != "train":
        return data
    return ["--dataset-type", "csv", *data, "--csv-img-key", layout.img_key, "--csv-caption-key",
            layout.caption_key, "--csv-separator", layout.sep]


def write_model_config(folder: Path, model_cfg: dict) -> dict[str, str]:
    """``model/open_clip_config.json`` (``{"model_cfg": …}``, what ``--model local-dir:model`` reads) in
    ``folder``; returns ``{its relative path: its sha256}`` for a manifest's ``files``."""
    write_json(folder / "model" / "open_clip_config.json", {"model_cfg": model_cfg})
    return {"model/open_clip_config.json": file_sha256(folder / "model" / "open_clip_config.json")}


def _write_webdataset(tmp: Path, parts, layout: Layout, image_format: str, split: str = "train") -> dict:
    """Tar shards of ``<i>_<j>.png`` + ``.txt`` samples (``shards/`` for train, ``val_shards/`` for val)."""
    folder = "shards" if split == "train" else f"{split}_shards"
    (tmp / folder).mkdir()
    shards: list[str] = []
    tar, count, samples = None, 0, 0

    def add(name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644  # fixed metadata: reproducible shards
        tar.addfile(info, io.BytesIO(data))

    try:
        for a, part in parts:
            for j, (image, caps) in enumerate(zip(part.images, part.captions)):
                data = _encode(image, image_format)
                for c, caption in enumerate(caps):
                    if tar is None or count >= layout.shard_size:
                        if tar is not None:
                            tar.close()
                        shards.append(f"{folder}/{len(shards):06d}.tar")
                        tar, count = tarfile.open(tmp / shards[-1], "w", format=tarfile.USTAR_FORMAT), 0
                    key = f"{a + j:08d}_{c:02d}"
                    add(f"{key}.{image_format}", data)
                    add(f"{key}.txt", caption.encode("utf-8"))
                    count += 1
                    samples += 1
    finally:
        if tar is not None:
            tar.close()
    pattern = f"{folder}/{{000000..{len(shards) - 1:06d}}}.tar"
    return {"files": {s: file_sha256(tmp / s) for s in shards},
            "open_clip_args": (["--dataset-type", "webdataset"] if split == "train" else [])
            + [f"--{split}-data", pattern, f"--{split}-num-samples", str(samples)]}


def mount_points() -> set[str]:
    """The mount points of this process's mount namespace (``/proc/self/mountinfo``; empty elsewhere)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return set()
    octal = re.compile(r"\\([0-7]{3})")  # a space is written \040
    return {octal.sub(lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in lines if len(line.split()) > 4}


def prepare_out(out: Path) -> Path:
    """The folder the copy will be: ``out`` with symlinks resolved (a symlink to an empty folder is
    that folder, and the copy is built beside it, on its file system). Refuses (UsageError) an output
    that exists and is not an empty folder, an empty folder that is a mount point (the copy is built
    beside it and renamed onto it, which cannot cross file systems or replace a mount), and a parent
    folder that does not exist or is not writable."""
    target = Path(os.path.realpath(out))
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"--out: {out} already exists and is not an empty folder; choose a new folder")
    if target.exists() and (os.path.ismount(target) or str(target) in mount_points()):
        raise UsageError(f"--out: {out} is a mount point; the copy is built beside its folder and renamed into "
                         f"place, which cannot replace a mount: give a new folder inside it, e.g. {out / 'copy'}")
    if not target.parent.is_dir():
        raise UsageError(f"--out: the parent folder {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK):
        raise UsageError(f"--out: {target.parent} is not writable")
    return target


def export_protected(out: Path, split: PairSplit, protection: Protection, layout: Layout,
                     image_format: str, manifest: dict, val: PairSplit | None = None,
                     model_cfg: dict | None = None, complete: Callable[[dict], dict] | None = None) -> dict:
    """Write the protected ``split`` to ``out`` (see the module docstring), with the clean ``val`` split
    (first caption of each image; none when None or empty) and ``model_cfg`` (an open_clip model config,
    written as ``model/open_clip_config.json`` when given); returns the manifest, completed with the
    layout, the written files' hashes and the open_clip data arguments to train on it, then by ``complete``
    (:func:`~ue_bench.publish.manifest.write_manifest`)."""
    out = prepare_out(out)
    with building(out) as tmp:
        hasher = SplitHasher(split.images.shape)

        def parts():
            for a, part in published_chunks(split, protection, CHUNK):
                hasher.add(part.images, part.captions)
                yield a, part

        write = _write_webdataset if layout.format == "webdataset" else _write_csv
        written = write(tmp, parts(), layout, image_format)
        if val is not None and len(val):
            first = PairSplit(val.images, [caps[:1] for caps in val.captions])
            val_written = write(tmp, published_chunks(first, Protection(), CHUNK), layout, image_format, "val")
            written = {**written, "files": {**written["files"], **val_written["files"]},
                       "open_clip_args": written["open_clip_args"] + val_written["open_clip_args"],
                       "n_val_images": len(val)}
        if model_cfg is not None:
            written["files"].update(write_model_config(tmp, model_cfg))
        manifest = {**manifest, "format": layout.format, "image_format": image_format,
                    "n_images": len(split), "n_captions": sum(len(c) for c in split.captions),
                    "resolution": split.resolution, "published_sha256": hasher.hexdigest(), **written}
        manifest = write_manifest(tmp, manifest, complete)
    return manifest
