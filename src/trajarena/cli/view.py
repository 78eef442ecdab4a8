"""``trajarena view``: scrub through recorded episodes in the Rerun viewer (the ``view`` extra).

The command calls :mod:`trajarena.interop.rerun`: :func:`~trajarena.interop.rerun.spawn_viewer`
(a window, the default), :func:`~trajarena.interop.rerun.serve_web` (``--web``: Rerun's web viewer,
served until Ctrl-C) or :func:`~trajarena.interop.rerun.save_rrd` (``--save out.rrd``: a file,
nothing opened; ``rerun out.rrd`` shows it later).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

from rich.markup import escape

from trajarena.cli.app import PathArg, app, console, fail, typer
from trajarena.cli.exchange import progress_bar
from trajarena.errors import TrajArenaError

__all__ = ["parse_episodes", "view"]


def parse_episodes(text: str | None) -> list[int] | None:
    """``"0,3,5-7"`` -> ``[0, 3, 5, 6, 7]`` (None: every episode).

    >>> parse_episodes("0,3,5-7"), parse_episodes(None)
    ([0, 3, 5, 6, 7], None)
    """
    if text is None:
        return None
    out: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise typer.BadParameter(f"--episodes takes numbers and ranges such as 0,3,5-7; got {text!r}.")
        out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    return out


@app.command()
def view(
    path: PathArg,
    save: Annotated[Path | None, typer.Option("--save", help="Write a Rerun .rrd file instead of opening a viewer (open it later with `rerun FILE`).")] = None,
    web: Annotated[bool, typer.Option("--web", help="Serve Rerun's web viewer at http://127.0.0.1:PORT instead of opening a window; Ctrl-C stops it.")] = False,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the web viewer (--web).")] = 9090,
    data_port: Annotated[int, typer.Option(min=1, max=65535, help="Port the web viewer reads the data from (--web).")] = 9876,
    browser: Annotated[bool, typer.Option("--browser/--no-browser", help="Open a browser tab (--web).")] = True,
    episodes: Annotated[str | None, typer.Option("--episodes", "-e", help="Which episodes, e.g. 0,3,5-7 (default: all; see `trajarena info -e`).")] = None,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Stop before the episode that would pass this many steps.")] = None,
    partial: Annotated[bool, typer.Option(help="Include .partial files (a running or crashed recording).")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Scrub through recorded episodes in the Rerun viewer: frames, actions, rewards, values, episodes, take-overs."""
    from trajarena.interop import rerun as viewer

    if save is not None and web:
        raise typer.BadParameter("--save writes a file and --web serves a viewer: choose one.")
    chosen = parse_episodes(episodes)
    options = {"episodes": chosen, "max_steps": max_steps, "include_partial": partial}
    try:
        with progress_bar("view", progress) as bar:
            if save is not None:
                summary = viewer.save_rrd(path, save, progress=bar, **options)
            elif web:
                served = viewer.serve_web(path, web_port=port, grpc_port=data_port, open_browser=browser,
                                          progress=bar, **options)
                summary = served.summary
            else:
                summary = viewer.spawn_viewer(path, progress=bar, **options)
    except TrajArenaError as exc:
        fail(exc)
    if save is not None:
        console.print(escape(str(summary)), highlight=False, soft_wrap=True)
    else:
        console.print(f"showing {summary.episodes} episode(s), {summary.steps:,} steps", highlight=False)
    if save is None and web:
        try:  # from the moment the address is shown, Ctrl-C stops the viewer cleanly
            console.print(f"web viewer: {served.url}\n(Ctrl-C stops it)", highlight=False, soft_wrap=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            console.print("stopped the web viewer")
