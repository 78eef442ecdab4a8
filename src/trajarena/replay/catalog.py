"""What files and folders hold, before they are opened as one dataset or replay env.

:func:`list_trajectory_files` expands files and folders into the trajectory files (one order for
everyone: ranks that list the same paths see the same list). :func:`group_files` sorts them by kind
(env id and spaces, read from the file headers only), so a folder that mixes recordings of different
envs or settings can be shown kind by kind (``trajarena info``, ``trajarena stats``) instead of
failing as a whole. :func:`agent_sides` names the player each agent of a file was (``P1``/``P2``).

>>> import tempfile, numpy as np
>>> from gymnasium.spaces import Box, Discrete
>>> from trajarena.format.writer import TrajectoryWriter
>>> folder = tempfile.mkdtemp()
>>> for env_id, n in (("a", 2), ("b", 3)):
...     with TrajectoryWriter(folder, Box(-1, 1, (n,)), Discrete(2), {"env_id": env_id}) as w:
...         w.reset(np.zeros(n, np.float32))
...         w.step(1, np.ones(n, np.float32), 0.0, True, False)
>>> [(g.env_id, len(g.files)) for g in group_files(folder)]
[('a', 1), ('b', 1)]
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trajarena.format.discover import find_files, no_trajectories
from trajarena.format.index import index_file, index_live_partial

__all__ = ["FileGroup", "agent_sides", "group_files", "list_trajectory_files", "partial_files"]


def list_trajectory_files(paths: str | os.PathLike | Sequence[str | os.PathLike],
                          include_partial: bool = False) -> list[str]:
    """Expand files and folders (searched recursively) into a sorted list of ``*.arrow`` files.

    The list is sorted by resolved path and holds each file once, whatever the order of
    ``paths`` and however often a file is named. ``include_partial`` adds the
    ``*.arrow.partial`` files of folders (after the finished ones).

    Raises:
        DataNotFoundError: a path does not exist, or no trajectory file was found (a
            ``FileNotFoundError``).
    """
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    files, partial = find_files(items, include_partial=True)
    skipped = bool(partial) and not include_partial
    if not include_partial:  # a .partial file named explicitly is still read
        named = {Path(i).resolve() for i in items}
        partial = [f for f in partial if f.resolve() in named]
    if not files and not partial:
        raise no_trajectories(items, " (only .partial files: pass include_partial=True or run repair())" if skipped
                              else "")
    # find_files gives one order whatever the order of the paths (ranks that list the same files see
    # the same list), each file once; finished files first, then partial ones
    return [str(f) for f in (*files, *partial)]


def partial_files(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """The ``*.arrow.partial`` files under ``paths``: recordings running now, or left by a crash."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    return [str(f) for f in find_files(items, include_partial=True)[1]]


@dataclass(frozen=True)
class FileGroup:
    """Trajectory files of one kind: the same env id, observation space and action space.

    Attributes:
        env_id: the env the files were recorded from (``None`` when a file does not say).
        files: the files, in :func:`list_trajectory_files` order.
        folders: the folders that hold them (for messages), in order of first appearance.
    """

    env_id: str | None
    files: tuple[str, ...]
    folders: tuple[str, ...]

    def describe(self) -> str:
        """``"duel (12 files in data/duel)"``."""
        where = ", ".join(self.folders[:3]) + (" ..." if len(self.folders) > 3 else "")
        n = len(self.files)
        return f"{self.env_id or 'unknown env'} ({n} file{'s' if n != 1 else ''} in {where})"


def group_files(paths: str | os.PathLike | Sequence[str | os.PathLike], include_partial: bool = False) -> list[FileGroup]:
    """The trajectory files under ``paths``, grouped by env id and spaces (headers only, nothing decoded).

    Raises:
        DataNotFoundError: no trajectory file under ``paths``.
        FormatError: a file is not a trajarena file (``CorruptFileError`` when damaged).
    """
    groups: dict[str, list[tuple[str, str | None]]] = {}
    for path in list_trajectory_files(paths, include_partial):
        f = index_live_partial(Path(path)) if path.endswith(".partial") else index_file(path)
        if f is None:  # a recording in progress that was removed or is still being created
            continue
        meta = f.meta
        key = repr((meta.get("env_id"), meta.get("observation_space"), meta.get("action_space")))
        groups.setdefault(key, []).append((str(f.path), meta.get("env_id")))
    out = []
    for members in groups.values():
        folders = tuple(dict.fromkeys(str(Path(p).parent) for p, _ in members))
        out.append(FileGroup(members[0][1], tuple(p for p, _ in members), folders))
    if not out:  # only recordings in progress that vanished meanwhile
        raise no_trajectories(paths)
    return out


def agent_sides(meta: Mapping[str, Any]) -> dict[str | None, str]:
    """Each agent's action key -> the side it played, from a file's metadata.

    Two-player files (``Dict(agent_0, agent_1)`` actions) give ``{"agent_0": "P1", "agent_1": "P2"}``
    (or swapped, per the recorded ``role``); one-player files ``{None: "P1"}`` or ``{None: "P2"}``.

    >>> agent_sides({"action_space": {"type": "Dict", "spaces": {"agent_0": {}, "agent_1": {}}},
    ...              "env_settings": {"role": [None, "P1"]}})
    {'agent_0': 'P2', 'agent_1': 'P1'}
    >>> agent_sides({"action_space": {"type": "Discrete"}, "env_settings": {"role": "P2"}})
    {None: 'P2'}
    """
    role = (meta.get("env_settings") or {}).get("role")
    act = meta.get("action_space") or {}
    if act.get("type") == "Dict" and set(act.get("spaces", {})) == {"agent_0", "agent_1"}:
        r0, r1 = (list(role) + [None, None])[:2] if isinstance(role, list | tuple) else (None, None)
        first = r0 if r0 in ("P1", "P2") else "P2" if r1 == "P1" else "P1"
        return {"agent_0": first, "agent_1": "P2" if first == "P1" else "P1"}
    return {None: role if role in ("P1", "P2") else "P1"}
