"""Data-transform defenses: squeeze the published images before training.

Each one maps the uint8 train images to new uint8 images (the input arrays are never written to) and
keeps the captions. They are deterministic, so the seed is unused and the harness caches the result
as one artifact per (protection, defense). The idea is that of feature squeezing (Xu et al. 2018) and
of ISS (Liu et al. 2023, "Image Shortcut Squeezing"): a bounded, high-frequency or colour-coded noise
does not survive a lossy re-encoding that keeps what a caption describes.
"""

from __future__ import annotations

import abc
import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from ue_bench import Defense, PairSplit, param, release


def image_buffer(shape: tuple[int, ...]) -> np.memmap:
    """A writable uint8 array of ``shape`` in a memory-mapped temporary file (deleted when the array is
    dropped): where a defense writes its output, so that it does not hold a large split in memory."""
    with tempfile.TemporaryFile(prefix="ue-bench-defended-") as fh:
        return np.memmap(fh, dtype=np.uint8, mode="w+", shape=shape)


def map_images(split: PairSplit, fn: Callable[[Image.Image], Image.Image]) -> PairSplit:
    """A new split whose image i is ``fn`` of image i through Pillow, as an RGB uint8 array.

    The output (:func:`image_buffer`) is filled image by image, and the pages read and written are
    released as it goes, so a defense over a large split does not hold it in memory."""
    out = image_buffer(split.images.shape)
    for i, img in enumerate(split.images):
        out[i] = np.asarray(fn(Image.fromarray(img)).convert("RGB"))
        if i % 1024 == 1023:
            release(out)
            release(split.images)
    return PairSplit(out, [list(c) for c in split.captions], meta=dict(split.meta))


class ImageSqueeze(Defense, abc.ABC):
    """Base of the squeezes applied image by image through Pillow: subclasses implement :meth:`squeeze`."""

    transforms_data = True

    @abc.abstractmethod
    def squeeze(self, img: Image.Image) -> Image.Image:
        """The squeezed image (any mode; converted to RGB afterwards)."""

    def transform(self, split: PairSplit, seed: int) -> PairSplit:
        return map_images(split, self.squeeze)


def jpeg_round_trip(img: Image.Image, quality: int) -> Image.Image:
    """Encode with Pillow's libjpeg encoder at ``quality`` (its default 4:2:0 chroma subsampling) and decode."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


@dataclass(frozen=True)
class JPEGParams:
    quality: int = param(10, lo=1, hi=95, help="JPEG quality (ISS's strongest setting: 10)")


class JPEG(ImageSqueeze):
    """JPEG: re-encode every training image through a real JPEG encoder at the given quality."""

    Params = JPEGParams

    def squeeze(self, img: Image.Image) -> Image.Image:
        return jpeg_round_trip(img, self.params.quality)


class Grayscale(ImageSqueeze):
    """Grayscale: train on luminance only (ITU-R 601, as Pillow's convert('L')), replicated to RGB."""

    def squeeze(self, img: Image.Image) -> Image.Image:
        return img.convert("L")


@dataclass(frozen=True)
class BitDepthParams:
    bits: int = param(4, lo=1, hi=7, help="bits kept per channel: 2**bits evenly spaced levels")


class BitDepth(ImageSqueeze):
    """Bit-depth reduction: quantise every channel to 2**bits levels (feature squeezing)."""

    Params = BitDepthParams

    def squeeze(self, img: Image.Image) -> Image.Image:
        top = (1 << self.params.bits) - 1
        levels = np.round(np.round(np.arange(256) / 255 * top) / top * 255).astype(np.uint8)
        return img.point(levels.tolist() * 3)  # one lookup table per RGB band


@dataclass(frozen=True)
class BlurParams:
    radius: float = param(1.0, lo=0.1, hi=16.0, help="Gaussian blur radius (standard deviation) in pixels")


class Blur(ImageSqueeze):
    """Blur: Gaussian-blur every training image (Pillow's GaussianBlur), a low-pass squeeze."""

    Params = BlurParams

    def squeeze(self, img: Image.Image) -> Image.Image:
        return img.filter(ImageFilter.GaussianBlur(self.params.radius))
