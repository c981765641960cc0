"""The embedded default dataset: procedurally rendered shapes with several paraphrased captions.

Each image shows one shape on a plain background and is described by five attributes: shape (8),
colour (8), position on a 3×3 grid (9), size (2) and background colour (4), i.e. 4608 combinations.

Why this design:

* **Compositional generalisation.** The full combination space is shuffled with the dataset seed;
  the first ``test_size`` combinations form the test split and training only ever sees the others.
  A victim therefore has to learn the *attributes* (what "red", "star", "top left" look like) to
  retrieve an unseen combination; it cannot memorise pairs. That content link between words and
  pixels is exactly what an unlearnable example tries to break, so the test measures it directly.
* **Unique test combinations.** Every caption names all five attributes and every test image is a
  distinct combination, so each test caption has exactly one correct image and retrieval is well
  defined (no ties between look-alike images).
* **Several paraphrases.** Like Flickr30k/COCO's five captions, each image gets ``captions`` distinct
  phrasings (word order, synonyms such as big/large or upper left/top left, punctuation), so a text
  encoder cannot key on one fixed template and a text-side trigger has to survive varied wording.
* **Legible at 32 px.** Shapes are drawn at 4× the resolution and box-downsampled (exact area
  averaging, i.e. antialiasing without ringing); positions and sizes keep every shape inside the
  frame. Per-image jitter (offset, ±10 % size, small rotation, shade, mild pixel noise) makes every
  image unique even when a combination repeats.
* **Deterministic.** Everything comes from ``numpy.random.Generator(PCG64(...))`` streams keyed by
  the dataset seed alone (no global RNG, no string hashing), so the same ``Params`` give the same
  bytes in any process. Streams are separate per split and purpose: the test split does not change
  with ``size``, and images do not change with ``captions``; jitter does not depend on
  ``resolution``, so the same scenes can be rendered at several resolutions.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ue_bench import Dataset, ImportStage, PairDataset, PairSplit, UsageError, param

ATTRIBUTES = ("shape", "colour", "position", "size", "background")

SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross", "hexagon", "ring")
# Picked for contrast: every colour is at least ~40 CIELAB ΔE from every background and ~40 from
# every other colour, and no background word is also a shape or a foreground colour word.
COLOURS = {
    "red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 90, 240), "yellow": (240, 220, 30),
    "purple": (150, 40, 170), "orange": (250, 140, 20), "white": (245, 245, 245), "black": (15, 15, 15),
}
BACKGROUNDS = {"gray": (128, 128, 128), "pink": (235, 145, 180), "teal": (30, 135, 140), "olive": (115, 115, 40)}
# name -> (column, row) on the 3×3 grid, and its phrasings: (prepositional, alternative, tag)
POSITIONS = {
    "top left": ((0, 0), "in the top left corner", "at the upper left", "top-left"),
    "top": ((1, 0), "at the top", "at the top middle", "top"),
    "top right": ((2, 0), "in the top right corner", "at the upper right", "top-right"),
    "left": ((0, 1), "on the left", "at the middle left", "left"),
    "center": ((1, 1), "in the center", "in the middle", "center"),
    "right": ((2, 1), "on the right", "at the middle right", "right"),
    "bottom left": ((0, 2), "in the bottom left corner", "at the lower left", "bottom-left"),
    "bottom": ((1, 2), "at the bottom", "at the bottom middle", "bottom"),
    "bottom right": ((2, 2), "in the bottom right corner", "at the lower right", "bottom-right"),
}
SIZES = {"small": (0.14, "little"), "large": (0.21, "big")}  # shape radius as a fraction of the side

# Grid cell centres and jitter (fractions of the side): the largest shape (0.21 × 1.1) plus the
# largest offset still fits inside the frame at the corners.
_CENTRES = (0.255, 0.5, 0.745)
_OFFSET = 0.02

TEMPLATES = (
    "{a_size} {colour} {shape} {where} on {a_bg} background",
    "{tag}: {big} {colour} {shape} over {bg}",
    "there is {a_colour} {shape}, {size}, {where2}, the background is {bg}",
    "{a_bg} background with {a_size} {colour} {shape} {where}",
    "{size} {colour} {shape} {where2} against {bg}",
    "a picture of {a_big} {shape} in {colour}, {where}, on {bg}",
    "the {colour} {shape} is {size} and sits {where2}; the background is {bg}",
    "one {big} {colour} {shape} placed {where} on a plain {bg} backdrop",
    "{colour} {shape}, {size}, {where2}, {bg} background",
    "on {bg}, {a_size} {colour} {shape} appears {where}",
    "an image of {a_colour} {shape} that is {big}, located {where2}, with {a_bg} background",
    "{bg} background, {big} {colour} {shape}, {tag}",
)


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def caption_words(combo: tuple[str, str, str, str, str]) -> dict[str, str]:
    """The template fields for one attribute tuple (shape, colour, position, size, background)."""
    shape, colour, pos, size, bg = combo
    _, where, where2, tag = POSITIONS[pos]
    big = SIZES[size][1]
    return {"shape": shape, "colour": colour, "bg": bg, "size": size, "big": big,
            "a_size": _a(size), "a_big": _a(big), "a_colour": _a(colour), "a_bg": _a(bg),
            "where": where, "where2": where2, "tag": tag}


def all_combinations() -> list[tuple[str, str, str, str, str]]:
    """Every attribute tuple (shape, colour, position, size, background), in a fixed order."""
    return list(itertools.product(SHAPES, COLOURS, POSITIONS, SIZES, BACKGROUNDS))


def _polygon(cx: float, cy: float, r: float, n: int, rot: float,
             inner: float | None = None, squash: float = 1.0) -> list[tuple[float, float]]:
    """Regular n-gon (or n-pointed star with ``inner`` radius ratio), first vertex up, rotated by ``rot``."""
    steps = n * 2 if inner else n
    pts = []
    for i in range(steps):
        rad = r if (inner is None or i % 2 == 0) else r * inner
        a = 2 * math.pi * i / steps
        x, y = rad * math.sin(a) * squash, -rad * math.cos(a)
        pts.append((cx + x * math.cos(rot) - y * math.sin(rot), cy + x * math.sin(rot) + y * math.cos(rot)))
    return pts


def _rotated_rect(cx: float, cy: float, hw: float, hh: float, rot: float) -> list[tuple[float, float]]:
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh))]


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, rot: float,
                fill: tuple, bg: tuple) -> None:
    """Draw ``shape`` so that it stays within radius ``r`` of (cx, cy), with similar visual weight."""
    if shape == "circle":
        q = r * 0.9
        draw.ellipse([cx - q, cy - q, cx + q, cy + q], fill=fill)
    elif shape == "ring":
        q, h = r * 0.95, r * 0.47
        draw.ellipse([cx - q, cy - q, cx + q, cy + q], fill=fill)
        draw.ellipse([cx - h, cy - h, cx + h, cy + h], fill=bg)
    elif shape == "square":
        draw.polygon(_rotated_rect(cx, cy, r * 0.78, r * 0.78, rot), fill=fill)
    elif shape == "triangle":  # centred on its bounding box, not its centroid
        draw.polygon(_polygon(cx, cy + r * 0.2, r * 1.05, 3, rot), fill=fill)
    elif shape == "star":
        draw.polygon(_polygon(cx, cy + r * 0.05, r * 1.05, 5, rot, inner=0.45), fill=fill)
    elif shape == "diamond":  # a rhombus taller than wide, never a rotated square
        draw.polygon(_polygon(cx, cy, r * 1.02, 4, rot, squash=0.75), fill=fill)
    elif shape == "hexagon":
        draw.polygon(_polygon(cx, cy, r * 0.95, 6, rot + math.pi / 6), fill=fill)
    elif shape == "cross":
        a, b = r * 0.95, r * 0.32
        draw.polygon(_rotated_rect(cx, cy, a, b, rot), fill=fill)
        draw.polygon(_rotated_rect(cx, cy, b, a, rot), fill=fill)
    else:  # pragma: no cover - SHAPES is closed
        raise ValueError(f"unknown shape {shape!r}")


def _stream(seed: int, split: str, purpose: str) -> np.random.Generator:
    """An independent generator per (seed, split, purpose), without hashing strings."""
    keys = {"order": 0, "train": 1, "test": 2, "scene": 10, "noise": 11, "captions": 12}
    return np.random.Generator(np.random.PCG64([seed, keys[split], keys[purpose]]))


@dataclass(frozen=True)
class Params:
    size: int = param(1400, lo=16, hi=200000, help="number of train images")
    test_size: int = param(300, lo=8, hi=50000,
                           help="number of test images, each a distinct combination unseen in training")
    resolution: int = param(32, lo=16, hi=224, help="image side in pixels")
    captions: int = param(5, lo=1, hi=10, help="caption paraphrases per image")
    seed: int = param(0, lo=0, help="dataset seed (independent of the run's training seeds)")


class Synthetic(Dataset):
    """Rendered shapes (shape x colour x position x size x background) with paraphrased captions; test combos unseen."""

    Params = Params
    version = "1"
    presets = {"tiny": {"size": 64, "test_size": 16}, "paper": {"resolution": 224}}

    def combinations(self) -> tuple[list[tuple], list[tuple]]:
        """The attribute tuples (shape, colour, position, size, background) of the train and test images.

        Cheap (no rendering); ``combinations()[0][i]`` describes ``load().train.images[i]``. Raises
        UsageError when ``test_size`` leaves no combination for training.
        """
        p = self.params
        combos = all_combinations()
        if p.test_size >= len(combos):
            raise UsageError(
                f"dataset 'synthetic': test_size={p.test_size} is too large: there are {len(combos)} attribute "
                f"combinations and at least one must be left for training (use test_size <= {len(combos) - 1})")
        order = _stream(p.seed, "order", "order").permutation(len(combos))
        test = [combos[i] for i in order[:p.test_size]]
        pool = order[p.test_size:]
        train = [combos[pool[i % len(pool)]] for i in range(p.size)]  # cycles (fresh jitter) if size > pool
        return train, test

    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """The same as ``combinations`` as int arrays ``[N, 5]`` (indices into SHAPES, COLOURS, ...)."""
        index = [{v: k for k, v in enumerate(values)} for values in (SHAPES, COLOURS, POSITIONS, SIZES, BACKGROUNDS)]

        def as_codes(combos: list[tuple]) -> np.ndarray:
            rows = [[index[j][v] for j, v in enumerate(c)] for c in combos]
            return np.array(rows, dtype=np.int64).reshape(-1, len(ATTRIBUTES))

        train, test = self.combinations()
        return as_codes(train), as_codes(test)

    def _render(self, combos: list[tuple], split: str) -> PairSplit:
        p = self.params
        res = p.resolution
        big = res * 4
        scene, noise, words_rng = (_stream(p.seed, split, k) for k in ("scene", "noise", "captions"))
        images = np.empty((len(combos), res, res, 3), dtype=np.uint8)
        captions = []
        for i, combo in enumerate(combos):
            shape, colour, pos, size, bg = combo
            (col, row), *_ = POSITIONS[pos]
            # one draw per quantity, in a fixed order, all in fractions of the side: resolution-free
            j = scene.uniform(-1.0, 1.0, size=12)
            fill = np.clip(np.array(COLOURS[colour]) * (1 + 0.08 * j[0]) + 10 * j[1:4], 0, 255)
            bgc = np.clip(np.array(BACKGROUNDS[bg]) * (1 + 0.05 * j[4]) + 6 * j[5:8], 0, 255)
            fill, bgc = tuple(int(round(v)) for v in fill), tuple(int(round(v)) for v in bgc)
            r = SIZES[size][0] * (1 + 0.1 * j[8]) * big
            cx = (_CENTRES[col] + _OFFSET * j[9]) * big
            cy = (_CENTRES[row] + _OFFSET * j[10]) * big
            rot = math.radians(8.0) * j[11]
            canvas = Image.new("RGB", (big, big), bgc)
            _draw_shape(ImageDraw.Draw(canvas), shape, cx, cy, r, rot, fill, bgc)
            img = np.asarray(canvas.reduce(4), dtype=np.int16)  # 4×4 box average = antialiasing
            img = img + noise.integers(-3, 4, size=img.shape, dtype=np.int16)
            images[i] = np.clip(img, 0, 255).astype(np.uint8)
            words = caption_words(combo)
            picks = words_rng.permutation(len(TEMPLATES))[:p.captions]
            captions.append([TEMPLATES[t].format(**words) for t in picks])
        meta = {"generator": "synthetic", "version": self.version, "split": split,
                "params": dataclasses.asdict(p), "attributes": list(ATTRIBUTES),
                "combinations": len(all_combinations())}
        return PairSplit(images, captions, meta=meta)

    def load(self, imports: ImportStage | None = None) -> PairDataset:
        train_c, test_c = self.combinations()
        return PairDataset("synthetic", self._render(train_c, "train"), self._render(test_c, "test"))
