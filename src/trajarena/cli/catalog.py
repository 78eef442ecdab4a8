"""``trajarena envs`` and ``trajarena settings``: what there is to play and to configure.

Both commands read the registry and the settings dataclasses, so the lists never drift from the code.
"""

from __future__ import annotations

import dataclasses
import json

from rich.table import Table

from trajarena.cli.app import app, console

__all__ = ["envs", "settings"]


@app.command()
def envs() -> None:
    """List the env ids trajarena builds itself (any Gymnasium id works too)."""
    from trajarena import registered_ids

    for env_id in registered_ids():
        console.print(env_id)


@app.command()
def settings() -> None:
    """List every environment, wrappers and recording setting with its default."""
    from trajarena.settings import EnvironmentSettings, RecordingSettings, WrappersSettings

    for cls, flag in ((EnvironmentSettings, "-s"), (WrappersSettings, "-w"), (RecordingSettings, "record")):
        table = Table(title=f"{cls.__name__} ({flag})", show_lines=False)
        table.add_column("key")
        table.add_column("default")
        default = cls(file_path="data") if cls is RecordingSettings else cls()
        for f in dataclasses.fields(cls):
            table.add_row(f.name, json.dumps(default.to_dict()[f.name]))
        console.print(table)
