"""`python -m space` runs the offline Space (the same as `ghibli space`), without the pipeline package."""

from space.cli import space

space.main(prog_name="python -m space")
