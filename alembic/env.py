"""Alembic environment of sqlresults: all logic lives in sqlresults.migrations.run_env."""

from alembic import context

from sqlresults.migrations import run_env

run_env(context)
