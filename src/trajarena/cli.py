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


def _fail(exc: Exception) -> None:
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


PathArg = Annotated[Path, typer.Argument(help="A trajectory file, or a folder searched recursively.")]


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"


@app.command()
def info(
    path: PathArg,
    episodes: Annotated[bool, typer.Option("--episodes", "-e", help="List every episode.")] = False,
    partial: Annotated[bool, typer.Option(help="Include .partial files (a running or crashed recording).")] = False,
) -> None:
    """What the files hold: env, spaces, settings, who played, episodes, steps, size — without decoding frames."""
    from trajarena import open_trajectories

    try:
        ds = open_trajectories(path, include_partial=partial)
    except TrajArenaError as exc:
        _fail(exc)
    meta = ds.metadata
    size = sum(p.stat().st_size for p in ds.files)
    returns = [e.total_return for e in ds.episodes]
    table = Table(show_header=False, box=None)
    for key, value in (
        ("files", len(ds.files)),
        ("episodes", ds.num_episodes),
        ("steps", ds.num_steps),
        ("size", f"{_human_bytes(size)} ({size / max(ds.num_steps, 1):.0f} B/step)"),
        ("env", meta.get("env_id")),
        ("username", meta.get("username")),
        ("players", meta.get("players")),
        ("ignore_p2", meta.get("ignore_p2")),
        ("observation space", ds.observation_space),
        ("action space", ds.action_space),
        ("env settings", json.dumps(meta.get("env_settings"))),
        ("wrappers settings", json.dumps({k: v for k, v in (meta.get("wrappers_settings") or {}).items()})),
        ("returns", f"mean {sum(returns) / len(returns):.2f}, min {min(returns):.2f}, max {max(returns):.2f}"
         if returns else "-"),
        ("format", f"v{meta.get('format_version')} written by trajarena {meta.get('library_version')}"),
    ):
        table.add_row(f"[bold]{key}[/]", str(value))
    console.print(table)
    if episodes:
        t = Table("#", "file", "length", "return", "seed", "end")
        for e in ds.episodes:
            end = "terminated" if e.terminated else "truncated" if e.truncated else e.end_reason
            t.add_row(str(e.index), e.file.name, str(e.length), f"{e.total_return:.2f}", str(e.seed), end)
        console.print(t)


@app.command()
def verify(path: PathArg) -> None:
    """Check every file (headers, sizes, checksums of every chunk); exit 1 when something is damaged."""
    from trajarena import verify as verify_files

    report = verify_files(path)
    console.print(f"{len(report.ok)} intact file(s), {report.episodes} episodes, {report.steps} steps")
    for p, why in report.damaged.items():
        console.print(f"[red]damaged[/] {p}: {why}", highlight=False)
    for p in report.partial:
        console.print(f"[yellow]partial[/] {p} (a running or crashed recording: `trajarena repair`)", highlight=False)
    if report.damaged:
        raise typer.Exit(1)


@app.command()
def repair(
    path: PathArg,
    force: Annotated[bool, typer.Option(help="Also repair files of a recording that seems to be running.")] = False,
) -> None:
    """Salvage what a crashed recorder left (.partial files): keep every complete chunk, mark the episode truncated."""
    from trajarena import repair as repair_files

    report = repair_files(path, force=force)
    for src, dst in report.repaired.items():
        console.print(f"[green]repaired[/] {src.name} -> {dst.name}", highlight=False)
    for p in report.removed:
        console.print(f"removed {p.name} (no complete chunk to salvage)", highlight=False)
    for p, why in report.skipped.items():
        console.print(f"[yellow]skipped[/] {p.name}: {why}", highlight=False)
    console.print(f"{len(report.repaired)} file(s) repaired, {report.episodes} episodes, {report.steps} steps")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``trajarena`` script: typed library errors become a red message and exit code 2."""
    try:
        app(args=argv if argv is not None else sys.argv[1:], standalone_mode=True)
    except (TrajArenaError, FileNotFoundError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
