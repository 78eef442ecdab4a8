"""``trajarena import …`` / ``trajarena export …``: recordings in and out of other tools' formats.

Each source or target is a subcommand registered on :data:`import_app` or :data:`export_app` by
its own module (e.g. :mod:`trajarena.cli.diambra` adds ``trajarena import diambra``); every one
calls the Python API in :mod:`trajarena.interop`.
"""

from __future__ import annotations

from trajarena.cli.app import app, typer

__all__ = ["export_app", "import_app"]

import_app = typer.Typer(help="Convert recordings made by other tools into trajarena files.", no_args_is_help=True)
export_app = typer.Typer(help="Write trajarena recordings in other tools' formats.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
