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
from rich.markup import escape  # noqa: E402
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
    console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
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
    """Check every file (headers, sizes, checksums of every chunk); exit 1 when something is damaged."""
    from trajarena import verify as verify_files

    report = verify_files(path)
    console.print(f"{len(report.ok)} intact file(s), {report.episodes} episodes, {report.steps} steps")
    for p, why in report.damaged.items():
        console.print(f"[red]damaged[/] {escape(f'{p}: {why}')}", highlight=False)
    for p in report.partial:
        console.print(f"[yellow]partial[/] {escape(str(p))} (a running or crashed recording: `trajarena repair`)", highlight=False)
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
        console.print(f"[green]repaired[/] {escape(f'{src.name} -> {dst.name}')}", highlight=False)
    for p in report.removed:
        console.print(f"removed {p.name} (no complete chunk to salvage)", highlight=False)
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
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write a GIF (or .mp4 with imageio-ffmpeg) instead of opening a window.")] = None,
    fps: Annotated[int, typer.Option(min=1, max=240, help="Frames per second.")] = 20,
    scale: Annotated[int, typer.Option(min=1, max=16, help="Integer upscaling of the frames.")] = 3,
) -> None:
    """Replay the frames of a recorded episode in a window, or write them to a GIF/video."""
    import numpy as np

    from trajarena import open_trajectories

    ds = open_trajectories(path)
    if not 0 <= episode < ds.num_episodes:
        raise typer.BadParameter(f"--episode must be in [0, {ds.num_episodes - 1}], got {episode}.")
    frames = _episode_frames(ds, episode)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    if out is not None and out.suffix.lower() not in (".gif", ".mp4"):
        raise typer.BadParameter(f"--out must end in .gif (or .mp4 with imageio-ffmpeg), got {out.name!r}.")
    if out is not None:
        imageio = require("imageio", "plots", "Writing a replay video")
        imageio.mimsave(out, list(frames), duration=1000 / fps, loop=0)
        console.print(f"wrote {len(frames)} frames to {out}")
        return
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


@app.command()
def record(
    env_id: Annotated[str, typer.Argument(help="'duel' or a Gymnasium id.")] = "duel",
    agent: Annotated[list[str] | None, typer.Option("--agent", "-a", help="Agent name (expert, random) or a .pt policy; twice for P1 and P2 in 2-player mode.")] = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", min=1, help="Episodes in total.")] = 10,
    workers: Annotated[int, typer.Option("--workers", "-j", min=1, max=256, help="Parallel processes, each a rank writing its own files.")] = 1,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the trajectory files.")] = Path("data"),
    username: Annotated[str, typer.Option(help="Stored in every file.")] = "trajarena",
    seed: Annotated[int, typer.Option(min=0, help="Episode i uses seed + i.")] = 0,
    ignore_p2: Annotated[int, typer.Option(min=0, max=1, help="1: P2's side is not a demonstration.")] = 0,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    setting: SettingOpt = None,
    wrapper: WrapperOpt = None,
) -> None:
    """Record agents playing, headless, in parallel processes, with a progress bar and a summary."""
    from trajarena.learn.rollout import record as run_record

    agents = agent or ["expert"]
    summary = run_record(
        env_id, agents[0] if len(agents) == 1 else agents, episodes=episodes, workers=workers, out=out,
        settings=parse_pairs(setting, "setting") or None, wrappers_settings=parse_pairs(wrapper, "wrapper") or None,
        username=username, seed=seed, progress=progress, traj_rec_settings={"ignore_p2": ignore_p2},
    )
    console.print(summary.format(), highlight=False, markup=False)


@app.command("train-bc")
def train_bc(
    data: PathArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the policy goes (.pt).")] = Path("policy.pt"),
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training steps.")] = 10,
    batch_size: Annotated[int, typer.Option(min=1, help="Steps per gradient step.")] = 128,
    lr: Annotated[float, typer.Option(min=1e-12, help="Adam learning rate (cosine decay to 0).")] = 1e-3,
    val_fraction: Annotated[float, typer.Option(min=0, max=0.9, help="Fraction of episodes held out for validation.")] = 0.1,
    seed: Annotated[int, typer.Option(min=0, help="Seeds initialisation, split and batch order.")] = 0,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Use at most this many steps.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    wrapper: WrapperOpt = None,
) -> None:
    """Behavioural cloning from trajectory files (PyTorch, CPU), with the files' own wrappers settings."""
    from trajarena.learn.bc import train_bc as run_train

    result = run_train(data, out=out, epochs=epochs, batch_size=batch_size, lr=lr, val_fraction=val_fraction,
                       seed=seed, wrappers_settings=parse_pairs(wrapper, "wrapper") or None, max_steps=max_steps,
                       progress=progress)
    last = result.final
    val = "" if last.val_accuracy is None else f", validation loss {last.val_loss:.3f} accuracy {last.val_accuracy:.1%}"
    console.print(
        f"trained on {result.train_steps:,} steps of {result.episodes} episodes in {result.seconds:.0f} s: "
        f"train loss {last.train_loss:.3f} accuracy {last.train_accuracy:.1%}{val}\nsaved {result.path}",
        highlight=False,
    )


@app.command()
def evaluate(
    policy: Annotated[str, typer.Argument(help="A .pt policy from train-bc, or an agent name (expert, random).")],
    env: Annotated[str | None, typer.Option("--env", help="Env id; the policy's own by default.")] = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", min=1, help="Episodes per contender.")] = 10,
    difficulty: Annotated[int | None, typer.Option(min=1, max=8, help="CPU difficulty (duel).")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Episode i uses seed + i for every contender.")] = 0,
    baseline: Annotated[list[str] | None, typer.Option("--baseline", "-b", help="Agents played on the same seeds (default: expert, random).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results as JSON.")] = None,
) -> None:
    """Win rate and mean return (with 95% confidence intervals) next to the expert's and random's, same seeds."""
    from trajarena.learn.evaluate import evaluate as run_evaluate

    result = run_evaluate(policy, env_id=env, episodes=episodes, difficulty=difficulty, seed=seed,
                          baselines=tuple(baseline) if baseline else ("expert", "random"))
    print(result.table())
    if json_out is not None:
        json_out.write_text(json.dumps(result.to_dict(), indent=2))


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


def _play(setting: list[str] | None = None, wrapper: list[str] | None = None, **options: Any) -> None:
    from trajarena.play.session import play

    result = play(options, settings=parse_pairs(setting, "setting") or None,
                  wrappers_settings=parse_pairs(wrapper, "wrapper") or None)
    console.print(
        f"{result.episodes_saved} episode(s) saved, {result.episodes_discarded} discarded, "
        f"{result.steps} steps ({result.reason})"
    )
    for path in result.files:
        console.print(f"  {path}", highlight=False, markup=False)


def _register_play() -> None:
    from trajarena.play.session import PlayConfig

    command_from_dataclass(
        PlayConfig, _play, "play",
        "Play a fighting game in a window (keyboard or gamepad, 1-2 humans, vs CPU or an agent), recording it.",
        positional=("env_id",),
        extra={"setting": (list[str] | None, typer.Option(None, "--setting", "-s", help="Environment setting KEY=VALUE.")),
               "wrapper": (list[str] | None, typer.Option(None, "--wrapper", "-w", help="Wrappers setting KEY=VALUE."))},
    )


_register_play()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``trajarena`` script: typed library errors become a red message and exit code 2."""
    try:
        app(args=argv if argv is not None else sys.argv[1:], standalone_mode=True)
    except (TrajArenaError, OSError) as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
