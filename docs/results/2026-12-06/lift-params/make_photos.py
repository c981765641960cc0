"""The 40-photo folder of compare.sh: noisy single-colour photos of 40-89 px (JPEG and PNG alternately),
each with a NAME.txt of two captions naming its colour and number."""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/liftcmp/photos")
root.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
COLOURS = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200), "yellow": (220, 210, 40),
           "purple": (130, 40, 160), "orange": (240, 140, 20), "white": (235, 235, 235), "black": (20, 20, 20)}
names = list(COLOURS)
for i in range(40):
    h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
    c = names[i % 8]
    img = np.clip(np.array(COLOURS[c]) + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(root / f"p{i:02d}.{'jpg' if i % 2 else 'png'}")
    (root / f"p{i:02d}.txt").write_text(f"a {c} photo number {i}\na picture that is mostly {c}\n")
