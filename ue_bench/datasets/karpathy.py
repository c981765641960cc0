"""Flickr8K, Flickr30K and MSCOCO through Karpathy's split files (``dataset_*.json``).

These files are the standard split of the retrieval literature the MEM paper reports on: one
entry per image with ``filename``, (COCO only) ``filepath`` such as ``val2014``, ``split`` in
``train``/``val``/``test``/``restval`` and five ``sentences`` with a ``raw`` text each. Images are
looked up at ``image_root/[filepath/]filename``; ``image_root`` defaults to the JSON's own folder.

COCO's ``restval`` images (carved out of val2014) are usually trained on; ``train_splits=train+restval``
does that. Retrieval is evaluated on ``test`` (1k images for Flickr, 5k for COCO) unless
``test_split=val``. Captions are the ``raw`` sentences, stripped; ``captions`` keeps the first k
(all five by default), since some COCO images have six or seven and retrieval metrics expect a
fixed count per image.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from pathlib import Path

from ue_bench import Dataset, ImportStage, PairDataset, PublishParams, UsageError, param

from . import _example
from ._imports import Record, load_cached, read_utf8, relative_name, unique_names


@dataclass(frozen=True)
class _Fields:
    path: str = param("", help="dataset_flickr8k.json, dataset_flickr30k.json or dataset_coco.json")
    image_root: str | None = param(None, help="folder holding the images (COCO: the folder of train2014/ and val2014/); "
                                              "default: the JSON's folder")
    train_splits: str = param("train", choices=("train", "train+restval"), help="Karpathy splits trained on")
    test_split: str = param("test", choices=("test", "val"), help="Karpathy split evaluated on")
    captions: int = param(5, lo=1, hi=7, help="captions kept per image (the first k)")
    allow_test_overlap: bool = param(False, help="accept a test split sharing images (same file or same decoded "
                                                 "pixels) with the train split; refused by default")
    resolution: int = param(224, lo=16, hi=1024, help="image side in pixels after resize + center crop")


@dataclass(frozen=True)
class Params(PublishParams, _Fields):
    """Karpathy's own fields, then ``publish`` and the lift settings."""


class Karpathy(Dataset):
    """Flickr8K/30K or MSCOCO from Karpathy's dataset_*.json split file and an image folder."""

    Params = Params
    version = "1"

    @classmethod
    def example(cls, folder: Path) -> dict:
        """A 24-image example written into ``folder`` (see ``_example``)."""
        return {"path": str(_example.write_karpathy(folder)), "image_root": str(folder / "images"),
                "resolution": 32, "captions": 3}

    def _splits(self) -> tuple[list[Record], list[Record], Path, dict]:
        """The train and test records, the split file and its parsed JSON: what :meth:`load` and
        :meth:`originals` share. A record's ``name`` is ``filepath/filename`` (``unique_names``)."""
        p = self.params
        if not p.path:
            raise UsageError("dataset 'karpathy': parameter 'path' is required, e.g. --dataset karpathy:dataset_flickr8k.json")
        path = Path(p.path).expanduser()
        doc = read_json(path)
        entries = doc.get("images") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise UsageError(f"{path}: not a Karpathy split file: expected a JSON object with an 'images' list, "
                             f"got {type(doc).__name__}" + (f" with keys {sorted(doc)[:8]}" if isinstance(doc, dict) else ""))
        root = Path(p.image_root).expanduser() if p.image_root else path.parent
        wanted = {"train": set(p.train_splits.split("+")), "test": {p.test_split}}
        splits: dict[str, list[Record]] = {"train": [], "test": []}
        for i, entry in enumerate(entries):
            where = f"{path} images[{i}]"
            try:
                missing = [k for k in ("filename", "split", "sentences") if k not in entry]
                if missing:
                    raise KeyError(missing[0])
                split = entry["split"]
                file = root / entry.get("filepath", "") / entry["filename"]
                name = relative_name(posixpath.join(entry.get("filepath", ""), entry["filename"]))
                captions = tuple(s["raw"].strip() for s in entry["sentences"])[:p.captions]
            except (KeyError, TypeError, AttributeError) as exc:
                what = f"no key {exc}" if isinstance(exc, KeyError) else "a value of the wrong type"
                raise UsageError(f"{where}: {what}; expected 'filename', 'split' and 'sentences' with 'raw' texts, "
                                 f"got {str(entry)[:160]}") from None
            if not captions or not all(captions):
                raise UsageError(f"{where}: expected non-empty sentences, got {captions!r}")
            for split_name, accepted in wanted.items():
                if split in accepted:
                    splits[split_name].append(Record(f"{where} ({entry['filename']})", file, captions, name=name))
        for split_name, records in splits.items():
            if not records:
                raise UsageError(f"dataset 'karpathy': {p.path} has no images in split(s) "
                                 f"{'+'.join(sorted(wanted[split_name]))} for the {split_name} split")
        return unique_names(splits["train"]), unique_names(splits["test"]), path, doc

    def load(self, imports: ImportStage | None = None) -> PairDataset:
        p = self.params
        train, test, path, doc = self._splits()
        meta = {"source": str(path.resolve()), "format": "karpathy", "dataset": doc.get("dataset")}
        return load_cached(f"karpathy-{doc.get('dataset', path.stem)}", "karpathy", p.resolution, [path],
                           train, test, meta, p.allow_test_overlap, exact=p.publish == "original", imports=imports)

    def originals(self) -> tuple[list[Record], list[Record]]:
        """The split file's image files in :meth:`load`'s order, named ``filepath/filename``."""
        train, test, _, _ = self._splits()
        return train, test


def read_json(path: Path):
    """The parsed JSON of ``path``; UsageError naming the file, line and column of a syntax error."""
    text = read_utf8(path, "karpathy", "JSON files")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})") from None
