"""``mem-lowfreq`` against an ensemble of independently initialised surrogates.

A research variant for issue 27's search (a protection that survives open_clip's trainer), not a paper's
attack. Under the threat model the data owner never knows the victim's initial weights, and the
measurements say that this is what defeats MEM on a same-architecture victim: with the victim starting
from the surrogate's own weights MEM left tiny-rn at .16–.20× of clean i2t R@1 (fixed view), with its
own initialisation at .92–.94× (``docs/results/2026-12-03/threat-model``). Noise that works for one
initialisation overfits to it; averaging the attack's loss over an ensemble of models is the standard
way to make an adversarial perturbation transfer to a model it cannot see (Liu et al., "Delving into
Transferable Adversarial Examples and Black-box Attacks", ICLR 2017, arXiv 1611.02770). Here the
ensemble is ``surrogates`` copies of the surrogate architecture, each from its own seeded
initialisation (members 0, 1, … of the ``surrogate-init`` role, :func:`~ue_bench.seeds.role_seed`:
all of the attacker's own drawing, none the victim's), each trained by the min–min loop on the same
published batches; PGD minimises the mean of their EOT losses and HotFlip asks one surrogate per batch,
in turn. Everything else is ``mem-lowfreq``'s (block noise, EOT over resize-crops, triggers);
``surrogates=1`` is ``mem-lowfreq`` bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

from ue_bench import param

from .mem_lowfreq import MEMLowFreq, MEMLowFreqParams


@dataclass(frozen=True)
class MEMEnsembleParams(MEMLowFreqParams):
    """``mem-lowfreq``'s parameters plus the size of the surrogate ensemble."""

    surrogates: int = param(3, lo=1, hi=16, help="independently initialised surrogates trained side by side; "
                                                 "PGD minimises the mean of their losses (1: mem-lowfreq)")


class MEMEnsemble(MEMLowFreq):
    """``mem-lowfreq`` against an ensemble of independently initialised surrogates (research variant).

    PGD minimises the mean of the losses of ``surrogates`` of them.

    Returns what ``mem`` returns: a memory-mapped int8 delta ``[N, H, W, 3]`` within ±``eps`` pixel units
    (out of 255) and one trigger of ``trigger_len`` words per image; its meta records every surrogate's
    initial-weights hash (``surrogate_inits_sha256``). The surrogate steps and PGD cost ``surrogates``
    times ``mem-lowfreq``'s, HotFlip the same. Raises :class:`~ue_bench.errors.UsageError` without a
    surrogate.
    """

    Params = MEMEnsembleParams
    version = "1"
    presets = {"tiny": {**MEMLowFreq.presets["tiny"], "surrogates": 2}}

    def surrogate_count(self) -> int:
        return self.params.surrogates
