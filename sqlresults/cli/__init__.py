"""The ``sqlresults`` command (also ``python -m sqlresults``): see, explain, tend and move what
is stored, on the desktop's SQLite file or the team's PostgreSQL.

Commands: ``ls``, ``rm`` (:mod:`.records`); ``show``, ``explain`` (:mod:`.show`); ``sweep``,
``locks``, ``unlock``, ``stats``, ``vacuum`` (:mod:`.maintenance`); ``export``, ``import``
(:mod:`.transfer`); ``doctor`` (:mod:`.doctor`); ``migrate`` (:mod:`.migrate`). The group, its
options and its conventions (exit statuses, ``--json``, prompts) are in :mod:`._app`.

The database URL comes from ``--url`` or ``SQLRESULTS_DATABASE_URL``; it is only ever printed
with its password masked.
"""

from __future__ import annotations

# The command modules are imported by the group when a command is used (``_app.COMMANDS``):
# importing one registers its commands on the group.
from sqlresults.cli._app import cli, main

__all__ = ["cli", "main"]
