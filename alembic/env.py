"""Alembic environment of sqlresults: all logic lives in sqlresults.migrations.run_env."""

from alembic import context

from sqlresults.database import Database
from sqlresults.migrations import run_env

run_env(context, open_database=lambda url: Database(url, auto_migrate=False))
