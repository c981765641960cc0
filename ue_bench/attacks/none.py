"""The clean baseline: publish the data unchanged."""

from ue_bench import Attack, Protection


class NoAttack(Attack):
    """No protection: the clean reference every attack is compared with."""

    uses_surrogate = False
    is_clean = True

    def protect(self, split, surrogate, seed, device):
        return Protection(meta={"note": "clean"})
