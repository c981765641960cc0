"""lowfreq-words: block-constant ±eps noise that is the majority vote of each image's trigger words' patterns."""

import numpy as np
import pytest
import torch

from ue_bench import UsageError, registry


@pytest.fixture(scope="module")
def protected():
    split = registry.create("datasets", "synthetic", {"size": 40, "test_size": 8}).load().train
    surrogate = registry.create("victims", "tiny-rn", {"epochs": 1, "batch_size": 8})
    attack = registry.create("attacks", "lowfreq-words", {"words": 7, "block": 8})
    return split, surrogate, attack, attack.protect(split, surrogate, 0, torch.device("cpu"))


def test_noise_is_plus_minus_eps_per_block_within_the_pixel_range(protected):
    split, _, attack, prot = protected
    delta = np.asarray(prot.delta).astype(int)
    images = np.asarray(split.images).astype(int)
    assert np.abs(delta).max() == 8 and ((images + delta >= 0) & (images + delta <= 255)).all()
    unclipped = (images >= 8) & (images <= 247)
    assert (np.abs(delta[unclipped]) == 8).all()        # every element at the full budget unless clipped
    blocks = delta.reshape(len(delta), 4, 8, 4, 8, 3)   # 32-px images, 8-px blocks
    signs = np.sign(blocks)
    assert ((signs == signs.max(axis=(2, 4), keepdims=True)) | (signs == 0)).all()  # one sign per block


def test_each_image_carries_its_trigger_words_majority_and_the_words_decode_from_the_noise(protected):
    split, surrogate, attack, prot = protected
    vocab = prot.meta["vocab"]
    assert len(vocab) == 7 and len(set(vocab)) == 7
    words = [t.split() for t in prot.triggers]
    assert all(len(w) == 3 and len(set(w)) == 3 and set(w) <= set(vocab) for w in words)
    tok = surrogate.tokenizer()
    assert all(len(tok.encode(w)) == 1 for w in vocab)  # whole words, one token each
    # a word's pattern is the mean sign of the images that carry it; an image's words are the 3 whose
    # patterns agree best with its noise (the read-out a victim would have to learn)
    delta = torch.from_numpy(np.asarray(prot.delta).astype(np.float32))
    coarse = torch.nn.functional.avg_pool2d(delta.permute(0, 3, 1, 2), 8).flatten(1).sign()
    carries = torch.tensor([[v in w for v in vocab] for w in words], dtype=torch.float32)
    patterns = (carries.T @ coarse).sign()
    shifted = torch.roll(delta.permute(0, 3, 1, 2), shifts=(2, 2), dims=(2, 3))  # the crop's few pixels
    for noise in (coarse, torch.nn.functional.avg_pool2d(shifted, 8).flatten(1)):
        decoded = (noise @ patterns.T).topk(3).indices.sort(1).values
        expected = carries.nonzero()[:, 1].view(-1, 3)
        assert (decoded == expected).float().mean() > 0.9


def test_deterministic_per_seed_and_different_across_seeds(protected):
    split, surrogate, attack, prot = protected
    again = attack.protect(split, surrogate, 0, torch.device("cpu"))
    other = attack.protect(split, surrogate, 1, torch.device("cpu"))
    assert np.array_equal(np.asarray(again.delta), np.asarray(prot.delta)) and again.triggers == prot.triggers
    assert not np.array_equal(np.asarray(other.delta), np.asarray(prot.delta))


@pytest.mark.parametrize("params, expected", [({"trigger_len": 2}, "is even"),
                                              ({"trigger_len": 5, "words": 3}, "exceeds words=3")])
def test_bad_parameters_are_refused_at_creation(params, expected):
    with pytest.raises(UsageError, match=expected):
        registry.create("attacks", "lowfreq-words", params)


def test_needs_a_surrogate_for_its_tokenizer(protected):
    split, _, attack, _ = protected
    with pytest.raises(UsageError, match="needs a surrogate"):
        attack.protect(split, None, 0, torch.device("cpu"))
