"""The ``trajarena`` command line (typer); every command calls the public Python API."""

from trajarena.cli.app import app, main

__all__ = ["app", "main"]
