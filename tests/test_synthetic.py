"""The default synthetic dataset: determinism, shapes, captions and train/test combination disjointness."""

import subprocess
import sys

import numpy as np
import pytest

from ue_bench import registry
from ue_bench.data import PairDataset
from ue_bench.datasets import synthetic as S
from ue_bench.errors import UsageError
from ue_bench.params import build_params

SMALL = {"size": 64, "test_size": 24}


def make(**values) -> S.Synthetic:
    return S.Synthetic(build_params("dataset 'synthetic'", S.Params, {**SMALL, **values}))


@pytest.fixture(scope="module")
def small() -> PairDataset:
    return make().load()


def test_is_registered_with_a_summary():
    plugin = registry.create("datasets", "synthetic", {"size": "16", "test_size": "8"})
    assert isinstance(plugin, S.Synthetic) and plugin.version == "1"
    assert plugin.summary() and "\n" not in plugin.summary()
    assert len(S.all_combinations()) == 8 * 8 * 9 * 2 * 4


def test_two_loads_are_bit_identical_and_the_seed_matters(small):
    again = make().load()
    assert again.name == small.name == "synthetic"
    assert np.array_equal(again.train.images, small.train.images)
    assert np.array_equal(again.test.images, small.test.images)
    assert again.train.captions == small.train.captions and again.test.captions == small.test.captions
    assert again.fingerprint() == small.fingerprint()
    other = make(seed=1).load()
    assert other.fingerprint() != small.fingerprint()
    assert not np.array_equal(other.train.images, small.train.images)
    assert make(seed=1).combinations() != make().combinations()


def test_identical_in_a_fresh_process(small):
    code = ("from ue_bench.datasets.synthetic import Synthetic, Params; "
            f"print(Synthetic(Params(size={SMALL['size']}, test_size={SMALL['test_size']})).load().fingerprint())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert out.stdout.strip() == small.fingerprint()


@pytest.mark.parametrize("resolution", [32, 64])
def test_shapes_dtypes_and_caption_counts(resolution):
    data = make(resolution=resolution, captions=3).load()
    for split, n in ((data.train, SMALL["size"]), (data.test, SMALL["test_size"])):
        assert split.images.shape == (n, resolution, resolution, 3) and split.images.dtype == np.uint8
        assert len(split.captions) == n
        assert all(len(caps) == 3 and len(set(caps)) == 3 for caps in split.captions)
        assert split.meta["generator"] == "synthetic" and split.meta["params"]["resolution"] == resolution
    assert data.train.meta["split"] == "train" and data.test.meta["split"] == "test"


def test_every_image_is_unique_and_not_blank(small):
    imgs = np.concatenate([small.train.images, small.test.images])
    assert len({im.tobytes() for im in imgs}) == len(imgs)
    assert all(im.std() > 5 for im in imgs)  # a shape is visible on the background


def test_ten_paraphrases_are_distinct():
    data = make(size=16, test_size=8, captions=10).load()
    assert all(len(set(caps)) == 10 for caps in data.train.captions + data.test.captions)


def test_train_and_test_combinations_are_disjoint_and_test_is_unique():
    train, test = make().combinations()
    assert len(train) == SMALL["size"] and len(test) == SMALL["test_size"]
    assert len(set(test)) == len(test)
    assert not set(train) & set(test)
    tr, te = make().codes()
    assert tr.shape == (SMALL["size"], 5) and te.shape == (SMALL["test_size"], 5)
    assert not {tuple(r) for r in tr} & {tuple(r) for r in te}
    # the test split depends on the seed only, not on how many train images are drawn
    assert make(size=500).combinations()[1] == test


def test_train_cycles_over_remaining_combinations_with_fresh_jitter():
    total = len(S.all_combinations())
    plugin = make(size=total, test_size=total - 10, captions=1)
    train, test = plugin.combinations()
    assert set(train).isdisjoint(test) and len(set(train)) == 10
    assert train[:10] == train[10:20]
    images = plugin.load().train.images
    assert not np.array_equal(images[0], images[10])


SYNONYMS = {"small": {"small", "little"}, "large": {"large", "big"}, "top": {"top", "upper"},
            "bottom": {"bottom", "lower"}, "left": {"left"}, "right": {"right"}}


def _mentions(caption: str, combo: tuple) -> bool:
    """Every attribute is named, and no word of another position or size appears."""
    shape, colour, pos, size, bg = combo
    words = set(caption.replace(",", " ").replace(":", " ").replace(";", " ").replace("-", " ").split())
    if not ({shape, colour, bg} <= words and SYNONYMS[size] & words):
        return False
    if SYNONYMS["small" if size == "large" else "large"] & words:
        return False
    parts = pos.split()
    for side in ("top", "bottom", "left", "right"):
        if bool(SYNONYMS[side] & words) != (side in parts):
            return False
    return pos != "center" or bool({"center", "middle"} & words)


def test_captions_mention_every_attribute():
    plugin = make(captions=10, size=40, test_size=16)
    data = plugin.load()
    train, test = plugin.combinations()
    for split, combos in ((data.train, train), (data.test, test)):
        for caps, combo in zip(split.captions, combos):
            for cap in caps:
                assert _mentions(cap, combo), (cap, combo)
                assert cap.isascii() and cap == cap.lower()
                assert " a o" not in cap and " a a" not in cap and not cap.startswith("a o")  # articles


def test_colour_and_background_words_never_collide():
    words = [*S.SHAPES, *S.COLOURS, *S.BACKGROUNDS]
    assert len(set(words)) == len(words)
    pos_words = {w for p in S.POSITIONS for w in p.split()}
    assert not pos_words & set(words)


@pytest.mark.parametrize("values", [{"size": "8"}, {"test_size": "4"}, {"resolution": "8"},
                                    {"resolution": "512"}, {"captions": "0"}, {"captions": "11"},
                                    {"seed": "-1"}, {"size": "many"}, {"colours": "3"}])
def test_out_of_range_params_are_rejected(values):
    with pytest.raises(UsageError):
        build_params("dataset 'synthetic'", S.Params, values)


def test_test_size_beyond_the_combination_space_is_a_clear_error():
    total = len(S.all_combinations())
    with pytest.raises(UsageError, match="test_size"):
        make(test_size=total).load()
    with pytest.raises(UsageError, match="test_size"):
        make(test_size=20000).combinations()
