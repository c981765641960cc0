"""Every registered plugin, per family, against its family's contract (``ue_bench.testing``).

The plugins are listed from the registry when the tests are collected, so a new built-in (one module
plus one entry point) or a plugin registered in-process is tested with no edit here.
"""

from dataclasses import dataclass

import numpy as np
import pytest

from ue_bench import registry
from ue_bench.attack import Attack
from ue_bench.params import param
from ue_bench.protection import Protection
from ue_bench.testing import CHECKERS, assert_conforms, check_plugin

PLUGINS = [(family, name) for family in registry.FAMILIES for name in registry.usable(family)]


@pytest.mark.parametrize("family, name", PLUGINS, ids=[f"{f}:{n}" for f, n in PLUGINS])
def test_plugin_conforms(family, name):
    checks = check_plugin(family, name)
    assert checks and all(c.plugin == f"{family}:{name}" for c in checks)
    assert_conforms(checks)


def test_every_family_has_a_checker_and_no_builtin_is_broken():
    assert set(CHECKERS) == set(registry.FAMILIES)
    assert [b.error for f in registry.FAMILIES for b in registry.broken(f)] == []


@dataclass(frozen=True)
class ShiftParams:
    eps: int = param(4, lo=0, hi=32, help="L∞ budget, pixel units out of 255")
    overshoot: int = param(0, lo=0, hi=8, help="pixels by which sample 3 leaves the budget (a bug, for the test)")
    nan: bool = param(False, help="put NaN into sample 5's delta (a bug, for the test)")
    trigger: str = param("", help="a trigger for every image ('' for none)")


class Shift(Attack):
    """Throwaway attack: a seeded ±eps sign pattern per image."""

    Params = ShiftParams
    uses_surrogate = False

    def protect(self, split, surrogate, seed, device):
        rng = np.random.default_rng(seed)
        delta = (rng.choice([-1, 1], split.images.shape) * self.params.eps).astype(np.int16)
        delta[3] += np.int16(self.params.overshoot)
        if self.params.nan:
            delta = delta.astype(np.float32)
            delta[5, 0, 0, 0] = np.nan
        triggers = [self.params.trigger] * len(split) if self.params.trigger else None
        return Protection(delta=delta, triggers=triggers)


@pytest.fixture
def shift():
    registry.register("attacks", "throwaway-shift", Shift)
    yield "throwaway-shift"
    registry.unregister("attacks", "throwaway-shift")


def test_a_new_attack_is_listed_and_checked_without_any_other_edit(shift):
    assert shift in registry.usable("attacks")  # what PLUGINS above is built from
    checks = check_plugin("attacks", shift)
    assert_conforms(checks)
    assert {"budget", "triggers", "deterministic"} <= {c.name for c in checks}


@pytest.mark.parametrize("params, check, detail", [
    ({"overshoot": 2}, "budget", "sample 3 has L∞ 6 > budget 4/255"),
    ({"nan": True}, "delta-finite", "sample 5 has NaN/inf"),
    ({"trigger": "zq\nxv"}, "triggers", "sample 0 trigger 'zq\\nxv' is not a clean text prefix"),
])
def test_a_broken_attack_fails_the_named_check_with_the_first_bad_sample(shift, params, check, detail):
    failed = [c for c in check_plugin("attacks", shift, params) if not c.passed]
    assert failed and failed[0].name == check and detail in failed[0].detail
    assert failed[0].line().startswith(f"FAIL attacks:{shift} {check}: ")


def test_the_registry_refuses_a_class_of_another_family(shift):
    from ue_bench.errors import UsageError
    with pytest.raises(UsageError, match="does not derive from ue_bench.defense.Defense .it is a Attack"):
        registry.register("defenses", "wrong-family", Shift)
