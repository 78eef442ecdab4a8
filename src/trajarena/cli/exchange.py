"""``trajarena import …`` / ``trajarena export …``: recordings in and out of other tools' formats.

Each source or target is a subcommand registered on :data:`import_app` or :data:`export_app` by
its own module (e.g. :mod:`trajarena.cli.diambra` adds ``trajarena import diambra``); every one
calls the Python API in :mod:`trajarena.interop`. This module registers ``export parquet``,
``export minari``, ``export video`` and ``import minari``; each shows a progress bar (episodes)
and ends with a one-line summary (:class:`~trajarena.interop.summary.ConversionSummary`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from trajarena.cli.app import PathArg, app, console, fail, typer
from trajarena.errors import TrajArenaError

__all__ = ["export_app", "import_app", "progress_bar"]

import_app = typer.Typer(help="Convert recordings made by other tools into trajarena files.", no_args_is_help=True)
export_app = typer.Typer(help="Write trajarena recordings in other tools' formats.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")

ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace what an earlier run wrote there.")]


@contextmanager
def progress_bar(what: str, show: bool = True) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar of episodes, as the ``progress(done, total)`` callback of the interop API."""
    if not show:
        yield None
        return
    columns = (TextColumn(f"[bold]{escape(what)}"), BarColumn(), MofNCompleteColumn(), TextColumn("episodes"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _run(what: str, show: bool, convert: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run an interop conversion with a progress bar; typed errors become one red line (exit 2)."""
    try:
        with progress_bar(what, show) as progress:
            summary = convert(*args, progress=progress, **kwargs)
    except (TrajArenaError, IndexError) as exc:
        fail(exc)
    console.print(escape(str(summary)), highlight=False, soft_wrap=True)
    return summary


@export_app.command("parquet")
def export_parquet(
    path: PathArg,
    out: Annotated[Path, typer.Argument(help="The output folder: one .parquet file per trajectory file.")],
    compression: Annotated[str, typer.Option(help="zstd, snappy, lz4, gzip or none.")] = "zstd",
    partial: Annotated[bool, typer.Option(help="Include .partial files (a running or crashed recording).")] = False,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Decoded steps as Parquet (one row per step), for DuckDB, polars, pandas, Hugging Face datasets, Ray."""
    from trajarena.interop.parquet import export_parquet as run

    _run("parquet", progress, run, path, out, compression=compression, include_partial=partial, overwrite=overwrite)
    console.print(f"query it: duckdb -c \"SELECT episode, SUM(reward) FROM read_parquet('{escape(str(out))}/*.parquet') "
                  "GROUP BY episode\"", highlight=False, soft_wrap=True)


@export_app.command("video")
def export_video(
    path: PathArg,
    out: Annotated[Path, typer.Argument(help="The video file: .mp4 (H.264) or .gif.")],
    episode: Annotated[int, typer.Option("--episode", "-e", help="Which episode (see `trajarena info -e`).")] = 0,
    fps: Annotated[int, typer.Option(min=1, max=240, help="Frames per second.")] = 20,
    scale: Annotated[int, typer.Option(min=1, max=16, help="Integer upscaling of the frames.")] = 1,
    key: Annotated[str, typer.Option(help="The frame's key in a Dict observation.")] = "frame",
) -> None:
    """The frames of one recorded episode as an MP4 or GIF (needs the video extra)."""
    from trajarena.interop.video import export_video as run

    _run("video", False, run, path, out, episode, fps=fps, scale=scale, key=key)


@export_app.command("minari")
def export_minari(
    path: PathArg,
    dataset_id: Annotated[str, typer.Argument(help="The Minari dataset id, e.g. 'trajarena/duel/expert-v0'.")],
    perspective: Annotated[str, typer.Option(help="2-player files: both (agent_0's then agent_1's view of each "
                                                  "episode), P1 (agent_0's), P2 (agent_1's) or joint.")] = "both",
    data_format: Annotated[str, typer.Option(help="Minari's storage: hdf5 or arrow.")] = "hdf5",
    jpeg: Annotated[bool, typer.Option(help="Let Minari JPEG-encode image observations (lossy, smaller).")] = False,
    author: Annotated[str | None, typer.Option(help="Stored as the dataset's author (default: the files' username).")] = None,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """A Minari dataset (MINARI_DATASETS_PATH) that minari.load_dataset reads and recover_environment rebuilds."""
    from trajarena.interop.minari import export_minari as run

    _run("minari", progress, run, path, dataset_id, perspective=perspective, data_format=data_format, jpeg=jpeg,
         author=author, overwrite=overwrite)


@import_app.command("minari")
def import_minari(
    dataset: Annotated[str, typer.Argument(help="A local Minari dataset id, or the path of a dataset folder.")],
    out: Annotated[Path, typer.Argument(help="The folder the trajectory files go to.")],
    username: Annotated[str, typer.Option(help="Stored as who played (default: the dataset's author).")] = "",
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Convert a Minari dataset into trajarena files (values checked against the dataset's spaces)."""
    from trajarena.interop.minari import import_minari as run

    _run("import minari", progress, run, dataset, out, username=username or None, overwrite=overwrite)
