"""EM (error-minimising noise, Huang et al. 2021) adapted to image–caption pairs, the MEM paper's baseline."""

from ._minmin import MinMinAttack


class EM(MinMinAttack):
    """EM: sample-wise error-minimising image noise, min–min against a surrogate, caption as the positive."""

    version = "1"
