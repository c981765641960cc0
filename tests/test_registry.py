"""The registry, parameter parsing and bounds: what every plugin family stands on."""

from dataclasses import dataclass

import pytest

from ue_bench import registry
from ue_bench.errors import UsageError
from ue_bench.params import build_params, param, parse_specs


@dataclass(frozen=True)
class P:
    eps: int = param(8, lo=0, hi=32)
    step: float = param(1.0, lo=0.0)
    shuffle: bool = param(True)
    mode: str = param("kmeans", choices=("kmeans", "random"))
    init: str | None = param(None)


def test_parse_specs_splits_plugins_and_parameters():
    assert parse_specs("mem:trigger_len=5,eps=8,em,jpeg:quality=10", "--attacks") == [
        ("mem", {"trigger_len": "5", "eps": "8"}), ("em", {}), ("jpeg", {"quality": "10"})]
    assert parse_specs("csv:data/pairs.csv,image_key=filepath", "--dataset") == [
        ("csv", {"": "data/pairs.csv", "image_key": "filepath"})]


@pytest.mark.parametrize("text", ["eps=3", "mem,,em", ""])
def test_parse_specs_rejects_malformed(text):
    with pytest.raises(UsageError):
        parse_specs(text, "--attacks")


def test_build_params_coerces_types():
    p = build_params("attack 'x'", P, {"eps": "4", "step": "0.5", "shuffle": "off", "mode": "random", "init": "none"})
    assert (p.eps, p.step, p.shuffle, p.mode, p.init) == (4, 0.5, False, "random", None)


@pytest.mark.parametrize("values, message", [
    ({"eps": "33"}, "out of bounds"),
    ({"eps": "-1"}, "out of bounds"),
    ({"eps": "2.5"}, "expects int"),
    ({"shuffle": "maybe"}, "expects bool"),
    ({"mode": "spectral"}, "must be one of"),
    ({"epz": "3"}, r"unknown parameter 'epz' \(did you mean 'eps'\?\); known parameters: eps, step"),
    ({"qqq": "3"}, r"unknown parameter 'qqq'; known parameters: eps"),
])
def test_build_params_rejects_bad_values(values, message):
    with pytest.raises(UsageError, match=message):
        build_params("attack 'x'", P, values)


def test_builtins_are_registered_through_entry_points():
    assert {"tiny-rn", "tiny-vit", "rn50", "rn101", "vitb32"} <= set(registry.names("victims"))
    assert "synthetic" in registry.names("datasets")
    assert "none" in registry.names("attacks")


def test_unknown_name_lists_known_and_suggests_nearest():
    with pytest.raises(UsageError) as err:
        registry.get("victims", "tiny-rm")
    text = str(err.value)
    assert "did you mean 'tiny-rn'" in text and "tiny-vit" in text


def test_a_parameter_of_another_plugin_names_the_plugins_that_have_it():
    """``mem:blok=4``: mem has nothing near 'blok', so the error says which attacks take 'block'."""
    with pytest.raises(UsageError) as err:
        registry.create("attacks", "mem", {"blok": "4"})
    text = str(err.value)
    owners = text.rsplit("; 'block' is a parameter of ", 1)[1].split(", ")
    assert {"lowfreq-words", "mem-classwise-lowfreq", "mem-ensemble", "mem-lowfreq"} <= set(owners)
    assert "mem" not in owners and "em" not in owners
    with pytest.raises(UsageError) as err:   # a near name of its own wins: no other plugin is named
        registry.create("attacks", "mem", {"trigger_lne": "2"})
    assert "did you mean 'trigger_len'" in str(err.value) and "is a parameter of" not in str(err.value)
    with pytest.raises(UsageError) as err:
        registry.create("attacks", "mem", {"qqqqq": "2"})
    assert "is a parameter of" not in str(err.value)


def test_create_applies_parameters_and_labels_changes_only():
    vic = registry.create("victims", "tiny-rn", {"epochs": "3"})
    assert vic.params.epochs == 3 and vic.label() == "tiny-rn:epochs=3"
    assert registry.create("victims", "tiny-rn").label() == "tiny-rn"
    with pytest.raises(UsageError, match="out of bounds"):
        registry.create("victims", "tiny-rn", {"epochs": "0"})


def test_paper_presets_follow_the_mem_protocol():
    rn50 = registry.create("victims", "rn50")
    assert (rn50.params.epochs, rn50.params.batch_size, rn50.params.lr, rn50.params.weight_decay) == (32, 128, 5e-4, 0.2)
