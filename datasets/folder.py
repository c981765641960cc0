"""Image–caption pairs from a folder of images with sidecar caption files, the layout of most
fine-tuning sets: ``NAME.txt`` beside ``NAME.jpg``.

The folder is searched recursively and read in sorted relative-path order (folder by folder:
``a/x.jpg`` before ``a-b/x.jpg``); hidden files and folders (names starting with ``.``) are skipped and
symlinked folders are not followed. Images are the files ending in ``jpg``, ``jpeg``, ``png``, ``webp``,
``bmp``, ``gif``, ``tif`` or ``tiff`` (any case). Each image's captions are in the ``.txt`` file of the
same stem in the same folder (``cat.jpg`` → ``cat.txt``; ``cat.jpg`` and ``cat.png`` would share it):
UTF-8 text (a BOM is accepted), one caption per non-empty line, stripped, so a one-line file is one
caption and a five-line file five. A ``.txt`` without an image is ignored and counted in the dataset's
meta (``unpaired_captions``); other files are ignored.

Reading is strict, as for ``csv``: an image without its ``.txt``, an empty ``.txt``, a ``.txt`` that is
not UTF-8, and a folder without images are a UsageError naming the file. ``on_missing_caption=skip``
drops images without a ``.txt`` instead, printing how many (and which) on stderr and recording them in
the meta (``skipped_images``, ``skipped_examples``).

The test split is a second folder (``test_path``) or ``test_fraction`` of the images held out with
``split_seed`` (ignored when ``test_path`` is set). ``originals()`` names each image after its path
relative to the folder, without extension (see ``_imports.unique_names``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ue_bench.data import PairDataset
from ue_bench.dataset import Dataset
from ue_bench.errors import UsageError
from ue_bench.params import param

from . import _example
from ._imports import (HeldOutParams, Record, input_path, load_cached, read_utf8, report_skipped,
                       split_train_test, unique_names)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")


@dataclass(frozen=True)
class Params(HeldOutParams):
    path: str = param("", help="folder of images, each with a NAME.txt caption file beside it (searched recursively)")
    test_path: str | None = param(None, help="folder with the clean test pairs; default: hold out test_fraction")
    on_missing_caption: str = param("error", choices=("error", "skip"),
                                    help="error: refuse an image without its .txt caption file; skip: drop such "
                                         "images, counted on stderr and in the dataset's meta")


@dataclass(frozen=True)
class Scan:
    """What :func:`read_folder` found: the images with their captions, the images skipped for lack of
    a caption file ("path: why" each) and the number of caption files without an image."""

    records: list[Record]
    skipped: list[str]
    unpaired_captions: int


def _files(folder: Path) -> list[PurePosixPath]:
    """Every non-hidden file under ``folder``, as a relative path, in sorted order (hidden folders pruned)."""
    def refuse(exc: OSError):
        raise UsageError(f"dataset 'folder': cannot read {exc.filename}: {exc.strerror or exc}")

    out = []
    for top, dirs, files in os.walk(folder, onerror=refuse):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = PurePosixPath(Path(top).relative_to(folder).as_posix())
        out += [rel / f for f in files if not f.startswith(".")]
    return sorted(out)


def read_captions(txt: Path) -> tuple[str, ...]:
    """The non-empty lines of ``txt``, stripped; UsageError naming the file when it is not UTF-8 or has none."""
    text = read_utf8(txt, "folder", "caption files")
    captions = tuple(s for s in (line.strip() for line in text.splitlines()) if s)
    if not captions:
        raise UsageError(f"{txt}: empty caption file; expected one caption per line")
    return captions


def read_folder(folder: Path, on_missing_caption: str = "error") -> Scan:
    """The images under ``folder`` in sorted relative-path order, each with the captions of its sidecar
    ``.txt`` (see the module docstring); UsageError naming the file of anything malformed, or the folder
    when it holds no image."""
    files = _files(folder)
    present = set(files)
    images = [f for f in files if f.suffix[1:].lower() in IMAGE_EXTS]
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
               else f"expected image files ({', '.join(IMAGE_EXTS)}) with NAME.txt caption files beside them")
        raise UsageError(f"dataset 'folder': {folder} has no images in it or its subfolders: {why}")
    unpaired = sum(f.suffix == ".txt" and f not in used for f in files)
    return Scan(unique_names(records), skipped, unpaired)


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

    def load(self) -> PairDataset:
        p = self.params
        train, test, scans = self._splits()
        infos = [{"source": str(folder.resolve()), "unpaired_captions": scan.unpaired_captions,
                  **report_skipped(folder, scan.skipped, "image(s) without a caption file",
                                   "on_missing_caption=skip", "skipped_images")} for folder, scan in scans]
        meta = {"format": "folder", **infos[0]}
        if len(infos) > 1:
            meta["test_folder"] = infos[1]
        return load_cached("folder", "folder", p.resolution, [], train, test, meta,
                           p.allow_test_overlap, exact=p.publish == "original")

    def originals(self) -> tuple[list[Record], list[Record]]:
        """The folder's image files in :meth:`load`'s order, named after their paths in the folder."""
        train, test, _ = self._splits()
        return train, test

    @classmethod
    def example(cls, folder: Path) -> dict:
        """A 24-image example written into ``folder`` (see ``_example``)."""
        return {"path": str(_example.write_folder(folder)), "resolution": 32}
