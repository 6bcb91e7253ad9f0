"""The structure rules of the package (docs ARCHITECTURE.md), checked on the source itself.

Every module of ``daskhpo/`` is parsed with :mod:`ast`; nothing of daskhpo is imported and no cluster is
started. An *import* is any ``import``/``from ... import`` statement, at module level or inside a
function body (function-level imports run too, just later), plus ``importlib.import_module``
called with a literal name. Statements under ``if TYPE_CHECKING:`` are skipped: they never run.

How imports map to modules:

- ``import daskhpo.x.y`` imports ``daskhpo.x.y``; relative imports are resolved against the importing
  module's package;
- ``from .pkg import name`` imports the submodule ``pkg.name`` when there is one, else ``pkg`` itself
  (the module, or the package's ``__init__.py``); ``from . import x`` likewise;
- importing a package means importing its ``__init__.py``. The parent packages Python initialises on
  the way (``from .base import Job`` runs ``daskhpo/strategies/__init__.py`` first) are *not* counted:
  every submodule would otherwise "import" its own package, and every package ``__init__`` that
  re-exports its submodules would be in a circle with each of them.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "daskhpo"

#: Modules that may import anything: the entry points (see test_no_import_circle for why it matters).
ENTRY_POINTS = ("daskhpo", "daskhpo.__main__")

#: Modules that must not import dask or distributed at all (a test of them needs no cluster).
NO_DASK = (
    "daskhpo.space",
    "daskhpo.strategies",
    "daskhpo.strategies.*",
    "daskhpo.store",
    "daskhpo.results",
    "daskhpo.registry",
    "daskhpo.validation",
    "daskhpo.exceptions",
)

#: The only modules that may import distributed: they talk to the scheduler.
DISTRIBUTED_ALLOWED = ("daskhpo.execution", "daskhpo.execution.*", "daskhpo.cluster*")
DISTRIBUTED_ALLOWED += ("daskhpo.dashboard", "daskhpo.dashboard.*")

#: Facade modules whatever they register; any module with an ``@register_search`` class is one too.
FACADES = ("daskhpo.search", "daskhpo.adaptive", "daskhpo.bayes")
MAX_FIT_LINES = 60


# -- reading the source ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One import statement's effect: ``source`` imports ``target`` (a module name)."""

    source: str
    target: str
    path: str  # of the importing file, relative to the repository
    line: int
    nested: bool  # inside a function body

    def where(self) -> str:
        return f"{self.path}:{self.line}" + (" (function-level)" if self.nested else "")


def find_modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``package`` (a package's name is its
    ``__init__.py``)."""
    out: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _literal_import_module(node: ast.Call) -> str | None:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name != "import_module" or not node.args or len(node.args) > 1 or node.keywords:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value[:1] != ".":
        return arg.value
    return None


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, modules: Iterable[str], path: str) -> None:
        self.module, self.path = module, path
        self.package = module if is_package else module.rpartition(".")[0]
        self.modules = set(modules)
        self.depth = 0
        self.found: list[Import] = []

    def _add(self, target: str, node: ast.AST) -> None:
        line = getattr(node, "lineno", 0)
        self.found.append(Import(self.module, target, self.path, line, self.depth > 0))

    def _nested(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    # A class body runs when the module is imported: only function bodies are "function-level".
    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _nested

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            base = f"{base}.{node.module}" if node.module else base
        else:
            base = node.module or ""
        internal = base.split(".")[0] == "daskhpo"
        for alias in node.names:
            full = base if alias.name == "*" else f"{base}.{alias.name}"
            # A daskhpo name that is not a submodule is defined in `base` (a module that does not
            # exist, mid-rename, stays a target the graph does not know, not the package root).
            self._add(full if not internal or full in self.modules else base, node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _literal_import_module(node)
        if name is not None:
            self._add(name, node)
        self.generic_visit(node)


def find_imports(package: Path) -> list[Import]:
    """Every import of every module under ``package``, in file and line order."""
    modules = find_modules(package)
    out: list[Import] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(package.parent).as_posix()
        collector = _Collector(module, path.name == "__init__.py", modules, rel)
        collector.visit(tree)
        out += collector.found
    return out


def matches(module: str, patterns: Iterable[str]) -> bool:
    """``'a.b'`` matches ``'a.b'``; ``'a.*'`` matches the modules under ``a``; ``'a.b*'`` any name that
    starts with ``a.b`` (``a.b``, ``a.bc``, ``a.b.c``)."""
    return any(module.startswith(p[:-1]) if p.endswith("*") else module == p for p in patterns)


def is_dask(name: str) -> bool:
    return name.split(".")[0] in ("dask", "distributed")


def is_distributed(name: str) -> bool:
    return (
        name.split(".")[0] == "distributed"
        or name == "dask.distributed"
        or name.startswith("dask.distributed.")
    )


# -- circles ---------------------------------------------------------------------------------------


def import_graph(imports: Iterable[Import], modules: Iterable[str]) -> dict[str, dict[str, Import]]:
    """module -> {imported daskhpo module: the first statement that imports it}."""
    known = set(modules)
    graph: dict[str, dict[str, Import]] = {m: {} for m in sorted(known)}
    for imp in imports:
        if imp.target in known and imp.target != imp.source:
            graph[imp.source].setdefault(imp.target, imp)
    return graph


def strongly_connected(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Tarjan's components with more than one module, each sorted, in the order of their first name."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return sorted(out)


def shortest_circle(graph: dict[str, dict[str, Import]], start: str) -> list[str] | None:
    """The shortest path ``start -> ... -> start`` (breadth first), or ``None``."""
    parent: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        v = queue.popleft()
        for w in graph[v]:
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if w not in seen:
                seen.add(w)
                parent[w] = v
                queue.append(w)
    return None


def circles(graph: dict[str, dict[str, Import]]) -> Iterator[tuple[list[str], list[list[str]]]]:
    """Per component: its modules and the shortest circle through each of them (no repeats)."""
    for component in strongly_connected(graph):
        found: list[list[str]] = []
        keys: set[tuple[str, ...]] = set()
        for module in component:
            circle = shortest_circle(graph, module)
            if circle is None:
                continue
            ring = circle[:-1]
            i = ring.index(min(ring))
            key = tuple(ring[i:] + ring[:i])
            if key not in keys:
                keys.add(key)
                found.append(circle)
        yield component, found


def describe_circle(graph: dict[str, dict[str, Import]], circle: list[str]) -> str:
    steps = [f"    {' -> '.join(circle)}"]
    for a, b in zip(circle, circle[1:], strict=False):
        steps.append(f"      {a} imports {b} at {graph[a][b].where()}")
    return "\n".join(steps)


# -- the rules, as reports (one line per problem) ------------------------------------------------------


def circle_report(imports: list[Import], modules: Iterable[str]) -> list[str]:
    # The entry points are roots: they may import anything, and edges *into* them are not followed.
    # `daskhpo/__init__.py` re-exports the public names, so it reaches nearly every module; an import
    # back into it (the CLI reading `__version__` inside a function, after the package is initialised)
    # would otherwise fold the whole package into one circle and hide the real ones among the layers.
    # A module-level import of the root is still reported: from a module the root imports, it is a
    # real circle that breaks at import time.
    graph = import_graph(imports, modules)
    for edges in graph.values():
        for root in ENTRY_POINTS:
            edges.pop(root, None)
    report = []
    for component, found in circles(graph):
        report.append(f"  {len(component)} modules in circles: {', '.join(component)}")
        report += [describe_circle(graph, c) for c in found]
    report += [
        f"  {imp.source} imports the package root {imp.target} at module level, at {imp.where()}"
        for imp in imports
        if imp.target in ENTRY_POINTS and imp.source not in ENTRY_POINTS and not imp.nested
    ]
    return report


def dask_report(imports: list[Import], modules: Iterable[str]) -> list[str]:
    """Pure modules that import dask/distributed, directly or through other daskhpo modules."""
    direct: dict[str, list[Import]] = {}
    for imp in imports:
        if is_dask(imp.target):
            direct.setdefault(imp.source, []).append(imp)
    graph = import_graph(imports, modules)
    report = []
    for module in (m for m in graph if matches(m, NO_DASK)):
        report += [f"  {module} imports {i.target} at {i.where()}" for i in direct.get(module, [])]
        # Through other daskhpo modules: the nearest one on the way that imports dask itself.
        parent: dict[str, str] = {}
        queue = deque([module])
        while queue:
            v = queue.popleft()
            if v != module and v in direct:
                chain = [v]
                while chain[-1] != module:
                    chain.append(parent[chain[-1]])
                first = direct[v][0]
                report.append(
                    f"  {module} reaches {first.target} through {' -> '.join(reversed(chain))} "
                    f"({first.where()})"
                )
                break
            for w in graph[v]:
                if w not in parent and w != module:
                    parent[w] = v
                    queue.append(w)
    return report


def _registers_a_search(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for deco in node.decorator_list:
                func = deco.func if isinstance(deco, ast.Call) else deco
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if name == "register_search":
                    return True
    return False


def fit_report(modules: dict[str, Path]) -> list[str]:
    """``fit`` methods longer than MAX_FIT_LINES (``def`` line to the end of the body) in the facades."""
    trees = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in modules.items()}
    facades = {m for m in FACADES if m in modules}
    facades |= {m for m, tree in trees.items() if _registers_a_search(tree)}
    report = []
    for module in sorted(facades):
        path = modules[module]
        for node in ast.walk(trees[module]):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == "fit":
                    n_lines = (item.end_lineno or item.lineno) - item.lineno + 1
                    if n_lines > MAX_FIT_LINES:
                        report.append(
                            f"  {node.name}.fit in {module} (line {item.lineno} of {path.name}) is "
                            f"{n_lines} lines"
                        )
    return report


def distributed_report(imports: list[Import]) -> list[str]:
    return [
        f"  {imp.source} imports {imp.target} at {imp.where()}"
        for imp in imports
        if is_distributed(imp.target) and not matches(imp.source, DISTRIBUTED_ALLOWED)
    ]


# -- the rules on the real source -----------------------------------------------------------------


@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    return find_modules(PACKAGE)


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return find_imports(PACKAGE)


def test_no_import_circle(modules: dict[str, Path], imports: list[Import]) -> None:
    report = circle_report(imports, modules)
    assert not report, (
        "Import circles among daskhpo's modules (module- and function-level imports count; break "
        "each by moving the shared code down a layer or passing it in):\n" + "\n".join(report)
    )


def test_pure_modules_import_no_dask(modules: dict[str, Path], imports: list[Import]) -> None:
    assert matches("daskhpo.strategies.base", NO_DASK) and "daskhpo.space" in modules
    report = dask_report(imports, modules)
    assert not report, (
        "space, strategies, store, results, registry and exceptions must not import dask or "
        "distributed, not even through other modules (an algorithm test needs no cluster):\n"
        + "\n".join(report)
    )


def test_facade_fit_methods_are_short(modules: dict[str, Path]) -> None:
    assert any(m in modules for m in FACADES), "no facade module found: update FACADES"
    report = fit_report(modules)
    assert not report, (
        f"fit methods of the facades must stay within {MAX_FIT_LINES} lines (the loop owns the "
        "sequence; a facade says only what to evaluate):\n" + "\n".join(report)
    )


def test_only_execution_cluster_and_dashboard_import_distributed(imports: list[Import]) -> None:
    report = distributed_report(imports)
    assert not report, (
        "only daskhpo/execution/*, daskhpo/cluster* and daskhpo/dashboard/* may import distributed; "
        "today these do too:\n" + "\n".join(report)
    )


# -- the checker itself, on a made-up package ------------------------------------------------------------


def test_the_checker_resolves_every_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "daskhpo"
    files = {
        "__init__.py": "from .a import A\n",
        "a.py": "from . import b\nfrom .sub import leaf, NAME\n",
        "b.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n"
            "def f():\n    import daskhpo.c.x\n    from dask.distributed import Client\n"
        ),
        "c/__init__.py": "",
        "c/x.py": "import importlib\ndef g():\n    importlib.import_module('daskhpo.a')\n",
        "sub/__init__.py": "NAME = 1\n",
        "sub/leaf.py": "from ..c import x\nfrom .. import __version__\nfrom .gone import y\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    mods = find_modules(pkg)
    assert set(mods) == {
        "daskhpo",
        "daskhpo.a",
        "daskhpo.b",
        "daskhpo.c",
        "daskhpo.c.x",
        "daskhpo.sub",
        "daskhpo.sub.leaf",
    }
    found = {(i.source, i.target, i.nested) for i in find_imports(pkg)}
    assert found == {
        ("daskhpo", "daskhpo.a", False),
        ("daskhpo.a", "daskhpo.b", False),
        ("daskhpo.a", "daskhpo.sub.leaf", False),
        ("daskhpo.a", "daskhpo.sub", False),
        ("daskhpo.b", "typing.TYPE_CHECKING", False),
        ("daskhpo.b", "daskhpo.c.x", True),
        ("daskhpo.b", "dask.distributed.Client", True),
        ("daskhpo.c.x", "importlib", False),
        ("daskhpo.c.x", "daskhpo.a", True),
        ("daskhpo.sub.leaf", "daskhpo.c.x", False),
        ("daskhpo.sub.leaf", "daskhpo", False),
        ("daskhpo.sub.leaf", "daskhpo.sub.gone", False),
    }
    graph = import_graph(find_imports(pkg), mods)
    assert strongly_connected(graph) == [
        ["daskhpo", "daskhpo.a", "daskhpo.b", "daskhpo.c.x", "daskhpo.sub.leaf"]
    ]
    assert shortest_circle(graph, "daskhpo.b") == [
        "daskhpo.b",
        "daskhpo.c.x",
        "daskhpo.a",
        "daskhpo.b",
    ]
    assert is_distributed("dask.distributed.Client") and not is_distributed("dask.base")
    assert matches("daskhpo.cluster_kube", DISTRIBUTED_ALLOWED)
    assert not matches("daskhpo.executions", DISTRIBUTED_ALLOWED)
    assert matches("daskhpo.strategies.median", NO_DASK) and not matches("daskhpo.spec", NO_DASK)


def test_the_checker_reports_each_rule(tmp_path: Path) -> None:
    pkg = tmp_path / "daskhpo"
    fit_body = "".join(f"        x = {i}\n" for i in range(MAX_FIT_LINES - 1))
    files = {
        "__init__.py": "from .search import S\n",
        "space.py": "from . import util\n",
        "util.py": "def f():\n    from dask import delayed\n",
        "search.py": (
            "from .registry import register_search\n"
            f"class S:\n    def fit(self):\n{fit_body}\n"  # exactly MAX_FIT_LINES lines
        ),
        "other.py": (
            "from .registry import register_search\nimport distributed\n"
            f"@register_search('x')\nclass T:\n    def fit(self):\n{fit_body}        y = 1\n"
        ),
        "registry.py": "from . import other\n",
        "execution/__init__.py": "from distributed import Client\n",
        "cluster_ssh.py": "import dask.distributed\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    mods, imps = find_modules(pkg), find_imports(pkg)
    assert circle_report(imps, mods)[0] == "  2 modules in circles: daskhpo.other, daskhpo.registry"
    assert dask_report(imps, mods) == [
        "  daskhpo.registry reaches distributed through daskhpo.registry -> daskhpo.other "
        "(daskhpo/other.py:2)",
        "  daskhpo.space reaches dask.delayed through daskhpo.space -> daskhpo.util "
        "(daskhpo/util.py:2 (function-level))",
    ]
    assert fit_report(mods) == [
        f"  T.fit in daskhpo.other (line 5 of other.py) is {MAX_FIT_LINES + 1} lines"
    ]
    assert distributed_report(imps) == ["  daskhpo.other imports distributed at daskhpo/other.py:2"]
