"""``trajarena import diambra SRC... --out DIR``: DIAMBRA Arena recordings in, trajarena files out.

Registers on :data:`trajarena.cli.exchange.import_app` and calls
:func:`trajarena.interop.diambra.import_diambra`: a progress bar over the files, then the summary.
A file that cannot be imported is reported and the others go on; the exit code is 1 when any failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from trajarena.cli.app import console, fail, typer
from trajarena.cli.exchange import import_app
from trajarena.errors import TrajArenaError

__all__ = ["diambra"]


@import_app.command()
def diambra(
    sources: Annotated[list[Path], typer.Argument(help="DIAMBRA files (2.2 *.diambra, 2.1 mod_*/HC_mod*) or folders.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The folder the trajarena files go to.")],
    ignore_p2: Annotated[int | None, typer.Option(
        "--ignore-p2", min=0, max=1,
        help="Two-player files: 1 = P2's side is no demonstration (default: what the file says; 2.2: 0).")] = None,
    game: Annotated[str | None, typer.Option(help="Game id of 2.1 files, which do not store it (default: guessed).")] = None,
    games: Annotated[Path | None, typer.Option(
        help="DIAMBRA's game table (integratedGames.json); default: the installed diambra-arena's.")] = None,
    max_mb: Annotated[int, typer.Option(help="Refuse a file that decompresses to more than this (MB).")] = 1024,
    again: Annotated[bool, typer.Option(help="Import files already imported into --out again.")] = False,
) -> None:
    """Convert DIAMBRA Arena recordings into trajarena files (a restricted unpickler: nothing in them is run)."""
    from trajarena.interop.diambra import find_sources, import_diambra

    try:
        files = find_sources(sources)
        with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      TextColumn("{task.description}"), console=console, transient=True) as bar:
            task = bar.add_task("", total=len(files))

            def advance(path: Path, done: int, total: int) -> None:
                bar.update(task, completed=done, description=escape(path.name))

            summary = import_diambra(files, out, ignore_p2=ignore_p2, game=game, games=games, on_error="skip",
                                     skip_existing=not again, max_bytes=max_mb << 20, progress=advance)
    except TrajArenaError as exc:
        fail(exc)
    console.print(escape(str(summary)), highlight=False)
    if summary.failed:
        raise typer.Exit(1)
