"""``trajarena info | verify | repair | replay | stats``: look at recorded trajectory files.

Each command opens the files through the public API (:func:`trajarena.open_trajectories`,
:func:`trajarena.verify`, :func:`trajarena.repair`) and prints what it finds; none of them writes
to the recording except ``repair``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from rich.markup import escape
from rich.table import Table

from trajarena.cli.app import PathArg, app, console, fail, typer
from trajarena.errors import TrajArenaError, require

__all__ = ["info", "repair", "replay", "stats", "verify"]


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
        fail(exc)
    meta = ds.metadata
    size = ds.nbytes  # as indexed: a .partial file may be renamed meanwhile
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
        ("ignore_p1 / ignore_p2", f"{meta.get('ignore_p1', 0)} / {meta.get('ignore_p2', 0)}"),
        ("observation space", ds.observation_space),
        ("action space", ds.action_space),
        ("env settings", json.dumps(meta.get("env_settings"))),
        ("wrappers settings", json.dumps({k: v for k, v in (meta.get("wrappers_settings") or {}).items()})),
        ("returns", f"mean {sum(returns) / len(returns):.2f}, min {min(returns):.2f}, max {max(returns):.2f}"
         if returns else "-"),
        ("format", f"v{meta.get('format_version')} written by trajarena {meta.get('library_version')}"),
    ):
        table.add_row(f"[bold]{key}[/]", escape(str(value)))
    console.print(table)
    who = ("username", "players", "ignore_p1", "ignore_p2")
    per_file: dict[str, tuple] = {}
    for i, e in enumerate(ds.episodes):
        m = ds.file_metadata(i)
        per_file.setdefault(e.file.name, tuple(json.dumps(m.get(k, 0 if k.startswith("ignore") else None)) for k in who))
    if len(set(per_file.values())) > 1:  # the files disagree on who played: show each
        t = Table("file", *who, title="files differ in who played")
        for name, values in per_file.items():
            t.add_row(name, *(escape(v) for v in values))
        console.print(t)
    if episodes:
        t = Table("#", "file", "length", "return", "seed", "end")
        for e in ds.episodes:
            end = "terminated" if e.terminated else "truncated" if e.truncated else e.end_reason
            t.add_row(str(e.index), e.file.name, str(e.length), f"{e.total_return:.2f}", str(e.seed), end)
        console.print(t)


@app.command()
def verify(path: PathArg) -> None:
    """Check every file (headers, sizes, checksums, values); exit 1 when something is damaged, suspect or crashed."""
    from trajarena import verify as verify_files

    report = verify_files(path)
    console.print(f"{len(report.ok)} intact file(s), {report.episodes} episodes, {report.steps} steps")
    for p, why in report.damaged.items():
        console.print(f"[red]damaged[/] {escape(f'{p}: {why}')}", highlight=False)
    for p, why in report.suspect.items():
        console.print(f"[yellow]suspect[/] {escape(f'{p}: {why}')}", highlight=False)
    for p in report.partial:
        console.print(f"[yellow]crashed[/] {escape(str(p))} (left by a recording that stopped: `trajarena repair`)",
                      highlight=False)
    for p in report.live:
        console.print(f"live {escape(str(p))} (a recording in progress)", highlight=False)
    if not report.clean:
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
        console.print(f"[green]repaired[/] {escape(f'{src.name} -> {dst.name}')}", highlight=False)
    for p in report.removed:
        console.print(f"removed {p.name} (nothing to salvage: empty, only discarded episodes, or a temporary file)",
                      highlight=False)
    for p, why in report.skipped.items():
        console.print(f"[yellow]skipped[/] {escape(f'{p.name}: {why}')}", highlight=False)
    console.print(f"{len(report.repaired)} file(s) repaired, {report.episodes} episodes, {report.steps} steps")


def _episode_frames(ds: Any, episode: int) -> Any:
    """The RGB frames of one recorded episode (greyscale repeated to 3 channels)."""
    import numpy as np

    ep = ds.read_episode(episode)
    obs = ep.observations
    frames = obs["frame"] if isinstance(obs, dict) and "frame" in obs else obs
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.dtype != np.uint8:
        raise typer.BadParameter(f"episode {episode} has no image observations to replay (got {frames.dtype}{list(frames.shape)}).")
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


@app.command()
def replay(
    path: PathArg,
    episode: Annotated[int, typer.Option("--episode", "-e", help="Which episode (see `trajarena info -e`).")] = 0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write an .mp4 or .gif (the video extra) instead of opening a window.")] = None,
    fps: Annotated[int, typer.Option(min=1, max=240, help="Frames per second.")] = 20,
    scale: Annotated[int, typer.Option(min=1, max=16, help="Integer upscaling of the frames.")] = 3,
) -> None:
    """Replay the frames of a recorded episode in a window, or write them to an MP4/GIF video."""
    import numpy as np

    from trajarena import open_trajectories

    if out is not None:
        from trajarena.interop.video import export_video

        try:
            summary = export_video(path, out, episode, fps=fps, scale=scale)
        except (TrajArenaError, IndexError) as exc:
            fail(exc)
        console.print(f"wrote {summary.extra['frames']} frames to {out}")
        return
    ds = open_trajectories(path)
    if not 0 <= episode < ds.num_episodes:
        raise typer.BadParameter(f"--episode must be in [0, {ds.num_episodes - 1}], got {episode}.")
    frames = _episode_frames(ds, episode)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    pygame = require("pygame", "play", "Replaying in a window")
    pygame.init()
    try:
        screen = pygame.display.set_mode((frames.shape[2], frames.shape[1]))
        pygame.display.set_caption(f"trajarena replay: {Path(path).name} episode {episode}")
        clock = pygame.time.Clock()
        for frame in frames:
            if any(e.type == pygame.QUIT or (e.type == pygame.KEYDOWN and e.key == pygame.K_ESCAPE) for e in pygame.event.get()):
                break
            pygame.surfarray.blit_array(screen, np.ascontiguousarray(frame.swapaxes(0, 1)))
            pygame.display.flip()
            clock.tick(fps)
    finally:
        pygame.quit()


@app.command()
def stats(
    path: PathArg,
    plots: Annotated[Path | None, typer.Option("--plots", help="Folder for PNG plots (returns, lengths, actions).")] = None,
) -> None:
    """Statistics of the recorded episodes: returns, lengths, outcomes, action frequencies (and plots)."""
    import numpy as np

    from trajarena import open_trajectories

    ds = open_trajectories(path)
    returns = np.array([e.total_return for e in ds.episodes])
    lengths = np.array([e.length for e in ds.episodes])
    table = Table("", "mean", "std", "min", "median", "max")
    for name, v in (("return", returns), ("length", lengths)):
        table.add_row(name, *(f"{f(v):.2f}" for f in (np.mean, np.std, np.min, np.median, np.max)))
    console.print(table)
    ended = sum(e.terminated for e in ds.episodes)
    console.print(f"{ds.num_episodes} episodes: {ended} terminated, {ds.num_episodes - ended} truncated")
    if "outcome" in ds.info_keys:
        outcomes = np.array([e.final_info.get("outcome", 0) for e in ds.episodes])
        console.print(f"outcomes: {np.mean(outcomes > 0):.1%} won, {np.mean(outcomes < 0):.1%} lost")
    if plots is not None:
        plt = require("matplotlib.pyplot", "plots", "Plotting statistics")
        plots.mkdir(parents=True, exist_ok=True)
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        axes[0].hist(returns, bins=30, color="#4c72b0")
        axes[0].set(title="episode return", xlabel="return", ylabel="episodes")
        axes[1].hist(lengths, bins=30, color="#dd8452")
        axes[1].set(title="episode length", xlabel="steps")
        fig.tight_layout()
        fig.savefig(plots / "episodes.png", dpi=120)
        plt.close(fig)
        console.print(f"wrote {plots / 'episodes.png'}")
