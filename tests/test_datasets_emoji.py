"""The packaged ``emoji`` dataset: its data and licences, the splits, captions and pixels."""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import tarfile

import numpy as np
import pytest

from ue_bench import registry
from ue_bench.datasets import emoji
from ue_bench.errors import UsageError
from ue_bench.engine.images import decode_image, fit


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UE_BENCH_CACHE", str(tmp_path_factory.mktemp("emoji-cache")))
        yield


N = len(emoji.read_meta()["emoji"])


def create(**params):
    return registry.create("datasets", "emoji", {k: str(v) for k, v in params.items()})


@pytest.fixture(scope="module")
def full():
    return create().load()


def test_the_installed_package_holds_the_art_its_metadata_and_licences():
    data = importlib.resources.files("ue_bench.datasets") / "emoji_data"
    names = {f.name for f in data.iterdir()}
    assert {"google.tar", "twitter.tar", "emoji.json", "NOTICE.md", "LICENSE-Apache-2.0.txt",
            "LICENSE-CC-BY-4.0.txt", "LICENSE-emoji-data-MIT.txt"} <= names
    assert "Apache License" in (data / "LICENSE-Apache-2.0.txt").read_text()
    assert "Attribution 4.0 International" in (data / "LICENSE-CC-BY-4.0.txt").read_text()
    notice = (data / "NOTICE.md").read_text()
    assert all(s in notice for s in ("Noto Emoji", "Apache License", "Twemoji", "CC-BY 4.0", "Cal Henderson"))
    assert sum(f.stat().st_size for f in emoji.DATA.iterdir()) <= 15e6
    entries = emoji.read_meta()["emoji"]
    for artist in emoji.ARTISTS:
        with tarfile.open(emoji.DATA / f"{artist}.tar") as tar:
            assert [m.name for m in tar] == [e["image"] for e in entries]  # one PNG per emoji, in order
            first = tar.extractfile(entries[0]["image"]).read()
        img = decode_image(first)
        assert img.size == (64, 64) and img.mode == "RGB"


def test_the_default_splits_have_their_sizes_and_dtypes(full):
    assert len(full.test) == 350 and len(full.train) == N >= 1500  # test_emoji=seen: every emoji trains
    for split in (full.train, full.test):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (32, 32, 3)
        assert all(len(c) == emoji.Params().captions for c in split.captions)
    assert full.train.meta["train_artist"] == "google" and full.test.meta["test_artist"] == "twitter"


def pixel_hashes(split) -> set[str]:
    return {hashlib.sha256(img.tobytes()).hexdigest() for img in split.images}


def names(entries: list[dict]) -> list[str]:
    return [e["name"] for e in entries]


def test_seen_test_emoji_are_trained_on_in_the_other_artists_drawing_and_share_no_pixels(full):
    train, test = create().entries()
    assert set(names(test)) <= set(names(train))
    assert not pixel_hashes(full.train) & pixel_hashes(full.test)


def test_unseen_test_emoji_share_no_emoji_no_caption_and_no_pixels_with_train():
    unseen = create(test_emoji="unseen", test_size=40)
    train, test = unseen.entries()
    assert len(train) == N - 40 and not set(names(train)) & set(names(test))
    assert names(test) == names(create(test_size=40).entries()[1])  # the same test emoji as seen's
    data = unseen.load()
    assert not pixel_hashes(data.train) & pixel_hashes(data.test)
    assert not {c for cs in data.train.captions for c in cs} & {c for cs in data.test.captions for c in cs}


def test_no_caption_is_shared_by_two_emoji():
    owner = {}
    for e in emoji.read_meta()["emoji"]:
        captions = emoji.captions(e, len(emoji.TEMPLATES))
        assert len(set(captions)) == len(emoji.TEMPLATES), captions  # distinct phrasings of one emoji
        for caption in captions:
            assert owner.setdefault(caption, e["name"]) == e["name"], caption


def test_splits_are_seeded_and_the_test_split_does_not_change_with_size():
    train0, test0 = create().entries()
    assert names(create().entries()[1]) == names(test0)
    assert names(create(seed=1).entries()[1]) != names(test0)
    small_train, small_test = create(size=100).entries()
    assert names(small_test) == names(test0) and set(names(small_train)) < set(names(train0))
    a, b = create(size=24, test_size=8).load(), create(size=24, test_size=8).load()
    assert a.fingerprint() == b.fingerprint() != create(size=24, test_size=8, seed=1).load().fingerprint()


@pytest.mark.parametrize("artist, other", [("google", "twitter"), ("twitter", "google")])
def test_each_split_is_its_artists_art_on_white(artist, other):
    dataset = create(size=16, test_size=8, train_artist=artist)
    data = dataset.load()
    train, test = dataset.entries()
    for split, entries, source in ((data.train, train, artist), (data.test, test, other)):
        with tarfile.open(emoji.DATA / f"{source}.tar") as tar:
            png = tar.extractfile(entries[0]["image"]).read()
        assert np.array_equal(split.images[0], fit(decode_image(png), 32))
        assert split.captions[0] == list(emoji.captions(entries[0], emoji.Params().captions))
    corners = data.train.images[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 255).all(axis=-1).mean() > 0.5  # the transparent margin composited on white


def test_a_real_image_at_64_px_is_the_art_as_drawn():
    data = create(size=16, test_size=8, resolution=64, captions=1).load()
    entry = create(size=16, test_size=8).entries()[0][0]
    with tarfile.open(emoji.DATA / "google.tar") as tar:
        art = np.asarray(decode_image(io.BytesIO(tar.extractfile(entry["image"]).read())))
    assert np.array_equal(data.train.images[0], art) and data.train.captions[0] == [emoji.captions(entry, 1)[0]]


@pytest.mark.parametrize("params, message", [
    ({"train_artist": "apple"}, "parameter 'train_artist' must be one of"),
    ({"test_size": N + 1}, f"test_size={N + 1} is too large: there are {N} emoji"),
    ({"test_size": N - 10, "test_emoji": "unseen"}, f"test_size={N - 10} is too large: there are {N} emoji and"),
    ({"size": N + 1}, f"size={N + 1} is too large: the train split can hold {N} emoji"),
    ({"size": N - 349, "test_emoji": "unseen"}, f"size={N - 349} is too large: the train split can hold {N - 350}"),
    ({"captions": 7}, "parameter 'captions'=7 is out of bounds"),
])
def test_bad_parameters_are_one_line_usage_errors(params, message):
    with pytest.raises(UsageError, match=message) as info:
        create(**params).entries()
    assert "\n" not in str(info.value)
