"""EM (error-minimising noise, Huang et al. 2021) adapted to image–caption pairs, the MEM paper's baseline.

As the MEM reference's ``src/poison_mm.py`` computes it: the min–min loop of :mod:`._minmin` with each
image's own caption as the positive, no trigger and no caption shuffling (its ``paper`` preset: the
reference's 5 outer iterations of 50 surrogate steps). It departs from the reference where MEM does,
fixing the same defects: one integer noise per image (not per caption row, in normalised float space),
surrogate gradients zeroed every step.
"""

from ._minmin import MinMinAttack


class EM(MinMinAttack):
    """EM: sample-wise error-minimising image noise, min–min against a surrogate, caption as the positive.

    Returns a memory-mapped int8 delta ``[N, H, W, 3]`` within ±``eps`` pixel units (out of 255) and no
    trigger. Raises :class:`~ue_bench.errors.UsageError` without a surrogate.
    """

    version = "1"
    presets = {
        "tiny": {"outer_iters": 1, "surrogate_steps": 2, "pgd_steps": 2, "batch_size": 16},
        # the reference's EM (src/poison_mm.py): 5 outer iterations of 50 surrogate steps, 8 PGD steps of
        # 1/255 within 8/255, batch 128, surrogate AdamW 1e-4 (MinMinParams' default)
        "paper": {"eps": 8, "step": 1, "pgd_steps": 8, "outer_iters": 5, "surrogate_steps": 50, "batch_size": 128},
    }
