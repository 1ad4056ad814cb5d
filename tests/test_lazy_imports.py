"""What importing the package and starting the command line load: names and commands are
imported on first use, so ``import sqlresults`` and ``sqlresults --help`` (paid by every CLI call,
process-pool worker and Dask worker) load none of the heavy dependencies. Behaviour only: each
check runs in a fresh interpreter and looks at ``sys.modules``, never at a clock."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import sqlresults
from sqlresults.cli import _app

# Seconds a fresh interpreter gets to run one check (a loaded machine is slow, not hung).
TIMEOUT = 120

# What neither `import sqlresults` nor `sqlresults --help` may load.
HEAVY = {
    "alembic",
    "cachetools",
    "cloudpickle",
    "dask",
    "distributed",
    "importlib.metadata",
    "numpy",
    "orjson",
    "pandas",
    "prefect",
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "rich",
    "sqlalchemy",
}


def fresh(code: str, *args: str) -> Any:
    """Run ``code`` in a fresh interpreter and return what it printed last, as JSON.

    The code gets ``report(value)``, which prints ``value`` as JSON, and ``loaded()``, the
    sorted names of the modules imported so far.
    """
    prelude = (
        "import json, sys\n"
        "def report(value):\n"
        "    print(json.dumps(value))\n"
        "def loaded():\n"
        "    return sorted(sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def heavy_in(modules: list[str]) -> set[str]:
    """The :data:`HEAVY` packages (or their submodules) among ``modules``."""
    return {name for name in modules if name in HEAVY or name.split(".")[0] in HEAVY}


class TestPackage:
    def test_import_loads_no_dependency_and_no_submodule(self) -> None:
        """``import sqlresults`` imports none of its dependencies and none of its own modules."""
        modules = fresh("import sqlresults\nreport(loaded())")
        assert heavy_in(modules) == set()
        assert [name for name in modules if name.startswith("sqlresults")] == ["sqlresults"]

    def test_every_exported_name_resolves_to_its_modules_object(self) -> None:
        """``from sqlresults import *`` in a fresh interpreter gives every name of __all__, each
        the object its defining module holds."""
        wrong = fresh(
            """
            import importlib
            import sqlresults
            from sqlresults import *
            from sqlresults import __version__
            names = [name for name in sqlresults.__all__ if name != "__version__"]
            report([
                name for name in names
                if globals()[name]
                is not getattr(
                    importlib.import_module("sqlresults." + sqlresults._SOURCES[name]), name
                )
            ])
            """
        )
        assert wrong == []

    def test_sources_list_exactly_the_exports(self) -> None:
        """The table of where each name lives holds every name of __all__ (bar __version__)."""
        assert set(sqlresults._SOURCES) == set(sqlresults.__all__) - {"__version__"}

    def test_type_checkers_see_the_same_names(self) -> None:
        """The TYPE_CHECKING imports (what mypy and editors see) name the same objects, from the
        same modules, as the table the package imports them from at run time."""
        tree = ast.parse(Path(sqlresults.__file__).read_text(encoding="utf-8"))
        guarded = [
            node
            for node in tree.body
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        ]
        assert len(guarded) == 1
        imported = {
            alias.asname or alias.name: (node.module or "").removeprefix("sqlresults.")
            for node in guarded[0].body
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
        assert imported == sqlresults._SOURCES

    def test_a_light_name_loads_only_its_module(self) -> None:
        """Using an exception class imports sqlresults.errors, not SQLAlchemy or pydantic."""
        modules = fresh("from sqlresults import RecordNotFoundError\nreport(loaded())")
        assert heavy_in(modules) == set()
        assert "sqlresults.errors" in modules
        assert "sqlresults.database" not in modules

    def test_submodules_are_still_attributes_of_the_package(self) -> None:
        """``import sqlresults; sqlresults.results.ResultStore`` works as when the package
        imported its modules up front; unknown names, and the modules it never imported (the
        Prefect adapter, the CLI), raise AttributeError without importing anything."""
        found = fresh(
            """
            import sqlresults
            store = sqlresults.results.ResultStore
            assert store is sqlresults.ResultStore
            assert sqlresults.transactions.transaction is sqlresults.transaction
            missing = [name for name in ("prefect", "cli", "nope") if hasattr(sqlresults, name)]
            report({"missing": missing, "prefect": "prefect" in sys.modules})
            """
        )
        assert found == {"missing": [], "prefect": False}

    def test_version_is_the_installed_distributions(self) -> None:
        """__version__, read on first use, is the installed distribution's version."""
        versions = fresh(
            """
            import sqlresults
            from importlib.metadata import version
            report([sqlresults.__version__, version("sqlresults")])
            """
        )
        assert versions[0] == versions[1]

    def test_dir_lists_names_not_imported_yet(self) -> None:
        """dir(sqlresults) lists every export and submodule before any is imported."""
        names = fresh("import sqlresults\nreport(dir(sqlresults))")
        assert set(sqlresults.__all__) <= set(names)
        assert {"results", "transactions", "errors"} <= set(names)


class TestCommandLine:
    def test_help_lists_every_command_and_imports_none(self) -> None:
        """``sqlresults --help`` lists every command with its summary, and imports neither a
        command's module nor a heavy dependency."""
        found = fresh(
            """
            import contextlib, io
            from sqlresults.cli import main
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    main(["--help"])
                except SystemExit as exit:
                    assert exit.code in (0, None), exit.code
            report({"help": out.getvalue(), "modules": loaded()})
            """
        )
        commands = found["help"].split("Commands:\n", 1)[1].splitlines()
        assert [line.split()[0] for line in commands if line.strip()] == sorted(_app.COMMANDS)
        assert heavy_in(found["modules"]) == set()
        assert [name for name in found["modules"] if name.startswith("sqlresults.cli.")] == [
            "sqlresults.cli._app"
        ]

    def test_help_is_the_same_with_every_command_loaded(self) -> None:
        """The summaries ``--help`` shows before loading the commands are the ones click makes
        from the loaded commands (at any terminal width)."""
        found = fresh(
            """
            import importlib
            from sqlresults.cli import cli
            from sqlresults.cli._app import COMMANDS

            def text(width):
                return cli.get_help(cli.make_context("sqlresults", [], terminal_width=width))

            before = [text(80), text(200)]
            for module, _ in COMMANDS.values():
                importlib.import_module("sqlresults.cli." + module)
            report([before, [text(80), text(200)]])
            """
        )
        assert found[0] == found[1]

    def test_the_table_matches_the_commands(self) -> None:
        """Each command listed in COMMANDS is defined by the module named there, with the help
        whose first paragraph is the one listed; no command of any module of the CLI is
        missing from the table (it would never be loaded)."""
        for path in Path(_app.__file__).parent.glob("*.py"):
            importlib.import_module(f"sqlresults.cli.{path.stem}")
        assert set(_app.cli.commands) == set(_app.COMMANDS)
        for name, (module, summary) in _app.COMMANDS.items():
            command = _app.cli.commands[name]
            assert command.callback is not None
            assert command.callback.__module__ == f"sqlresults.cli.{module}", name
            first_paragraph = inspect.cleandoc(command.help or "").split("\n\n")[0]
            assert " ".join(first_paragraph.split()) == summary, name

    def test_a_command_loads_only_its_module(self) -> None:
        """Running (here: resolving) ``ls`` imports the module of ls and rm, not the others."""
        modules = fresh(
            """
            from sqlresults.cli import cli
            ctx = cli.make_context("sqlresults", [])
            assert cli.get_command(ctx, "ls").name == "ls"
            assert cli.get_command(ctx, "nope") is None
            report(loaded())
            """
        )
        commands = {name for name in modules if name.startswith("sqlresults.cli.")}
        assert commands == {"sqlresults.cli._app", "sqlresults.cli.records"}

    def test_console_script_help_and_unknown_command(self) -> None:
        """``python -m sqlresults --help`` exits 0 listing the commands; an unknown command is
        still a usage error (exit status 2) naming it."""
        done = subprocess.run(
            [sys.executable, "-m", "sqlresults", "--help"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        for name in _app.COMMANDS:
            assert f"\n  {name} " in done.stdout
        wrong = subprocess.run(
            [sys.executable, "-m", "sqlresults", "nope"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert wrong.returncode == 2
        assert "nope" in wrong.stderr

    def test_env_makes_its_consoles_on_first_use(self) -> None:
        """A command's Env imports rich only when a console is used."""
        found = fresh(
            """
            from sqlresults.cli._app import Env
            env = Env()
            before = "rich" in sys.modules
            env.out.print("x")
            report([before, "rich" in sys.modules])
            """
        )
        assert found == [False, True]
