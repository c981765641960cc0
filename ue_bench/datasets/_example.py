"""Small example inputs in each real-data format, written from the synthetic set, for the datasets'
``example`` classmethods (the conformance checks load them; they double as format documentation)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from PIL import Image

from .synthetic import Synthetic

#: Images in an example: enough for a held-out test split of 10 % to be non-empty.
N_IMAGES = 24


def write_images(folder: Path) -> list[tuple[str, list[str]]]:
    """``images/<i>.png`` under ``folder`` (rendered synthetic scenes, 32 px) and their captions."""
    split = Synthetic(Synthetic.Params(size=N_IMAGES, test_size=8)).load().train
    (folder / "images").mkdir(parents=True, exist_ok=True)
    out = []
    for i, (image, caps) in enumerate(zip(split.images, split.captions)):
        name = f"images/{i:03d}.png"
        Image.fromarray(image).save(folder / name)
        out.append((name, list(caps)))
    return out


def write_csv(folder: Path) -> Path:
    """``pairs.tsv`` in open_clip's layout (``filepath``/``title``, tab), one row per caption."""
    rows = ["filepath\ttitle"] + [f"{name}\t{c}" for name, caps in write_images(folder) for c in caps]
    (folder / "pairs.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder / "pairs.tsv"


def write_folder(folder: Path) -> Path:
    """``images/`` with a ``<i>.txt`` beside each ``<i>.png``, one caption per line (the folder layout)."""
    for name, caps in write_images(folder):
        (folder / name).with_suffix(".txt").write_text("\n".join(caps) + "\n", encoding="utf-8")
    return folder / "images"


def write_karpathy(folder: Path) -> Path:
    """``dataset_example.json`` in Karpathy's layout, every fourth image in the test split."""
    images = [{"filename": Path(name).name, "split": "test" if i % 4 == 0 else "train",
               "sentences": [{"raw": c} for c in caps]} for i, (name, caps) in enumerate(write_images(folder))]
    (folder / "dataset_example.json").write_text(json.dumps({"images": images}), encoding="utf-8")
    return folder / "dataset_example.json"


def write_tar(path: Path, samples) -> Path:
    """A tar shard of ``samples``: ``(key, {extension: bytes})`` in order, one member per file."""
    with tarfile.open(path, "w") as tar:
        for key, files in samples:
            for ext, data in files.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def write_shard(folder: Path) -> Path:
    """``shard-000000.tar``: one ``<key>.png`` + ``<key>.txt`` sample per caption."""
    pairs = write_images(folder / "src")
    return write_tar(folder / "shard-000000.tar", (
        (f"{i:03d}_{j:02d}", {"png": (folder / "src" / name).read_bytes(), "txt": caption.encode("utf-8")})
        for i, (name, caps) in enumerate(pairs) for j, caption in enumerate(caps)))
