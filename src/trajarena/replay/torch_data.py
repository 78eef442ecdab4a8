"""PyTorch datasets over trajectory files (needs the ``torch`` extra: ``pip install 'trajarena[torch]'``).

* :class:`TransitionDataset` — map-style. ``ds[i]`` is one transition as a dict of tensors
  (nested dicts for nested observations) with its global ``index``; ``ds[list_of_indices]`` is a
  whole batch from one vectorised gather, so the fastest loader is
  ``DataLoader(ds, sampler=BatchSampler(RandomSampler(ds), 256, False), batch_size=None)``.
  Shard across ``torch.distributed`` ranks with the usual ``DistributedSampler``.
* :class:`TransitionIterableDataset` — iterable. Each epoch it draws one permutation (seeded by
  ``seed + epoch``); rank ``r`` takes every ``world_size``-th index from ``r`` (padded by default,
  like ``DistributedSampler``, so all ranks yield the same count; ``pad=False`` keeps every
  transition exactly once), cuts its share into batches and deals them round-robin to its
  DataLoader workers, so ``len()`` is exact for any ``num_workers``. Call :meth:`set_epoch` per epoch.

Both take ``window=k`` to yield ``k``-step windows with a padding ``mask`` instead of transitions.
Both pickle as the dataset's paths and options: DataLoader workers reopen the files themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from trajarena.replay.dataset import TrajectoryDataset
from trajarena.errors import SettingsError, require

torch = require("torch", "torch", "trajarena.replay.torch_data")

__all__ = ["TransitionDataset", "TransitionIterableDataset", "to_tensors"]


def to_tensors(value: Any) -> Any:
    """Convert nested numpy values (dicts, tuples, arrays, scalars) to tensors; strings stay as they are."""
    if isinstance(value, dict):
        return {k: to_tensors(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(to_tensors(v) for v in value)
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return value.tolist()
        if not value.flags.writeable:
            value = value.copy()
        return torch.from_numpy(value)
    if isinstance(value, np.generic | bool | int | float):
        return torch.as_tensor(value)
    return value


def _as_dataset(data: Any, cache_dir: str | os.PathLike | None) -> TrajectoryDataset:
    if isinstance(data, TrajectoryDataset):
        if cache_dir is not None:
            raise SettingsError("cache_dir is an option of the TrajectoryDataset you passed; set it there.")
        return data
    return TrajectoryDataset(data, cache_dir=cache_dir)


def _fetch(data: TrajectoryDataset, indices: np.ndarray, window: int | None) -> dict[str, Any]:
    if window is None:
        t = data.transitions(indices)
        out = t._asdict()
    else:
        out = data.windows(indices, window)._asdict()
    out["index"] = indices
    return out


def _first(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _first(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_first(v) for v in value)
    return value[0]


class TransitionDataset(torch.utils.data.Dataset):
    """Map-style PyTorch dataset of transitions (or ``window``-step windows) of trajectory files.

    Args:
        data: a :class:`~trajarena.replay.dataset.TrajectoryDataset`, or paths to open as one.
        window: yield windows of this many steps (with ``mask``) instead of single transitions.
        cache_dir: memory-mapped decoded-column cache (when ``data`` are paths).

    >>> import tempfile, gymnasium as gym
    >>> from trajarena.recording.recorder import TrajectoryRecorder
    >>> folder = tempfile.mkdtemp()
    >>> env = TrajectoryRecorder(gym.make("CartPole-v1"), folder)
    >>> _ = env.reset(seed=0)
    >>> for a in [0, 1, 1]:
    ...     _ = env.step(a)
    >>> env.close()
    >>> ds = TransitionDataset(folder)
    >>> item = ds[0]
    >>> sorted(item), item["obs"].shape, int(item["action"])
    (['action', 'index', 'next_obs', 'obs', 'reward', 'terminated', 'truncated'], torch.Size([4]), 0)
    >>> ds[[0, 2]]["obs"].shape
    torch.Size([2, 4])
    """

    def __init__(self, data: Any, *, window: int | None = None, cache_dir: str | os.PathLike | None = None) -> None:
        self.data = _as_dataset(data, cache_dir)
        if window is not None and window < 1:
            raise SettingsError(f"window must be None or >= 1, got {window!r}.")
        self.window = window

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int | Sequence[int] | np.ndarray) -> dict[str, Any]:
        if isinstance(index, int | np.integer):
            return to_tensors(_first(_fetch(self.data, np.array([index], np.int64), self.window)))
        return to_tensors(_fetch(self.data, np.asarray(index, np.int64), self.window))

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        batch = _fetch(self.data, np.asarray(indices, np.int64), self.window)
        return [to_tensors(_pick(batch, j)) for j in range(len(indices))]


def _pick(value: Any, j: int) -> Any:
    if isinstance(value, dict):
        return {k: _pick(v, j) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_pick(v, j) for v in value)
    return value[j]


def _distributed() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class TransitionIterableDataset(torch.utils.data.IterableDataset):
    """Iterable PyTorch dataset: sharded over distributed ranks and DataLoader workers, once per epoch.

    Each epoch draws one permutation of all ``n`` transitions (seeded by ``seed + epoch``, identical in
    every rank and worker). Rank ``r`` of ``world_size`` takes every ``world_size``-th index from
    position ``r``; with ``pad=True`` (the default, as ``DistributedSampler``) the permutation is first
    extended by repeating its head to a multiple of ``world_size``, so every rank yields exactly
    ``ceil(n / world_size)`` items and DDP collectives stay in step (at most ``world_size - 1``
    transitions appear twice per epoch). With ``pad=False`` each transition appears exactly once per
    epoch and ranks differ by at most one item. A rank's share is cut into consecutive batches and
    DataLoader worker ``w`` of ``k`` yields batches ``w, w + k, w + 2k, ...``; the DataLoader's
    round-robin over workers therefore returns the same batches in the same order for any
    ``num_workers``, and ``len()`` is exact whatever the number of workers.

    Args:
        data: a :class:`~trajarena.replay.dataset.TrajectoryDataset`, or paths to open as one.
        batch_size: yield batches of this many (the DataLoader then takes ``batch_size=None``);
            ``None`` yields single transitions.
        shuffle: a new seeded permutation every epoch (else in order).
        seed: the base seed; epoch ``e`` uses ``seed + e``, the same in every worker and rank.
        drop_last: drop this rank's last batch if it is incomplete: at most ``batch_size - 1``
            items per rank per epoch, independent of ``num_workers``.
        window: yield ``window``-step windows (with ``mask``) instead of transitions.
        rank: this process's rank (default: from ``torch.distributed`` when initialised, else 0).
        world_size: the number of ranks (default likewise, else 1).
        pad: repeat indices so that every rank yields the same number of items (see above).
        cache_dir: memory-mapped decoded-column cache (when ``data`` are paths).

    >>> import tempfile, gymnasium as gym
    >>> from trajarena.recording.recorder import TrajectoryRecorder
    >>> folder = tempfile.mkdtemp()
    >>> env = TrajectoryRecorder(gym.make("CartPole-v1"), folder)
    >>> _ = env.reset(seed=0)
    >>> for a in [0, 1, 1, 0, 1]:
    ...     _ = env.step(a)
    >>> env.close()
    >>> ds = TransitionIterableDataset(folder, batch_size=2, shuffle=False, rank=1, world_size=2)
    >>> len(ds), [b["index"].tolist() for b in ds]  # 5 transitions, 2 ranks: index 0 repeats as padding
    (2, [[1, 3], [0]])
    """

    def __init__(self, data: Any, *, batch_size: int | None = None, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, window: int | None = None, rank: int | None = None,
                 world_size: int | None = None, pad: bool = True,
                 cache_dir: str | os.PathLike | None = None) -> None:
        self.data = _as_dataset(data, cache_dir)
        if batch_size is not None and batch_size < 1:
            raise SettingsError(f"batch_size must be None or >= 1, got {batch_size!r}.")
        if (rank is None) != (world_size is None):
            raise SettingsError("give both rank and world_size, or neither (then torch.distributed decides).")
        if world_size is not None and not 0 <= rank < world_size:
            raise SettingsError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}.")
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.window, self.rank, self.world_size, self.pad = window, rank, world_size, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` next (call it before each epoch, as with DistributedSampler)."""
        self.epoch = int(epoch)

    def _rank_world(self) -> tuple[int, int]:
        return (self.rank, self.world_size) if self.world_size is not None else _distributed()

    def _rank_count(self) -> int:
        """How many items this rank yields per epoch (before batching)."""
        n = len(self.data)
        rank, world = self._rank_world()
        if self.pad and n > 0:
            return -(-n // world)
        return max(0, -(-(n - rank) // world))

    def _rank_indices(self) -> np.ndarray:
        n = len(self.data)
        order = np.random.default_rng(self.seed + self.epoch).permutation(n) if self.shuffle else np.arange(n)
        rank, world = self._rank_world()
        if self.pad and n > 0 and n % world:
            order = np.resize(order, -(-n // world) * world)  # repeats the head, like DistributedSampler
        return order[rank::world]

    def _batches(self) -> list[np.ndarray]:
        """This worker's batches of this rank (each an index array); single indices when unbatched."""
        mine = self._rank_indices()
        info = torch.utils.data.get_worker_info()
        wid, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if self.batch_size is None:
            return [mine[i : i + 1] for i in range(wid, len(mine), workers)]
        bs = self.batch_size
        n_batches = len(mine) // bs if self.drop_last else -(-len(mine) // bs)
        return [mine[b * bs : (b + 1) * bs] for b in range(wid, n_batches, workers)]

    def shard(self) -> np.ndarray:
        """The transition indices this worker of this rank yields in the current epoch, in order."""
        parts = self._batches()
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def __len__(self) -> int:
        """Items (``batch_size=None``) or batches this rank yields per epoch, summed over its workers."""
        per = self._rank_count()
        if self.batch_size is None:
            return per
        return per // self.batch_size if self.drop_last else -(-per // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for idx in self._batches():
            batch = _fetch(self.data, idx.astype(np.int64, copy=False), self.window)
            yield to_tensors(_first(batch) if self.batch_size is None else batch)
