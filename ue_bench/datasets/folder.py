"""Image–caption pairs from a folder of images with sidecar caption files, the layout of most
fine-tuning sets: ``NAME.txt`` beside ``NAME.jpg``.

The folder is searched recursively and read in sorted relative-path order (folder by folder:
``a/x.jpg`` before ``a-b/x.jpg``); symlinked folders are not followed. Images are the files whose
extension (any case) is one Pillow decodes (:func:`ue_bench.engine.images.readable_extensions`: ``.jpg``,
``.jfif``, ``.jpe``, ``.png``, ``.avif``, ``.webp``, ``.tif``, ...). Each image's captions are in the ``.txt``
file of the same stem in the same folder (``cat.jpg`` → ``cat.txt``; ``cat.jpg`` and ``cat.png`` would
share it): UTF-8 text (a BOM is accepted), one caption per non-empty line (lines end at ``\n``, ``\r\n``
or ``\r`` only), stripped, so a one-line file is one caption and a five-line file five.

Nothing is left out without a word: what is not read is named and counted on stderr and in the
dataset's meta: a ``.txt`` without an image (``unpaired_captions``); any other file, e.g. a ``.HEIC``
without a Pillow plugin for it, a video, a note (``ignored_files``, ``ignored_examples``); hidden files
and folders, names starting with ``.`` (``hidden_entries``; each count with ``<key>_examples``); and subfolders holding a ue-bench
``manifest.json`` or ``run.json`` — a protected copy or a run written inside the folder, which would
otherwise be read as more photos (``ue_bench_output``). A file name that is not valid UTF-8 is refused.

Reading is strict, as for ``csv``: an image without its ``.txt``, an empty ``.txt``, a ``.txt`` that is
not UTF-8, and a folder without images are a UsageError naming the file. ``on_missing_caption=skip``
drops images without a ``.txt`` instead, printing how many (and which) on stderr and recording them in
the meta (``skipped_images``, ``skipped_examples``).

The test split is a second folder (``test_path``) or ``test_fraction`` of the images held out with
``split_seed`` (ignored when ``test_path`` is set). ``originals()`` names each image after its path
relative to the folder, without extension (see ``_imports.unique_names``).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ue_bench import Dataset, ImportStage, PairDataset, UsageError, param
from ue_bench.engine.images import readable_extensions

from . import _example
from ._imports import (HeldOutParams, Record, caption_lines, input_path, load_cached, read_utf8, report_skipped,
                       shown, split_train_test, unique_names)


@dataclass(frozen=True)
class Params(HeldOutParams):
    path: str = param("", help="folder of images, each with a NAME.txt caption file beside it (searched recursively)")
    test_path: str | None = param(None, help="folder with the clean test pairs; default: hold out test_fraction")
    on_missing_caption: str = param("error", choices=("error", "skip"),
                                    help="error: refuse an image without its .txt caption file; skip: drop such "
                                         "images, counted on stderr and in the dataset's meta")


@dataclass(frozen=True)
class Listing:
    """What :func:`_files` found under a folder: the files read (relative paths, sorted), the hidden
    entries left out and the subfolders left out as ue-bench's own output."""

    files: list[PurePosixPath]
    hidden: list[str] = field(default_factory=list)
    copies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Scan:
    """What :func:`read_folder` found: the images with their captions, the images skipped for lack of
    a caption file ("path: why" each), the number of caption files without an image, and what was not
    read: other files, hidden entries and ue-bench output folders (relative paths)."""

    records: list[Record]
    skipped: list[str]
    unpaired_captions: int
    ignored: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    copies: list[str] = field(default_factory=list)


def ue_bench_output(folder: Path) -> str | None:
    """The file that marks ``folder`` as written by ue-bench (``manifest.json`` of a protected copy,
    ``run.json`` of a run directory), or None."""
    for name, key in (("manifest.json", "ue_bench_version"), ("run.json", "cells")):
        try:
            if key in json.loads((folder / name).read_text(encoding="utf-8")):
                return name
        except (OSError, ValueError, TypeError):
            continue
    return None


def _files(folder: Path) -> Listing:
    """Every non-hidden file under ``folder``, as a relative path, in sorted order; hidden entries and
    subfolders holding ue-bench output (:func:`ue_bench_output`) are pruned and listed."""
    def refuse(exc: OSError):
        raise UsageError(f"dataset 'folder': cannot read {shown(exc.filename)}: {exc.strerror or exc}")

    out = Listing([])
    for top, dirs, files in os.walk(folder, onerror=refuse):
        rel = PurePosixPath(Path(top).relative_to(folder).as_posix())
        out.hidden.extend(str(rel / d) + "/" for d in dirs if d.startswith("."))
        out.hidden.extend(str(rel / f) for f in files if f.startswith("."))
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for d in list(dirs):
            marker = ue_bench_output(Path(top) / d)
            if marker:
                out.copies.append(f"{rel / d}/ (its {marker})")
                dirs.remove(d)
        out.files.extend(rel / f for f in files if not f.startswith("."))
    out.files.sort()
    return out


def read_captions(txt: Path) -> tuple[str, ...]:
    """The non-empty lines of ``txt``, stripped; UsageError naming the file when it is not UTF-8 or has none."""
    text = read_utf8(txt, "folder", "caption files")
    captions = tuple(s for s in (line.strip() for line in caption_lines(text)) if s)
    if not captions:
        raise UsageError(f"{txt}: empty caption file; expected one caption per line")
    return captions


def read_folder(folder: Path, on_missing_caption: str = "error") -> Scan:
    """The images under ``folder`` in sorted relative-path order, each with the captions of its sidecar
    ``.txt`` (see the module docstring); UsageError naming the file of anything malformed, or the folder
    when it holds no image."""
    listing = _files(folder)
    files, exts = listing.files, readable_extensions()
    present = set(files)
    images = [f for f in files if f.suffix.lower() in exts]
    records, skipped, used = [], [], set()
    for rel in images:
        txt = rel.with_suffix(".txt")
        if txt not in present:
            if on_missing_caption == "skip":
                skipped.append(f"{rel}: no {txt.name}")
                continue
            raise UsageError(f"{folder / rel}: no caption file {txt.name} beside it; expected its captions in "
                             f"{folder / txt}, one per line (or pass on_missing_caption=skip to drop such images)")
        used.add(txt)
        records.append(Record(str(folder / rel), folder / rel, read_captions(folder / txt), name=str(rel)))
    if not records:
        why = (f"all {len(skipped)} lack a caption file (on_missing_caption=skip)" if skipped
               else "expected image files Pillow reads (.jpg, .png, .webp, ...) with NAME.txt caption files beside them")
        raise UsageError(f"dataset 'folder': {shown(folder)} has no images in it or its subfolders: {why}")
    unpaired = sum(f.suffix == ".txt" and f not in used for f in files)
    ignored = [shown(f) for f in files if f.suffix.lower() not in exts and f.suffix != ".txt"]
    return Scan(unique_names(records), skipped, unpaired, ignored, [shown(h) for h in listing.hidden],
                [shown(c) for c in listing.copies])


def report_left_out(folder: Path, scan: Scan) -> dict:
    """Print one line naming and counting what :func:`read_folder` did not read (files that are neither
    images nor captions, hidden entries, ue-bench output folders) and return it for the dataset's meta."""
    kinds = [(scan.ignored, "file(s) that are neither images Pillow decodes nor .txt captions", "ignored_files"),
             (scan.hidden, "hidden entry(ies) (names starting with '.')", "hidden_entries"),
             (scan.copies, "folder(s) of ue-bench output, not read as photos", "ue_bench_output")]
    meta, parts = {}, []
    for items, what, key in kinds:
        if items:
            meta[key] = len(items)
            meta[f"{key}_examples"] = items[:10]
            parts.append(f"{len(items)} {what}: " + ", ".join(items[:3]) + (" …" if len(items) > 3 else ""))
    if parts:
        print(f"ue-bench: warning: {shown(folder)}: left out " + "; ".join(parts), file=sys.stderr)
    return meta


class Folder(Dataset):
    """A folder of images, each with a NAME.txt of captions (one per line) beside it, searched recursively."""

    Params = Params
    version = "1"

    def export_layout(self) -> dict:
        """``ue-bench protect`` mirrors the folder (``NAME.png`` + ``NAME.txt``) in a full-resolution copy,
        beside open_clip's csv index; an import-resolution copy is open_clip's csv layout."""
        return {"format": "folder"}

    @staticmethod
    def _folder(value: str | None, name: str) -> Path:
        return input_path("folder", name, value, True, "folder:path=photos/")

    def _splits(self) -> tuple[list[Record], list[Record], list[tuple[Path, Scan]]]:
        """The train and test records and each folder read with its scan (``path``, then ``test_path``
        if given): what :meth:`load` and :meth:`originals` share."""
        p = self.params
        folder = self._folder(p.path, "path")
        scan = read_folder(folder, p.on_missing_caption)
        if p.test_path is None:
            train, test = split_train_test(scan.records, p.test_fraction, p.split_seed, str(folder), "folder")
            return train, test, [(folder, scan)]
        test_folder = self._folder(p.test_path, "test_path")
        test_scan = read_folder(test_folder, p.on_missing_caption)
        return scan.records, test_scan.records, [(folder, scan), (test_folder, test_scan)]

    def load(self, imports: ImportStage | None = None) -> PairDataset:
        p = self.params
        train, test, scans = self._splits()
        infos = [{"source": str(folder.resolve()), "unpaired_captions": scan.unpaired_captions,
                  **report_left_out(folder, scan), **report_skipped(folder, scan.skipped, "image(s) without a caption file",
                                   "on_missing_caption=skip", "skipped_images")} for folder, scan in scans]
        meta = {"format": "folder", **infos[0]}
        if len(infos) > 1:
            meta["test_folder"] = infos[1]
        return load_cached("folder", "folder", p.resolution, [], train, test, meta,
                           p.allow_test_overlap, exact=p.publish == "original", imports=imports)

    def originals(self) -> tuple[list[Record], list[Record]]:
        """The folder's image files in :meth:`load`'s order, named after their paths in the folder."""
        train, test, _ = self._splits()
        return train, test

    @classmethod
    def example(cls, folder: Path) -> dict:
        """A 24-image example written into ``folder`` (see ``_example``)."""
        return {"path": str(_example.write_folder(folder)), "resolution": 32}
