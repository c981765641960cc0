"""A third-party plugin is found through its distribution's entry points, never by importing it."""

import os
import subprocess
import sys
import textwrap

PLUGIN = '''
from dataclasses import dataclass

from ue_bench.attack import Attack
from ue_bench.params import param
from ue_bench.protection import Protection


@dataclass(frozen=True)
class Params:
    strength: int = param(2, lo=0, hi=8, help="pixel amplitude")


class Zeros(Attack):
    """Demo attack from an external package."""

    Params = Params
    uses_surrogate = False

    def protect(self, split, surrogate, seed, device):
        return Protection()
'''


def make_distribution(root):
    """What ``pip install`` of a package declaring the entry point leaves in site-packages."""
    pkg = root / "ue_bench_demo_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    dist = root / "ue_bench_demo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ue-bench-demo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ue_bench.attacks]\nzeros = ue_bench_demo_plugin:Zeros\n")


def run_cli(root, *args):
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-m", "ue_bench.cli", *args], env=env, capture_output=True, text=True)


def test_external_plugin_is_listed_with_its_parameters(tmp_path):
    make_distribution(tmp_path)
    out = run_cli(tmp_path, "list", "attacks", "-v")
    assert out.returncode == 0, out.stderr
    assert "zeros" in out.stdout and "Demo attack from an external package.  [ue-bench-demo-plugin 0.1]" in out.stdout
    assert "strength: int = 2 [0, 8]" in out.stdout
    mem = next(line for line in out.stdout.splitlines() if line.strip().startswith("mem "))
    assert "[" not in mem  # a built-in plugin names no package


def test_without_the_distribution_it_is_unknown(tmp_path):
    out = run_cli(tmp_path, "list", "attacks")
    assert out.returncode == 0 and "zeros" not in out.stdout
