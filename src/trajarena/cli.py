"""``trajarena …``: the command line. Each command only calls the public API.

Settings are passed as ``-s KEY=VALUE`` (environment), ``-w KEY=VALUE`` (wrappers); the valid keys
are generated from the settings dataclasses (``trajarena settings`` lists them), so the help never
drifts from the code. Values are parsed as JSON when they can be (``-s frame_shape=[84,84,1]``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any

from trajarena.errors import TrajArenaError, require

typer = require("typer", "cli", "The trajarena command line")

from rich.console import Console  # noqa: E402  (rich comes with typer)
from rich.table import Table  # noqa: E402

app = typer.Typer(
    name="trajarena",
    help="Record game experience into safe trajectory files and learn from it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()

SettingOpt = Annotated[
    list[str] | None,
    typer.Option("--setting", "-s", help="Environment setting KEY=VALUE (repeatable); see `trajarena settings`."),
]
WrapperOpt = Annotated[
    list[str] | None,
    typer.Option("--wrapper", "-w", help="Wrappers setting KEY=VALUE (repeatable); see `trajarena settings`."),
]


def parse_pairs(pairs: list[str] | None, what: str) -> dict[str, Any]:
    """Turn ``["difficulty=3", "frame_shape=[84,84,1]"]`` into a dict (values parsed as JSON when possible).

    >>> parse_pairs(["difficulty=3", "role=P1", "frame_shape=[84,84,1]"], "setting")
    {'difficulty': 3, 'role': 'P1', 'frame_shape': [84, 84, 1]}
    """
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{what} {pair!r} must look like KEY=VALUE, e.g. difficulty=3")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def _fail(exc: TrajArenaError) -> None:
    console.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(2)


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


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``trajarena`` script: typed library errors become a red message and exit code 2."""
    try:
        app(args=argv if argv is not None else sys.argv[1:], standalone_mode=True)
    except TrajArenaError as exc:
        _fail(exc)


if __name__ == "__main__":
    main()

_ = Path  # used by commands added below
