"""The attack plugin interface (family ``ue_bench.attacks``).

An attack sees the clean train split, a surrogate victim (to build and train itself, if it needs one),
a seed and a device, and returns a :class:`~ue_bench.protection.Protection`. Its budget is its ``eps``
parameter in pixel units out of 255 (``eps=8`` means 8/255); the harness enforces it.

Contract (checked by the harness on every protection, :func:`ue_bench.protection.verify`, and by the
conformance checks of :mod:`ue_bench.testing`):

* ``delta``: an integer array ``[N, H, W, 3]`` (N, H, W of the split) in pixel units with
  ``|delta| <= eps`` everywhere, no NaN; or None for attacks that leave images alone. Int16 is the
  stored dtype. What is published is ``clip(image + delta, 0, 255)`` as uint8.
* ``triggers``: None, or one string per image, a clean text prefix (no surrounding whitespace, no
  newline) that survives the surrogate tokenizer's encode → decode → encode unchanged.
* The same seed on the same device gives the same protection (bit for bit).
* Errors: :class:`~ue_bench.errors.UsageError` for a configuration the attack cannot honour (e.g. no
  surrogate where one is needed); anything else marks the cell failed with its traceback.
"""

from __future__ import annotations

import abc

import torch

from ue_bench.data import PairSplit
from ue_bench.protection import Protection
from ue_bench.plugin import Plugin


class Attack(Plugin, abc.ABC):
    """Base class of attacks; subclasses implement :meth:`protect`."""

    #: False for attacks that never look at a model, so the harness need not vary the surrogate.
    uses_surrogate: bool = True
    #: True only for the clean baseline, which has no poison ratio.
    is_clean: bool = False

    def trains_surrogate(self) -> bool:
        """Whether :meth:`protect` trains or runs the surrogate's model, so that its batch size and input
        resolution must fit the split, rather than reading only its tokenizer. Default: ``uses_surrogate``."""
        return self.uses_surrogate

    def budget(self) -> int:
        """L∞ budget in pixel units (0 for attacks without an ``eps`` parameter)."""
        return int(getattr(self.params, "eps", 0))

    def cost_steps(self, n_images: int) -> float | None:
        """Work in surrogate training-step equivalents (forward + backward of one surrogate batch),
        for ``--dry-run`` estimates, besides the clean training of :meth:`clean_surrogate_epochs`; None
        where an attack cannot say. Attacks without a model: 0."""
        return None if self.uses_surrogate else 0.0

    def clean_surrogate_epochs(self) -> int:
        """Epochs for which :meth:`protect` first trains its surrogate on the clean split with the
        surrogate's own recipe (TAP's and T2UE's frozen model, k-means pseudo-classes); ``--dry-run``
        counts them at the surrogate's batch size on top of :meth:`cost_steps`. Default: 0."""
        return 0

    @abc.abstractmethod
    def protect(self, split: PairSplit, surrogate, seed: int, device: torch.device) -> Protection:
        """The protection of ``split``; deterministic for a given seed on a given device."""
