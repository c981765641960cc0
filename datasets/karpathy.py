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
from dataclasses import dataclass
from pathlib import Path

from ue_bench.data import PairDataset
from ue_bench.errors import UsageError
from ue_bench.params import param
from ue_bench.dataset import Dataset

from ._imports import Record, load_cached


@dataclass(frozen=True)
class Params:
    path: str = param("", help="dataset_flickr8k.json, dataset_flickr30k.json or dataset_coco.json")
    image_root: str | None = param(None, help="folder holding the images (COCO: the folder of train2014/ and val2014/); "
                                              "default: the JSON's folder")
    train_splits: str = param("train", choices=("train", "train+restval"), help="Karpathy splits trained on")
    test_split: str = param("test", choices=("test", "val"), help="Karpathy split evaluated on")
    captions: int = param(5, lo=1, hi=7, help="captions kept per image (the first k)")
    resolution: int = param(224, lo=16, hi=1024, help="image side in pixels after resize + center crop")


class Karpathy(Dataset):
    """Flickr8K/30K or MSCOCO from Karpathy's dataset_*.json split file and an image folder."""

    Params = Params
    version = "1"

    def load(self) -> PairDataset:
        p = self.params
        if not p.path:
            raise UsageError("dataset 'karpathy': parameter 'path' is required, e.g. --dataset karpathy:dataset_flickr8k.json")
        path = Path(p.path).expanduser()
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            entries = doc["images"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"dataset 'karpathy': {p.path} is not a readable Karpathy split file "
                             f"(expected JSON with an 'images' list): {exc}") from None
        root = Path(p.image_root).expanduser() if p.image_root else path.parent
        wanted = {"train": set(p.train_splits.split("+")), "test": {p.test_split}}
        splits: dict[str, list[Record]] = {"train": [], "test": []}
        for i, entry in enumerate(entries):
            where = f"{path} images[{i}]"
            try:
                split = entry["split"]
                file = root / entry.get("filepath", "") / entry["filename"]
                captions = tuple(s["raw"].strip() for s in entry["sentences"])[:p.captions]
            except (KeyError, TypeError, AttributeError):
                raise UsageError(f"{where}: expected 'filename', 'split' and 'sentences' with 'raw' texts, "
                                 f"got {str(entry)[:160]}") from None
            if not captions or not all(captions):
                raise UsageError(f"{where}: expected non-empty sentences, got {captions!r}")
            for name, accepted in wanted.items():
                if split in accepted:
                    splits[name].append(Record(f"{where} ({entry['filename']})", file, captions))
        for name, records in splits.items():
            if not records:
                raise UsageError(f"dataset 'karpathy': {p.path} has no images in split(s) "
                                 f"{'+'.join(sorted(wanted[name]))} for the {name} split")
        meta = {"source": str(path.resolve()), "format": "karpathy", "dataset": doc.get("dataset")}
        return load_cached(f"karpathy-{doc.get('dataset', path.stem)}", "karpathy", p.resolution, [path],
                           splits["train"], splits["test"], meta)
