"""Training data API: a lazy dataset over trajectory files with fast random access.

:class:`TrajectoryDataset` opens files or folders cheaply (metadata and a per-episode index only) and
decodes a column the first time it is needed. Random access then runs as vectorised numpy gathers:
the global transition index ``i`` maps to a row through one precomputed array, and each leaf of the
observation is one fancy-index into a decoded column (or into a memory-mapped ``.npy`` cache).

Index arithmetic (see :mod:`trajarena.format`): an episode of ``T`` steps has ``T + 1`` rows; its
transition ``t`` is ``(obs = row t, action/reward/terminated/truncated/info = row t + 1,
next_obs = row t + 1)``. Episodes of all files are numbered in file order, then in file order of rows.

Decoded columns live in memory by default. With ``cache_dir`` each (file, column) is decoded once
into ``<cache_dir>/<file hash>/<column>.npy`` and memory-mapped, so image datasets larger than
memory still sample at near memory speed, and later runs (or DataLoader workers) reuse the cache.
The file hash covers the size and the Arrow footer (the schema, metadata and chunk offsets) of
the file, so a changed file gets a new cache entry. The file access and the column cache live in
:mod:`trajarena.format.columns`; the records it returns (:class:`~trajarena.replay.records.Transition`,
``Window``, ``Episode``, ``EpisodeInfo``) in :mod:`trajarena.replay.records`.

Views. Two-player files hold both players' steps (``Dict(agent_0, agent_1)`` actions);
``perspective="P1"`` or ``"P2"`` gives one player's transitions as the loader replays that side,
and ``mirror=True`` shows the player on the P2 side as P1 sees the game (see
:mod:`trajarena.replay.views`). Info values recorded per step (numbers and flags, e.g. the
``is_intervention`` flag of ``trajarena play``'s take-overs) come per transition from
:meth:`TrajectoryDataset.step_info`.

Datasets pickle as paths + options and reopen lazily in the new process (DataLoader workers).
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.errors import MismatchError, SettingsError
from trajarena.format import schema as fmt
from trajarena.format.columns import _Column, _TrajFile
from trajarena.format.discover import finished_name, no_trajectories
from trajarena.format.leaves import compile_getter, leaf_fields
from trajarena.replay.catalog import list_trajectory_files
from trajarena.replay.records import Episode, EpisodeInfo, Transition, Window
from trajarena.replay.views import View

__all__ = ["Episode", "EpisodeInfo", "Transition", "TrajectoryDataset", "Window", "list_trajectory_files"]


def _integer(name: str, value: Any) -> int:
    """``value`` as an int (numpy integers accepted), or :class:`SettingsError` naming ``name``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return operator.index(value)
    except TypeError:
        raise SettingsError(f"{name} must be an integer, got {value!r} ({type(value).__name__}).") from None


# ----------------------------------------------------------------------------- dataset


def _default_memory_limit() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return None


class TrajectoryDataset:
    """A lazy, random-access dataset over trajectory files and folders.

    Args:
        paths: a file, a folder (searched recursively for ``*.arrow``) or a list of them.
        cache_dir: where decoded columns are kept as memory-mapped ``.npy`` files (keyed by a hash
            of each file); ``None`` keeps decoded columns in memory.
        include_partial: also read ``*.arrow.partial`` files (a running or crashed recording) up to
            their last complete chunk, unfinished episodes included (``meta['unfinished']``).
        verify_checksums: check every decoded column against its CRC-32 (about 15 µs per
            100 kB frame; turn off for trusted data when every microsecond counts).
        max_memory_bytes: without ``cache_dir``, refuse to decode a column larger than this into
            memory (default: half the physical memory; ``None``: no limit).
        perspective: ``"joint"`` (the steps as recorded), or ``"P1"``/``"P2"``: one player's view of
            two-player files (P2's with the ``P1``/``P2`` keys exchanged and the reward negated).
        mirror: show the player on the P2 side as P1 sees the game (fighting games): frames flipped
            left-right, ``side`` values and left/right moves exchanged.

    Raises:
        FileNotFoundError: no trajectory file at ``paths``.
        MismatchError: two files disagree on the observation or action space (both are named).
        FormatError: a file is not a trajarena trajectory (``CorruptFileError`` when damaged).

    >>> import tempfile, numpy as np
    >>> from gymnasium.spaces import Box, Discrete
    >>> from trajarena.format.writer import TrajectoryWriter
    >>> folder = tempfile.mkdtemp()
    >>> with TrajectoryWriter(folder, Box(-9, 9, (2,)), Discrete(2), {"env_id": "demo"}) as w:
    ...     w.reset(np.zeros(2, np.float32), {}, seed=0)
    ...     for t in range(1, 4):
    ...         w.step(t % 2, np.full(2, t, np.float32), 1.0, t == 3, False, {})
    >>> ds = TrajectoryDataset(folder)
    >>> ds.n_episodes, len(ds)
    (1, 3)
    >>> tr = ds.transition(1)
    >>> tr.obs.tolist(), int(tr.action), tr.next_obs.tolist(), bool(tr.terminated)
    ([1.0, 1.0], 0, [2.0, 2.0], False)
    >>> ds.sample_transitions(5, np.random.default_rng(0)).obs.shape
    (5, 2)
    """

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike], *,
                 cache_dir: str | os.PathLike | None = None, include_partial: bool = False,
                 verify_checksums: bool = True, max_memory_bytes: int | None = -1, perspective: str = "joint",
                 mirror: bool = False) -> None:
        self._paths = list_trajectory_files(paths, include_partial=include_partial)
        self.perspective, self.mirror = perspective, bool(mirror)
        self.max_memory_bytes = _default_memory_limit() if max_memory_bytes == -1 else max_memory_bytes
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.include_partial = bool(include_partial)
        self.verify_checksums = bool(verify_checksums)
        self._open()

    # ------------------------------------------------------------------ opening / pickling

    def _open(self) -> None:
        self._files = []
        for p in self._paths:
            partial = p.endswith(fmt.PARTIAL_SUFFIX)
            if partial and not os.path.exists(p):  # finished (or removed) since the folder was listed
                p, partial = str(finished_name(Path(p))), False
                if not os.path.exists(p):
                    continue
            self._files.append(_TrajFile(p, len(self._files), partial, self.verify_checksums))
        if not self._files:
            raise no_trajectories(self._paths)
        first = self._files[0]
        for other in self._files[1:]:
            for key in ("observation_space", "action_space"):
                if other.meta[key] != first.meta[key]:
                    raise MismatchError(
                        f"{other.path} and {first.path} disagree on the {key.replace('_', ' ')}: "
                        f"{other.meta[key]} vs {first.meta[key]}. Load them as separate datasets."
                    )
        self.observation_space: spaces.Space = first.observation_space
        self.view = View(self.perspective, self.mirror, first.action_space, [f.meta for f in self._files])
        #: the action space of the view (one player's for ``perspective="P1"``/``"P2"`` of two-player files)
        self.action_space: spaces.Space = self.view.action_space
        self.metadata: dict[str, Any] = first.meta
        self._obs_names = [f.name for f in leaf_fields(self.observation_space, "obs")]
        self._act_names = [f.name for f in leaf_fields(first.action_space, "action")]
        self._obs_getter = compile_getter(self.observation_space)
        self._act_getter = compile_getter(first.action_space)
        self._file_rows = np.cumsum([0] + [f.n_rows for f in self._files]).astype(np.int64)
        self.episodes: list[EpisodeInfo] = []
        for f in self._files:
            for eid, row0, length, meta, uid in f.episodes:
                if meta is None and not self.include_partial:
                    continue
                meta = dict(meta or {"unfinished": True})
                meta["_file_row0"] = int(self._file_rows[f.file_index])
                self.episodes.append(EpisodeInfo(len(self.episodes), f.path, f.file_index, eid, length,
                                                 int(self._file_rows[f.file_index]) + row0, meta, uid))
        lengths = np.array([e.length for e in self.episodes], np.int64)
        rows0 = np.array([e.row for e in self.episodes], np.int64)
        self._lengths, self._rows0 = lengths, rows0
        self._ends = np.cumsum(lengths)
        n = int(self._ends[-1]) if len(lengths) else 0
        starts = self._ends - lengths
        self._trans_row = (np.repeat(rows0 - starts, lengths) + np.arange(n, dtype=np.int64)) if n else np.zeros(0, np.int64)
        self._columns: dict[str, _Column] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"paths": self._paths, "cache_dir": self.cache_dir, "include_partial": self.include_partial,
                "verify_checksums": self.verify_checksums,
                "max_memory_bytes": self.max_memory_bytes, "perspective": self.perspective, "mirror": self.mirror}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._paths = state["paths"]
        self.cache_dir = state["cache_dir"]
        self.include_partial = state["include_partial"]
        self.verify_checksums = state.get("verify_checksums", True)
        self.max_memory_bytes = state.get("max_memory_bytes")
        self.perspective, self.mirror = state.get("perspective", "joint"), state.get("mirror", False)
        self._open()

    def close(self) -> None:
        """Stop background prefetching (memory maps are released with the object)."""
        for f in self._files:
            f.close()

    def __repr__(self) -> str:
        return (f"TrajectoryDataset(files={len(self._files)}, episodes={self.n_episodes}, "
                f"transitions={len(self)}, env_id={self.metadata.get('env_id')!r})")

    # ------------------------------------------------------------------ sizes and metadata

    @property
    def files(self) -> list[str]:
        """The trajectory files, in the order their episodes are numbered."""
        return list(self._paths)

    @property
    def n_episodes(self) -> int:
        return len(self.episodes)

    @property
    def total_steps(self) -> int:
        """The number of transitions (steps) over all episodes."""
        return len(self._trans_row)

    def __len__(self) -> int:
        return len(self._trans_row)

    def file_metadata(self, file_index: int) -> dict[str, Any]:
        """The JSON metadata of one file."""
        return self._files[file_index].meta

    @property
    def info_keys(self) -> list[str]:
        """Info keys recorded in every file."""
        keys = set(self._files[0].info_keys)
        for f in self._files[1:]:
            keys &= set(f.info_keys)
        return sorted(keys)

    # ------------------------------------------------------------------ columns

    def _col(self, name: str) -> _Column:
        col = self._columns.get(name)
        if col is None:
            known = {fmt.REWARD, fmt.TERMINATED, fmt.TRUNCATED, *self._obs_names, *self._act_names}
            keys = self.info_keys
            known |= {f"info/{k}" for k in keys} | {f"present/info/{k}" for k in keys}
            if name not in known:
                raise SettingsError(f"Unknown column {name!r}; valid columns: {sorted(known)}.")
            col = self._columns.setdefault(
                name, _Column(name, self._files, self._file_rows, self.cache_dir, self.max_memory_bytes))
        return col

    def column(self, name: str) -> np.ndarray:
        """A flat column over all rows of all files (read-only), e.g. ``"obs/P1/health"``, ``"reward"``."""
        return self._col(name).all()

    def step_info(self, key: str, indices: Sequence[int] | np.ndarray | None = None, default: Any = 0) -> np.ndarray:
        """The info value ``key`` of each transition (all, or those of ``indices``); ``default`` where a step has none.

        A transition's info is what ``env.step`` returned with its action, so ``step_info("outcome")``
        gives the match results and ``step_info("is_intervention")`` the steps a human took over.

        Raises:
            SettingsError: ``key`` is not recorded in every file (the recorded keys are listed).
        """
        if key not in self.info_keys:
            raise SettingsError(f"no info key {key!r} in every file; recorded info keys: {self.info_keys}.")
        idx = np.arange(len(self)) if indices is None else self._check_indices(indices)
        rows = self._trans_row[idx] + 1
        values, present = self._col(f"info/{key}").take(rows), self._col(f"present/info/{key}").take(rows)
        return np.where(present.reshape(present.shape + (1,) * (values.ndim - 1)), values,
                        np.asarray(default).astype(values.dtype))

    @property
    def interventions(self) -> np.ndarray:
        """Per transition: True where a human took over from the agent (``trajarena play``), else False."""
        if "is_intervention" not in self.info_keys:
            return np.zeros(len(self), bool)
        return self.step_info("is_intervention", default=False).astype(bool)

    def materialize(self) -> TrajectoryDataset:
        """Decode (or memory-map from the cache) every column now instead of on first use."""
        for name in (*self._obs_names, *self._act_names, fmt.REWARD, fmt.TERMINATED, fmt.TRUNCATED):
            col = self._col(name)
            for f in range(len(self._files)):
                col.part(f)
            if self.cache_dir is None:
                col.all()
        return self

    def _obs(self, rows: np.ndarray | int) -> Any:
        return self._obs_getter(iter([self._col(n).take(rows) for n in self._obs_names]))

    def _act(self, rows: np.ndarray | int) -> Any:
        return self._act_getter(iter([self._col(n).take(rows) for n in self._act_names]))

    # ------------------------------------------------------------------ episodes

    def episode(self, index: int) -> Episode:
        """Read a whole episode (observations, actions, rewards, flags, infos), read-only.

        Decodes only the chunks that hold it (the next ones are decoded ahead on a thread, so
        :meth:`iterate_episodes` streams in constant memory); it does not decode whole columns.
        """
        info = self.episodes[index]
        f = self._files[info.file_index]
        lo = info.row - int(self._file_rows[info.file_index])
        hi = lo + info.length + 1
        parts = []
        b = f.locate(lo)[0]
        while b < f.n_batches and f.chunk_offsets[b] < hi:
            base, stop = int(f.chunk_offsets[b]), int(f.chunk_offsets[b + 1])
            if stop > base:
                chunk = f.chunk(b)
                s, e = max(lo, base) - base, min(hi, stop) - base
                parts.append({k: v[s:e] for k, v in chunk.items() if k != "_steps"})
            b += 1
        cols = parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

        def col(name: str, start: int = 0) -> np.ndarray:
            return cols[name][start:]

        infos = {k: (col(f"info/{k}"), col(f"present/info/{k}")) for k in self.info_keys}
        obs, act, rew = self.view.apply(self._obs_getter(iter([col(n) for n in self._obs_names])),
                                        self._act_getter(iter([col(n, 1) for n in self._act_names])),
                                        col(fmt.REWARD, 1), np.array([info.file_index]))
        return Episode(info, obs, act, rew, col(fmt.TERMINATED, 1), col(fmt.TRUNCATED, 1), infos)

    def iterate_episodes(self, indices: Sequence[int] | None = None) -> Iterator[Episode]:
        """Yield episodes in order (or those of ``indices``)."""
        for i in range(self.n_episodes) if indices is None else indices:
            yield self.episode(int(i))

    def episode_of(self, index: int | np.ndarray) -> tuple[Any, Any]:
        """``(episode, step)`` of global transition indices."""
        ep = np.searchsorted(self._ends, index, side="right")
        return ep, np.asarray(index) - (self._ends[ep] - self._lengths[ep])

    # ------------------------------------------------------------------ transitions

    def _check_indices(self, indices: Any) -> np.ndarray:
        raw = np.asarray(indices)
        if raw.size and raw.dtype.kind not in "iu":
            raise SettingsError(f"transition indices must be integers, got an array of {raw.dtype}; "
                                "convert them with .astype(int) if they are whole numbers.")
        idx = raw.astype(np.int64)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"transition index out of range: the dataset holds {n} transitions "
                             f"(got min {idx.min()}, max {idx.max()}).")
        return np.where(idx < 0, idx + n, idx)

    def transitions(self, indices: Sequence[int] | np.ndarray) -> Transition:
        """Batched transitions for global indices (leaves stacked on axis 0)."""
        rows = self._trans_row[self._check_indices(indices)]
        nxt = rows + 1
        (obs, next_obs), act, rew = self.view.apply([self._obs(rows), self._obs(nxt)], self._act(nxt),
                                                    self._col(fmt.REWARD).take(nxt), self._file_of(rows))
        return Transition(obs, act, rew, next_obs, self._col(fmt.TERMINATED).take(nxt), self._col(fmt.TRUNCATED).take(nxt))

    def _file_of(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self._file_rows, rows, side="right") - 1  # the file index of global rows

    def actions(self, indices: Sequence[int] | np.ndarray | None = None) -> Any:
        """The recorded action of each transition (all, or those of ``indices``), without decoding observations."""
        idx = np.arange(len(self)) if indices is None else self._check_indices(indices)
        rows = self._trans_row[idx]
        return self.view.apply([], self._act(rows + 1), np.zeros(len(rows)), self._file_of(rows))[1]

    def transition(self, index: int) -> Transition:
        """One transition (no batch axis)."""
        n = len(self._trans_row)
        i = _integer("index", index)
        if not -n <= i < n:
            raise IndexError(f"transition index {i} out of range: the dataset holds {n} transitions.")
        row = int(self._trans_row[i])
        if not self.view.identity:
            return Transition(*(_first(v) for v in self.transitions([i])))
        return Transition(self._obs(row), self._act(row + 1), float(self._col(fmt.REWARD).take(row + 1)),
                          self._obs(row + 1), bool(self._col(fmt.TERMINATED).take(row + 1)),
                          bool(self._col(fmt.TRUNCATED).take(row + 1)))

    __getitem__ = transition

    def sample_transitions(self, batch_size: int, rng: np.random.Generator | None = None) -> Transition:
        """``batch_size`` transitions drawn uniformly with replacement using ``rng``."""
        if _integer("batch_size", batch_size) < 0:
            raise SettingsError(f"batch_size must be >= 0, got {batch_size}.")
        if not len(self):
            raise IndexError("the dataset holds no transitions")
        rng = rng if rng is not None else np.random.default_rng()
        return self.transitions(rng.integers(0, len(self), size=batch_size))

    def sample(self, batch_size: int, rng: np.random.Generator | None = None) -> Transition:
        """Alias of :meth:`sample_transitions`."""
        return self.sample_transitions(batch_size, rng)

    # ------------------------------------------------------------------ windows

    def windows(self, indices: Sequence[int] | np.ndarray, k: int) -> Window:
        """``k``-step windows starting at global transition ``indices``; padded past episode ends."""
        if k < 1:
            raise SettingsError(f"window length k must be >= 1, got {k}.")
        idx = self._check_indices(indices).reshape(-1)
        ep, step = self.episode_of(idx)
        offs = np.arange(k, dtype=np.int64)
        mask = (step[:, None] + offs) < self._lengths[ep][:, None]
        last = (self._rows0[ep] + self._lengths[ep] - 1)[:, None]
        rows = np.minimum(self._trans_row[idx][:, None] + offs, last)
        nxt = rows + 1

        def pad(x: Any) -> Any:
            if isinstance(x, dict):
                return {key: pad(v) for key, v in x.items()}
            if isinstance(x, tuple):
                return tuple(pad(v) for v in x)
            x = np.array(x, copy=True) if not x.flags.writeable else x
            x[~mask] = 0
            return x

        (obs, next_obs), act, rew = self.view.apply([self._obs(rows), self._obs(nxt)], self._act(nxt),
                                                    self._col(fmt.REWARD).take(nxt), self._file_of(rows[:, 0]))
        return Window(pad(obs), pad(act), pad(rew), pad(next_obs), pad(self._col(fmt.TERMINATED).take(nxt)),
                      pad(self._col(fmt.TRUNCATED).take(nxt)), mask)

    def window(self, index: int, k: int) -> Window:
        """One ``k``-step window (no batch axis)."""
        return Window(*(_first(v) for v in self.windows([index], k)))

    def sample_windows(self, batch_size: int, k: int, rng: np.random.Generator | None = None) -> Window:
        """``batch_size`` windows of ``k`` steps from uniformly drawn start transitions."""
        rng = rng if rng is not None else np.random.default_rng()
        return self.windows(rng.integers(0, len(self), size=batch_size), k)


def _first(x: Any) -> Any:
    """The first item of a batch (nested dicts and tuples leaf by leaf)."""
    if isinstance(x, dict):
        return {key: _first(v) for key, v in x.items()}
    if isinstance(x, tuple):
        return tuple(_first(v) for v in x)
    return x[0]
