"""Image–caption pairs from a CSV/TSV file in open_clip's ``--dataset-type csv`` convention.

One row per (image, caption): an image-path column (open_clip's default name ``filepath``) and a
caption column (``title``). Rows naming the same image are grouped into one image with several
captions, as Flickr/COCO's five captions would be written in this format. Relative image paths are
resolved against the CSV's own folder, so a dataset folder can be moved as a whole (open_clip's
trainer resolves them against its working directory instead: run it from that folder).

The separator is detected from the header: the first of tab, comma, semicolon and pipe that splits it
into fields containing both column names. Matching on the names, rather than guessing from the data
(``csv.Sniffer``), cannot be fooled by commas inside captions.

The benchmark needs a clean test split. Give it as a second file (``test_path``, same columns), or
let the plugin hold out ``test_fraction`` of the *images* (never splitting one image's captions
across train and test) drawn with ``split_seed``; ``test_fraction`` is ignored when ``test_path`` is
set. For ``ue-bench protect``, which protects the train split, ``test_fraction=0`` keeps every row.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from ue_bench.data import PairDataset
from ue_bench.errors import UsageError
from ue_bench.params import param
from ue_bench.dataset import Dataset

from ._imports import Record, load_cached, split_train_test

SEPARATORS = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


@dataclass(frozen=True)
class Params:
    path: str = param("", help="CSV/TSV file with one row per (image, caption); image paths relative to it")
    img_key: str = param("filepath", help="name of the image-path column (open_clip's --csv-img-key)")
    caption_key: str = param("title", help="name of the caption column (open_clip's --csv-caption-key)")
    sep: str = param("auto", choices=("auto", *SEPARATORS),
                     help="column separator; auto: the one that splits the header into both column names")
    test_path: str | None = param(None, help="CSV with the clean test pairs (same columns); default: hold out test_fraction")
    test_fraction: float = param(0.1, lo=0.0, hi=0.9,
                                 help="fraction of images held out as test split when test_path is not given")
    split_seed: int = param(0, lo=0, help="seed of the held-out draw")
    resolution: int = param(224, lo=16, hi=1024, help="image side in pixels after resize + center crop")


def read_pairs(path: Path, img_key: str, caption_key: str, sep: str = "auto") -> tuple[list[Record], str]:
    """The images of ``path`` in order of first appearance, each with all its captions, and the
    separator used; UsageError names the file and line of anything malformed."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"csv: cannot read {path}: {exc}") from None
    header = text.splitlines()[0] if text.strip() else ""
    if sep == "auto":
        found = [d for d in SEPARATORS.values() if {img_key, caption_key} <= set(next(csv.reader([header], delimiter=d)))]
        if not found:
            raise UsageError(
                f"{path} line 1: expected a header with columns {img_key!r} and {caption_key!r} separated by tab, "
                f"comma, semicolon or pipe, got {header[:120]!r}; set img_key=/caption_key= to your column names")
        delim = found[0]
    else:
        delim = SEPARATORS[sep]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    columns = next(reader, [])
    missing = [k for k in (img_key, caption_key) if k not in columns]
    if missing:
        raise UsageError(f"{path} line 1: no column {missing[0]!r} in header {columns}; set img_key=/caption_key=")
    ci, cc = columns.index(img_key), columns.index(caption_key)
    grouped: dict[Path, tuple[str, list[str]]] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != len(columns):
                raise UsageError(f"{path} line {line}: expected {len(columns)} fields {columns}, got {len(row)}: {row!r}")
            img, cap = row[ci].strip(), row[cc].strip()
            if not img or not cap:
                raise UsageError(f"{path} line {line}: expected a non-empty {img_key!r} and {caption_key!r}, got {row!r}")
            file = (path.parent / img).resolve()
            grouped.setdefault(file, (f"{path} line {line} ({img})", []))[1].append(cap)
    except csv.Error as exc:
        raise UsageError(f"{path} line {reader.line_num}: unreadable row ({exc})") from None
    if not grouped:
        raise UsageError(f"{path}: no rows after the header")
    records = [Record(where, file, tuple(caps)) for file, (where, caps) in grouped.items()]
    return records, delim


class CsvPairs(Dataset):
    """Image-caption rows from a CSV/TSV file (open_clip's csv format); rows sharing an image are grouped."""

    Params = Params
    version = "1"

    def export_layout(self) -> dict:
        """How ``ue-bench protect`` writes this dataset back: the same columns and separator."""
        p = self.params
        _, delim = read_pairs(self._path(p.path, "path"), p.img_key, p.caption_key, p.sep)
        return {"format": "csv", "img_key": p.img_key, "caption_key": p.caption_key, "sep": delim}

    @staticmethod
    def _path(value: str | None, name: str) -> Path:
        if not value:
            raise UsageError(f"dataset 'csv': parameter {name!r} is required, e.g. --dataset csv:data/pairs.csv")
        path = Path(value).expanduser()
        if not path.is_file():
            raise UsageError(f"dataset 'csv': {name} {value!r} is not a file")
        return path

    def load(self) -> PairDataset:
        p = self.params
        path = self._path(p.path, "path")
        records, _ = read_pairs(path, p.img_key, p.caption_key, p.sep)
        index = [path]
        if p.test_path is not None:
            test_file = self._path(p.test_path, "test_path")
            test, _ = read_pairs(test_file, p.img_key, p.caption_key, p.sep)
            train = records
            index.append(test_file)
        else:
            train, test = split_train_test(records, p.test_fraction, p.split_seed, str(path), "csv")
        meta = {"source": str(path.resolve()), "format": "csv"}
        return load_cached("csv", "csv", p.resolution, index, train, test, meta)
