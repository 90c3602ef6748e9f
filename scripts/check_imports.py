"""Fail on any import cycle inside a package (``make lint`` runs it on ``rotator``).

Every import counts, wherever it is written: at the top of a module, inside a function (a
"lazy" import hides a cycle, it does not remove it) and under ``if TYPE_CHECKING:``. The
implicit import of a parent package (``import a.b`` runs ``a/__init__.py``) is not an edge:
a package that imports its own submodules is the ordinary way to build one.

Usage: python scripts/check_imports.py [PACKAGE_DIR]   (default: rotator)
Exit status 0 without a cycle; 1 naming each cycle found.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under the package ``root``."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _targets(node: ast.AST, here: str, is_package: bool) -> Iterator[str]:
    """The dotted names an import statement may load, most specific first."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = here.split(".")
            # ``from . import x`` in a package's __init__ is relative to the package itself.
            drop = node.level - 1 if is_package else node.level
            anchor = anchor[: len(anchor) - drop] if drop else anchor
            base = ".".join([*anchor, base]) if base else ".".join(anchor)
        for alias in node.names:
            yield f"{base}.{alias.name}"  # ``from pkg import module``
        yield base


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of the package that ``name`` imports, anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            found.update(t for t in _targets(node, name, is_package) if t in modules)
            continue
        targets = list(_targets(node, name, is_package))
        submodules = [t for t in targets[:-1] if t in modules]
        if submodules:
            found.update(submodules)
        elif targets[-1] in modules:
            found.add(targets[-1])
    found.discard(name)
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, each sorted: every
    module of one imports every other, directly or not (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return components


def _closed_path(graph: dict[str, set[str]], members: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, for the message."""
    start = min(members)
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    return [start, start]  # not reached: a component of two or more has a cycle


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "rotator").resolve()
    if not (root / "__init__.py").is_file():
        print(f"check_imports: {root} is not a package", file=sys.stderr)
        return 2
    modules = module_names(root)
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    tangles = find_cycles(graph)
    for tangle in tangles:
        cycle = " -> ".join(_closed_path(graph, set(tangle)))
        print(f"import cycle: {cycle} (tangled: {', '.join(tangle)})", file=sys.stderr)
    if tangles:
        return 1
    edges = sum(len(v) for v in graph.values())
    print(f"check_imports: no import cycle in {root.name} ({len(modules)} modules, {edges} edges)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
