"""Pseudo-class-wise MEM: the MEM reference's class-wise variant (thinwayliu/Multimodal-Unlearnable-Examples,
``src/poison_class.py``), one image noise and one text trigger per pseudo-class, shared by its images.

A noise pattern repeated over many images is the kind of shortcut that survives augmentation for
classifiers (class-wise error-minimising noise, Huang et al., ICLR 2021); image–caption pairs have no
classes, so the reference draws pseudo-classes at random (``torch.randint(class_num)``, ``--class_num``
1000) and keeps MEM's loop: surrogate steps on the published pairs, HotFlip on the class triggers in the
first 5 outer iterations (8 candidates), 8 PGD steps of 1/255 within 8/255. The ``paper`` preset is that.
``grouping=kmeans`` (the default) clusters a clean-trained surrogate's image features instead, as
``synthetic`` does, so a class's images look alike and its noise goes with what their captions say.

Where ue-bench departs from the reference: a class's noise is one variable whose PGD step is the sign of
its images' summed gradient (the reference runs PGD per image from the class's noise and keeps whichever
image of the class came last in the batch); PGD pairs each image with its own caption and trigger and
``shuffle`` defaults to off (the reference's shuffle is commented out in this script); and MEM's fixes
(published whole-word triggers after the start token, integer noise per image within ±eps, surrogate
gradients zeroed every step; ``mem``'s docstring). A class's trigger is the one its last image in the
batch got from HotFlip, as in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

from ue_bench import param

from ._pseudo_classes import clean_epochs, pseudo_classes
from .mem import MEM, MEMParams


@dataclass(frozen=True)
class MEMClasswiseParams(MEMParams):
    """MEM's parameters (``shuffle`` off, as the reference's class-wise script) plus the pseudo-classes'."""

    shuffle: bool = param(False, help="during PGD, pair each image with a random batch caption carrying its own "
                                      "trigger, redrawn every step (off in the reference's class-wise script)")
    groups: int = param(10, lo=1, hi=100000, help="number of pseudo-classes, one noise and one trigger each "
                                                  "(the reference's --class_num: 1000)")
    grouping: str = param("kmeans", choices=("kmeans", "random"),
                          help="kmeans on clean-trained surrogate image features, or random groups (the reference)")
    surrogate_epochs: int = param(5, lo=1, hi=10000, help="clean-training epochs of the surrogate whose features "
                                                          "are clustered (kmeans only)")
    kmeans_iters: int = param(30, lo=1, hi=10000, help="Lloyd iterations (upper bound; stops when assignments settle)")


class MEMClasswise(MEM):
    """Pseudo-class-wise MEM: one error-minimising noise and one HotFlip trigger per pseudo-class.

    Returns a memory-mapped int8 delta ``[N, H, W, 3]`` within ±``eps`` pixel units (out of 255), the
    same noise for every image of a pseudo-class (each clipped to its own pixel range), and one trigger
    of ``trigger_len`` words per pseudo-class, prefixed to the captions of its images. Raises
    :class:`~ue_bench.errors.UsageError` without a surrogate.
    """

    Params = MEMClasswiseParams
    version = "1"
    presets = {
        "tiny": {**MEM.presets["tiny"], "groups": 4, "surrogate_epochs": 1},
        # src/poison_class.py with src/parser.py's defaults: 1000 random pseudo-classes, 20 outer iterations of
        # 200 surrogate steps at AdamW 1e-4, triggers updated in the first 5 with 8 HotFlip candidates, 8 PGD
        # steps of 1/255 within 8/255, batch 128, 3 trigger tokens, no caption shuffle in PGD
        "paper": {**MEM.presets["paper"], "candidates": 8, "shuffle": False, "groups": 1000, "grouping": "random"},
    }

    def pseudo_classes(self, split, surrogate, seed, device, gen):
        return pseudo_classes(self.name, split, surrogate, self.params, seed, device, gen)

    def clean_surrogate_epochs(self) -> int:
        return clean_epochs(self.params)
