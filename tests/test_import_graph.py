"""The package's layering, read from its source with `ast` (nothing is imported):

- no module imports itself back through others at import time (a cycle makes import order matter
  and leaves names half-defined), nor from inside a function;
- the light leaf modules (errors, dataset facts, formatting, file I/O) stay light;
- Optuna is imported only by the study store;
- no exception is matched by the name of its class: the classes live in `fcn_tui.errors`, so
  they can be caught by type;
- no test module imports another test module (nor conftest.py): what tests share lives in the
  helper modules (`tests/helpers.py`, `tests/scripted.py`, `tests/runs_history.py`);
- every function of the package can be read whole: under `MAX_FUNCTION_LINES` lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "fcn_tui"
# The only file that may import optuna, at any depth: the runner and the figures go through the store.
OPTUNA_FILES = {"fcn_tui/studies/store.py"}
# Leaf modules: the standard library and these fcn_tui modules only, so anything may import them.
LEAVES = {
    "fcn_tui.errors": set(),
    "fcn_tui.fashion": set(),
    "fcn_tui.events": set(),
    "fcn_tui.formatting": {"fcn_tui.events"},
    "fcn_tui.fileio": {"fcn_tui.errors"},
}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (`fcn_tui.tui.app`; a package by its own name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported(module: str, path: Path, known: dict[str, Path], top_level_only: bool) -> set[str]:
    """The modules of the package that `module` imports: at import time only (its body and class
    bodies, not function bodies nor `if TYPE_CHECKING:`), or anywhere."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if top_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if top_level_only and isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                out.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                source = _resolve(child, module, path.name == "__init__.py")
                for alias in child.names:  # `from fcn_tui import events` imports the module fcn_tui.events
                    out.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source)
            visit(child)

    visit(tree)
    return {name for name in out if name in known or name.split(".")[0] != "fcn_tui"}


def graph(top_level_only: bool = True) -> dict[str, set[str]]:
    known = modules()
    return {m: {n for n in imported(m, p, known, top_level_only) if n in known and n != m} for m, p in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                connect(w)
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
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return found


def test_no_module_imports_itself_back_through_another():
    assert cycles(graph()) == []


def test_not_even_from_inside_a_function():
    """A lazy import inside a function makes no cycle at import time, but it still ties two modules
    together both ways (predictions wrote through runs, runs saved predictions: now fileio)."""
    assert cycles(graph(top_level_only=False)) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_leaf_modules_import_nothing_heavy():
    known = modules()
    for leaf, allowed in LEAVES.items():
        used = imported(leaf, known[leaf], known, top_level_only=False)
        package = {m for m in used if m.startswith("fcn_tui")}
        third_party = {m for m in used - package if m.split(".")[0] not in {"__future__", "math", "typing", "dataclasses",
                                                                           "collections", "contextlib", "errno", "os",
                                                                           "secrets", "tempfile", "weakref", "pathlib"}}
        assert (leaf, package, third_party) == (leaf, allowed, set())


def test_the_app_never_imports_the_figure_module():
    """The app reads a run's confusion.csv and a study's preset through `fcn_tui.runs`, as the
    figures do: nothing in `fcn_tui.tui` imports `fcn_tui.plot` (matplotlib's module)."""
    edges = graph(top_level_only=False)
    assert {m for m in edges if m.startswith("fcn_tui.tui") and "fcn_tui.plot" in edges[m]} == set()


def test_optuna_is_imported_only_by_the_study_store():
    importing = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "optuna" or n.startswith("optuna.") for n in names):
                importing.add(path.relative_to(PACKAGE.parent).as_posix())
    assert importing <= OPTUNA_FILES, f"optuna imported outside the study store: {sorted(importing - OPTUNA_FILES)}"


MAX_FUNCTION_LINES = 80  # about a screen: a longer function is cut into named steps


def long_functions(source: str) -> list[tuple[str, int]]:
    """(name, lines) of each function in `source` that is `MAX_FUNCTION_LINES` lines or longer."""
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 >= MAX_FUNCTION_LINES]


def test_every_function_of_the_package_is_under_80_lines():
    offenders = {path.relative_to(PACKAGE.parent).as_posix(): found for path in PACKAGE.rglob("*.py")
                 if (found := long_functions(path.read_text(encoding="utf-8")))}
    assert not offenders, f"functions of {MAX_FUNCTION_LINES} lines or more: {offenders}"
    assert long_functions("def f():\n" + "    x = 1\n" * 79) == [("f", 80)]  # the check itself finds one


def test_no_exception_is_matched_by_its_class_name():
    """`type(err).__name__ == "CheckpointError"` (or `in (...)`) is a catch by name: it breaks
    silently when a class is renamed. Showing the name in a message is fine."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any("__name__" in ast.unparse(side) and "type(" in ast.unparse(side)
                                                     for side in (node.left, *node.comparators)):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []


def imported_test_modules(source: str) -> set[str]:
    """The test modules and conftest.py that `source` (a file under tests/) imports, at any depth:
    `from tests.test_tui import settle`, `from tests import test_tui`, `import tests.conftest`,
    `from .test_tui import settle`, `import test_tui`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = ".".join(["tests"] * bool(node.level) + [node.module or ""]).strip(".")
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    found = set()
    for name in names:
        parts = name.split(".")
        inside = parts[1:] if parts[0] == "tests" else parts if (TESTS / f"{parts[0]}.py").exists() else []
        if inside and (inside[0].startswith("test_") or inside[0] == "conftest"):
            found.add(inside[0])
    return found


def test_no_test_module_imports_another_test_module():
    """A test module that imports another ties the two together (and runs the other's imports and
    module code); shared helpers belong in the helper modules, fixtures in conftest.py."""
    offenders = {path.name: sorted(found) for path in sorted(TESTS.glob("*.py"))
                 if (found := imported_test_modules(path.read_text(encoding="utf-8")))}
    assert offenders == {}


def test_the_test_import_finder_finds_each_spelling():
    source = ("from tests.test_tui import settle\nfrom tests import test_charts, helpers\nimport tests.conftest\n"
              "from .test_study import write_run_folder\nimport test_cli\nfrom tests.helpers import press\n"
              "def f():\n    from tests.test_workers import finish\n")
    assert imported_test_modules(source) == {"test_tui", "test_charts", "conftest", "test_study", "test_cli",
                                             "test_workers"}
