"""Real human-drawn images shipped with ue-bench: two artists' emoji, named by Unicode.

Source: the npm packages ``emoji-datasource-google`` 16.0.0 (Noto Emoji art, Apache-2.0) and
``emoji-datasource-twitter`` 16.0.0 (Twemoji art, CC-BY-4.0), built into ``emoji_data/`` beside this
module by ``tools/build_emoji.py`` (which documents the selection): 1,870 emoji that both artists drew,
base emoji only (no skin-tone variants), no two with the same name or the same picture. Per artist, one
tar of the packages' 64 x 64 px RGBA PNGs, unmodified; ``emoji_data/emoji.json`` gives each emoji's
Unicode name, short names, category and subcategory; ``NOTICE.md`` and the ``LICENSE-*`` files beside
them give the attribution and licences. Nothing is fetched at run time.

* **Splits.** ``test_size`` emoji are drawn with ``seed``; the test split is the *other* artist's
  drawing of each (``train_artist`` trains). With ``test_emoji=seen`` (the default, as the dataset's
  issue specifies it) the train split holds ``train_artist``'s drawing of every emoji, those included:
  a victim must match another artist's picture of a thing to its name, new pictures of the same things,
  as a Flickr/COCO test split holds new photos of the same kinds of scenes. With ``unseen`` the test
  emoji are held out of the train split, which holds the rest: a victim must carry what it learned to
  pictures of things it has never seen named, a harder task (clean tiny-rn about 20× chance, against
  about 110× for ``seen`` in an exploratory run; docs/results/2026-12-03/emoji). ``size`` takes a seeded
  subset of the train split; the test split does not change with it.
* **Pixels.** Every PNG goes through the import path of the real-data plugins (``_imports``):
  :func:`ue_bench.engine.images.decode_image` composites the transparent background on white, then the 64-px
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

from ue_bench import Dataset, ImportStage, PairDataset, UsageError, param

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
    test_size: int = param(350, lo=8, help="test emoji (seeded): the test split is the other artist's drawing of each")
    test_emoji: str = param("seen", choices=("seen", "unseen"),
                            help="seen: the train split holds the train artist's drawing of the test emoji too; "
                                 "unseen: they are held out of it")
    size: int | None = param(None, lo=16, help="train images, a seeded subset of the train split's emoji "
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
    version = "2"  # 2: test_emoji (seen, the default; version 1 was unseen)
    presets = {"tiny": {"size": 48, "test_size": 16}, "paper": {"resolution": 224}}

    def entries(self) -> tuple[list[dict], list[dict]]:
        """The ``emoji.json`` entries of the train and test images, in :meth:`load`'s order (cheap: no
        decoding); UsageError when ``test_size`` or ``size`` asks for more emoji than there are."""
        p = self.params
        emoji = read_meta()["emoji"]
        n = len(emoji)
        limit = n if p.test_emoji == "seen" else n - 16
        if p.test_size > limit:
            raise UsageError(f"dataset 'emoji': test_size={p.test_size} is too large: there are {n} emoji"
                             + ("" if p.test_emoji == "seen" else " and at least 16 must be left for training")
                             + f" (use test_size <= {limit})")
        order = np.random.Generator(np.random.PCG64([p.seed, 0x454D4F4A])).permutation(n)  # "EMOJ": this draw's key
        pool = order if p.test_emoji == "seen" else order[p.test_size:]
        if p.size is not None and p.size > len(pool):
            raise UsageError(f"dataset 'emoji': size={p.size} is too large: the train split can hold {len(pool)} "
                             f"emoji (use size <= {len(pool)})")
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

    def load(self, imports: ImportStage | None = None) -> PairDataset:
        """The train split (``train_artist``'s art, uint8 ``[N, resolution, resolution, 3]``, N = every emoji,
        less the test emoji if ``test_emoji=unseen``, or ``size``) and the test split (the other artist's art of the ``test_size`` held-out emoji),
        ``captions`` strings per image; decoded into the import cache on first use. UsageError on a
        ``test_size`` or ``size`` too large, or a damaged installation."""
        p = self.params
        test_artist = next(a for a in ARTISTS if a != p.train_artist)
        train, test = self.entries()
        meta = {"source": str(DATA), "format": "emoji", "train_artist": p.train_artist, "test_artist": test_artist,
                "params": dataclasses.asdict(p)}
        return load_cached("emoji", "emoji", p.resolution, [DATA / "emoji.json"],
                           self._records(train, p.train_artist), self._records(test, test_artist), meta, imports=imports)
