"""Every registered plugin, per family, against its family's contract (``ue_bench.testing``).

The plugins are listed from the registry when the tests are collected, so a new built-in (one module
plus one entry point) or a plugin registered in-process is tested with no edit here.
"""

import pytest
from buggy_attack import BuggyAttack

from ue_bench import registry
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


@pytest.fixture
def shift():
    registry.register("attacks", "throwaway-shift", BuggyAttack)
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
    ({"trigger": "zebra"}, "triggers-checkable", "run and protect refuse it (set uses_surrogate = True)"),
    ({"clean_epochs": -1}, "cost-estimates", "clean_surrogate_epochs gave -1, expected an int >= 0"),
])
def test_a_broken_attack_fails_the_named_check_with_the_first_bad_sample(shift, params, check, detail):
    failed = [c for c in check_plugin("attacks", shift, params) if not c.passed]
    assert failed and failed[0].name == check and detail in failed[0].detail
    assert failed[0].line().startswith(f"FAIL attacks:{shift} {check}: ")


def test_the_registry_refuses_a_class_of_another_family(shift):
    from ue_bench.errors import UsageError
    with pytest.raises(UsageError, match="does not derive from ue_bench.defense.Defense .it is a Attack"):
        registry.register("defenses", "wrong-family", BuggyAttack)


def failed_defense_checks(cls) -> list:
    """The conformance checks that defense class ``cls`` fails, registered for the check only."""
    registry.register("defenses", "throwaway-defense", cls)
    try:
        return [c for c in check_plugin("defenses", "throwaway-defense") if not c.passed]
    finally:
        registry.unregister("defenses", "throwaway-defense")


def test_a_defense_whose_train_share_disagrees_with_its_selection_fails_the_selection_check():
    from ue_bench import Defense

    class Miscounting(Defense):
        """A defense that says the victim trains on one pair fewer than it does."""

        def train_share(self, split, seed):
            return len(split) - 1

    failed = failed_defense_checks(Miscounting)
    assert [c.name for c in failed] == ["selection"] and "train_share says" in failed[0].detail


def test_a_defense_with_a_negative_cost_estimate_fails_the_cost_check():
    from ue_bench import Defense

    class TimeTraveller(Defense):
        """A defense whose transform would finish before it started."""

        def transform_seconds(self, split):
            return -1.0

    failed = failed_defense_checks(TimeTraveller)
    assert [c.name for c in failed] == ["cost-estimates"] and "transform_seconds gave -1.0" in failed[0].detail
