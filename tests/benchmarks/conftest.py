"""Benchmarks marked ``slow`` (minutes of CPU, or a large dataset) are skipped unless selected with
``-m slow``, so that the default ``python -m pytest`` stays quick."""

import pytest


def pytest_collection_modifyitems(config, items):
    if "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="slow benchmark: run with -m slow --benchmark-enable -s")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
