"""deltal's imports point down its layers and never run in a circle (docs/layers.md).

Read from the source with ``ast``, nothing imported: every ``import`` and ``from ... import`` of every module of the
package counts, at module level or inside a function (``TYPE_CHECKING`` blocks too), and so does
``importlib.import_module("<a literal name>")``. A circle that is only broken at run time by deferring one side's
import is still a circle here.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]

# Each part of the package and its layer; an import may point to its own layer or below, never up.
LAYERS: dict[str, int] = {
    # Foundations: the version pin, the option helpers every command line uses, the hydra config package.
    "deltal": 0,
    "deltal.cli": 0,
    "deltal.config": 0,
    # The flash-attn check: standard library and torch only, run by setup.sh and the launch scripts too.
    "deltal.attention_kernels": 0,
    # The core (pure tensors) and what sits beside it.
    "deltal.algorithm": 1,
    "deltal.rewards": 1,
    "deltal.data": 1,
    # Token sampling with a causal LM: the CPU rollout's engine, also the variance labs' and warm starts' sampler.
    "deltal.sampling": 1,
    # The verl adapter, and the CPU plumbing that only its plugin turns on.
    "deltal.verl_adapter": 2,
    "deltal.cpu": 2,
    # The TRL adapter: the ΔL weights on TRL's GRPOTrainer.
    "deltal.trl": 2,
    # Analysis of tidy tables (method labels come from the adapter's method registry).
    "deltal.analysis": 3,
    # Entry points.
    "deltal.train": 4,
    "deltal.quickstart": 4,
    "deltal.experiments": 4,
    "deltal.__main__": 4,
}
ENTRY_LAYER = 4
# The core imports nothing of deltal outside itself.
CORE = "deltal.algorithm"
# deltal.cpu is plumbing: outside itself, only the plugin and the entry points may import it.
CPU = "deltal.cpu"
CPU_IMPORTERS = ("deltal.verl_adapter.plugin",)


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module of the package
    where: str  # file:line, for the message


def package_modules(root: Path, package: str = "deltal") -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package (a package is its ``__init__``)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                anchor = anchor.rpartition(".")[0]
            base = f"{anchor}.{base}" if base else anchor
        # `from a import b` may import the module a.b or the name b of a; both resolve below.
        return [f"{base}.{alias.name}" for alias in node.names]
    if (
        isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [node.args[0].value]
    return []


def package_imports(root: Path, package: str = "deltal") -> list[Import]:
    """Every import of one package module by another (a name imported from a module counts as that module)."""
    modules = package_modules(root, package)
    imports = []
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            for name in _imported_names(node, module, path.name == "__init__.py"):
                if name != package and not name.startswith(package + "."):
                    continue
                target = name
                while target not in modules:  # a name of a module, or a module of the package
                    target = target.rpartition(".")[0]
                if target != module:
                    where = f"{path.relative_to(root)}:{node.lineno}"
                    imports.append(Import(module, target, where))
    return imports


def import_circles(imports: list[Import]) -> list[list[str]]:
    """The strongly connected groups of two or more modules (Tarjan's algorithm, iterative)."""
    graph: dict[str, set[str]] = {}
    for edge in imports:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for start in sorted(graph):
        if start in order:
            continue
        work = [(start, iter(sorted(graph[start])))]
        order[start] = low[start] = len(order)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in order:
                    order[successor] = low[successor] = len(order)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], order[successor])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == order[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def part_of(module: str) -> str:
    """The part of the package a module belongs to: ``deltal.cpu.rollout`` -> ``deltal.cpu``."""
    return ".".join(module.split(".")[:2])


def layer_violations(imports: list[Import]) -> list[str]:
    problems = []
    for edge in imports:
        source, target = part_of(edge.source), part_of(edge.target)
        for part in (source, target):
            if part not in LAYERS:
                problems.append(f"{edge.where}: {part} has no layer; add it to LAYERS in {Path(__file__).name}")
        if source == target or source not in LAYERS or target not in LAYERS:
            continue
        if LAYERS[target] > LAYERS[source]:
            problems.append(
                f"{edge.where}: {edge.source} (layer {LAYERS[source]}) imports {edge.target} "
                f"(layer {LAYERS[target]}), up a layer; move what it needs down to where both can import it"
            )
        if source == CORE:
            problems.append(f"{edge.where}: the core ({CORE}) imports {edge.target}; it imports only itself")
        if target == CPU and LAYERS[source] < ENTRY_LAYER and edge.source not in CPU_IMPORTERS:
            problems.append(
                f"{edge.where}: {edge.source} imports {edge.target}; the CPU plumbing is turned on by the plugin "
                f"({', '.join(CPU_IMPORTERS)}) and used by entry points only"
            )
    return sorted(set(problems))


def _describe(circle: list[str], imports: list[Import]) -> str:
    members = set(circle)
    lines = [
        f"  {edge.where}: {edge.source} -> {edge.target}" for edge in imports if {edge.source, edge.target} <= members
    ]
    return "import circle among " + ", ".join(circle) + ":\n" + "\n".join(sorted(lines))


@pytest.fixture(scope="module")
def deltal_imports():
    return package_imports(PACKAGE_ROOT)


def test_the_package_has_no_import_circle(deltal_imports):
    circles = import_circles(deltal_imports)
    assert not circles, "\n".join(_describe(circle, deltal_imports) for circle in circles)


def test_imports_point_down_the_layers(deltal_imports):
    problems = layer_violations(deltal_imports)
    assert not problems, "\n".join(problems)


def test_every_part_of_the_package_has_a_layer():
    parts = {part_of(module) for module in package_modules(PACKAGE_ROOT)}
    assert parts <= set(LAYERS), f"add {sorted(parts - set(LAYERS))} to LAYERS in {Path(__file__).name}"


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_catch_a_deferred_circle_and_an_upward_import(tmp_path):
    # A toy copy of the failure modes: a circle closed by a function-level import, one closed by import_module,
    # the core reaching out, an adapter module importing the CPU plumbing, and a data module importing analysis.
    _write(
        tmp_path,
        {
            "deltal/__init__.py": "",
            "deltal/cpu/__init__.py": "",
            "deltal/cpu/backend.py": "def f():\n    from deltal.cpu.rollout import X\n",
            "deltal/cpu/rollout.py": "from .backend import f\nX = 1\n",
            "deltal/verl_adapter/__init__.py": "",
            "deltal/verl_adapter/plugin.py": "import deltal.cpu.backend\nfrom .registration import g\n",
            "deltal/verl_adapter/registration.py": "import importlib\ndef g():\n"
            "    importlib.import_module('deltal.verl_adapter.plugin')\n",
            "deltal/verl_adapter/config.py": "from deltal.cpu import backend\n",
            "deltal/algorithm/__init__.py": "from deltal.data import rows\n",
            "deltal/data/__init__.py": "",
            "deltal/data/rows.py": "from deltal.analysis import tables\n",
            "deltal/analysis/__init__.py": "",
            "deltal/analysis/tables.py": "",
        },
    )
    imports = package_imports(tmp_path)
    assert sorted(import_circles(imports)) == [
        ["deltal.cpu.backend", "deltal.cpu.rollout"],
        ["deltal.verl_adapter.plugin", "deltal.verl_adapter.registration"],
    ]
    problems = "\n".join(layer_violations(imports))
    assert "deltal.data.rows (layer 1) imports deltal.analysis.tables (layer 3), up a layer" in problems
    assert "the core (deltal.algorithm) imports deltal.data.rows" in problems
    assert "deltal.verl_adapter.config imports deltal.cpu.backend; the CPU plumbing" in problems
    assert "deltal/verl_adapter/plugin.py" not in problems  # the plugin may turn the CPU backend on
