"""``trajarena …``: the command line's shared parts: the typer app, the console, options, errors, ``main``.

Each command group is its own module that registers its commands on :data:`app` and only calls
the public Python API: :mod:`~trajarena.cli.catalog` (envs, settings), :mod:`~trajarena.cli.data`
(info, verify, repair, replay, stats), :mod:`~trajarena.cli.learning` (record, train-bc,
evaluate) and :mod:`~trajarena.cli.play` (play). ``trajarena/cli/__init__.py`` imports them, in the
order ``trajarena --help`` lists them; a new group is a new module added to that import.

Settings are passed as ``-s KEY=VALUE`` (environment), ``-w KEY=VALUE`` (wrappers); the valid keys
are generated from the settings dataclasses (``trajarena settings`` lists them), so the help never
drifts from the code. Values are parsed as JSON when they can be (``-s frame_shape=[84,84,1]``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

from trajarena.errors import TrajArenaError, require

typer = require("typer", "cli", "The trajarena command line")

from rich.console import Console  # noqa: E402  (rich comes with typer)
from rich.markup import escape  # noqa: E402

__all__ = ["OPTIONAL_VALUES", "PathArg", "SettingOpt", "WrapperOpt", "app", "command_from_dataclass", "console",
           "fail", "main", "optional_values", "parse_pairs"]

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
PathArg = Annotated[Path, typer.Argument(help="A trajectory file, or a folder searched recursively.")]


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


def fail(exc: Exception) -> NoReturn:
    """Print a library error as one red line and exit with code 2 (no traceback)."""
    console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
    raise typer.Exit(2)


def command_from_dataclass(
    cls: type, run: Any, name: str, help: str, positional: tuple[str, ...] = (), extra: dict[str, tuple[Any, Any]] | None = None
) -> None:
    """Register ``trajarena NAME``: one option per field of the dataclass ``cls`` (help from its metadata).

    ``run(**values)`` receives the field values plus ``extra`` parameters (name -> (annotation, typer default)),
    so the command line, the Python API and the docs share one list of options.
    """
    import inspect
    import typing

    hints = typing.get_type_hints(cls)
    params, annotations = [], {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        text = f.metadata.get("help", "")
        if f.name in positional:
            option = typer.Argument(default, help=text)
        else:
            flag = f.name.replace("_", "-")
            names = f"--{flag}/--no-{flag}" if hints[f.name] is bool else f"--{flag}"
            option = typer.Option(default, names, help=text)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=hints[f.name]))
        annotations[f.name] = hints[f.name]
    for key, (annotation, option) in (extra or {}).items():
        params.append(inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation))
        annotations[key] = annotation

    def command(**values: Any) -> None:
        run(**values)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = annotations
    command.__doc__ = help
    app.command(name=name)(command)


#: options whose value may be left out: ``--ray`` alone means "Ray's default cluster" (``--ray=``).
OPTIONAL_VALUES = ("--ray",)


def optional_values(argv: list[str]) -> list[str]:
    """Give the options of :data:`OPTIONAL_VALUES` an empty value where none follows (typer has no optional values).

    >>> optional_values(["record", "duel", "--ray", "-n", "4"]), optional_values(["record", "--ray", "h:1"])
    (['record', 'duel', '--ray=', '-n', '4'], ['record', '--ray', 'h:1'])
    """
    return [f"{a}=" if a in OPTIONAL_VALUES and (i + 1 == len(argv) or argv[i + 1].startswith("-")) else a
            for i, a in enumerate(argv)]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``trajarena`` script: typed library errors become a red message and exit code 2."""
    try:
        app(args=optional_values(argv if argv is not None else sys.argv[1:]), standalone_mode=True)
    except (TrajArenaError, OSError) as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    # ``python -m trajarena.cli.app`` runs this file as a second module; the package already imported the
    # first one and registered the commands on its app, so run that one.
    sys.modules[__spec__.name].main()
