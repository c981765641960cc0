"""Writing a full-resolution protected copy: every image at its original size, resumable, checked.

``ue-bench protect`` (the default for datasets with original files, see :meth:`Dataset.originals`)
protects the import at the surrogate's resolution as usual, then writes each original image with the
noise carried onto its own pixels by :func:`ue_bench.engine.lift.lift`. The copy mirrors the input:

* ``train/<name>.png``: each train image at its original width and height, ``<name>`` being the
  input's own relative file name (extension replaced by ``.png``, lossless: the noise is in the low
  bits). Pixels are the decoded original as a viewer shows it (:mod:`ue_bench.engine.images`: EXIF
  orientation applied to the pixels, transparency on white) plus the noise. Kept from the original:
  its ICC colour profile when it describes RGB data (a CMYK or grey profile does not fit the RGB
  copy and is dropped, counted in the summary's ``converted``) and DPI; EXIF is dropped whole (it
  carries GPS positions, serial numbers and owners' names), its orientation being already applied.
* ``train.csv`` (open_clip's ``--dataset-type csv``: one row per caption, the protected caption with
  the attack's trigger), in the input's columns and separator for a CSV input; for a folder input
  also ``train/<name>.txt`` sidecars, one protected caption per line, as the input had them.
* ``val/`` and ``val.csv``: the clean test split at full size, one caption per image (open_clip's
  validation convention); ``model/open_clip_config.json`` as the import-resolution copy has it.
* ``manifest.json``: what was done, per-split counts and the summary: bytes written, max L∞ measured
  on every *decoded written file* against the original (the harness's check, refused above eps),
  PSNR and SSIM range at full size, and how far the trainer's view of each file is from the view
  the attack optimised (``view_error``, pixel units).
* ``files.jsonl``: one line per written image: its name, size, sha256 and, for train images, L∞,
  PSNR, SSIM and view error.
* ``preview.png`` with ``--preview N`` (:mod:`ue_bench.publish.preview`).

**Resumable.** Work goes into ``.<out>.partial`` beside ``--out``; each image file is written
atomically and then recorded, with its figures, as one line of ``progress.jsonl``. A killed
``protect`` rerun with the same arguments skips what is recorded and writes the rest; the output is
byte-identical to an uninterrupted run because each image's noise depends only on that image, its
low-resolution noise and the seed. A partial folder of other arguments (``job.json`` differs) is
discarded with a message. The folder is renamed to ``--out`` when complete, so ``--out`` never holds
half a copy. Memory holds one image at a time (and the memory-mapped low-resolution delta).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ue_bench.store.atomic import write_file, write_json, writing
from ue_bench.store.artifacts import file_sha256
from ue_bench.data import release
from ue_bench.errors import ProtectionRejected, UsageError
from ue_bench.publish.export import csv_args, trainer_misreads, write_model_config
from ue_bench.engine.images import conversions, decode_image, decode_rgb_array, icc_colour_space
from ue_bench.engine.imperceptibility import psnr, ssim_banded
from ue_bench.engine.lift import LiftSettings, view_error
from ue_bench.publish.manifest import write_manifest
from ue_bench.publish.preview import write_preview
from ue_bench.protection import Protection, published_pixels, with_trigger_text

PROGRESS = "progress.jsonl"

#: The largest image a full-resolution copy takes, in pixels: writing one image's copy (decode, lift,
#: PNG, checks) peaks near 950 MB + 32 bytes per pixel (benchmarks/camera.py: 1.25 GB at 12 MP, 1.69 GB
#: at 24 MP), so up to 32 MP it stays under 2 GB. Larger images are refused before any work.
MAX_FULL_PIXELS = 32_000_000


def _header_size(record) -> tuple[int, int]:
    """``(width, height)`` of a record's image from its first bytes (the whole file when its header
    runs longer); ``(0, 0)`` for a file Pillow cannot open, which the import then refuses by name."""
    with open(record.path, "rb") as fh:
        fh.seek(record.offset)
        head = fh.read(1 << 18 if record.size < 0 else min(record.size, 1 << 18))
    for read in (lambda: head, record.read):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(read())) as img:
                    return img.size
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
            continue
    return 0, 0


def check_sizes(records) -> None:
    """UsageError with the count and the first three of ``records`` (originals) larger than
    :data:`MAX_FULL_PIXELS`, read from their headers (no pixel is decoded)."""
    big = []
    for r in records:
        w, h = _header_size(r)
        if w * h > MAX_FULL_PIXELS:
            big.append(f"{r.where} ({w}x{h} = {w * h / 1e6:.1f} MP)")
    if big:
        listed = "; ".join(big[:3]) + (" …" if len(big) > 3 else "")
        raise UsageError(f"{len(big)} of {len(records)} images are larger than {MAX_FULL_PIXELS / 1e6:g} MP, the most a "
                         f"full-resolution copy lifts in 2 GB of memory: {listed}; downscale them first, or pass "
                         f"--import-resolution")


def partial_folder(out: Path) -> Path:
    """Where a full-resolution copy of ``out`` is built, and found again after a kill."""
    return out.parent / f".{out.name}.partial"


def _encode_png(pixels: np.ndarray, info: dict) -> bytes:
    """PNG bytes of uint8 ``[H, W, 3]`` keeping the original's ICC profile, when it describes RGB data
    (a CMYK or grey one does not fit the RGB copy: dropped, and counted by ``conversions``), and its DPI
    (nothing else)."""
    keep = {k: info[k] for k in ("icc_profile", "dpi") if info.get(k)}
    if "icc_profile" in keep and icc_colour_space(keep["icc_profile"]) != "RGB":
        del keep["icc_profile"]
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", **keep)
    return buf.getvalue()


def _original(record) -> tuple[np.ndarray, dict, list[str]]:
    """The record's pixels as a viewer shows them, its PNG-relevant info (ICC profile, DPI) and what
    decoding changed (:func:`ue_bench.engine.images.conversions`)."""
    raw = record.read()
    opened = Image.open(io.BytesIO(raw))
    info, converted = dict(opened.info), conversions(opened)
    return np.asarray(decode_image(raw, name=record.where), dtype=np.uint8), info, converted


class Progress:
    """``progress.jsonl`` of a partial folder: one JSON line per finished file, appended and fsynced.

    Only the finished files' keys are held in memory; their rows stay on disk and are read back in
    order by :meth:`rows`, so memory does not grow with the number of images."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / PROGRESS
        self.done: set[tuple[str, int]] = set()
        if self.path.exists():
            with open(self.path, "rb") as src, writing(self.path) as dst:  # rewritten without a cut line
                for line in src:
                    try:
                        row = json.loads(line)
                    except ValueError:
                        continue  # the last line of a killed writer may be cut short
                    self.done.add((row["split"], row["i"]))
                    dst.write(line.rstrip(b"\n") + b"\n")

    def add(self, row: dict) -> None:
        with open(self.path, "ab") as fh:
            fh.write(json.dumps(row, sort_keys=True).encode() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.done.add((row["split"], row["i"]))

    def rows(self) -> Iterator[dict]:
        """Every finished file's row: train images in order, then validation images in order (the order
        they are written in, a resumed copy continuing where the killed one stopped)."""
        with open(self.path, "rb") as fh:
            yield from map(json.loads, fh)


def _start(out: Path, job: dict) -> Path:
    """The partial folder for ``job``: resumed when its ``job.json`` matches, else made afresh."""
    folder = partial_folder(out)
    if folder.exists():
        try:
            same = json.loads((folder / "job.json").read_text()) == json.loads(json.dumps(job, sort_keys=True))
        except (OSError, ValueError):
            same = False
        if same:
            print(f"ue-bench: resuming the partial copy in {folder}", file=sys.stderr)
            return folder
        print(f"ue-bench: discarding {folder}, a partial copy made with other arguments", file=sys.stderr)
        shutil.rmtree(folder)
    folder.mkdir()
    write_json(folder / "job.json", job)
    return folder


def _bar(total: int, desc: str, done: int):
    return tqdm(total=total, initial=done, desc=desc, unit="img", file=sys.stderr, mininterval=1.0,
                disable=not sys.stderr.isatty())


def _protect_one(i: int, record, protection: Protection, eps: int, settings: LiftSettings) -> tuple[bytes, dict]:
    """The published PNG of train image ``i`` and its figures; ProtectionRejected if the decoded file
    is over budget (which :func:`lift`'s projection rules out, so it would be a bug)."""
    pixels, info, converted = _original(record)
    delta = None if protection.delta is None else np.array(protection.delta[i])
    release(protection.delta)  # one image at a time: a memory-mapped delta stays on disk
    published = published_pixels(pixels, delta, eps, settings, i)
    data = _encode_png(published, info)
    back = decode_rgb_array(data, name=f"{record.where} (as written)")
    linf = int(np.abs(back.astype(np.int16) - pixels).max())
    if linf > eps:
        raise ProtectionRejected(f"{record.where}: the written file is {linf}/255 from the original, over eps {eps}")
    row = {"w": pixels.shape[1], "h": pixels.shape[0], "linf": linf, "bytes": len(data),
           "sha256": hashlib.sha256(data).hexdigest(), "psnr": psnr(pixels, back)}
    unchanged = row["psnr"] is None or min(pixels.shape[:2]) < 2
    row["ssim"] = 1.0 if unchanged else ssim_banded(pixels, back)
    if delta is not None:
        row["view_error_mean"], row["view_error_max"] = view_error(back, pixels, delta)
    if converted:
        row["converted"] = converted
    return data, row


def _write_images(folder: Path, split: str, records, progress: Progress, make: Callable, sidecar: Callable | None):
    todo = [i for i in range(len(records)) if (split, i) not in progress.done]
    with _bar(len(records), f"protect {split}" if split == "train" else f"copy {split}", len(records) - len(todo)) as bar:
        for i in todo:
            r = records[i]
            data, row = make(i, r)
            write_file(folder / split / f"{r.name}.png", data)
            if sidecar is not None:
                write_file(folder / split / f"{r.name}.txt", "\n".join(sidecar(i, r)) + "\n")
            progress.add({"split": split, "i": i, "name": r.name, **row})
            bar.update(1)


def _copy_one(i: int, record) -> tuple[bytes, dict]:
    pixels, info, converted = _original(record)
    data = _encode_png(pixels, info)
    return data, {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                  **({"converted": converted} if converted else {})}


def _write_index(folder: Path, split: str, records, captions: Callable, layout) -> str:
    path = folder / f"{split}.csv"
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=layout.sep)
    writer.writerow([layout.img_key, layout.caption_key])
    for i, r in enumerate(records):
        writer.writerows([f"{split}/{r.name}.png", c] for c in captions(i, r))
    write_file(path, buf.getvalue())
    return file_sha256(path)


class Summary:
    """Counts and ranges over the train images' figures (``progress.jsonl`` rows), added one at a time."""

    def __init__(self) -> None:
        self.n = self.bytes = self.linf_max = self.n_unchanged = 0
        self.psnr: list[float] = []  # [min, max]
        self.ssim: list[float] = []
        self.w: list[int] = []
        self.h: list[int] = []
        self.view_sum, self.view_max, self.view_n = 0.0, 0.0, 0
        self.converted: Counter[str] = Counter()
        self.converted_examples: list[str] = []

    @staticmethod
    def _range(bounds: list, value) -> None:
        bounds[:] = [value, value] if not bounds else [min(bounds[0], value), max(bounds[1], value)]

    def add(self, r: dict) -> None:
        self.n += 1
        self.bytes += r["bytes"]
        self.linf_max = max(self.linf_max, r["linf"])
        if r["psnr"] is None:
            self.n_unchanged += 1
        else:
            self._range(self.psnr, r["psnr"])
        for bounds, key in ((self.ssim, "ssim"), (self.w, "w"), (self.h, "h")):
            self._range(bounds, r[key])
        self.converted.update(r.get("converted", []))
        if r.get("converted") and len(self.converted_examples) < 10:
            self.converted_examples.append(f"{r['name']}: {', '.join(r['converted'])}")
        if "view_error_mean" in r:
            self.view_sum += r["view_error_mean"]
            self.view_max = max(self.view_max, r["view_error_max"])
            self.view_n += 1

    def figures(self) -> dict:
        out = {"n_images": self.n, "bytes": self.bytes, "linf_max": self.linf_max,
               "psnr_min": self.psnr[0] if self.psnr else None, "psnr_max": self.psnr[1] if self.psnr else None,
               "ssim_min": self.ssim[0] if self.ssim else None, "ssim_max": self.ssim[1] if self.ssim else None,
               "n_unchanged": self.n_unchanged, "width_range": self.w or None, "height_range": self.h or None}
        if self.converted:
            out["converted"] = dict(sorted(self.converted.items()))
            out["converted_examples"] = self.converted_examples
        if self.view_n:
            out["view_error_mean"] = self.view_sum / self.view_n
            out["view_error_max"] = self.view_max
        return out


def export_full_resolution(out: Path, train, test, protection: Protection, eps: int, layout, sidecars: bool,
                           settings: LiftSettings, job: dict, manifest: dict, model_cfg: dict | None = None,
                           preview: int = 0, complete: Callable[[dict], dict] | None = None) -> dict:
    """Write the full-resolution copy of the ``train`` originals (records with ``where``, ``name``,
    ``captions``, ``read()``; see :meth:`ue_bench.dataset.Dataset.originals`) protected by
    ``protection`` (its delta ``[N, R, R, 3]`` on the import at the surrogate's resolution, in the
    same order), with the clean ``test`` originals as validation data; ``layout``: the CSV columns
    and separator (:class:`ue_bench.publish.export.Layout`); ``sidecars``: also write ``<name>.txt`` caption
    files (a folder input); ``job``: what identifies this copy for resuming. Returns the manifest
    (written last, as ``manifest.json``, by :func:`~ue_bench.publish.manifest.write_manifest` after
    ``complete``). Raises ProtectionRejected if a written file is over ``eps``.
    """
    folder = _start(out, job)
    progress = Progress(folder)
    triggers = protection.triggers

    def protected_captions(i, r):
        return with_trigger_text(triggers[i], list(r.captions)) if triggers is not None else list(r.captions)

    def first_caption(i, r):
        return [r.captions[0]]

    _write_images(folder, "train", train, progress,
                  lambda i, r: _protect_one(i, r, protection, eps, settings),
                  protected_captions if sidecars else None)
    files = {"train.csv": _write_index(folder, "train", train, protected_captions, layout)}
    misreads = trainer_misreads(folder / "train.csv", layout)
    if test:
        _write_images(folder, "val", test, progress, _copy_one, first_caption if sidecars else None)
        files["val.csv"] = _write_index(folder, "val", test, first_caption, layout)
    if model_cfg is not None:
        files.update(write_model_config(folder, model_cfg))
    stats, published = Summary(), hashlib.sha256()
    with writing(folder / "files.jsonl") as fh:
        for r in progress.rows():  # one pass, one row at a time: files.jsonl, the summary, the copy's hash
            fh.write(json.dumps(r, sort_keys=True).encode() + b"\n")
            if r["split"] == "train":
                stats.add(r)
                published.update(f"{r['name']}\t{r['sha256']}\n".encode())
    if preview:
        write_preview(folder / "preview.png", [(r, folder / "train" / f"{r.name}.png") for r in train], preview, eps)
    args = csv_args(layout, "train") + (csv_args(layout, "val") if test else [])
    manifest = {**manifest, "format": "folder" if sidecars else "csv", "full_resolution": True,
                "image_format": "png", "lift": asdict(settings), "n_images": len(train),
                "n_captions": sum(len(r.captions) for r in train), "n_val_images": len(test),
                "published_sha256": published.hexdigest(), "summary": stats.figures(), "files": files,
                "open_clip_args": args, **misreads}
    files["files.jsonl"] = file_sha256(folder / "files.jsonl")
    manifest = write_manifest(folder, manifest, complete)
    (folder / "job.json").unlink()
    (folder / PROGRESS).unlink()
    if out.is_dir():
        out.rmdir()
    os.rename(folder, out)
    return manifest
