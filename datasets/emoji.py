"""Real human-drawn images shipped with ue-bench: two artists' emoji, named by Unicode.

Source: the npm packages ``emoji-datasource-google`` 16.0.0 (Noto Emoji art, Apache-2.0) and
``emoji-datasource-twitter`` 16.0.0 (Twemoji art, CC-BY-4.0), built into ``emoji_data/`` beside this
module by ``tools/build_emoji.py`` (which documents the selection): 1,870 emoji that both artists drew,
base emoji only (no skin-tone variants), no two with the same name or the same picture. Per artist, one
tar of the packages' 64 x 64 px RGBA PNGs, unmodified; ``emoji_data/emoji.json`` gives each emoji's
Unicode name, short names, category and subcategory; ``NOTICE.md`` and the ``LICENSE-*`` files beside
them give the attribution and licences. Nothing is fetched at run time.

* **Splits.** ``test_size`` emoji are held out with ``seed``; the test split is the *other* artist's
  drawing of each (``train_artist`` trains), and none of them is in the train split, which holds
  ``train_artist``'s drawing of the rest (``size`` of them, a seeded subset, when given). A victim has to
  carry what it learned from one artist's pictures and their names to another artist's pictures of
  things it has not seen named: new pictures of the same kind of things, as a Flickr/COCO test split.
  The test split does not change with ``size``.
* **Pixels.** Every PNG goes through the import path of the real-data plugins (``_imports``):
  :func:`ue_bench.images.decode_image` composites the transparent background on white, then the 64-px
  image is resized (bicubic) to ``resolution`` (above 64 px: enlarged), decoded once into the import
  cache. The import's leakage check refuses a test image whose decoded pixels equal a train image's;
  there is no opt-out (the build script checks that no Noto drawing has a Twemoji drawing's pixels).
* **Captions** (the first ``captions`` of :data:`TEMPLATES`) are phrases made of the emoji's Unicode
  name (lower-cased when it is all capitals, as most are; flag names are written ``Egypt Flag``),
  first and last short name (``:grinning:``), category and subcategory: names, not sentences. Every
  caption contains the name in one of six fixed frames, so no two emoji share a caption (names are
  unique). The default is three (name; "the … emoji"; name with subcategory and category): on
  tiny-rn, seeds 0-2, it gave a better clean i2t median rank (146-163 against 221-268) and mean
  recall (.110-.128 against .090-.112) than five, seed for seed (docs/results/2026-12-03/emoji).
"""

from __future__ import annotations

import dataclasses
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ue_bench.data import PairDataset
from ue_bench.dataset import Dataset
from ue_bench.errors import UsageError
from ue_bench.params import param

from ._imports import Record, load_cached, read_utf8

DATA = Path(__file__).with_name("emoji_data")
ARTISTS = ("google", "twitter")

#: Caption frames, in the order ``captions=k`` takes the first k.
TEMPLATES = (
    "{name}",
    "the {name} emoji",
    "{name}, from the {subgroup} group of {category}",
    "emoji of {name}, shortcode :{short}:",
    "{category} emoji: {name}",
    "a drawing of {name}, also written :{alias}:",
)


@dataclass(frozen=True)
class Params:
    train_artist: str = param("google", choices=ARTISTS,
                              help="whose drawings are trained on (google: Noto Emoji; twitter: Twemoji); "
                                   "the test split is the other artist's")
    test_size: int = param(350, lo=8, help="emoji held out (seeded): the test split is the other artist's drawing "
                                           "of each, and none is in the train split")
    size: int | None = param(None, lo=16, help="train images, a seeded subset of the emoji not held out "
                                               "(default: all of them)")
    resolution: int = param(32, lo=16, hi=224, help="image side in pixels (the art is 64 px: larger sides enlarge it)")
    captions: int = param(3, lo=1, hi=len(TEMPLATES), help="captions per image, the first k of six phrasings "
                                                           "of the emoji's name, short names and category")
    seed: int = param(0, lo=0, help="seed of the held-out emoji and of the train subset")


def read_meta() -> dict:
    """The packaged ``emoji_data/emoji.json``: ``sources`` and ``emoji``, a list of dicts (``image``,
    ``unified``, ``name``, ``short_names``, ``category``, ``subcategory``) in the tars' order."""
    return json.loads(read_utf8(DATA / "emoji.json", "emoji", "the packaged metadata"))


def captions(entry: dict, k: int) -> tuple[str, ...]:
    """The first ``k`` captions of :data:`TEMPLATES` for one ``emoji.json`` entry."""
    name = entry["name"].lower() if entry["name"].isupper() else entry["name"]
    words = {"name": name, "short": entry["short_names"][0], "alias": entry["short_names"][-1],
             "category": entry["category"].lower(), "subgroup": entry["subcategory"].replace("-", " ")}
    return tuple(t.format(**words) for t in TEMPLATES[:k])


def members(artist: str) -> dict[str, tuple[int, int]]:
    """``{member name: (byte offset, size)}`` of the PNGs in ``emoji_data/<artist>.tar``."""
    path = DATA / f"{artist}.tar"
    try:
        with tarfile.open(path) as tar:
            return {m.name: (m.offset_data, m.size) for m in tar if m.isfile()}
    except (OSError, tarfile.TarError) as exc:
        raise UsageError(f"dataset 'emoji': cannot read {path} ({exc}); reinstall ue-bench") from None


class Emoji(Dataset):
    """Emoji drawn by two artists (Noto, Twemoji), 1,870 Unicode names; trains on one artist, tests on the other."""

    Params = Params
    version = "1"
    presets = {"tiny": {"size": 48, "test_size": 16}, "paper": {"resolution": 224}}

    def entries(self) -> tuple[list[dict], list[dict]]:
        """The ``emoji.json`` entries of the train and test images, in :meth:`load`'s order (cheap: no
        decoding); UsageError when ``test_size`` or ``size`` asks for more emoji than there are."""
        p = self.params
        emoji = read_meta()["emoji"]
        n = len(emoji)
        if p.test_size > n - 16:
            raise UsageError(f"dataset 'emoji': test_size={p.test_size} is too large: there are {n} emoji and "
                             f"at least 16 must be left for training (use test_size <= {n - 16})")
        order = np.random.Generator(np.random.PCG64([p.seed, 0x454D4F4A])).permutation(n)  # "EMOJ": this draw's key
        pool = order[p.test_size:]
        if p.size is not None and p.size > len(pool):
            raise UsageError(f"dataset 'emoji': size={p.size} is too large: {n} emoji less the {p.test_size} held "
                             f"out leave {len(pool)} (use size <= {len(pool)}, or a smaller test_size)")
        train = np.sort(pool[:p.size] if p.size is not None else pool)
        return [emoji[i] for i in train], [emoji[i] for i in np.sort(order[:p.test_size])]

    def _records(self, entries: list[dict], artist: str) -> list[Record]:
        path, spans = DATA / f"{artist}.tar", members(artist)
        missing = [e["image"] for e in entries if e["image"] not in spans]
        if missing:
            raise UsageError(f"dataset 'emoji': {path} lacks {len(missing)} image(s) listed in {DATA / 'emoji.json'} "
                             f"({missing[0]}, ...); reinstall ue-bench")
        return [Record(f"{path} {e['image']} ({e['name']})", path, captions(e, self.params.captions),
                       *spans[e["image"]], name=e["image"].removesuffix(".png")) for e in entries]

    def load(self) -> PairDataset:
        """The train split (``train_artist``'s art, uint8 ``[N, resolution, resolution, 3]``, N = every emoji not
        held out, or ``size``) and the test split (the other artist's art of the ``test_size`` held-out emoji),
        ``captions`` strings per image; decoded into the import cache on first use. UsageError on a
        ``test_size`` or ``size`` too large, or a damaged installation."""
        p = self.params
        test_artist = next(a for a in ARTISTS if a != p.train_artist)
        train, test = self.entries()
        meta = {"source": str(DATA), "format": "emoji", "train_artist": p.train_artist, "test_artist": test_artist,
                "params": dataclasses.asdict(p)}
        return load_cached("emoji", "emoji", p.resolution, [DATA / "emoji.json"],
                           self._records(train, p.train_artist), self._records(test, test_artist), meta)
