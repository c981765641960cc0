"""The default synthetic set as 'photos': folders of PNGs of 256-569 px and varied aspect ratio, each
with a sidecar NAME.txt of its 5 captions (one per line), for `ue-bench protect --dataset folder:...`.

Each 224 px scene (`synthetic:resolution=224`) is padded with its own background colour to a random
aspect ratio (1, 4:3, 3:2 or 16:9, landscape or portrait) and resized (bicubic) so that its shorter
side is 256-320 px. Padding is symmetric, so the central square that a resize + center crop keeps
is the scene itself and its captions ("top left", ...) stay true.

usage: python make_photos.py OUT_DIR    (writes OUT_DIR/train/ and OUT_DIR/test/)
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ue_bench import registry

RATIOS = (1.0, 4 / 3, 3 / 2, 16 / 9)


def photo(scene: np.ndarray, rng: np.random.Generator) -> Image.Image:
    ratio = RATIOS[rng.integers(len(RATIOS))]
    side = scene.shape[0]
    long = round(side * ratio)
    canvas = np.empty((side, long, 3), dtype=np.uint8)
    canvas[:] = scene[0, 0]
    left = (long - side) // 2
    canvas[:, left:left + side] = scene
    img = Image.fromarray(canvas)
    if rng.integers(2):
        img = img.transpose(Image.Transpose.ROTATE_90)  # portrait
    short = int(rng.integers(256, 321))
    w, h = img.size
    scale = short / min(w, h)
    return img.resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC)


def main(out: Path) -> None:
    data = registry.create("datasets", "synthetic", {"resolution": 224}).load()
    rng = np.random.default_rng(20261130)
    for split, pairs in (("train", data.train), ("test", data.test)):
        folder = out / split
        folder.mkdir(parents=True)
        for i in range(len(pairs)):
            photo(np.asarray(pairs.images[i]), rng).save(folder / f"{i:05d}.png")
            (folder / f"{i:05d}.txt").write_text("\n".join(pairs.captions[i]) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
