"""Trajectory files as a Ray Data dataset of decoded transitions: :func:`read_trajectories`.

A Ray ``Datasource`` over the native files (no conversion first): each read task opens its share
of the files in its worker (headers only, then one decoded episode at a time) and yields blocks
of transitions. The work is split as the loader splits ranks (:func:`plan_read_tasks`, built on
:func:`trajarena.replay.raw.partition`): whole files when there are at least as many files as
read tasks, otherwise every ``n``-th episode of all files. So the tasks are disjoint, together
read every transition once, and the plan is known (row counts included) before anything is read.

Rows are transitions, with flat columns (nested observations joined with ``/``, as the native
columns are named): ``episode`` (the episode's index in ``TrajectoryDataset(paths)``), ``step``
(its index in the episode), ``obs/...``, ``action`` (or ``action/...``), ``reward``,
``terminated``, ``truncated`` and, unless ``next_obs=False``, ``next_obs/...``. Image leaves are
Ray tensor columns, so ``iter_batches(batch_format="numpy")`` and ``iter_torch_batches()`` give
arrays of shape ``(batch, H, W, C)``; :func:`nest` turns a flat batch back into nested dicts.
Ray does not keep the order of rows; sort by ``episode`` and ``step`` when it matters.

With ``window=k`` a row is the ``k``-step window that starts at its transition, as
:meth:`TrajectoryDataset.windows <trajarena.replay.dataset.TrajectoryDataset.windows>` gives it:
every column but ``episode`` and ``step`` gains a step axis of length ``k``, and a ``mask`` column
``(k,)`` is False where the window runs past the end of its episode (those entries are zeros).

Needs the ``ray`` extra (``pip install 'trajarena[ray]'``: Ray Data). Reading Parquet exported by
:func:`~trajarena.interop.parquet.export_parquet` with ``ray.data.read_parquet`` works too.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.errors import SettingsError, require
from trajarena.replay.dataset import TrajectoryDataset, list_trajectory_files
from trajarena.replay.raw import partition

__all__ = ["ReadPlan", "flatten", "nest", "plan_read_tasks", "read_trajectories"]


@dataclass(frozen=True)
class ReadPlan:
    """One read task: the files it opens and, per file, the local episodes it reads.

    Attributes:
        files: the trajectory files (paths) the task opens.
        episodes: for each of ``files``, the indices of its episodes to read (in file order).
        first_episode: for each of ``files``, the global index of its first episode.
        rows: the transitions the task yields.

    >>> ReadPlan(("a.arrow",), ((0, 2),), (5,), 120).rows
    120
    """

    files: tuple[str, ...]
    episodes: tuple[tuple[int, ...], ...]
    first_episode: tuple[int, ...]
    rows: int


def plan_read_tasks(files: Sequence[str], lengths: Sequence[Sequence[int]], n_tasks: int) -> list[ReadPlan]:
    """Split the episodes of ``files`` (``lengths[f][e]`` steps) over at most ``n_tasks`` read tasks.

    >>> [(p.files, p.episodes, p.rows) for p in plan_read_tasks(["a", "b"], [[5, 6], [7]], 3)]
    [(('a',), ((0,),), 5), (('a',), ((1,),), 6), (('b',), ((0,),), 7)]
    >>> [p.files for p in plan_read_tasks(["a", "b", "c"], [[5], [6], [7]], 2)]
    [('a', 'c'), ('b',)]
    """
    if isinstance(n_tasks, bool) or not isinstance(n_tasks, int) or n_tasks < 1:
        raise SettingsError(f"the number of read tasks must be an integer >= 1, got {n_tasks!r}.")
    counts = [len(x) for x in lengths]
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    plans = []
    for task in range(n_tasks):
        pairs = partition(len(files), counts, n_tasks, task)
        if not pairs:
            continue
        chosen = sorted({f for f, _ in pairs})
        plans.append(ReadPlan(tuple(str(files[f]) for f in chosen),
                              tuple(tuple(e for g, e in pairs if g == f) for f in chosen),
                              tuple(int(starts[f]) for f in chosen), int(sum(lengths[f][e] for f, e in pairs))))
    return plans


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    """A nested value as flat ``prefix/key`` columns (Tuple items by index).

    >>> sorted(flatten({"frame": 1, "P1": {"health": 2}, "t": (3, 4)}, "obs"))
    ['obs/P1/health', 'obs/frame', 'obs/t/0', 'obs/t/1']
    """
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in flatten(sub, f"{prefix}/{key}").items()}
    if isinstance(value, tuple):
        return {k: v for i, sub in enumerate(value) for k, v in flatten(sub, f"{prefix}/{i}").items()}
    return {prefix: value}


def nest(batch: dict[str, Any]) -> dict[str, Any]:
    """Flat ``a/b/c`` columns of a batch back into nested dicts (Tuple items stay dicts keyed ``"0"``...).

    >>> nest({"obs/P1/health": 1, "obs/frame": 2, "reward": 3})
    {'obs': {'P1': {'health': 1}, 'frame': 2}, 'reward': 3}
    """
    out: dict[str, Any] = {}
    for key, value in batch.items():
        *path, last = key.split("/")
        node = out
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def _row_bytes(space: spaces.Space) -> int:
    if isinstance(space, spaces.Dict):
        return sum(_row_bytes(s) for s in space.spaces.values())
    if isinstance(space, spaces.Tuple):
        return sum(_row_bytes(s) for s in space.spaces)
    if isinstance(space, spaces.Discrete | spaces.Text):
        return 8
    return int(np.prod(space.shape, dtype=np.int64)) * np.dtype(space.dtype).itemsize


def _slice(value: Any, lo: int, hi: int) -> Any:
    if isinstance(value, dict):
        return {k: _slice(v, lo, hi) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_slice(v, lo, hi) for v in value)
    return np.asarray(value)[lo:hi]


def _windowed(value: Any, rows: np.ndarray, mask: np.ndarray) -> Any:
    """``value[rows]`` for a ``(n, k)`` array of rows, zeroed where ``mask`` is False (nested values too)."""
    if isinstance(value, dict):
        return {k: _windowed(v, rows, mask) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_windowed(v, rows, mask) for v in value)
    out = np.asarray(value)[rows]
    out[~mask] = 0
    return out


def _block(ep: Any, base: int, lo: int, hi: int, next_obs: bool, window: int | None) -> dict[str, np.ndarray]:
    """Transitions (or windows) ``lo..hi`` of one decoded episode as flat columns."""
    head = {"episode": np.full(hi - lo, base, np.int64), "step": np.arange(lo, hi, dtype=np.int64)}
    if window is None:
        take = functools.partial(_slice, lo=lo, hi=hi)
        after = functools.partial(_slice, lo=lo + 1, hi=hi + 1)
    else:
        pos = np.arange(lo, hi)[:, None] + np.arange(window)
        mask = pos < ep.length
        rows = np.minimum(pos, ep.length - 1)
        take = functools.partial(_windowed, rows=rows, mask=mask)
        after = functools.partial(_windowed, rows=rows + 1, mask=mask)
        head["mask"] = mask
    batch = {**head, **flatten(take(ep.observations), "obs"), **flatten(take(ep.actions), "action"),
             "reward": np.asarray(take(np.asarray(ep.rewards, np.float64))),
             "terminated": np.asarray(take(np.asarray(ep.terminated, bool))),
             "truncated": np.asarray(take(np.asarray(ep.truncated, bool)))}
    if next_obs:
        batch.update(flatten(after(ep.observations), "next_obs"))
    return batch


def _read(plan: ReadPlan, next_obs: bool, rows_per_block: int, verify_checksums: bool,
          window: int | None = None) -> Iterator[Any]:
    """The read task: yield Arrow blocks of at most ``rows_per_block`` transitions (or windows)."""
    from ray.data.block import BlockAccessor

    data = TrajectoryDataset(list(plan.files), verify_checksums=verify_checksums)
    try:
        first = {}  # the dataset's index of each file's first episode (it orders files its own way)
        for info in data.episodes:
            first.setdefault(os.path.realpath(info.file), info.index)
        for path, episodes, base in zip(plan.files, plan.episodes, plan.first_episode, strict=True):
            for e in episodes:
                ep = data.episode(first[os.path.realpath(path)] + e)
                for lo in range(0, ep.length, rows_per_block):
                    batch = _block(ep, base + e, lo, min(ep.length, lo + rows_per_block), next_obs, window)
                    yield BlockAccessor.batch_to_block({k: np.array(v) for k, v in batch.items()})
    finally:
        data.close()


@functools.cache
def _datasource_class() -> type:
    """The Ray ``Datasource`` subclass, built when Ray is first needed (``import trajarena`` never imports Ray)."""
    ray_data = require("ray.data", "ray", "Reading trajectories with Ray Data")
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class TrajectoryDatasource(Datasource):
        """Ray Data's view of trajectory files: decoded transitions, split by file or episode."""

        def __init__(self, paths: Any, next_obs: bool = True, rows_per_block: int = 1024,
                     verify_checksums: bool = True, window: int | None = None) -> None:
            super().__init__()
            self.files = list_trajectory_files(paths)
            data = TrajectoryDataset(self.files, verify_checksums=verify_checksums)
            try:
                self.lengths = [[e.length for e in data.episodes if e.file_index == f] for f in range(len(self.files))]
                obs, act = _row_bytes(data.observation_space), _row_bytes(data.action_space)
            finally:
                data.close()
            self.row_bytes = (obs * (2 if next_obs else 1) + act + 11) * (window or 1)
            self.next_obs, self.rows_per_block, self.verify_checksums = next_obs, rows_per_block, verify_checksums
            self.window = window

        def estimate_inmemory_data_size(self) -> int:
            return int(sum(map(sum, self.lengths)) * self.row_bytes)

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[Any]:
            tasks = []
            for plan in plan_read_tasks(self.files, self.lengths, max(1, int(parallelism))):
                meta = BlockMetadata(num_rows=plan.rows, size_bytes=int(plan.rows * self.row_bytes), exec_stats=None,
                                     input_files=list(plan.files))
                read = functools.partial(_read, plan, self.next_obs, self.rows_per_block, self.verify_checksums,
                                         self.window)
                tasks.append(ReadTask(read, meta, per_task_row_limit=per_task_row_limit))
            return tasks

    del ray_data
    return TrajectoryDatasource


def read_trajectories(paths: str | os.PathLike | Sequence[str | os.PathLike], *, next_obs: bool = True,
                      override_num_blocks: int | None = None, rows_per_block: int = 1024,
                      verify_checksums: bool = True, window: int | None = None, **read_args: Any) -> Any:
    """Decoded transitions of trajectory files as a ``ray.data.Dataset`` (columns in the module docstring).

    Args:
        paths: trajectory files and/or folders (on a filesystem every Ray worker sees).
        next_obs: include the ``next_obs/...`` columns.
        override_num_blocks: the number of read tasks (default: Ray's choice); work is split by
            file, or by episode when there are fewer files than tasks.
        rows_per_block: transitions per block a task yields (bounds a worker's memory).
        verify_checksums: check every decoded column against its CRC-32.
        window: rows are ``window``-step windows (with a ``mask`` column) instead of transitions.
        **read_args: passed to ``ray.data.read_datasource`` (e.g. ``concurrency``, ``num_cpus``).

    Raises:
        MissingDependencyError: Ray Data is not installed (``pip install 'trajarena[ray]'``).
        DataNotFoundError: no trajectory file at ``paths``.

    >>> import ray  # doctest: +SKIP
    >>> ds = read_trajectories("data/duel", override_num_blocks=4)  # doctest: +SKIP
    >>> ds.count(), ds.schema().names[:3]  # doctest: +SKIP
    (12840, ['episode', 'step', 'obs/P1/character'])
    """
    if isinstance(rows_per_block, bool) or not isinstance(rows_per_block, int) or rows_per_block < 1:
        raise SettingsError(f"rows_per_block must be an integer >= 1, got {rows_per_block!r}.")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise SettingsError(f"window must be None or an integer >= 1 (steps per window), got {window!r}.")
    source = _datasource_class()(paths, next_obs=next_obs, rows_per_block=rows_per_block,
                                 verify_checksums=verify_checksums, window=window)
    import ray.data

    return ray.data.read_datasource(source, override_num_blocks=override_num_blocks, **read_args)
