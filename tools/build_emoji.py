"""Build the packaged data of the ``emoji`` dataset (``ue_bench/datasets/emoji_data/``) from npm packages.

Run with (the versions the packaged data was built from, 2026-12-03)::

    mkdir -p /tmp/emoji-src && cd /tmp/emoji-src
    npm pack emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0 spdx-license-list@6.12.0
    cd /path/to/ue-bench && .venv/bin/python tools/build_emoji.py /tmp/emoji-src

``npm pack`` only downloads the package tarballs (``<name>-<version>.tgz``); this script reads them as
they are (nothing is unpacked or installed) and writes into ``ue_bench/datasets/emoji_data/`` (``--out``):

* ``google.tar``, ``twitter.tar``: one uncompressed tar per artist holding that artist's 64 x 64 px
  PNG of every selected emoji, byte for byte the file of the npm package (``img/<set>/64/<image>``),
  members in the order of ``emoji.json`` (tar headers without owner or time, so a rebuild from the
  same tarballs gives the same bytes). One file per artist is friendlier to pip and git than 3,700
  small files, and a tar member is a plain byte range the import path reads in place
  (``_imports.Record`` with an offset). The art is kept at 64 px and unmodified so that every
  resolution up to 64 px is a downscale of the original and the files can be checked against npm.
* ``emoji.json``: the sources (package names, versions, sha256 of the tarballs) and, per emoji, the
  ``image`` name, ``unified`` code points, Unicode ``name``, ``short_names``, ``category`` and
  ``subcategory`` (from ``emoji-datasource``'s ``emoji.json``, identical in both packages), and the
  emoji left out with the reason.
* ``LICENSE-Apache-2.0.txt`` (Noto Emoji art), ``LICENSE-CC-BY-4.0.txt`` (Twemoji art), both from
  ``spdx-license-list``; ``LICENSE-emoji-data-MIT.txt`` (the metadata, the npm packages' own
  ``LICENSE``); ``NOTICE.md`` (attribution).

Selection: every emoji of ``emoji.json`` that both sets draw (``has_img_google`` and
``has_img_twitter``), base emoji only (the skin-tone variants, nested under ``skin_variations``, are
not entries of their own and are left out), without the ``Component`` category (the five
Fitzpatrick skin-tone swatches: colour patches, not pictures of anything). Then, shortest name first
(usually the most general: ``FAMILY`` before ``FAMILY: MAN, WOMAN, BOY``, ``Norway Flag`` before
``Svalbard & Jan Mayen Flag``), ties in ``sort_order``, an emoji is dropped when its name is that of an
emoji already kept (``MAN IN TUXEDO`` names two), or when either artist's drawing, decoded by
``ue_bench.engine.images.decode_image`` (on white), has exactly the pixels of that artist's drawing of an
emoji already kept (Twemoji draws every family of two parents alike; both draw the Norway, Svalbard and
Bouvet Island flags alike): two identical pictures with different names teach nothing and make
retrieval ill-defined. The emoji kept are written in ``sort_order``. A Noto drawing with exactly the
pixels of a Twemoji drawing (none in 16.0.0) stops the build, since the dataset's test split would then
hold a train image. Prints the counts and sizes.

The npm packages state the licences in their README ("Image Sources"): Google/Noto images "are
available under the Apache License 2.0", Twitter images "under the Creative Commons Attribution 4.0
license"; the packages themselves (code and ``emoji.json``) are MIT (``package.json``, ``LICENSE``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import operator
import sys
import tarfile
from pathlib import Path

import numpy as np

from ue_bench.engine.images import decode_image

PACKAGES = {"google": ("emoji-datasource-google", "16.0.0"), "twitter": ("emoji-datasource-twitter", "16.0.0")}
SPDX = ("spdx-license-list", "6.12.0")
ARTISTS = {"google": "Noto Emoji (Google), Apache License 2.0",
           "twitter": "Twemoji (Twitter, Inc and other contributors; jdecked/twemoji fork), CC-BY 4.0"}
OUT = Path(__file__).resolve().parents[1] / "ue_bench" / "datasets" / "emoji_data"
FIELDS = ("image", "unified", "name", "short_names", "category", "subcategory")

NOTICE = """\
# Attribution of the `emoji` dataset's images and metadata

`google.tar` holds 64 x 64 px PNG images of **Noto Emoji**, Copyright Google Inc., licensed under the
Apache License, Version 2.0 (`LICENSE-Apache-2.0.txt`; https://github.com/googlefonts/noto-emoji,
v2.048 as packaged by emoji-datasource-google {google}).

`twitter.tar` holds 64 x 64 px PNG images of **Twemoji**, Copyright 2019 Twitter, Inc and other
contributors (maintained at https://github.com/jdecked/twemoji, v16.0.1 as packaged by
emoji-datasource-twitter {twitter}), licensed under the Creative Commons Attribution 4.0
International licence (CC-BY 4.0, `LICENSE-CC-BY-4.0.txt`; https://creativecommons.org/licenses/by/4.0/).

The image files are unmodified copies of the packages' `img/google/64/` and `img/twitter/64/` files (a
subset: see `emoji.json`). ue-bench composites their transparent background on white and resizes them
when it loads the dataset.

`emoji.json` is derived from the `emoji.json` of emoji-data (https://github.com/iamcal/emoji-data),
Copyright (c) 2013 Cal Henderson, MIT licence (`LICENSE-emoji-data-MIT.txt`), as packaged by the
npm packages above.
"""


def read_tgz(path: Path) -> dict[str, bytes]:
    """Every regular file of an npm tarball, by its path inside the package (``package/`` stripped)."""
    out = {}
    with tarfile.open(path, "r:gz") as tar:
        for m in tar:
            if m.isfile():
                out[m.name.split("/", 1)[1]] = tar.extractfile(m).read()
    return out


def pixels(data: bytes, where: str) -> bytes:
    """The decoded RGB pixels (on white, as ue-bench loads them) and size, as a hashable key."""
    img = decode_image(data, name=where)
    return hashlib.sha256(f"{img.size}".encode() + np.asarray(img).tobytes()).digest()


def select(entries: list[dict], files: dict[str, dict[str, bytes]]) -> tuple[list[dict], list[dict]]:
    """The emoji kept and the ones left out (with ``why``), in ``sort_order`` (see the module docstring)."""
    kept, dropped, seen = [], [], {}
    for e in sorted(entries, key=lambda e: (len(e["name"]), e["sort_order"])):
        why = None
        if not (e["has_img_google"] and e["has_img_twitter"]):
            why = "not drawn by both artists"
        elif e["category"] == "Component":
            why = "a skin-tone swatch (category Component)"
        else:
            keys = [("name", e["name"].lower())]
            keys += [(a, pixels(files[a][f"img/{a}/64/{e['image']}"], f"{a} {e['image']}")) for a in PACKAGES]
            clash = next((seen[k] for k in keys if k in seen), None)
            if clash is not None:
                why = f"same name or same {'/'.join(PACKAGES)} pixels as {clash!r}"
            else:
                seen.update((k, e["name"]) for k in keys)
        if why:
            dropped.append({"name": e["name"], "unified": e["unified"], "sort_order": e["sort_order"], "why": why})
        else:
            kept.append(e)
    order = operator.itemgetter("sort_order")
    return [{k: e[k] for k in FIELDS} for e in sorted(kept, key=order)], sorted(dropped, key=order)


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    """An uncompressed ustar archive of ``members`` in order, with no owner, mode 0644 and time 0."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="folder holding the npm pack tarballs (see the module docstring)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = ap.parse_args(argv)
    tarballs = {a: args.src / f"{n}-{v}.tgz" for a, (n, v) in {**PACKAGES, "spdx": SPDX}.items()}
    missing = [str(p) for p in tarballs.values() if not p.is_file()]
    if missing:
        print(f"build_emoji: missing {', '.join(missing)}; run the npm pack line of the docstring", file=sys.stderr)
        return 2
    files = {a: read_tgz(p) for a, p in tarballs.items()}
    meta = json.loads(files["google"]["emoji.json"])
    if meta != json.loads(files["twitter"]["emoji.json"]):
        print("build_emoji: the two packages' emoji.json differ; expected the same emoji-data release", file=sys.stderr)
        return 2
    kept, dropped = select(meta, files)
    drawn = [{pixels(files[a][f"img/{a}/64/{e['image']}"], e["image"]): e["name"] for e in kept} for a in PACKAGES]
    shared = drawn[0].keys() & drawn[1].keys()
    if shared:
        pairs = "; ".join(f"{drawn[0][k]} = {drawn[1][k]}" for k in list(shared)[:3])
        print(f"build_emoji: {len(shared)} drawing(s) of one artist have the other's pixels: {pairs}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for artist in PACKAGES:
        art = files[artist]
        write_tar(args.out / f"{artist}.tar", [(e["image"], art[f"img/{artist}/64/{e['image']}"]) for e in kept])
    sources = {a: {"package": n, "version": v, "sha256": hashlib.sha256(tarballs[a].read_bytes()).hexdigest(),
                   "art": ARTISTS.get(a, "")} for a, (n, v) in {**PACKAGES, "spdx": SPDX}.items()}
    doc = {"sources": sources, "image_size": 64, "emoji": kept, "excluded": dropped}
    (args.out / "emoji.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for spdx_id in ("Apache-2.0", "CC-BY-4.0"):
        text = json.loads(files["spdx"][f"licenses/{spdx_id}.json"])["licenseText"]
        (args.out / f"LICENSE-{spdx_id}.txt").write_text(text.rstrip() + "\n", encoding="utf-8")
    (args.out / "LICENSE-emoji-data-MIT.txt").write_bytes(files["google"]["LICENSE"])
    (args.out / "NOTICE.md").write_text(NOTICE.format(**{a: PACKAGES[a][1] for a in PACKAGES}), encoding="utf-8")
    total = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    print(f"build_emoji: {len(kept)} emoji kept, {len(dropped)} left out; {args.out} holds {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
