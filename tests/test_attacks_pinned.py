"""Regression pins: min–min protections on the tiny preset are bit-identical to those of commit 17d5e42.

The fingerprints below were computed at 17d5e42 (before ``mem-patterns`` was split from ``mem``, where
the pattern settings were spelled ``mem:patterns=…``) on CPU with one thread, torch 2.x; a different
BLAS or torch build may round differently, so a mismatch on another platform means "check", not
"broken". On this platform a mismatch means the refactoring changed what the attacks publish.
"""

import pytest
import torch

from ue_bench import registry

TINY_MEM = registry.get("attacks", "mem").presets["tiny"]  # the tiny preset's MEM values

PINNED = [
    ("mem", TINY_MEM, "91e4f7018f024eb17b2341d4a412f1d96660ce885d31368a51b6ce949719c9b9"),
    ("em", registry.get("attacks", "em").presets["tiny"],
     "07900fa96bcda6a6f2b836150faef12c5e527a40d00fcbc95c223a5ca8f50db9"),
    ("mem-patterns", {**TINY_MEM, "patterns": 8, "pattern_words": 3, "pattern_layout": "split",
                      "pattern_share": 0.75, "pattern_vocab": 8},
     "fbb3a8620100954dbd37fcd1d35f141df5635e8dd4a86263583c72eb85bf088f"),
    ("mem-patterns", {**TINY_MEM, "patterns": 6}, "f420002d9541ef98beb4d23b1c9f5953790c6a3c9393a059735945c912385aee"),
]


@pytest.fixture(scope="module")
def split():
    return registry.create("datasets", "synthetic", {"size": 64, "test_size": 16}).load().train


@pytest.mark.parametrize("name, params, fingerprint", PINNED, ids=["mem", "em", "patterns-share", "patterns"])
def test_protection_matches_the_pinned_fingerprint(split, name, params, fingerprint):
    torch.set_num_threads(1)
    surrogate = registry.create("victims", "tiny-rn", {"epochs": 2, "batch_size": 16})
    prot = registry.create("attacks", name, params).protect(split, surrogate, 0, torch.device("cpu"))
    assert prot.fingerprint() == fingerprint
