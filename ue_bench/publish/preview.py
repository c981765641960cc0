"""A before/after contact sheet of a protected copy, so a data owner can see that the change is
imperceptible before publishing (``ue-bench protect --preview N``).

One row per image, named above it, five panels: the original and the protected file scaled to fit a
:data:`THUMB`-pixel box (Lanczos; a small image is enlarged by a whole factor, nearest-neighbour), the
noise ``protected - original`` amplified to the full grey range
(``128 + noise * 127 / eps``, nearest-neighbour scaled so the amplification is not averaged away), and
a 1:1 crop of :data:`CROP` pixels from the centre of the original and of the protected file, where
single-pixel changes would show. Images are taken evenly spaced over the split. Names are drawn in
DejaVu Sans (matplotlib's copy), which has the accented Latin, Greek and Cyrillic letters that PIL's
default font draws as boxes (not CJK).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ue_bench.store.atomic import write_file
from ue_bench.engine.images import decode_image, read_image

THUMB = 256
CROP = 128
LABELS = ("original", "protected", "noise x 127/eps", "original 1:1", "protected 1:1")
_HEADER = 18
_NAME = 14
_FONT_PX = 11


def label_font() -> ImageFont.FreeTypeFont:
    """DejaVu Sans at :data:`_FONT_PX` pixels, from matplotlib's fonts (a dependency already; imported
    here, so that ``protect`` without ``--preview`` does not load matplotlib's font manager)."""
    from matplotlib import font_manager

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans", fallback_to_default=False), _FONT_PX)


def _fit(img: Image.Image, resample) -> Image.Image:
    """``img`` scaled down to fit the :data:`THUMB` box with ``resample``, or, if under half the box, enlarged
    by the largest whole factor that fits, nearest-neighbour (each pixel a square, nothing invented)."""
    scale = THUMB / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), resample)
    elif scale >= 2:
        img = img.resize((img.width * int(scale), img.height * int(scale)), Image.Resampling.NEAREST)
    return img


def _crop(img: Image.Image) -> Image.Image:
    left, top = max(0, (img.width - CROP) // 2), max(0, (img.height - CROP) // 2)
    return img.crop((left, top, min(img.width, left + CROP), min(img.height, top + CROP)))


def row(original: np.ndarray, protected: np.ndarray, eps: int) -> list[Image.Image]:
    """The five panels of one image (uint8 ``[H, W, 3]`` original and protected, ``eps`` out of 255)."""
    noise = protected.astype(np.int16) - original
    amplified = np.clip(128 + noise * (127 / max(eps, 1)), 0, 255).astype(np.uint8)
    a, b = Image.fromarray(original), Image.fromarray(protected)
    return [_fit(a, Image.Resampling.LANCZOS), _fit(b, Image.Resampling.LANCZOS),
            _fit(Image.fromarray(amplified), Image.Resampling.NEAREST), _crop(a), _crop(b)]


def contact_sheet(rows: list[list[Image.Image]], names: list[str] | None = None) -> Image.Image:
    """The panels of ``rows`` on a white grid with a header naming the columns and, with ``names``,
    each row's image name above it."""
    cell, high = THUMB + 8, THUMB + 8 + (_NAME if names else 0)
    sheet = Image.new("RGB", (cell * len(LABELS), _HEADER + high * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = label_font()
    for c, label in enumerate(LABELS):
        draw.text((c * cell + 4, 3), label, fill=(0, 0, 0), font=font)
    for r, panels in enumerate(rows):
        top = _HEADER + r * high
        if names:
            draw.text((4, top + 2), names[r], fill=(90, 90, 90), font=font)
            top += _NAME
        for c, panel in enumerate(panels):
            sheet.paste(panel, (c * cell + 4, top + 4))
    return sheet


def write_preview(path: Path, pairs: list[tuple[object, Path]], n: int, eps: int) -> None:
    """Write the contact sheet of ``n`` of ``pairs`` (an original's record with ``read()``/``where``, the
    path of its protected file), evenly spaced, as a PNG at ``path``."""
    picks = np.unique(np.linspace(0, len(pairs) - 1, num=min(n, len(pairs))).round().astype(int))
    rows, names = [], []
    for i in picks:
        record, file = pairs[i]
        original = np.asarray(decode_image(record.read(), name=record.where), dtype=np.uint8)
        rows.append(row(original, np.asarray(read_image(file), dtype=np.uint8), eps))
        names.append(getattr(record, "name", "") or file.name)
    sheet = contact_sheet(rows, names)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    write_file(path, buf.getvalue())
