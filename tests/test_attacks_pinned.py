"""Regression pins: min–min protections on the tiny preset are bit-identical to those of the commit that
re-pinned them (2026-12-03, the threat-model issue).

Re-pinned, with the reasons, on 2026-12-03: the surrogate's initial weights are drawn from its own role
seed (``ue_bench.seeds``) instead of the cell seed a victim also used (every pin), and MEM's loop follows
the reference (batch-shared HotFlip rank, HotFlip scored on each image's own caption, PGD's caption
shuffle redrawn every step, 5 trigger iterations; the MEM pins). The pins before (17d5e42) are in git.
Computed on CPU with one thread, torch 2.14.1, on this workplace's AMD EPYC machines (where the pins of
17d5e42 already failed for mem and patterns-share at 7d27efd); a different CPU, BLAS or torch build may
round differently, so a mismatch on another platform means "check", not "broken". On this platform a mismatch means a change
altered what the attacks publish.

Per platform (:mod:`cpu_platform`): on 2026-12-07 this workplace lent an Intel Xeon (AVX512) machine, where
b7f5738 (the commit before that day's changes) and the code of that day publish the same protections side by
side, equal to the AMD pins except for ``mem`` and ``mem-eot``: those two have an Intel pin of their own
(:data:`PLATFORM_PINS`). Elsewhere the AMD pins apply.
"""

import pytest
import torch

from cpu_platform import PLATFORM
from ue_bench import registry

TINY_MEM = registry.get("attacks", "mem").presets["tiny"]  # the tiny preset's MEM values

PINNED = [
    ("mem", TINY_MEM, "6162f8abf9a74bef973723482cbe2d3dbb0f1bed1932a431d47f3c73f40195f8"),
    ("em", registry.get("attacks", "em").presets["tiny"],
     "5c78816dbb6337865c93685dead2466a7c98c9a6477ed48c7df1a932ff8b5469"),
    ("mem-patterns", {**TINY_MEM, "patterns": 8, "pattern_words": 3, "pattern_layout": "split",
                      "pattern_share": 0.75, "pattern_vocab": 8},
     "52dbfd4a60451283c8c86199e7e32e5808a748dde9d65a7a868c7a3211264b0b"),
    ("mem-patterns", {**TINY_MEM, "patterns": 6}, "23f2320f7788fe37d50744fdcb0fd6d475a71912de02792007c8c6deaa5f1142"),
    # pinned on 2026-12-06 from fe57d4d, before the min-min loop took a list of surrogates (mem-ensemble):
    # the EOT views' and REM's adversary's paths through the loop
    ("mem-eot", TINY_MEM, "7cc148d20b503d44070cd5b2338ebfba9359498374d2814fc7a74deddb74d7c4"),
    ("rem", registry.get("attacks", "rem").presets["tiny"],
     "471f20970e5502b494fb9cb36e73544e8715af875c15c2eb89c95c8d55def58a"),
]


#: Fingerprints that differ on a platform, by the id of the pin they replace there.
PLATFORM_PINS = {
    "GenuineIntel AVX512": {"mem": "0d609396d334f218a4c2d9b1aa725aa6b752c75b818c7ecc8c74118a3d053132",
                            "mem-eot": "11300f160c246959e9275c37ebc973f3d9b0e664f55d6748011d7894298be4ba"},
}
IDS = ["mem", "em", "patterns-share", "patterns", "mem-eot", "rem"]


def pinned(pin_id: str) -> str:
    """This platform's fingerprint of the pin ``pin_id`` (one of :data:`IDS`)."""
    return PLATFORM_PINS.get(PLATFORM, {}).get(pin_id, PINNED[IDS.index(pin_id)][2])


@pytest.fixture(scope="module")
def split():
    return registry.create("datasets", "synthetic", {"size": 64, "test_size": 16}).load().train


@pytest.mark.parametrize("pin_id, name, params", [(i, n, p) for i, (n, p, _) in zip(IDS, PINNED)], ids=IDS)
def test_protection_matches_the_pinned_fingerprint(split, pin_id, name, params):
    torch.set_num_threads(1)
    surrogate = registry.create("victims", "tiny-rn", {"epochs": 2, "batch_size": 16})
    prot = registry.create("attacks", name, params).protect(split, surrogate, 0, torch.device("cpu"))
    assert prot.fingerprint() == pinned(pin_id), PLATFORM
