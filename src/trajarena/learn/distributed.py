"""Data-parallel training under ``torchrun``: the process group, rank sharding, DDP and rank 0's duties.

``torchrun --nproc_per_node N -m trajarena.cli train-bc DATA`` starts N processes, each with
``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set. :meth:`DataParallel.from_env`
joins them into a process group (gloo: CPU; each rank keeps one torch thread unless told
otherwise) and :func:`~trajarena.learn.bc.train_bc` then uses it at a few marked lines:

* :meth:`~DataParallel.shard` — rank ``r`` of ``N`` keeps every ``N``-th training step from ``r``
  (the rule of :class:`~trajarena.replay.torch_data.TransitionIterableDataset`, without padding):
  the ranks are disjoint and together hold every step, so each epoch trains on every transition
  exactly once. The ranks' shares differ by one step at most; DDP's ``join`` lets a rank that ran
  out of batches shadow the others' gradient all-reduces, so nothing is repeated or dropped.
* :meth:`~DataParallel.local_batch` — each rank takes ``ceil(batch_size / N)`` steps per batch, so a
  gradient step still averages about ``batch_size`` steps and the learning-rate schedule keeps
  its length.
* :meth:`~DataParallel.epoch` — one pass with the network wrapped in ``DistributedDataParallel``
  (gradients averaged over ranks) for training, unwrapped for validation (no collective calls, so
  uneven shares never block), then the losses and accuracies averaged over all ranks' steps.
* :meth:`~DataParallel.finish` — rank 0 saves the policy, every rank waits for it, and the process
  group is closed if this module opened it.

In one process (no ``WORLD_SIZE``, or 1) every method is a no-op and training is unchanged.

>>> dp = DataParallel(rank=1, world_size=2)
>>> dp.shard(np.arange(7)).tolist(), dp.local_batch(128), dp.is_main
([1, 3, 5], 64, False)
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trajarena.errors import NotSupportedError

__all__ = ["DataParallel", "is_main_process"]


def is_main_process() -> bool:
    """True unless this process is a rank other than 0 of a ``torchrun`` job (``RANK`` set and not 0)."""
    return int(os.environ.get("RANK", "0") or 0) == 0


@dataclass
class DataParallel:
    """This process's place in a data-parallel job (rank 0 of 1 when not under ``torchrun``).

    Attributes:
        rank: this process's rank.
        world_size: the number of ranks.
        owns_group: True when :meth:`from_env` opened the process group (and :meth:`finish` closes it).
    """

    rank: int = 0
    world_size: int = 1
    owns_group: bool = False
    _ddp: Any = field(default=None, repr=False)

    @classmethod
    def from_env(cls, backend: str = "gloo") -> DataParallel:
        """Join the ``torchrun`` job this process is part of (or use the process group already open).

        Raises:
            NotSupportedError: ``WORLD_SIZE`` > 1 but this torch build has no ``torch.distributed``.
        """
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return cls()
        if not dist.is_available():
            raise NotSupportedError(f"WORLD_SIZE={world} asks for distributed training, but this torch build has "
                                    "no torch.distributed; run one process, or install a torch with it.")
        dist.init_process_group(backend)  # env://: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT from torchrun
        return cls(dist.get_rank(), dist.get_world_size(), owns_group=True)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that shows progress and saves."""
        return self.rank == 0

    def shard(self, indices: np.ndarray) -> np.ndarray:
        """This rank's steps: every ``world_size``-th index from ``rank`` (all ranks together: each index once)."""
        return indices[self.rank::self.world_size]

    def local_batch(self, batch_size: int) -> int:
        """Steps per batch on this rank, so that all ranks together take about ``batch_size``."""
        return max(1, math.ceil(batch_size / self.world_size))

    def epoch(self, run: Callable[..., tuple[float, float]], policy: Any, demos: Any, idx: np.ndarray,
              batch_size: int, opt: Any, *args: Any) -> tuple[float, float]:
        """``run(policy, demos, idx, batch_size, opt, *args)`` on this rank's steps; (loss, accuracy) of all ranks.

        Training (``opt`` given) runs with ``policy.net`` wrapped in DDP inside ``join()``;
        evaluation runs on the plain network. The results are averaged over every rank's steps.
        """
        if not self.enabled:
            return run(policy, demos, idx, batch_size, opt, *args)
        if opt is None:
            return self.mean(run(policy, demos, idx, batch_size, opt, *args), len(idx))
        net = policy.net
        if self._ddp is None or self._ddp.module is not net:
            import inspect

            from torch.nn.parallel import DistributedDataParallel

            # buffers (the vector normalisation) are equal on every rank: no sync at each forward
            quiet = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters  # torch >= 2.13
            self._ddp = DistributedDataParallel(net, **{"forward_sync_buffers" if quiet else "broadcast_buffers": False})
        policy.net = self._ddp
        try:
            with self._ddp.join():
                result = run(policy, demos, idx, batch_size, opt, *args)
        finally:
            policy.net = net
        return self.mean(result, len(idx))

    def mean(self, values: Sequence[float], n: int) -> tuple[float, ...]:
        """Means over all ranks of per-rank means ``values`` taken over ``n`` items each (weighted by ``n``)."""
        if not self.enabled:
            return tuple(values)
        import torch
        import torch.distributed as dist

        total = torch.tensor([*(float(v) * n for v in values), float(n)], dtype=torch.float64)
        dist.all_reduce(total)
        count = float(total[-1])
        return tuple(float(v) / count if count else 0.0 for v in total[:-1])

    def finish(self, save: Callable[[], Path], out: str | Path) -> Path:
        """Rank 0 calls ``save()``; the others wait until it is done. Closes the group if :meth:`from_env` opened it."""
        if not self.enabled:
            return save()
        import torch.distributed as dist

        path = save() if self.is_main else Path(out)
        dist.barrier()
        if self.owns_group:
            dist.destroy_process_group()
        return path
