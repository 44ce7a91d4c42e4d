"""`python -m ghibli` is the `ghibli` command."""

from ghibli.cli import main

main()
