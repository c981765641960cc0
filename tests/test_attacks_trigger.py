"""Triggers survive the published form: vocabulary, token assembly and the MEM output."""

import numpy as np
import pytest
import torch

from ue_bench import registry
from ue_bench.attacks._trigger import trigger_text, trigger_vocab, with_trigger
from ue_bench.data import PairSplit
from ue_bench.protection import publish, trigger_round_trips, verify
from ue_bench.engine.training import tokenize_captions


@pytest.fixture(scope="module")
def tokenizer():
    return registry.create("victims", "tiny-rn").tokenizer()


@pytest.fixture(scope="module")
def vocab(tokenizer):
    return trigger_vocab(tokenizer)


def test_vocab_is_whole_words_that_round_trip(tokenizer, vocab):
    assert len(vocab) > 10000
    assert tokenizer.sot_token_id not in vocab and tokenizer.eot_token_id not in vocab
    g = torch.Generator().manual_seed(0)
    for ids in vocab[torch.randint(len(vocab), (200, 3), generator=g)]:
        text = trigger_text(tokenizer, ids)
        assert trigger_round_trips(tokenizer, text)
        assert tokenizer.encode(text) == ids.tolist()


def test_with_trigger_equals_tokenising_the_published_caption(tokenizer, vocab):
    caps = [["a red circle"], ["a very " + "long " * 40 + "caption"], ["x"]]
    tokens, _, _ = tokenize_captions(tokenizer, caps)
    trig = vocab[torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]]) * 997 % len(vocab)]
    built = with_trigger(tokens, trig, tokenizer.eot_token_id)
    texts = [f"{trigger_text(tokenizer, t)} {c[0]}" for t, c in zip(trig, caps)]
    assert torch.equal(built, tokenizer(texts))


@pytest.mark.parametrize("name, extra", [("mem", {}), ("mem-patterns", {"novel_words": True, "words": 4})])
def test_mem_triggers_pass_the_harness_check_and_publish(tokenizer, name, extra):
    rng = np.random.default_rng(0)
    split = PairSplit(rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8),
                      [[f"a {c} shape", f"the {c} thing"] for c in ["red", "blue", "green"] * 4])
    attack = registry.create("attacks", name, {"outer_iters": 2, "surrogate_steps": 1, "pgd_steps": 1,
                                                "hotflip_iters": 1, "candidates": 4, "batch_size": 6, **extra})
    prot = attack.protect(split, registry.create("victims", "tiny-rn"), 0, torch.device("cpu"))
    verify(name, prot, split, attack.budget(), tokenizer)
    assert all(len(t.split()) == 3 for t in prot.triggers)
    published = publish(split, prot)
    assert published.captions[0][1].startswith(prot.triggers[0] + " ")
    words = {w for t in prot.triggers for w in t.split()}
    if extra:
        assert len(words) <= 4
        assert not words & {w for caps in split.captions for c in caps for w in c.split()}
