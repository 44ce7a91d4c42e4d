"""`python -m space` runs the offline Space (the same as `ghibli space`)."""

import sys

from ghibli.cli import main

main(["space", *sys.argv[1:]])
