"""CLI: the `streamproc` command."""

from streamproc.cli.parser import main

__all__ = ["main"]
