"""The ``trajarena`` command line (typer); every command calls the public Python API.

:mod:`~trajarena.cli.app` holds the shared app, options and ``main``; each command group is a module
that registers its commands on it when imported here. The imports below are the one place that lists
the groups, in the order ``trajarena --help`` shows them: a new group (``import``, ``export``,
``view``) is a new module added to them.
"""

from trajarena.cli.app import app, main
from trajarena.cli import catalog, data, stats, view, exchange, learning, play  # noqa: F401  (each registers its commands on app)
from trajarena.cli import diambra  # noqa: F401,E402  (registers `trajarena import diambra` on exchange.import_app)

__all__ = ["app", "main"]
