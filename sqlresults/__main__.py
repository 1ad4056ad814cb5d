"""``python -m sqlresults``: the command line interface."""

from sqlresults.cli import main

main()
