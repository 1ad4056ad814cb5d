"""The README's tour is code: it must run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


class TestTour:
    def test_tour_runs_and_shows_what_it_says(self) -> None:
        """The tour's code runs top to bottom in a fresh home (the autouse fixture points
        SQLRESULTS_HOME and the working directory at a temporary directory), and the values its
        comments promise are the real ones."""
        (tour,) = _python_blocks()
        namespace: dict[str, object] = {}
        exec(compile(tour, str(README), "exec"), namespace)  # our own README, not input
        store = namespace["store"]
        team = namespace["team"]
        assert store.read("daily-report").result == {"rows": 42}  # type: ignore[attr-defined]
        assert list(team.keys(prefix="raw/")) == ["raw/2026-11-21.json"]  # type: ignore[attr-defined]
        assert namespace["value"] == sum(range(10**7))
        assert not store.is_locked("k")  # type: ignore[attr-defined]
        assert Path("team.db").is_file()
