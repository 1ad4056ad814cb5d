"""Tests of the package's shape: exported names, ``__all__`` lists, import layering, and where
dialect names may appear."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest

import sqlresults

PACKAGE_DIR = Path(sqlresults.__file__).parent
# Modules, and subpackages (the CLI), which count as one module made of their files.
MODULES = sorted(
    [path.stem for path in PACKAGE_DIR.glob("*.py")]
    + [path.parent.name for path in PACKAGE_DIR.glob("*/__init__.py")]
)
# __init__ re-exports and __main__ runs the CLI; both sit above every layer.
ENTRY_POINTS = {"__init__", "__main__"}

# DESIGN.md §1 and §6: imports go one way, from a later layer to an earlier one. Modules in the
# same layer may import each other, as long as those imports form no cycle.
LAYERS: list[set[str]] = [
    {"errors", "backoff", "effects"},
    {
        "settings",
        "serializers",
        "hashing",
        "records",
        "validation",
        "context",
        "schema",
        "dialects",
    },
    {"integrity", "queries", "migrations"},
    # The asyncio path of a PostgreSQL database, and its LISTEN fan-out.
    {"database", "async_database", "async_wakeups"},
    {"locking", "async_locking"},
    {"results", "async_results"},
    {"leases"},
    {"transactions"},
    # Looking after a database (what the CLI shows and does), on top of the store.
    {"admin"},
    # The task layer: states, then futures of runs, then runners, then what submits to them.
    {"states"},
    {"futures"},
    # dask_runner imports task_runners; task_runners loads it lazily (a module __getattr__).
    {"task_runners", "dask_runner"},
    {"cache_policies", "tasks", "flows"},
    # Adapters and the command line, on top of everything.
    {"prefect"},
    {"cli"},
]
RANK = {module: rank for rank, layer in enumerate(LAYERS) for module in layer}

# Imports against the layering, allowed only inside a function body, each for a stated reason.
# None today: migrations works on a MigrationTarget protocol, so database (which upgrades its
# schema on first use) imports it downward, and the two no longer import each other.
LAZY_UPWARD_IMPORTS: set[tuple[str, str]] = set()

DIALECT_NAMES = {"sqlite", "postgresql"}
# Only this module may name a dialect (DESIGN.md §3).
DIALECT_MODULE = "dialects"


def export_order(name: str) -> tuple[int, list[tuple[int, int | str]]]:
    """The order of names in an ``__all__`` that the project keeps (ruff's RUF022, isort
    style): SCREAMING_CASE constants, then CamelCase classes, then everything else, each group
    in natural order (case-sensitive, digit runs compared as numbers)."""
    if len(name) > 1 and name.upper() == name and name.lower() != name:
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    natural = [
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part
    ]
    return group, natural


def is_sorted_for_export(names: list[str]) -> bool:
    """Whether ``names`` is in :func:`export_order`."""
    return names == sorted(names, key=export_order)


def parse(module: str) -> ast.Module:
    """The syntax tree of sqlresults/<module>.py, or of all the files of the subpackage
    sqlresults/<module>/ as one module."""
    package = PACKAGE_DIR / module
    paths = sorted(package.glob("*.py")) if package.is_dir() else [PACKAGE_DIR / f"{module}.py"]
    body: list[ast.stmt] = []
    for path in paths:
        body.extend(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body)
    return ast.Module(body=body, type_ignores=[])


def sqlresults_imports(module: str) -> list[tuple[str, bool, int]]:
    """Every sqlresults module that ``module`` imports: (name, inside a function, line)."""
    found: list[tuple[str, bool, int]] = []

    def target(name: str) -> str | None:
        parts = name.split(".")
        if parts[0] != "sqlresults":
            return None
        return parts[1] if len(parts) > 1 else "__init__"

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    name = target(alias.name)
                    if name is not None:
                        found.append((name, nested, child.lineno))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = "sqlresults" + (f".{base}" if base else "")
                name = target(base)
                if name == "__init__":
                    # `from sqlresults import migrations` imports a submodule.
                    for alias in child.names:
                        submodule = alias.name if alias.name in MODULES else "__init__"
                        found.append((submodule, nested, child.lineno))
                elif name is not None:
                    found.append((name, nested, child.lineno))
            visit(child, nested)

    visit(parse(module), in_function=False)
    return found


class TestTopLevelExports:
    def test_all_is_sorted(self) -> None:
        """sqlresults.__all__ is sorted the project's way (ruff RUF022: constants, classes,
        then the rest, case-sensitively), without duplicates."""
        assert is_sorted_for_export(sqlresults.__all__)
        assert len(set(sqlresults.__all__)) == len(sqlresults.__all__)

    def test_all_lists_exactly_the_public_names(self) -> None:
        """__all__ holds every public name of the package namespace and nothing else
        (submodules aside), plus __version__; names imported on first use (the package's
        module __getattr__) included."""
        public = {
            name
            for name in dir(sqlresults)
            if not name.startswith("_") and not isinstance(getattr(sqlresults, name), ModuleType)
        }
        assert set(sqlresults.__all__) - {"__version__"} == public
        bound = {
            name
            for name, value in vars(sqlresults).items()
            if not name.startswith("_") and not isinstance(value, ModuleType)
        }
        assert bound <= set(sqlresults.__all__)

    def test_version(self) -> None:
        """__version__ is exported and is a version string."""
        assert "__version__" in sqlresults.__all__
        assert isinstance(sqlresults.__version__, str)
        assert sqlresults.__version__[0].isdigit()

    @pytest.mark.parametrize(
        "name",
        [
            "ResultStore",
            "ResultRecord",
            "Database",
            "transaction",
            "IsolationLevel",
            "RecordNotFoundError",
            "InvalidEnvelopeError",
            "Serializer",
            "Settings",
            "get_result_store",
            "ThreadPoolTaskRunner",
            "ProcessPoolTaskRunner",
        ],
    )
    def test_main_names_are_re_exported(self, name: str) -> None:
        """The main names of DESIGN.md §1 are importable from the package, and are the objects
        their modules define."""
        value = getattr(sqlresults, name)
        module = importlib.import_module(value.__module__)
        assert getattr(module, name) is value


class TestExportOrder:
    def test_order_rule(self) -> None:
        """The rule puts constants first, then classes, then other names; case-sensitively
        within a group, numbers naturally."""
        names = ["b", "SQLITE", "Alpha", "_private", "MAX_2", "MAX_10", "SQLThing", "Sa", "a"]
        assert sorted(names, key=export_order) == [
            "MAX_2",
            "MAX_10",
            "SQLITE",
            "Alpha",
            "SQLThing",
            "Sa",
            "_private",
            "a",
            "b",
        ]


class TestModuleAll:
    @pytest.mark.parametrize("module", sorted(set(MODULES) - ENTRY_POINTS))
    def test_module_has_a_sorted_all_of_existing_names(self, module: str) -> None:
        """Every library module declares a sorted, duplicate-free __all__ whose names exist."""
        imported = importlib.import_module(f"sqlresults.{module}")
        names = getattr(imported, "__all__", None)
        assert isinstance(names, list), f"sqlresults.{module} has no __all__ list"
        assert is_sorted_for_export(names)
        assert len(set(names)) == len(names)
        missing = [name for name in names if not hasattr(imported, name)]
        assert missing == []

    def test_main_module_only_runs_the_cli(self) -> None:
        """__main__ (exempt from __all__: importing it runs the CLI) imports only the CLI."""
        assert {name for name, _, _ in sqlresults_imports("__main__")} == {"cli"}


class TestLayering:
    def test_every_module_has_a_layer(self) -> None:
        """Each library module is placed in the layer order (a new module must be placed)."""
        assert set(MODULES) - ENTRY_POINTS - set(RANK) == set()

    @pytest.mark.parametrize("module", sorted(set(MODULES) - ENTRY_POINTS))
    def test_imports_go_one_way(self, module: str) -> None:
        """A module imports only modules of earlier layers (or its own) at module level; an
        import of a later layer is allowed only inside a function, where listed as lazy."""
        wrong = []
        for imported, in_function, line in sqlresults_imports(module):
            if imported == "__init__":
                wrong.append(f"line {line}: imports the package itself")
                continue
            if RANK[imported] <= RANK[module]:
                continue
            if in_function and (module, imported) in LAZY_UPWARD_IMPORTS:
                continue
            wrong.append(f"line {line}: imports {imported} (a later layer)")
        assert wrong == [], f"sqlresults.{module}"

    def test_no_import_cycles_within_a_layer(self) -> None:
        """Module-level imports between modules of one layer form no cycle."""
        graph = {
            module: {
                imported
                for imported, in_function, _ in sqlresults_imports(module)
                if not in_function
                and imported in RANK
                and RANK[imported] == RANK[module]
                and imported != module  # a subpackage's files import each other
            }
            for module in set(MODULES) - ENTRY_POINTS
        }
        done: set[str] = set()

        def visit(module: str, path: tuple[str, ...]) -> None:
            assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
            if module in done:
                return
            for imported in graph.get(module, ()):
                visit(imported, (*path, module))
            done.add(module)

        for module in graph:
            visit(module, ())

    def test_errors_imports_nothing_of_ours(self) -> None:
        """errors is the bottom layer: it imports no sqlresults module at all."""
        assert sqlresults_imports("errors") == []

    def test_store_never_imports_the_task_layer(self) -> None:
        """results imports nothing from the task layer, lazily or not."""
        task_layer = set().union(*LAYERS[RANK["states"] : RANK["cli"]])
        assert {name for name, _, _ in sqlresults_imports("results")} & task_layer == set()


class TestDialectNames:
    @pytest.mark.parametrize("module", sorted(set(MODULES) - {DIALECT_MODULE}))
    def test_only_dialects_names_a_dialect(self, module: str) -> None:
        """No module but dialects.py has a string literal that is a dialect name ("sqlite",
        "postgresql"): the rest ask the Dialect."""
        literals = [
            (node.lineno, node.value)
            for node in ast.walk(parse(module))
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.lower() in DIALECT_NAMES
        ]
        assert literals == []

    def test_dialects_module_names_both(self) -> None:
        """The check above looks at the right thing: dialects.py does name both dialects."""
        literals = {
            node.value
            for node in ast.walk(parse(DIALECT_MODULE))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
        assert literals >= DIALECT_NAMES
