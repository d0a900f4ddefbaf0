"""The shape of gotd's import graph, read from the source with ``ast`` (nothing is imported).

Rooms and layers
----------------
A *room* is a top-level module or package under ``gotd/`` (``gotd.ot``, ``gotd.distributed``, ...); the
root facade ``gotd/__init__.py`` is the room ``gotd``. Each room sits on one layer:

0. foundation: ``errors``, ``_io``, ``_params``, ``devices``, ``results``, ``shards``, ``validation``;
1. library: the packages that each do one job (``data``, ``assets``, ``embed``, ``ot``, ``selectors``,
   ``selection``, ``models``, ``train``, ``evaluate``, ...), and the helpers built only on them;
2. stages: ``stages`` and the stage code that has not moved into it yet (``inputs``, ``pipeline``,
   ``experiments``);
3. front doors: ``testbed``, ``runner``, ``cli``, ``run``, ``notebook_io``, ``demo``, the root facade, and
   the notebook helpers that compose stages (``ablations``, used only by notebooks).

A module may import its own layer or a lower one, never a higher one.

Which imports count
-------------------
Every ``import gotd...`` / ``from gotd... import ...`` statement is an arrow, resolved to the module it
loads (``from gotd.embed import _loading`` points at ``gotd.embed._loading``, ``from gotd.ot import
sinkhorn`` at ``gotd.ot``). An import at module level (not under ``if TYPE_CHECKING:``) runs when the
module is imported; one inside a function (a *deferred* import) runs when the function is called.
Both are dependencies, so both are held to the layer, facade and private-file rules. Cycles are checked
twice and reported apart: among module-level imports (a cycle there can break ``import``) and over all
imports (a cycle closed only by a deferred import hides a tangle that a deferred import papers over).
Imports under ``if TYPE_CHECKING:`` are not dependencies at run time and are not counted.

Findings name modules, not line numbers, so that an edit elsewhere in a file does not change them.
Run ``python tests/test_import_graph.py`` to print the graph summary (rooms, arrows, cycles, findings).
"""
from __future__ import annotations

import ast
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "gotd"

FOUNDATION, LIBRARY, STAGES, FRONT_DOORS = 0, 1, 2, 3
LAYER_NAMES = {FOUNDATION: "foundation", LIBRARY: "library", STAGES: "stages", FRONT_DOORS: "front doors"}
LAYERS: dict[str, int] = {
    "gotd.errors": FOUNDATION,
    "gotd._io": FOUNDATION,
    "gotd._params": FOUNDATION,
    "gotd.devices": FOUNDATION,
    "gotd.results": FOUNDATION,
    "gotd.shards": FOUNDATION,
    "gotd.validation": FOUNDATION,
    "gotd.outputs": FOUNDATION,
    "gotd.paths": FOUNDATION,
    "gotd.tokenwindow": FOUNDATION,
    "gotd.data": LIBRARY,
    "gotd.assets": LIBRARY,
    "gotd.embed": LIBRARY,
    "gotd.ot": LIBRARY,
    "gotd.selectors": LIBRARY,
    "gotd.selection": LIBRARY,
    "gotd.models": LIBRARY,
    "gotd.train": LIBRARY,
    "gotd.evaluate": LIBRARY,
    "gotd.toxicity": LIBRARY,
    "gotd.toy": LIBRARY,
    "gotd.presets": LIBRARY,
    "gotd.distributed": LIBRARY,
    "gotd.analysis": LIBRARY,
    "gotd.plots": LIBRARY,
    "gotd.stages": STAGES,
    "gotd.inputs": STAGES,
    "gotd.pipeline": STAGES,
    "gotd.experiments": STAGES,
    "gotd.testbed": FRONT_DOORS,
    "gotd.runner": FRONT_DOORS,
    "gotd.cli": FRONT_DOORS,
    "gotd.run": FRONT_DOORS,
    "gotd.notebook_io": FRONT_DOORS,
    "gotd.demo": FRONT_DOORS,
    "gotd.select_demo": FRONT_DOORS,
    "gotd.ablations": FRONT_DOORS,
    "gotd": FRONT_DOORS,
}

@dataclass(frozen=True)
class Arrow:
    """One import statement: ``source`` imports ``target`` (both dotted module names) at ``line``."""

    source: str
    target: str
    line: int
    deferred: bool


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _is_package(module: str, modules: dict[str, Path]) -> bool:
    return modules[module].name == "__init__.py"


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` (a dotted name under gotd) starts with."""
    parts = name.split(".")
    for stop in range(len(parts), 0, -1):
        candidate = ".".join(parts[:stop])
        if candidate in modules:
            return candidate
    return None


def _under_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _inside_function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return True
    return False


def _imported_names(node: ast.Import | ast.ImportFrom, module: str,
                    modules: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(module imported, name taken from it or None) for each name of one import statement."""
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module if _is_package(module, modules) else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    return [(base, alias.name) for alias in node.names]


def import_arrows() -> list[Arrow]:
    """Every import of a gotd module by a gotd module, in source order."""
    modules = _modules()
    arrows = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or _under_type_checking(node, parents):
                continue
            for base, name in _imported_names(node, module, modules):
                if base != "gotd" and not base.startswith("gotd."):
                    continue
                # `from package import submodule` loads the submodule; `from module import name` the module.
                full = f"{base}.{name}" if name is not None else base
                target = full if full in modules else _resolve(base, modules)
                if target is not None and target != module:
                    arrows.append(Arrow(module, target, node.lineno, _inside_function(node, parents)))
    return sorted(set(arrows), key=lambda arrow: (arrow.source, arrow.line, arrow.target))


def room(module: str) -> str:
    """The top-level module or package a module belongs to (``gotd.ot._solver`` -> ``gotd.ot``)."""
    return ".".join(module.split(".")[:2])


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one member (the cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(components)


def cycles(arrows: list[Arrow], *, include_deferred: bool) -> list[list[str]]:
    """Groups of gotd modules that import one another in a ring."""
    edges: dict[str, set[str]] = defaultdict(set)
    for arrow in arrows:
        if include_deferred or not arrow.deferred:
            edges[arrow.source].add(arrow.target)
    return _strongly_connected(edges)


def upward_arrows(arrows: list[Arrow]) -> list[str]:
    """Imports from a lower layer into a higher one (one finding per source module and target)."""
    found = []
    for arrow in arrows:
        source_layer, target_layer = LAYERS[room(arrow.source)], LAYERS[room(arrow.target)]
        if target_layer > source_layer:
            kind = "deferred " if arrow.deferred else ""
            found.append(f"upward: {arrow.source} {kind}imports {arrow.target} "
                         f"({LAYER_NAMES[source_layer]} -> {LAYER_NAMES[target_layer]})")
    return sorted(set(found), key=found.index)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_reexports() -> list[str]:
    """Private names a facade (``__init__.py``) binds from another module, so that others can reach them."""
    modules = _modules()
    found = []
    for module, path in modules.items():
        if path.name != "__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    bound = alias.asname or alias.name
                    # `from gotd.x import _y` binding a private *module* of the same package is how a
                    # facade loads its own files; binding a private function or constant is a re-export.
                    base = node.module or ""
                    if _is_private(bound) and f"{base}.{alias.name}" not in modules:
                        found.append(f"facade re-exports private: {module} {bound} "
                                     f"(from {base})")
            if isinstance(node, ast.Assign) and any(
                    isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets):
                for element in getattr(node.value, "elts", []):
                    if isinstance(element, ast.Constant) and _is_private(str(element.value)):
                        found.append(f"facade exports private in __all__: {module} "
                                     f"{element.value}")
    return found


def private_reaches(arrows: list[Arrow]) -> list[str]:
    """Imports of another package's private module (``gotd.x._y`` from outside ``gotd/x/``), or of a
    private name through another room's facade (``from gotd.ot import _as_weights``)."""
    modules = _modules()
    found = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            for base, name in _imported_names(node, module, modules):
                if not base.startswith("gotd."):
                    continue
                full = f"{base}.{name}"
                target = full if full in modules else _resolve(base, modules)
                if target is None:
                    continue
                target_room = room(target)
                if target_room == room(module):
                    continue
                private_parts = [part for part in target.split(".")[2:] if _is_private(part)]
                if private_parts:
                    found.append(f"private reach: {module} imports {target}")
                elif name is not None and _is_private(name) and full not in modules:
                    found.append(f"private reach: {module} imports {name} from {target}")
    return sorted(set(found), key=found.index)


def violations() -> list[str]:
    """Every finding of the four rules: cycles (module level, then all), upward arrows, private
    re-exports, private reaches."""
    arrows = import_arrows()
    found = [f"cycle (module level): {' <-> '.join(group)}" for group in cycles(arrows, include_deferred=False)]
    module_level = {tuple(group) for group in cycles(arrows, include_deferred=False)}
    found += [f"cycle (closed by a deferred import): {' <-> '.join(group)}"
              for group in cycles(arrows, include_deferred=True) if tuple(group) not in module_level]
    return found + upward_arrows(arrows) + private_reexports() + private_reaches(arrows)


def graph_summary() -> str:
    """The room-level graph as text: rooms by layer, arrows between rooms with counts, then findings."""
    arrows = import_arrows()
    modules = _modules()
    rooms_by_layer: dict[int, list[str]] = defaultdict(list)
    for name in sorted({room(module) for module in modules}):
        rooms_by_layer[LAYERS[name]].append(name)
    lines = [f"{len(modules)} modules in {sum(map(len, rooms_by_layer.values()))} rooms, {len(arrows)} import "
             f"arrows ({sum(arrow.deferred for arrow in arrows)} deferred)"]
    for layer in sorted(rooms_by_layer, reverse=True):
        lines.append(f"  layer {layer} {LAYER_NAMES[layer]}: {', '.join(rooms_by_layer[layer])}")
    between: Counter[tuple[str, str]] = Counter()
    deferred: Counter[tuple[str, str]] = Counter()
    for arrow in arrows:
        pair = (room(arrow.source), room(arrow.target))
        if pair[0] != pair[1]:
            (deferred if arrow.deferred else between)[pair] += 1
    lines.append(f"room arrows ({len(set(between) | set(deferred))}): source -> target [module-level/deferred]")
    for source, target in sorted(set(between) | set(deferred)):
        lines.append(f"  {source} -> {target} [{between[source, target]}/{deferred[source, target]}]")
    found = violations()
    lines.append(f"findings ({len(found)}):")
    lines += [f"  {item}" for item in found]
    return "\n".join(lines)


def test_every_room_has_a_layer():
    unplaced = sorted({room(module) for module in _modules()} - set(LAYERS))
    assert not unplaced, f"rooms with no layer in LAYERS: {unplaced}"


def test_the_walk_sees_known_arrows():
    """The resolver turns each import form into the module it loads (a walk that saw nothing would pass
    every rule)."""
    arrows = {(arrow.source, arrow.target, arrow.deferred) for arrow in import_arrows()}
    assert ("gotd.embed._encoder", "gotd.embed._loading", False) in arrows  # from package import submodule
    assert ("gotd.selectors._ot_based", "gotd.ot", True) in arrows  # deferred `from gotd import ot`
    assert ("gotd.cli._parser", "gotd", True) in arrows  # from gotd import __version__


def test_rules_catch_planted_defects():
    """Each rule reports a defect of its kind on a made-up graph."""
    ring = [Arrow("gotd.a", "gotd.b", 1, False), Arrow("gotd.b", "gotd.a", 1, True)]
    assert cycles(ring, include_deferred=False) == []
    assert cycles(ring, include_deferred=True) == [["gotd.a", "gotd.b"]]
    up = [Arrow("gotd.ot._solver", "gotd.stages._select", 3, False)]
    assert upward_arrows(up) == ["upward: gotd.ot._solver imports gotd.stages._select (library -> stages)"]


@pytest.mark.parametrize("finding_kind", ["cycle", "upward", "facade", "private reach"])
def test_no_import_graph_defects(finding_kind):
    found = [item for item in violations() if item.startswith(finding_kind)]
    assert not found, "\n".join(found)



if __name__ == "__main__":
    print(graph_summary())
