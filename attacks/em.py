"""EM (error-minimising noise, Huang et al. 2021) adapted to image–caption pairs, the MEM paper's baseline."""

from ._minmin import MinMinAttack


class EM(MinMinAttack):
    """EM: sample-wise error-minimising image noise, min–min against a surrogate, caption as the positive.

    Returns a memory-mapped int8 delta ``[N, H, W, 3]`` within ±``eps`` pixel units (out of 255) and no
    trigger. Raises :class:`~ue_bench.errors.UsageError` without a surrogate.
    """

    version = "1"
    presets = {
        "tiny": {"outer_iters": 1, "surrogate_steps": 2, "pgd_steps": 2, "batch_size": 16},
        # the reference implementation's settings, as MEM's
        "paper": {"eps": 8, "step": 1, "pgd_steps": 8, "outer_iters": 20, "surrogate_steps": 200, "batch_size": 128},
    }
