"""The one place where ue-bench turns an image file into pixels: 8-bit RGB, as an image viewer shows it.

Every dataset plugin (and anything else that reads an image file) goes through :func:`decode_image`, so
that an image is never trained on — or published by ``ue-bench protect`` — sideways, washed out or
with its transparency turned black:

* **Orientation.** The EXIF ``Orientation`` tag (phones store photos in sensor order and set it) is
  applied with :func:`PIL.ImageOps.exif_transpose`, as viewers do.
* **Bit depth.** 16-bit samples (PNG/TIFF greyscale ``I;16``/``I;16B``/``I;16L``) are mapped to 8 bits
  as ``value // 257`` (0…65535 → 0…255, what a viewer shows). 16-bit RGB(A) PNGs arrive from PIL as
  8-bit ``RGB``/``RGBA`` holding the high byte of each sample (``value >> 8``, within 1 of ``// 257``).
  Mode ``I`` (32-bit integers, how older Pillow and some TIFFs deliver 16-bit greyscale) is read as
  16-bit data: clipped to 0…65535, then ``// 257``. Mode ``F`` (32-bit float, e.g. float TIFFs) is read
  as intensities in 0.0…1.0: clipped, times 255, rounded.
* **Transparency** (``RGBA``, ``LA``, ``PA``, ``P`` with a transparent colour or alpha palette,
  premultiplied ``RGBa``/``La``) is composited on **white** (:data:`BACKGROUND`), which is what most
  viewers and every web page show behind a transparent image.
* **Everything else** PIL can return (``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``,
  ``RGBX``) goes through PIL's own conversion to ``RGB``. Embedded ICC profiles are not applied
  (pixels are taken as sRGB). An animated file (GIF, APNG, WebP) gives its first frame.
* **Refusals** are :class:`~ue_bench.errors.UsageError` naming the image (and where it was listed):
  bytes PIL cannot decode, a truncated file, and an image of more than :data:`MAX_PIXELS` pixels
  (a decompression bomb: a few KB of PNG can declare gigapixels), checked from the header before
  any pixel is decoded; with ``min_side``, an image whose shorter side is below it
  (:class:`TooSmall`, see :data:`MIN_SIDE`).

Which files are images is Pillow's own answer (:func:`readable_extensions`): every extension a
registered Pillow plugin decodes (``.jfif``, ``.jpe``, ``.avif``, ``.qoi``, ... as well as ``.jpg`` and
``.png``; ``.heic`` once a plugin such as ``pillow-heif`` registers it), not a list kept here.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

#: Colour that transparent pixels are composited on (white, as viewers and web pages show them).
BACKGROUND = (255, 255, 255)

#: Largest image accepted, in pixels: PIL's own default warning threshold (about 89 MP, e.g. 9460 x
#: 9460), far above any photo of a CLIP dataset. Larger images are refused before decoding.
MAX_PIXELS = 89_478_485

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")

#: The shortest side an imported image may have, in pixels. Below it a file is a strip or a dot, not a
#: photo (a 1x300 divider, a 1x1 tracking pixel): the trainer's centre crop of a 1x300 image holds a
#: single pixel, enlarged to the resolution, and a 1x1 image would be published without noise, since
#: its own pixels cannot carry a protection. Such images are refused at import (``smallest_side``).
MIN_SIDE = 8

#: Formats Pillow identifies but cannot decode without more: stub plugins (BUFR, GRIB, HDF5, WMF need a
#: handler registered by another package) are excluded by their class; MPEG is a video Pillow only sizes.
_IDENTIFY_ONLY = ("MPEG",)


def smallest_side(resolution: int) -> int:
    """The shortest side an image may have to be imported at ``resolution``: :data:`MIN_SIDE`, or the
    resolution itself when that is smaller."""
    return min(MIN_SIDE, resolution)


def readable_extensions() -> frozenset[str]:
    """Lower-case extensions (``.jpg``, ``.jfif``, ``.avif``, ...) of the formats this Pillow decodes:
    its registered extensions whose format has an opener (MPO opens through the JPEG plugin), less stub
    plugins and identify-only formats. Save-only formats (PDF, Palm) are not in it."""
    Image.init()

    def decodes(fmt: str) -> bool:
        if fmt == "MPO":
            return "JPEG" in Image.OPEN
        opener = Image.OPEN.get(fmt, (None,))[0]  # a plugin class, or a factory function (JPEG)
        stub = isinstance(opener, type) and issubclass(opener, ImageFile.StubImageFile)
        return opener is not None and not stub and fmt not in _IDENTIFY_ONLY

    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if decodes(fmt))


class TooSmall(Exception):
    """An image whose shorter side is below the import's :func:`smallest_side` (raised by :func:`decode_image`)."""


def _to_rgb(img: Image.Image) -> Image.Image:
    """``img`` (any PIL mode) as 8-bit RGB, by the rules of the module docstring."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(img)
        a = np.clip(a.astype(np.int64), 0, 65535) // 257
        return Image.fromarray(a.astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        a = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0)
        a = np.rint(np.clip(a, 0.0, 1.0) * 255.0)
        return Image.fromarray(a.astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    elif mode == "P" and img.palette is not None and img.palette.mode == "RGBA":
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("L", "1") and "transparency" in img.info:  # a transparent grey level (PNG tRNS)
        img, mode = img.convert("RGBA"), "RGBA"
    if mode == "RGB" and "transparency" in img.info:  # a transparent colour (PNG tRNS)
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _describe(name: str, source) -> str:
    return name or (str(source) if isinstance(source, (str, os.PathLike)) else "image")


def decode_image(source: bytes | str | os.PathLike | BinaryIO, *, name: str = "",
                 draft: tuple[int, int] | None = None, min_side: int = 1) -> Image.Image:
    """The image in ``source`` (bytes, a path or a binary file) as an 8-bit ``RGB`` PIL image, oriented
    and converted as a viewer shows it (see the module docstring).

    ``name`` says where the image comes from in error messages (file and row or sample; default: the
    path). ``draft`` = (w, h) lets a JPEG decoder scale by a power of two to no less than that size, a
    fast path for thumbnails (the pixels differ slightly from a full decode then); it is ignored by
    other formats. Raises :class:`~ue_bench.errors.UsageError` for anything that cannot be decoded, and
    :class:`TooSmall` (from the header, before decoding) for an image with a side under ``min_side``.
    """
    from ue_bench.errors import UsageError

    where = _describe(name, source)
    fh = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we check the size ourselves
            img = Image.open(fh)
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise UsageError(f"{where}: the image is {w}x{h} = {w * h} pixels, more than the limit of "
                                 f"{MAX_PIXELS} (ue_bench.engine.images.MAX_PIXELS): a decompression bomb or a scan "
                                 f"far larger than a training image; downscale it first")
            if w == 0 or h == 0:
                raise UsageError(f"{where}: the image is empty ({w}x{h} pixels)")
            if min(w, h) < min_side:
                raise TooSmall(f"{where} ({w}x{h} px)")
            if draft is not None and img.format == "JPEG":
                img.draft("RGB", draft)
            img.load()
            img = ImageOps.exif_transpose(img)  # a copy rotated/flipped by the EXIF Orientation tag
            return _to_rgb(img)
    except (UsageError, TooSmall):
        raise
    except Image.DecompressionBombError as exc:
        raise UsageError(f"{where}: refused as a decompression bomb ({exc})") from None
    except FileNotFoundError:
        raise UsageError(f"{where}: image file does not exist") from None
    except UnidentifiedImageError:  # PIL's message names only its in-memory buffer
        raise UsageError(f"{where}: cannot decode the image (not a format PIL recognises); expected a "
                         "complete JPEG, PNG, WebP or other PIL-readable file") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise UsageError(f"{where}: cannot decode the image ({type(exc).__name__}: {exc}); expected a "
                         f"complete JPEG, PNG, WebP or other PIL-readable file") from None


#: Colour models whose conversion to RGB changes colours (PIL's conversion, no ICC profile applied).
_OTHER_MODELS = ("CMYK", "YCbCr", "LAB", "HSV")


def icc_colour_space(icc: bytes) -> str:
    """The data colour space an ICC profile describes (its header's signature at bytes 16-19:
    ``RGB``, ``CMYK``, ``GRAY``, ``Lab``, ...), or ``?`` for bytes too short to be a profile."""
    return icc[16:20].decode("ascii", "replace").strip() if len(icc) >= 20 else "?"


def conversions(img: Image.Image) -> list[str]:
    """What :func:`decode_image` changes of the opened (header-read) ``img`` besides its orientation, one
    phrase per kind, for a count of what a published copy holds differently from its input: frames
    after the first dropped, samples deeper than 8 bits reduced, transparency composited on white,
    colours of another model converted, an ICC profile dropped that describes other than RGB data (a
    CMYK or grey profile on the RGB copy would misguide colour-managed viewers). Empty for an 8-bit RGB,
    grey or palette still image without such a profile."""
    notes = []
    if getattr(img, "n_frames", 1) > 1:
        notes.append("first frame of several kept")
    mode = img.mode
    deep_rgb = any(";16" in str(getattr(t, "args", "")) for t in getattr(img, "tile", []) or [])  # 16-bit RGB PNG
    if mode.startswith("I") or deep_rgb:
        notes.append("16-bit samples to 8")
    elif mode == "F":
        notes.append("float samples to 8 bits")
    transparent = "transparency" in img.info or (mode == "P" and img.palette is not None and img.palette.mode == "RGBA")
    if mode in _ALPHA_MODES or transparent:
        notes.append("transparency composited on white")
    if mode in _OTHER_MODELS:
        notes.append(f"{mode} colours to RGB")
    icc = img.info.get("icc_profile")
    if icc and icc_colour_space(icc) != "RGB":
        notes.append(f"ICC profile for {icc_colour_space(icc)} data dropped")
    return notes


def decode_rgb_array(source, *, name: str = "") -> np.ndarray:
    """:func:`decode_image` as a ``uint8 [H, W, 3]`` array."""
    return np.asarray(decode_image(source, name=name), dtype=np.uint8)


def read_image(path: str | Path, *, name: str = "") -> Image.Image:
    """:func:`decode_image` of a file by path."""
    return decode_image(Path(path), name=name or str(path))


def shorter_side_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """``(h, w)`` after resizing the shorter side to ``resolution`` and the longer in proportion
    (rounded, at least ``resolution``)."""
    scale = resolution / min(height, width)
    return max(resolution, round(height * scale)), max(resolution, round(width * scale))


def fit(img: Image.Image, resolution: int) -> np.ndarray:
    """``uint8 [resolution, resolution, 3]`` of an RGB image: bicubic resize of the shorter side to
    ``resolution`` (the longer in proportion), then the central square: the geometry of CLIP's and
    open_clip's evaluation transform, and what every dataset import and a trainer's view of a
    full-size published file go through."""
    nh, nw = shorter_side_size(img.height, img.width, resolution)
    img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - resolution) // 2, (nh - resolution) // 2
    return np.asarray(img.crop((left, top, left + resolution, top + resolution)), dtype=np.uint8)
