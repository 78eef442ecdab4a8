"""PyTorch datasets over trajectory files (needs the ``torch`` extra: ``pip install 'trajarena[torch]'``).

* :class:`TransitionDataset` — map-style. ``ds[i]`` is one transition as a dict of tensors
  (nested dicts for nested observations) with its global ``index``; ``ds[list_of_indices]`` is a
  whole batch from one vectorised gather, so the fastest loader is
  ``DataLoader(ds, sampler=BatchSampler(RandomSampler(ds), 256, False), batch_size=None)``.
  Shard across ``torch.distributed`` ranks with the usual ``DistributedSampler``.
* :class:`TransitionIterableDataset` — iterable. Each epoch it draws one permutation (seeded by
  ``seed + epoch``) and gives shard ``rank * num_workers + worker_id`` of
  ``world_size * num_workers`` every that-many-th index, so DataLoader workers and distributed
  ranks together yield every transition exactly once per epoch. Call :meth:`set_epoch` per epoch.

Both take ``window=k`` to yield ``k``-step windows with a padding ``mask`` instead of transitions.
Both pickle as the dataset's paths and options: DataLoader workers reopen the files themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from trajarena.dataset import TrajectoryDataset
from trajarena.errors import SettingsError, require

torch = require("torch", "torch", "trajarena.torch_data")

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
        data: a :class:`~trajarena.dataset.TrajectoryDataset`, or paths to open as one.
        window: yield windows of this many steps (with ``mask``) instead of single transitions.
        cache_dir: memory-mapped decoded-column cache (when ``data`` are paths).

    >>> import tempfile, gymnasium as gym
    >>> from trajarena.recorder import TrajectoryRecorder
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
    """Iterable PyTorch dataset: sharded over DataLoader workers and distributed ranks, once per epoch.

    Args:
        data: a :class:`~trajarena.dataset.TrajectoryDataset`, or paths to open as one.
        batch_size: yield batches of this many (the DataLoader then takes ``batch_size=None``);
            ``None`` yields single transitions.
        shuffle: a new seeded permutation every epoch (else in order).
        seed: the base seed; epoch ``e`` uses ``seed + e``, the same in every worker and rank.
        drop_last: drop each shard's last incomplete batch.
        window: yield ``window``-step windows (with ``mask``) instead of transitions.
        rank: this process's rank (default: from ``torch.distributed`` when initialised, else 0).
        world_size: the number of ranks (default likewise, else 1).
        cache_dir: memory-mapped decoded-column cache (when ``data`` are paths).

    >>> TransitionIterableDataset.__mro__[1].__name__
    'IterableDataset'
    """

    def __init__(self, data: Any, *, batch_size: int | None = None, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, window: int | None = None, rank: int | None = None,
                 world_size: int | None = None, cache_dir: str | os.PathLike | None = None) -> None:
        self.data = _as_dataset(data, cache_dir)
        if batch_size is not None and batch_size < 1:
            raise SettingsError(f"batch_size must be None or >= 1, got {batch_size!r}.")
        if (rank is None) != (world_size is None):
            raise SettingsError("give both rank and world_size, or neither (then torch.distributed decides).")
        if world_size is not None and not 0 <= rank < world_size:
            raise SettingsError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}.")
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.window, self.rank, self.world_size = window, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` next (call it before each epoch, as with DistributedSampler)."""
        self.epoch = int(epoch)

    def shard(self) -> np.ndarray:
        """The transition indices this worker of this rank yields in the current epoch."""
        n = len(self.data)
        order = np.random.default_rng(self.seed + self.epoch).permutation(n) if self.shuffle else np.arange(n)
        rank, world = (self.rank, self.world_size) if self.world_size is not None else _distributed()
        info = torch.utils.data.get_worker_info()
        wid, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return order[rank * workers + wid :: world * workers]

    def __len__(self) -> int:
        n = len(self.data)
        world = self.world_size if self.world_size is not None else _distributed()[1]
        per = -(-n // world)
        if self.batch_size is None:
            return per
        return per // self.batch_size if self.drop_last else -(-per // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        mine = self.shard()
        if self.batch_size is None:
            for i in mine:
                yield to_tensors(_first(_fetch(self.data, np.array([i], np.int64), self.window)))
            return
        for lo in range(0, len(mine), self.batch_size):
            idx = mine[lo : lo + self.batch_size]
            if self.drop_last and len(idx) < self.batch_size:
                return
            yield to_tensors(_fetch(self.data, idx, self.window))
