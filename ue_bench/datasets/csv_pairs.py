"""Image–caption pairs from a CSV/TSV file in open_clip's ``--dataset-type csv`` convention.

One row per (image, caption): an image-path column (open_clip's default name ``filepath``) and a
caption column (``title``). Rows naming the same image are grouped into one image with several
captions, as Flickr/COCO's five captions would be written in this format. Relative image paths are
resolved against the CSV's own folder, so a dataset folder can be moved as a whole (open_clip's
trainer resolves them against its working directory instead: run it from that folder).

The separator is detected from the header: the first of tab, comma, semicolon and pipe that splits it
into fields containing both column names. Matching on the names, rather than guessing from the data
(``csv.Sniffer``), cannot be fooled by commas inside captions.

Reading is strict, because a silently misread row trains on (or publishes) the wrong pairs: the file
must be valid in ``encoding`` (UTF-8 by default; a BOM is accepted); a field that starts with a quote
is a quoted field that must close before the next separator (a quote anywhere else is plain text, and
``quotes=none`` makes every quote plain text, for TSVs of raw captions). A quoted field may hold line
breaks (RFC 4180, as Excel and ``pandas.to_csv`` write a caption of several lines), unless one of its
lines reads as a row of its own — the header's number of fields with an image file in the image
column —, which is what a stray quote swallowing the rows after it looks like; every row needs the
header's number of fields and a non-empty image path and caption. Anything else is a
UsageError naming the file and line. ``on_bad_rows=skip`` drops rows with the wrong number of fields
or an empty path or caption instead, printing how many (and which) on stderr and recording them in
the dataset's meta (``skipped_rows``, ``skipped_examples``); quoting and encoding errors are never
skipped, since they shift every row after them.

The benchmark needs a clean test split. Give it as a second file (``test_path``, same columns), or
let the plugin hold out ``test_fraction`` of the *images* (never splitting one image's captions
across train and test) drawn with ``split_seed``; ``test_fraction`` is ignored when ``test_path`` is
set. For ``ue-bench protect``, which protects the train split, ``test_fraction=0`` keeps every row. A
test split sharing images with the train split is refused (see ``_imports.check_overlap``) unless
``allow_test_overlap=true``.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from ue_bench import Dataset, ImportStage, PairDataset, UsageError, param
from ue_bench.engine.images import readable_extensions

from . import _example
from ._imports import (HeldOutParams, Record, caption_lines, input_path, load_cached, relative_name,
                       report_skipped, split_train_test, unique_names)

SEPARATORS = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


@dataclass(frozen=True)
class Params(HeldOutParams):
    path: str = param("", help="CSV/TSV file with one row per (image, caption); image paths relative to it")
    test_path: str | None = param(None, help="CSV with the clean test pairs (same columns); default: hold out test_fraction")
    img_key: str = param("filepath", help="name of the image-path column (open_clip's --csv-img-key)")
    caption_key: str = param("title", help="name of the caption column (open_clip's --csv-caption-key)")
    sep: str = param("auto", choices=("auto", *SEPARATORS),
                     help="column separator; auto: the one that splits the header into both column names")
    quotes: str = param("csv", choices=("csv", "none"),
                        help="csv: a field that starts with a quote is quoted (RFC 4180: it may hold line breaks) "
                             "and must close before the separator; "
                             "none: quotes are plain text (TSVs whose captions contain quotes)")
    encoding: str = param("utf-8", help="text encoding of the file; bytes that are not valid in it are refused")
    on_bad_rows: str = param("error", choices=("error", "skip"),
                             help="error: refuse a row with the wrong number of fields or an empty path or "
                                  "caption; skip: drop such rows, counted on stderr and in the dataset's meta")


def _decode_text(path: Path, encoding: str) -> str:
    """The file's text; UsageError naming the line and column of the first byte not valid in ``encoding``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"csv: cannot read {path}: {exc.strerror or exc}") from None
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UsageError(f"csv: encoding={encoding!r} is not a known text encoding") from None
    try:
        return raw.decode("utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise UsageError(f"{path} line {line}: byte 0x{raw[exc.start]:02x} at column {column} is not valid "
                         f"{encoding}; save the file as UTF-8, or pass encoding= with the file's encoding "
                         f"(e.g. encoding=cp1252)") from None


def _swallowed_row(row: list[str], n_fields: int, img_column: int, delim: str, folder: Path) -> bool:
    """Whether a line inside a quoted field of ``row`` (one that spans lines) reads as a row of its own:
    ``n_fields`` fields split at ``delim`` whose image column names a file in ``folder`` or a file with
    an image extension. A caption written over several lines has no such line; a stray quote that runs
    on over the following rows does."""
    exts = readable_extensions()
    for value in row:
        for embedded in caption_lines(value)[1:]:
            fields = next(csv.reader([embedded], delimiter=delim, quoting=csv.QUOTE_NONE), [])
            if len(fields) == n_fields:
                img = fields[img_column].strip()
                if img and (Path(img).suffix.lower() in exts or (folder / img).is_file()):
                    return True
    return False


def read_pairs(path: Path, img_key: str, caption_key: str, sep: str = "auto", quotes: str = "csv",
               encoding: str = "utf-8", on_bad_rows: str = "error") -> tuple[list[Record], str, list[str]]:
    """The images of ``path`` in order of first appearance, each with all its captions, the separator
    used, and the skipped rows (``on_bad_rows=skip``) as "line N: why"; UsageError names the file and
    line of anything malformed. A record's ``name`` is its first row's image path relative to the CSV's
    folder, without extension, or the file's base name when the path is absolute or climbs out of that
    folder with ``..`` (see ``_imports.relative_name`` and ``unique_names``).

    Quoting is strict (``quotes=csv``): a quote opens a quoted field only at the start of a field and
    must close it before the separator; a quoted field may span lines (RFC 4180) unless one of those
    lines reads as a row (:func:`_swallowed_row`), the mark of a quote that swallows the rows after it.
    """
    text = _decode_text(path, encoding)
    quoting = {"quoting": csv.QUOTE_NONE} if quotes == "none" else {}
    header = caption_lines(text)[0] if text.strip() else ""
    if sep == "auto":
        found = [d for d in SEPARATORS.values()
                 if {img_key, caption_key} <= set(next(csv.reader([header], delimiter=d, **quoting), []))]
        if not found:
            raise UsageError(
                f"{path} line 1: expected a header with columns {img_key!r} and {caption_key!r} separated by tab, "
                f"comma, semicolon or pipe, got {header[:120]!r}; set img_key=/caption_key= to your column names")
        delim = found[0]
    else:
        delim = SEPARATORS[sep]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True, **quoting)
    try:
        columns = next(reader, [])
    except csv.Error as exc:
        raise UsageError(f"{path} line 1: unreadable header ({exc})") from None
    missing = [k for k in (img_key, caption_key) if k not in columns]
    if missing:
        raise UsageError(f"{path} line 1: no column {missing[0]!r} in header {columns}; set img_key=/caption_key=")
    ci, cc = columns.index(img_key), columns.index(caption_key)
    grouped: dict[Path, tuple[str, str, list[str]]] = {}
    skipped: list[str] = []
    hint = "; pass quotes=none if the file's quotes are plain text"
    while True:
        line = reader.line_num + 1  # the physical line this row starts on
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            why = ("a quoted field opens on this line and is never closed" if "end of data" in str(exc)
                   else f"unreadable row ({exc}): a field that starts with a quote must end with one")
            raise UsageError(f"{path} line {line}: {why}{hint}") from None
        if not row:
            continue
        if reader.line_num > line and _swallowed_row(row, len(columns), ci, delim, path.parent):
            raise UsageError(f"{path} line {line}: a quoted field opens here and runs over "
                             f"{reader.line_num - line + 1} lines (to line {reader.line_num}), swallowing the "
                             f"rows between: close the quote, write a quote inside a quoted field as \"\"{hint}")
        problem = None
        if len(row) != len(columns):
            problem = f"expected {len(columns)} fields {columns}, got {len(row)}: {row!r}"
        elif not row[ci].strip() or not row[cc].strip():
            problem = f"expected a non-empty {img_key!r} and {caption_key!r}, got {row!r}"
        if problem is not None:
            if on_bad_rows == "skip":
                skipped.append(f"line {line}: {problem}")
                continue
            raise UsageError(f"{path} line {line}: {problem} (or pass on_bad_rows=skip to drop such rows)")
        img, cap = row[ci].strip(), row[cc].strip()
        file = (path.parent / img).resolve()
        grouped.setdefault(file, (f"{path} line {line} ({img})", relative_name(img), []))[2].append(cap)
    if not grouped:
        raise UsageError(f"{path}: no rows after the header" + (f" ({len(skipped)} skipped)" if skipped else ""))
    records = unique_names([Record(where, file, tuple(caps), name=name)
                            for file, (where, name, caps) in grouped.items()])
    return records, delim, skipped


class CsvPairs(Dataset):
    """Image-caption rows from a CSV/TSV file (open_clip's csv format); rows sharing an image are grouped."""

    Params = Params
    version = "1"

    def export_layout(self) -> dict:
        """How ``ue-bench protect`` writes this dataset back: the same columns and separator."""
        p = self.params
        _, delim, _ = read_pairs(self._path(p.path, "path"), p.img_key, p.caption_key, p.sep, p.quotes,
                                 p.encoding, p.on_bad_rows)
        return {"format": "csv", "img_key": p.img_key, "caption_key": p.caption_key, "sep": delim}

    @staticmethod
    def _path(value: str | None, name: str) -> Path:
        return input_path("csv", name, value, False, "csv:data/pairs.csv")

    def _splits(self) -> tuple[list[Record], list[Record], list[Path], list[list[str]]]:
        """The train and test records, the CSV files they come from (``path``, then ``test_path`` if
        given) and each file's skipped rows: what :meth:`load` and :meth:`originals` share."""
        p = self.params
        path = self._path(p.path, "path")
        opts = (p.img_key, p.caption_key, p.sep, p.quotes, p.encoding, p.on_bad_rows)
        records, _, skipped = read_pairs(path, *opts)
        if p.test_path is None:
            train, test = split_train_test(records, p.test_fraction, p.split_seed, str(path), "csv")
            return train, test, [path], [skipped]
        test_file = self._path(p.test_path, "test_path")
        test, _, test_skipped = read_pairs(test_file, *opts)
        return records, test, [path, test_file], [skipped, test_skipped]

    def load(self, imports: ImportStage | None = None) -> PairDataset:
        p = self.params
        train, test, index, skipped = self._splits()
        meta = {"source": str(index[0].resolve()), "format": "csv", **report_skipped(index[0], skipped[0])}
        if len(index) > 1 and skipped[1]:
            meta["test_file"] = report_skipped(index[1], skipped[1])
        return load_cached("csv", "csv", p.resolution, index, train, test, meta,
                           p.allow_test_overlap, exact=p.publish == "original", imports=imports)

    def originals(self) -> tuple[list[Record], list[Record]]:
        """The CSV's image files in :meth:`load`'s order, named after their paths in the CSV."""
        train, test, _, _ = self._splits()
        return train, test

    @classmethod
    def example(cls, folder: Path) -> dict:
        """A 24-image example written into ``folder`` (see ``_example``)."""
        return {"path": str(_example.write_csv(folder)), "resolution": 32}
