"""The undefended baseline."""

from ue_bench import Defense


class NoDefense(Defense):
    """No defense: train on the published data as is."""

    is_baseline = True
