"""The package layout: the README's layout section matches the tree, the import graph has no loop, no
sub-package imports the CLI, and the built-in plugins import only what docs/plugins.md allows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ue_bench"
PLUGIN_FOLDERS = ("attacks", "victims", "defenses", "datasets", "reports")
#: What docs/plugins.md allows a plugin to import from ue-bench (besides its own folder).
PLUGIN_MAY_IMPORT = {"ue_bench", "ue_bench.testing", "ue_bench.engine.device", "ue_bench.engine.images",
                     "ue_bench.engine.training", "ue_bench.engine.views", "ue_bench.engine.pixel_box"}
MAX_TOP_LEVEL = 16


def layout_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Layout\n"):]
    return section[section.index("```\n") + 4:section.index("\n```", section.index("```\n") + 4)].splitlines()


def listed() -> tuple[set[str], dict[str, set[str]], set[str]]:
    """The README's top-level modules, each sub-package's modules, and the plugin folders it names."""
    top, subs, plugins = set(), {}, set()
    for line in layout_block():
        sub = re.match(r"^  (\w+)/\s+(.*)$", line)
        if sub and sub.group(1) not in PLUGIN_FOLDERS and sub.group(1) != "presets":
            subs[sub.group(1)] = set(re.findall(r"\b\w+\.py\b", sub.group(2)))
        elif line.startswith("  ") and re.match(r"^  \w+\.py\b", line):
            top |= set(re.findall(r"\b\w+\.py\b", line))
        if re.match(r"^  attacks/", line):
            plugins = set(re.findall(r"(\w+)/", line))
    return top, subs, plugins


def test_the_readme_layout_matches_the_tree():
    top, subs, plugins = listed()
    assert top == {p.name for p in PKG.glob("*.py")}
    assert len(top) <= MAX_TOP_LEVEL
    tree = {d.name for d in PKG.iterdir() if (d / "__init__.py").exists() and d.name not in PLUGIN_FOLDERS}
    assert set(subs) == tree
    for name, modules in subs.items():
        on_disk = {p.name for p in (PKG / name).glob("*.py")} - {"__init__.py"}  # a package docstring
        assert modules - {"__init__.py"} == on_disk, name
    assert plugins == set(PLUGIN_FOLDERS) and all((PKG / f / "__init__.py").exists() for f in PLUGIN_FOLDERS)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module_level: bool) -> set[str]:
    """The ue_bench modules ``path`` imports (relative imports resolved); with ``module_level``, only
    those run on import (not inside functions, nor under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = []

    def visit(body):
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                nodes.append(node)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            elif isinstance(node, (ast.If, ast.Try, ast.With)) or not module_level:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.stmt):
                        visit([child])
    visit(tree.body)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
            continue
        base = node.module or ""
        if node.level:
            parent = package.split(".")[:len(package.split(".")) - node.level + 1]
            base = ".".join(parent + ([node.module] if node.module else []))
        found.add(base)
        for a in node.names:  # ``from ue_bench.x import y`` where y is a module
            if (ROOT / (base + "." + a.name).replace(".", "/")).with_suffix(".py").exists() or \
                    (ROOT / (base + "." + a.name).replace(".", "/") / "__init__.py").exists():
                found.add(f"{base}.{a.name}")
    return {m for m in found if m == "ue_bench" or m.startswith("ue_bench.")}


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def test_no_import_loop():
    graph = {m: imports(p, module_level=True) for m, p in modules().items()}
    state: dict[str, int] = {}

    def walk(m, trail):
        if state.get(m) == 1:
            raise AssertionError("import loop: " + " -> ".join(trail[trail.index(m):] + [m]))
        if state.get(m) == 2 or m not in graph:
            return
        state[m] = 1
        for n in sorted(graph[m]):
            walk(n, trail + [m])
        state[m] = 2
    for m in sorted(graph):
        walk(m, [])
    assert state and all(v == 2 for v in state.values())


def test_no_module_outside_the_cli_imports_it():
    offenders = {m: sorted(i for i in imports(p, module_level=False) if i.startswith("ue_bench.cli"))
                 for m, p in modules().items() if not m.startswith("ue_bench.cli")}
    assert {m: i for m, i in offenders.items() if i} == {}


def test_builtin_plugins_import_only_the_plugin_api():
    seen = set()
    for m, p in modules().items():
        folder = m.split(".")[1] if m.count(".") >= 1 else ""
        if folder not in PLUGIN_FOLDERS:
            continue
        allowed = PLUGIN_MAY_IMPORT | {f"ue_bench.{folder}"}
        used = {i for i in imports(p, module_level=False) if not i.startswith(f"ue_bench.{folder}.")}
        seen |= used
        assert used <= allowed, (m, sorted(used - allowed))
    assert "ue_bench" in seen  # the rule is about imports that exist


def test_the_plugin_api_names_what_it_exports():
    import ue_bench
    missing = [n for n in ue_bench.__all__ if not hasattr(ue_bench, n)]
    assert missing == [] and len(set(ue_bench.__all__)) == len(ue_bench.__all__)
