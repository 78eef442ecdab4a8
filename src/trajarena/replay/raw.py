"""``ReplayEnv``: the raw recorded stream of trajectory files as a Gymnasium env, one episode per reset.

Owns the replay below the wrappers: which units a rank replays (:func:`partition`,
:func:`check_ranks`), the episode cursor over chunks or the column cache, the two-player
perspectives, the end of data (:func:`blank_value`), rendering, and the checks that the files
agree. :class:`~trajarena.replay.imitation.ImitationLearning` wraps it in the wrappers settings.

Replay units and ranks. A unit is one episode seen from one side. One-player files give one unit
per episode. Two-player files (action space ``Dict(agent_0, agent_1)``) give two: agent_0's side
(as recorded) and agent_1's side (the ``P1``/``P2`` observation keys swapped, the reward negated,
agent_1's action in ``info["action"]``), except a side the file marks as no demonstration
(``ignore_p1``: agent_0's side is skipped, ``ignore_p2``: agent_1's side is skipped); ``perspective``
selects ``"P1"`` (agent_0) only, ``"P2"`` (agent_1) only, ``"both"``, or ``"joint"`` (the two-player
stream as recorded, ``Dict`` actions, what a live two-player env shows). ``mirror=True`` shows the
episodes of the player on the P2 side as P1 sees the game (fighting games only): the frame flipped
left-right, the ``side`` values and the left/right moves of the recorded action exchanged
(:mod:`trajarena.fighting`), so one policy learns from both sides; ``info["mirrored"]`` says so.
Rank ``r`` of
``total_cpus`` replays the files ``r, r + total_cpus, ...`` when there are at least as many files
as ranks, and otherwise the units ``r, r + total_cpus, ...`` of all files: the parts are disjoint
and together hold every unit once.

End of data. When every unit is replayed, ``exhausted`` becomes True and ``reset`` returns a blank
observation (zeros, clipped into the observation space: :func:`blank_value`) with
``info["exhausted"] = True``; ``step`` then returns a blank observation, reward 0 and
``terminated=True`` (so vector envs keep running). ``loop=True`` starts a new pass instead
(``passes`` counts the finished ones), reshuffled when ``shuffle`` is set.

Seeds. ``reset(seed=s)`` starts the rank's data over from its first episode (with ``shuffle``, in
the order ``s`` draws) and clears ``exhausted`` and ``passes``; ``reset()`` goes on with the next
episode. So a seeded reset is deterministic, as Gymnasium's ``check_env`` expects, and a vector
env of ranks seeded once at its first reset replays every rank from its start.
"""

from __future__ import annotations

import copy
import operator
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trajarena.errors import MismatchError, ResetNeeded, SettingsError
from trajarena.fighting import action_layout, mirror_action, mirror_observation
from trajarena.format import schema as fmt
from trajarena.format.index import index_file
from trajarena.replay.dataset import TrajectoryDataset, list_trajectory_files
from trajarena.replay.show import FrameWindow

__all__ = ["PERSPECTIVES", "ReplayEnv", "blank_value", "check_ranks", "partition"]

PERSPECTIVES = ("both", "P1", "P2", "joint")
_OTHER = {"P1": "P2", "P2": "P1"}


def blank_value(space: spaces.Space) -> Any:
    """The blank observation of ``space``: zeros where the space allows them, always inside the space.

    A ``Box`` gives zeros clipped into its bounds (``Box(1, 4)`` gives 1), discrete spaces their
    lowest value, ``Text`` its shortest string of its first character.

    >>> blank_value(spaces.Dict(a=spaces.Box(0, 1, (2,)), b=spaces.Discrete(3, start=1), c=spaces.Box(1, 4, (1,), np.int8)))
    {'a': array([0., 0.], dtype=float32), 'b': np.int64(1), 'c': array([1], dtype=int8)}
    """
    if isinstance(space, spaces.Dict):
        return {k: blank_value(s) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(blank_value(s) for s in space.spaces)
    if isinstance(space, spaces.Discrete):
        return np.int64(space.start)
    if isinstance(space, spaces.MultiDiscrete):
        return np.asarray(space.start, dtype=space.dtype).copy()
    if isinstance(space, spaces.Text):
        return space.characters[0] * space.min_length if space.min_length else ""
    if isinstance(space, spaces.Box):
        return np.clip(np.zeros(space.shape, dtype=space.dtype), space.low, space.high).astype(space.dtype)
    return np.zeros(space.shape, dtype=space.dtype)


def check_ranks(total_cpus: Any, rank: Any) -> tuple[int, int]:
    """``(total_cpus, rank)`` as ints (numpy integers accepted), or :class:`SettingsError`.

    >>> check_ranks(np.int64(4), np.int32(1))
    (4, 1)
    """
    try:
        if isinstance(total_cpus, bool) or isinstance(rank, bool):
            raise TypeError
        total, r = operator.index(total_cpus), operator.index(rank)
    except TypeError:
        total = r = -1
    if not (total >= 1 and 0 <= r < total):
        raise SettingsError(f"rank must be an integer in [0, total_cpus) and total_cpus an integer >= 1; "
                            f"got rank={rank!r}, total_cpus={total_cpus!r}.")
    return total, r


def partition(n_files: int, episodes_per_file: Sequence[int], total_cpus: int, rank: int) -> list[tuple[int, int]]:
    """The ``(file, unit within file)`` pairs rank ``rank`` of ``total_cpus`` replays.

    By file (every ``total_cpus``-th file) when there are at least as many files as ranks, else by
    unit (every ``total_cpus``-th unit of all files). Disjoint over ranks, complete in union.

    >>> partition(3, [2, 1, 2], 2, 0), partition(1, [3], 2, 1)
    ([(0, 0), (0, 1), (2, 0), (2, 1)], [(0, 1)])
    """
    total_cpus, rank = check_ranks(total_cpus, rank)
    if n_files >= total_cpus:
        return [(f, u) for f in range(rank, n_files, total_cpus) for u in range(episodes_per_file[f])]
    units = [(f, u) for f in range(n_files) for u in range(episodes_per_file[f])]
    return units[rank::total_cpus]


def _is_two_player(meta: Mapping[str, Any]) -> bool:
    act = meta.get("action_space", {})
    return act.get("type") == "Dict" and set(act.get("spaces", {})) == {"agent_0", "agent_1"}


def _scalar(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.ndim == 0 or isinstance(value, np.generic):
        return value.item()
    return value


class ReplayEnv(gym.Env):
    """The raw replay of trajectory files: recorded observations, rewards, flags and infos.

    Most users want :class:`ImitationLearning`, which adds the wrappers; the arguments are the same
    minus the wrappers options.

    >>> ReplayEnv.metadata["render_modes"]
    ['rgb_array', 'human']
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 30}

    def __init__(self, traj_files_list: Any, total_cpus: int = 1, rank: int = 0, *, perspective: str = "both",
                 loop: bool = False, shuffle: bool = False, seed: int | None = None,
                 render_mode: str | None = None, cache_dir: str | None = None,
                 verify_checksums: bool = True, mirror: bool = False) -> None:
        if perspective not in PERSPECTIVES:
            raise SettingsError(f"perspective must be one of {PERSPECTIVES}, got {perspective!r}.")
        total_cpus, rank = check_ranks(total_cpus, rank)
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise SettingsError(f"render_mode must be None, 'rgb_array' or 'human', got {render_mode!r}.")
        files = list_trajectory_files([traj_files_list] if isinstance(traj_files_list, str | os.PathLike)
                                      else traj_files_list)
        self.all_files = files
        self.file_metadata = _check_files(files)
        meta0 = self.file_metadata[0]
        self.two_player = _is_two_player(meta0)
        self.perspective = perspective
        if self.two_player and perspective == "both":
            act = meta0["action_space"]["spaces"]
            if act["agent_0"] != act["agent_1"]:
                raise SettingsError(
                    "perspective='both' needs both agents to have the same action space, but this file has "
                    f"{act['agent_0']} and {act['agent_1']}; choose perspective='P1', 'P2' or 'joint'."
                )
        if perspective == "P2" and not self.two_player:
            raise SettingsError(f"perspective='P2' needs a two-player recording, but {files[0]} has one player; "
                                "use perspective='both' (or 'P1').")
        self.mirror = bool(mirror)
        if self.mirror:
            _check_mirror(meta0, self.two_player, perspective, files[0])
        views = [self._views(m) for m in self.file_metadata]
        if not any(views):
            warnings.warn(f"perspective={perspective!r} leaves nothing to replay: every file ignores that player "
                          "(recorded with ignore_p1/ignore_p2). Use perspective='both' or 'joint'.", stacklevel=2)
        # units per file: episodes x views, but episodes per file are only known after indexing;
        # rank by file needs no index of the other files.
        if len(files) >= total_cpus:
            mine = [f for f, _ in partition(len(files), [1] * len(files), total_cpus, rank)]
            self._data = TrajectoryDataset([files[f] for f in mine], cache_dir=cache_dir,
                                           verify_checksums=verify_checksums) if mine else None
            units = [] if self._data is None else [
                (e.index, v) for e in self._data.episodes for v in views[mine[e.file_index]]]
        else:
            self._data = TrajectoryDataset(files, cache_dir=cache_dir, verify_checksums=verify_checksums)
            per_file = [[(e.index, v) for e in self._data.episodes if e.file_index == f for v in views[f]]
                        for f in range(len(files))]
            chosen = partition(len(files), [len(u) for u in per_file], total_cpus, rank)
            units = [per_file[f][u] for f, u in chosen]
        self.units: list[tuple[int, int]] = units
        self.total_cpus, self.rank = total_cpus, rank
        obs_space = self._data.observation_space if self._data else _space(meta0, "observation_space")
        act_space = self._data.action_space if self._data else _space(meta0, "action_space")
        self.observation_space = obs_space
        self.action_space = act_space if not self.two_player or perspective == "joint" else \
            act_space[("agent_1" if perspective == "P2" else "agent_0")]
        self.render_mode = render_mode
        fps = (meta0.get("env_settings") or {}).get("step_ratio")
        self.metadata = {**self.metadata, "render_fps": 60 // fps if isinstance(fps, int) and fps > 0 else 30}
        self.loop, self.shuffle = bool(loop), bool(shuffle)
        self._rng = np.random.default_rng(seed)
        self._order = self._new_order()
        self._next = 0
        self.passes = 0
        self.exhausted = not units and not self.loop
        self._unit: tuple[int, int] | None = None
        self._flip = False
        self._t = -1
        self._length = 0
        self._frame: np.ndarray | None = None
        self.agent_roles: tuple[str, ...] = ("P1",) if not self.two_player or perspective != "joint" else ("P1", "P2")
        self._window: Any = None
        if self._data is not None:
            d = self._data
            self._obs_names = d._obs_names
            self._act_names = d._act_names
            self._info_keys = d.info_keys
            self._obs_getter, self._act_getter = d._obs_getter, d._act_getter
        self._span: tuple[int, int, Any] = (0, 0, None)
        self._views_cache: dict[int, dict[str, Any]] = {}

    # ------------------------------------------------------------------ set-up helpers

    def _views(self, meta: Mapping[str, Any]) -> list[int]:
        if not _is_two_player(meta) or self.perspective == "joint":
            return [-1]
        keep = [view for view, ignore in ((0, "ignore_p1"), (1, "ignore_p2")) if not meta.get(ignore, 0)]
        return {"both": keep, "P1": [v for v in keep if v == 0], "P2": [v for v in keep if v == 1]}[self.perspective]

    def _new_order(self) -> np.ndarray:
        order = np.arange(len(self.units))
        if self.shuffle:
            self._rng.shuffle(order)
        return order

    @property
    def n_units(self) -> int:
        """Episodes (one per replayed side) this rank replays in one pass."""
        return len(self.units)

    @property
    def dataset(self) -> TrajectoryDataset | None:
        """The dataset of this rank's files (None when the rank got no file)."""
        return self._data

    # ------------------------------------------------------------------ reading rows

    def _row(self, local_row: int) -> tuple[dict[str, Any], int]:
        lo, hi, chunk = self._span
        if lo <= local_row < hi:
            return chunk, local_row - lo
        f = self._file
        if self._data.cache_dir is not None:  # the whole file from the memory-mapped decoded cache
            view = self._file_view(f.file_index)
            self._span = (0, f.n_rows, view)
            return view, local_row
        b, r = f.locate(local_row)
        chunk = f.chunk(b)
        lo = int(f.chunk_offsets[b])
        self._span = (lo, int(f.chunk_offsets[b + 1]), chunk)
        return chunk, r

    def _file_view(self, f: int) -> dict[str, Any]:
        """A chunk-like view of a whole file on the dataset's memory-mapped cache (built once)."""
        view = self._views_cache.get(f)
        if view is None:
            d = self._data
            view = {n: d._col(n).part(f) for n in (*self._obs_names, *self._act_names)}
            infos = [(k, d._col("info/" + k).part(f), d._col("present/info/" + k).part(f)) for k in d.info_keys]
            view["_steps"] = (d._col(fmt.REWARD).part(f).tolist(), d._col(fmt.TERMINATED).part(f).tolist(),
                              d._col(fmt.TRUNCATED).part(f).tolist(),
                              [(k, v.tolist() if v.ndim == 1 else v, p.tolist()) for k, v, p in infos])
            self._views_cache = {f: view}  # one file at a time
        return view

    def _obs_at(self, chunk: dict[str, Any], r: int) -> Any:
        obs = self._obs_getter(iter([chunk[n][r] for n in self._obs_names]))
        if self._view == 1 and isinstance(obs, dict) and "P1" in obs and "P2" in obs:
            obs = {**obs, "P1": obs["P2"], "P2": obs["P1"]}
        if self._flip:
            obs = mirror_observation(obs)
        if self.render_mode is not None:
            if isinstance(obs, dict) and "frame" in obs:
                self._frame = obs["frame"]
            elif isinstance(obs, np.ndarray) and obs.ndim == 3:
                self._frame = obs
        return obs

    @staticmethod
    def _info_at(chunk: dict[str, Any], r: int) -> dict[str, Any]:
        return {k: v[r] for k, v, present in chunk["_steps"][3] if present[r]}

    def _blank(self, info: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self._frame = None
        return blank_value(self.observation_space), {"exhausted": True, **(info or {})}

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Start the next recorded episode; a blank observation once the data is exhausted.

        ``seed`` starts this rank's data over (see :meth:`rewind`); without it the replay goes on.
        The observation and info are copies, never views of the decoded data.
        """
        super().reset(seed=seed)
        if seed is not None:
            self.rewind(seed)
        if not self.exhausted and self._next >= len(self.units):
            if self.loop and self.units:
                self.passes += 1
                self._order = self._new_order()
                self._next = 0
            else:
                self.exhausted = True
        if self.exhausted:
            self._unit, self._t = None, -1
            return self._blank()
        episode, view = self.units[int(self._order[self._next])]
        self._next += 1
        self._unit, self._view = (episode, view), view
        e = self._data.episodes[episode]
        self._episode = e
        self._file = self._data._files[e.file_index]
        self._span = (0, 0, None)
        self._row0 = e.local_row
        self._length = e.length
        self._t = 0
        chunk, r = self._row(self._row0)
        info = self._info_at(chunk, r)
        first = self._roles(info, e)
        self._flip = self.mirror and (first if view <= 0 else _OTHER[first]) == "P2"
        obs = self._obs_at(chunk, r)
        info.update(exhausted=False, episode=e.index, file=e.file, perspective=("P1", "P2")[view] if view >= 0 else "joint",
                    mirrored=self._flip)
        if self.render_mode == "human":
            self.render()
        return copy.deepcopy(obs), copy.deepcopy(info)  # a seeded reset repeats a row: never hand out one array twice

    def rewind(self, seed: int | None = None) -> None:
        """Start this rank's data over: the next ``reset`` replays its first episode of a new pass.

        ``passes`` goes back to 0 and ``exhausted`` to False (when the rank has data). With
        ``shuffle=True`` the order is drawn again from ``seed``, so a rewind with the same seed
        replays the same episodes in the same order. ``reset(seed=s)`` calls ``rewind(s)``: a
        seeded reset means "from the start", as it does for a live env.
        """
        if self.shuffle:
            self._rng = np.random.default_rng(seed)
        self._order = self._new_order()
        self._next = 0
        self.passes = 0
        self.exhausted = not self.units and not self.loop

    def _roles(self, info: Mapping[str, Any], e: Any) -> str:
        """Set ``agent_roles`` for episode ``e``; return the side agent_0 plays (``"P1"``/``"P2"``)."""
        side = info.get("agent_side")
        if side is None:
            role = (self._data.file_metadata(e.file_index).get("env_settings") or {}).get("role")
            role = role[0] if isinstance(role, list | tuple) else role
            side = 1 if role == "P2" else 0
        first = ("P1", "P2")[int(side)]
        if not self.two_player:
            self.agent_roles = (first,)
        elif self._view == -1:
            self.agent_roles = (first, _OTHER[first])
        else:  # agent_0's data is at `first`; agent_1's is at the other key, which the swap moves to `first`
            self.agent_roles = (first,)
        return first

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        """Replay the next recorded step; ``action`` is ignored (``info["action"]`` is the recorded one)."""
        if self.exhausted:
            obs, info = self._blank()
            return obs, 0.0, True, False, info
        if self._t < 0 or self._t >= self._length:
            raise ResetNeeded("step() called before reset() or after the episode ended; call reset().")
        self._t += 1
        chunk, r = self._row(self._row0 + self._t)
        obs = self._obs_at(chunk, r)
        rewards, terms, truncs, _ = chunk["_steps"]
        reward, terminated, truncated = rewards[r], terms[r], truncs[r]
        if self._t == self._length and not (terminated or truncated):
            truncated = True  # the recording ended this episode (a reset or close mid-episode)
        action_taken = self._act_getter(iter([chunk[n][r] for n in self._act_names]))
        if self._view >= 0:
            action_taken = action_taken[f"agent_{self._view}"]
            if self._view == 1:
                reward = -reward
        if self._flip:
            action_taken = mirror_action(action_taken, self.action_space)
        info = self._info_at(chunk, r)
        info["action"] = _scalar(action_taken) if not isinstance(action_taken, dict) else action_taken
        if self.render_mode == "human":
            self.render()
        return obs, reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """``"rgb_array"``: the recorded frame of the current step (3 channels); ``"human"``: show it."""
        if self._frame is None:
            return None
        frame = np.asarray(self._frame)
        if frame.ndim != 3 or frame.dtype != np.uint8:
            return None
        frame = np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame[..., :3]
        if self.render_mode == "human":
            self._window = self._window or FrameWindow("trajarena replay", fps=self.metadata["render_fps"])
            self._window.show(frame)
            return None
        return np.array(frame)

    def close(self) -> None:
        if self._data is not None:
            self._data.close()
        if self._window is not None:
            self._window.close()
            self._window = None


def _check_mirror(meta: Mapping[str, Any], two_player: bool, perspective: str, path: str) -> None:
    """Raise :class:`SettingsError` unless ``mirror=True`` makes sense for these files and this perspective."""
    space = _space(meta, "action_space")
    if two_player and perspective == "joint":
        raise SettingsError("mirror=True needs one player's view of two-player files: perspective='P2' (or 'both', "
                            "where P2's side is mirrored), not 'joint'.")
    if action_layout(space["agent_0"] if two_player else space) is None:
        raise SettingsError(f"mirror=True is for fighting games (moves left/right, a 'frame'), but {path} has the "
                            f"action space {space}; leave mirror off.")


def _space(meta: Mapping[str, Any], key: str) -> spaces.Space:
    from trajarena.format.spaces import space_from_json

    return space_from_json(meta[key])


def _check_files(files: Sequence[str]) -> list[dict[str, Any]]:
    """Index each file's headers (schema, footer, chunk headers) and check that all agree on the spaces.

    Raises:
        FormatError: a file is not a trajarena file; ``CorruptFileError`` when it is damaged.
        MismatchError: the files disagree on the spaces.
    """
    metas = [index_file(path, partial=False).meta for path in files]
    for path, meta in zip(files[1:], metas[1:], strict=True):
        for key in ("observation_space", "action_space"):
            if meta.get(key) != metas[0].get(key):
                raise MismatchError(
                    f"{path} and {files[0]} disagree on the {key.replace('_', ' ')}: {meta.get(key)} vs "
                    f"{metas[0].get(key)}. Replay them with separate ImitationLearning envs."
                )
    return metas
