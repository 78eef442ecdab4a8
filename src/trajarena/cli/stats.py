"""``trajarena stats``: what the recorded episodes add up to, as tables and (with ``--plots``) PNG plots.

Per kind of recording in the folder (env and spaces; a folder that mixes kinds is shown kind by
kind): returns and lengths, how episodes ended, match outcomes (fighting games), and how often
each player chose each action: moves and button combinations for fighting games
(:mod:`trajarena.fighting`), each value for other discrete actions, each value per component of
a ``MultiDiscrete`` action. ``--plots DIR`` writes ``episodes.png`` (returns and lengths) and
``actions.png`` (action counts per player), prefixed by the env id when the folder holds several
kinds. Counts are read from the action columns only: no frame is decoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
from rich.markup import escape
from rich.table import Table

from trajarena.cli.app import PathArg, app, console, typer
from trajarena.cli.data import open_groups
from trajarena.errors import require
from trajarena.fighting import ATTACK_NAMES, MOVE_NAMES, action_layout, split_action

__all__ = ["action_counts", "stats"]


def action_counts(actions: Any, space: Any) -> list[tuple[str, list[str], np.ndarray]]:
    """How often each action was chosen: ``(what, names, counts)`` per part of the action.

    Fighting games give ``("move", MOVE_NAMES, counts)`` and ``("buttons", ATTACK_NAMES, counts)``;
    ``Discrete`` one ``("action", values, counts)``; ``MultiDiscrete`` one per component;
    continuous actions none.

    >>> from gymnasium import spaces
    >>> [(w, c.tolist()) for w, _, c in action_counts(np.array([[5, 1], [5, 0], [1, 1]]), spaces.MultiDiscrete([9, 4]))]
    [('move', [0, 1, 0, 0, 0, 2, 0, 0, 0]), ('buttons', [1, 2, 0, 0])]
    >>> action_counts(np.array([2, 0, 2]), spaces.Discrete(3, start=0))[0][2].tolist()
    [1, 0, 2]
    """
    layout = action_layout(space)
    arr = np.asarray(actions)
    if layout is not None:
        move, attack = split_action(arr, space)
        buttons = list(ATTACK_NAMES) if layout[1] == 8 else ["none", "P", "K", "G"]
        return [("move", list(MOVE_NAMES), np.bincount(move, minlength=9)[:9]),
                ("buttons", buttons, np.bincount(attack, minlength=layout[1])[: layout[1]])]
    n, start = getattr(space, "n", None), getattr(space, "start", 0)
    if n is not None:
        values = arr.astype(np.int64) - int(start)
        return [("action", [str(int(start) + i) for i in range(int(n))], np.bincount(values, minlength=int(n)))]
    nvec = getattr(space, "nvec", None)
    if nvec is not None and np.ndim(nvec) == 1:
        starts = np.broadcast_to(np.asarray(getattr(space, "start", 0)), np.shape(nvec))
        return [(f"action[{j}]", [str(int(starts[j]) + i) for i in range(int(k))],
                 np.bincount(arr[:, j].astype(np.int64) - int(starts[j]), minlength=int(k))) for j, k in enumerate(nvec)]
    return []


def _players(path_files: list[str]) -> list[tuple[str, list[tuple[str, list[str], np.ndarray]]]]:
    """``(player, counts)`` for every player of the files (both of a two-player recording)."""
    from trajarena.replay.catalog import agent_sides
    from trajarena.replay.dataset import TrajectoryDataset

    ds = TrajectoryDataset(path_files, include_partial=True)
    actions = ds.actions()
    out = []
    for key, side in agent_sides(ds.metadata).items():
        space = ds.action_space[key] if key else ds.action_space
        counts = action_counts(actions[key] if key else actions, space)
        if counts:
            out.append((side if key or action_layout(space) else "agent", counts))
    return out


def _shares(names: list[str], counts: np.ndarray, top: int = 6) -> str:
    total = max(int(counts.sum()), 1)
    order = np.argsort(-counts, kind="stable")[:top]
    return "  ".join(f"{names[i]} {counts[i] / total:.0%}" for i in order if counts[i])


@app.command()
def stats(
    path: PathArg,
    plots: Annotated[Path | None, typer.Option("--plots", help="Folder for PNG plots: episodes.png (returns, lengths) and actions.png (action counts per player).")] = None,
    partial: Annotated[bool, typer.Option(help="Include .partial files (a running or crashed recording).")] = False,
) -> None:
    """Statistics of the recorded episodes: returns, lengths, outcomes, action frequencies per player (and plots)."""
    groups = open_groups(path, partial)
    for title, ds in groups:
        if title:
            console.rule(escape(title))
        prefix = "" if len(groups) == 1 else f"{_slug(ds.metadata.get('env_id'))}-"
        _stats(ds, plots, prefix)


def _slug(env_id: Any) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in str(env_id or "env"))


def _stats(ds: Any, plots: Path | None, prefix: str) -> None:
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
    players = _players([str(f) for f in ds.files])
    if players:
        t = Table("player", "", "share of steps (most chosen first)", title="actions")
        for side, parts in players:
            for what, names, counts in parts:
                t.add_row(side, what, _shares(names, counts))
        console.print(t)
    if plots is not None:
        plt = require("matplotlib.pyplot", "plots", "Plotting statistics")
        plots.mkdir(parents=True, exist_ok=True)
        for name in _plot(plt, plots, prefix, returns, lengths, players):
            console.print(f"wrote {escape(str(plots / name))}", highlight=False)


def _plot(plt: Any, folder: Path, prefix: str, returns: np.ndarray, lengths: np.ndarray,
          players: list[tuple[str, list[tuple[str, list[str], np.ndarray]]]]) -> list[str]:
    """Write the plots; return their file names. Axes that count things show whole numbers only."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].hist(returns, bins=30, color="#4c72b0")
    axes[0].set(title="episode return", xlabel="return", ylabel="episodes")
    axes[1].hist(lengths, bins=30, color="#dd8452")
    axes[1].set(title="episode length", xlabel="steps", ylabel="episodes")
    for ax in axes:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    names = [f"{prefix}episodes.png"]
    fig.savefig(folder / names[0], dpi=120)
    plt.close(fig)
    if players:
        cols = max(len(parts) for _, parts in players)
        fig, axes = plt.subplots(len(players), cols, figsize=(4.6 * cols, 2.9 * len(players)), squeeze=False)
        for row, (side, parts) in enumerate(players):
            for col in range(cols):
                ax = axes[row][col]
                if col >= len(parts):
                    ax.axis("off")
                    continue
                what, labels, counts = parts[col]
                ax.bar(range(len(counts)), counts, color="#4c72b0" if col == 0 else "#55a868")
                ax.set_xticks(range(len(counts)), labels, rotation=45 if len(counts) > 4 else 0, ha="right"
                              if len(counts) > 4 else "center", fontsize=8)
                ax.set(title=f"{side}: {what}", ylabel="steps")
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        names.append(f"{prefix}actions.png")
        fig.savefig(folder / names[-1], dpi=120)
        plt.close(fig)
    return names
