"""The wheel ships the migration tree, and an installed sqlresults migrates from it.

The wheel is built once for this module from the checkout (into a temporary directory, so the
repository gets no ``dist/``) and installed into a fresh virtual environment without system
site-packages. Every command of the installed copy runs from a temporary directory, so the
repository's top-level ``alembic/`` folder cannot be used by accident: a passing test proves
the migrations are inside the wheel.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sqlresults import migrations

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def run(command: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with no PYTHONPATH and no sqlresults settings; fail with its output
    if it exits non-zero."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name != "PYTHONPATH" and not name.startswith("SQLRESULTS_")
    }
    if cwd is not None:
        env["SQLRESULTS_HOME"] = str(cwd / "home")
    completed = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, (
        f"{command} exited {completed.returncode}\n"
        f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    )
    return completed


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sqlresults wheel built from this checkout."""
    outdir = tmp_path_factory.mktemp("wheel")
    run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(outdir),
            str(REPO),
        ]
    )
    (built,) = outdir.glob("sqlresults-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> list[str]:
    """Every file name inside the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment (no system site-packages) with the wheel installed; its
    dependencies come from the package index."""
    path = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", str(path)])
    run([str(path / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)])
    return path


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty working directory outside the repository."""
    return tmp_path_factory.mktemp("work")


class TestWheelContents:
    def test_migration_tree_is_shipped(self, wheel_names: list[str]) -> None:
        """The wheel holds sqlresults/_alembic with env.py, the template and every revision."""
        assert "sqlresults/_alembic/env.py" in wheel_names
        assert "sqlresults/_alembic/script.py.mako" in wheel_names
        revisions = sorted((REPO / "alembic" / "versions").glob("*.py"))
        assert revisions
        for revision in revisions:
            assert f"sqlresults/_alembic/versions/{revision.name}" in wheel_names

    def test_shipped_tree_is_exactly_the_repository_tree(self, wheel_names: list[str]) -> None:
        """sqlresults/_alembic holds the files of the top-level alembic/ folder, no more (no
        bytecode, no stray files) and no fewer."""
        shipped = {
            name.removeprefix("sqlresults/_alembic/")
            for name in wheel_names
            if name.startswith("sqlresults/_alembic/")
        }
        source = {
            path.relative_to(REPO / "alembic").as_posix()
            for path in (REPO / "alembic").rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }
        assert shipped == source

    def test_no_top_level_alembic_package(self, wheel_names: list[str]) -> None:
        """Nothing lands in a top-level alembic/ directory, which would shadow the alembic
        library in site-packages."""
        assert [name for name in wheel_names if name.split("/")[0] == "alembic"] == []
        assert "sqlresults/_alembic/__init__.py" not in wheel_names

    def test_py_typed(self, wheel_names: list[str]) -> None:
        """The package is marked as typed (PEP 561)."""
        assert "sqlresults/py.typed" in wheel_names

    def test_console_script_entry_point(self, wheel: Path, wheel_names: list[str]) -> None:
        """The wheel declares the console script ``sqlresults = sqlresults.cli:main``."""
        (entry_points,) = [n for n in wheel_names if n.endswith(".dist-info/entry_points.txt")]
        with zipfile.ZipFile(wheel) as archive:
            text = archive.read(entry_points).decode()
        parser = configparser.ConfigParser()
        parser.read_string(text)
        assert dict(parser["console_scripts"]) == {"sqlresults": "sqlresults.cli:main"}


class TestInstalledWheel:
    def test_cli_migrates_a_new_database(self, venv: Path, workdir: Path) -> None:
        """The installed ``sqlresults`` command creates and migrates a new SQLite file, and
        ``migrate current`` then reports the head revision."""
        head = migrations.head_revision()
        url = f"sqlite:///{workdir / 'new.db'}"
        script = str(venv / "bin" / "sqlresults")

        migrated = run([script, "--url", url, "migrate"], cwd=workdir)
        current = run([script, "--url", url, "migrate", "current"], cwd=workdir)

        assert f"Upgraded from (empty) to {head}." in migrated.stdout
        assert f"Revision: {head} (head)" in current.stdout

    def test_cli_prints_offline_sql(self, venv: Path, workdir: Path) -> None:
        """``migrate --sql`` works from the installed copy too (offline mode runs the shipped
        env.py) and creates no file."""
        url = f"sqlite:///{workdir / 'offline.db'}"

        printed = run(
            [str(venv / "bin" / "sqlresults"), "--url", url, "migrate", "--sql"], cwd=workdir
        )

        assert "CREATE TABLE sqlresults_records" in printed.stdout
        assert not (workdir / "offline.db").exists()

    def test_library_writes_and_reads_from_the_installed_copy(
        self, venv: Path, workdir: Path
    ) -> None:
        """In the fresh environment, away from the repository, a store on a new SQLite file
        migrates it from the shipped tree and round-trips a record."""
        program = (
            "import json, sqlresults, sqlresults.migrations as m\n"
            "from sqlresults.results import ResultStore\n"
            "store = ResultStore(result_storage='sqlite:///lib.db', namespace='pkg')\n"
            "store.write({'answer': 42}, key='k')\n"
            "print(json.dumps({'result': store.read('k').result,\n"
            "    'location': str(m.script_location()), 'package': sqlresults.__file__,\n"
            "    'revision': store.result_storage.schema_revision()}))\n"
        )

        completed = run([str(venv / "bin" / "python"), "-c", program], cwd=workdir)

        report = json.loads(completed.stdout)
        assert report["result"] == {"answer": 42}
        assert report["revision"] == migrations.head_revision()
        package_dir = Path(report["package"]).parent
        assert package_dir.is_relative_to(venv)
        assert Path(report["location"]) == package_dir / "_alembic"
        assert (workdir / "lib.db").exists()
