"""EM (error-minimising noise, Huang et al. 2021) adapted to image–caption pairs, the MEM paper's baseline."""

from ._minmin import MinMinAttack


class EM(MinMinAttack):
    """EM: sample-wise error-minimising image noise, min–min against a surrogate, caption as the positive.

    Returns an int16 delta ``[N, H, W, 3]`` within ±``eps`` pixel units (out of 255) and no trigger.
    Raises :class:`~ue_bench.errors.UsageError` without a surrogate.
    """

    version = "1"
