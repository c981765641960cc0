"""Plugin authoring end to end, as an author meets it (``docs/plugins.md``).

``ue-bench plugin new`` writes a package that pip installs and that passes ``ue-bench plugin check``
and its own test; its attack reaches a run's ``results.csv``. ``plugin check`` fails a bad attack
with the check and the first bad sample (exit 1). A plugin that raises on import is listed as BROKEN
and does not stop a run that does not use it. The out-of-tree example ``examples/ue-bench-ops`` runs
in a tiny matrix.

Packages are pip-installed into an *overlay* virtual environment that sees this interpreter's packages
(ue-bench included) through a ``.pth`` file, so the test environment itself is never changed; the
commands run in subprocesses of the overlay's interpreter.
"""

import csv
import importlib
import math
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from buggy_attack import BuggyAttack

from ue_bench import registry
from ue_bench.cli import main
from ue_bench.schema import METRIC_KEYS
from ue_bench.testing import assert_conforms, check_plugin

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ue-bench-ops"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


class Overlay:
    """A virtual environment whose interpreter also imports everything this one does."""

    def __init__(self, root: Path) -> None:
        venv.create(root, with_pip=False)
        self.python = str(root / "bin" / "python")
        site = self.run("-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
        parent = sysconfig.get_paths()["purelib"]
        Path(site, "test-environment.pth").write_text(f"import site; site.addsitedir({parent!r})\n")

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([self.python, *args], env=ENV, cwd=cwd, capture_output=True, text=True, timeout=300)

    def pip_install(self, *args: str) -> None:
        out = self.run("-m", "pip", "install", "-q", "--no-deps", *args)
        assert out.returncode == 0, out.stderr

    def cli(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return self.run("-m", "ue_bench.cli", *args, cwd=cwd)


@pytest.fixture(scope="module")
def overlay(tmp_path_factory):
    return Overlay(tmp_path_factory.mktemp("overlay") / "venv")


@pytest.fixture(scope="module")
def scaffolded(overlay, tmp_path_factory):
    """``plugin new attacks scaffold-demo``, then ``pip install -e`` of it into the overlay."""
    folder = tmp_path_factory.mktemp("author") / "ue-bench-scaffold-demo"
    assert main(["plugin", "new", "attacks", "scaffold-demo", "--dir", str(folder)]) == 0
    overlay.pip_install("-e", str(folder))
    return folder


def run_row(overlay: Overlay, tmp_path: Path, attack: str) -> dict:
    """The results.csv row of ``attack`` in ``ue-bench run --preset tiny --attacks attack``."""
    out = overlay.cli("run", "--preset", "tiny", "--attacks", attack, "--threads", "1",
                      "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "run" / "results.csv").open()))
    assert [r["attack"].split(":")[0] for r in rows] == [attack]  # the label adds non-default values
    return rows[0]


def assert_ok(row: dict) -> None:
    assert row["status"] == "ok" and not row["error"]
    assert all(math.isfinite(float(row[k])) for k in METRIC_KEYS), row


def test_a_scaffolded_attack_installs_and_passes_plugin_check(overlay, scaffolded):
    out = overlay.cli("plugin", "check", "scaffold-demo")
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(lines) > 5 and all(line.startswith("PASS attacks:scaffold-demo ") for line in lines[:-1]), lines
    assert "0 failed" in lines[-1]


def test_a_scaffolded_attack_passes_its_own_test(overlay, scaffolded):
    out = overlay.run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=scaffolded)
    assert out.returncode == 0 and "1 passed" in out.stdout, out.stdout + out.stderr


def test_a_scaffolded_attack_reaches_results_csv(overlay, scaffolded, tmp_path):
    assert_ok(run_row(overlay, tmp_path, "scaffold-demo"))


@pytest.mark.parametrize("family", registry.FAMILIES)
def test_plugin_new_writes_a_plugin_of_every_family_that_conforms(family, tmp_path, monkeypatch):
    name = f"scaffold-{family}"
    assert main(["plugin", "new", family, name, "--dir", str(tmp_path / "pkg")]) == 0
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    module = f"ue_bench_scaffold_{family}"
    entry = (tmp_path / "pkg" / "pyproject.toml").read_text().split(f'\n{name} = "{module}:')[1].split('"')[0]
    try:
        registry.register(family, name, getattr(importlib.import_module(module), entry))
        assert_conforms(check_plugin(family, name))
    finally:
        registry.unregister(family, name)
        sys.modules.pop(module, None)


@pytest.mark.parametrize("args, needle", [
    (["attack", "x"], "unknown plugin family 'attack'"),
    (["attacks", "My Attack"], "not a valid entry-point name"),
    (["attacks", "mem:eps=4"], "not a valid entry-point name"),
    (["attacks", "-x"], "not a valid entry-point name"),
    (["attacks", "mem"], "attack 'mem' already exists"),
    (["attacks", "fresh-name"], "already exists and is not an empty directory"),
])
def test_plugin_new_refuses_bad_input_in_one_line_writing_nothing(args, needle, tmp_path, capsys):
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "keep.txt").write_text("the author's file")
    target = folder if "directory" in needle else tmp_path / "new"
    assert main(["plugin", "new", *args[:1], "--dir", str(target), "--", *args[1:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ue-bench: error:") and needle in err[0], err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["keep.txt", "pkg"]


@pytest.mark.parametrize("param_, line", [
    ("overshoot=2", "FAIL attacks:bad-attack budget: sample 3 has L∞ 6 > budget 4/255"),
    ("nan=true", "FAIL attacks:bad-attack delta-finite: sample 5 has NaN/inf in its delta"),
    ("eps=4", None),
    ("trigger=zq\nxv", "FAIL attacks:bad-attack triggers: sample 0 trigger 'zq\\nxv' is not a clean text prefix"),
])
def test_plugin_check_fails_a_bad_attack_naming_the_check_and_sample(param_, line, capsys):
    registry.register("attacks", "bad-attack", BuggyAttack)
    try:
        code = main(["plugin", "check", "bad-attack", "--param", param_])
    finally:
        registry.unregister("attacks", "bad-attack")
    out = capsys.readouterr().out.strip().splitlines()
    if line is None:  # the control: without a bug the same attack passes
        assert code == 0 and all(o.startswith("PASS") for o in out[:-1]), out
        return
    assert code == 1 and line in out, out
    assert out[-1].startswith("attacks:bad-attack: ") and "1 failed" in out[-1]


def test_plugin_check_asks_for_the_family_of_an_ambiguous_name(capsys):
    assert main(["plugin", "check", "none"]) == 2
    err = capsys.readouterr().err
    assert "several families (attacks, defenses)" in err and "--family" in err
    assert main(["plugin", "check", "none", "--family", "defenses"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("PASS defenses:none ")


def exploding_distribution(root: Path) -> None:
    """What pip leaves for a package whose plugin module raises on import."""
    root.mkdir()
    (root / "ue_bench_exploding.py").write_text("raise RuntimeError('needs a GPU driver that is not here')\n")
    dist = root / "ue_bench_exploding-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ue-bench-exploding\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text("[ue_bench.attacks]\nexploding = ue_bench_exploding:Boom\n")


def test_a_plugin_that_raises_on_import_is_broken_and_harms_nothing_else(tmp_path, monkeypatch, capsys):
    exploding_distribution(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))  # entry points are read from sys.path at each call
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    line = next(x for x in listed.splitlines() if x.split()[:1] == ["exploding"])
    assert "BROKEN" in line and "ue-bench-exploding 0.3" in line
    assert "ue_bench.attacks:exploding -> ue_bench_exploding:Boom" in line
    assert "RuntimeError: needs a GPU driver that is not here" in line
    assert all(f"  {n} " in listed for n in ("mem", "random", "tiny-rn", "synthetic", "jpeg", "leaderboard"))
    assert main(["plugin", "check", "exploding"]) == 1
    assert capsys.readouterr().out.startswith("FAIL attacks:exploding loads: ")
    assert main(["run", "--preset", "tiny", "--threads", "1", "--out", str(tmp_path / "run"),
                 "--cache", str(tmp_path / "cache")]) == 0
    assert_ok(next(csv.DictReader((tmp_path / "run" / "results.csv").open())))


def test_the_example_package_runs_in_a_tiny_matrix(overlay, tmp_path):
    """CI installs examples/ue-bench-ops (.ci/run); a bare install of ue-bench gets it installed here."""
    if "ops" not in registry.names("attacks"):
        source = shutil.copytree(EXAMPLE, tmp_path / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
        overlay.pip_install(str(source))
    assert "ops" in overlay.cli("list", "attacks").stdout
    assert_ok(run_row(overlay, tmp_path, "ops"))


def test_the_guides_complete_example_conforms(tmp_path, monkeypatch):
    """docs/plugins.md's example, as written there (module and entry point), passes the checks."""
    guide = (EXAMPLE.parents[1] / "docs" / "plugins.md").read_text()
    code = guide.split("The module (`ue_bench_colour_shift/__init__.py`):\n\n```python\n")[1].split("```")[0]
    assert 'colour-shift = "ue_bench_colour_shift:ColourShift"' in guide
    (tmp_path / "ue_bench_colour_shift").mkdir()
    (tmp_path / "ue_bench_colour_shift" / "__init__.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry.register("attacks", "colour-shift", importlib.import_module("ue_bench_colour_shift").ColourShift)
        assert_conforms(check_plugin("attacks", "colour-shift"))
    finally:
        registry.unregister("attacks", "colour-shift")
        sys.modules.pop("ue_bench_colour_shift", None)
    assert "docs/plugins.md" in (EXAMPLE.parents[1] / "README.md").read_text()
