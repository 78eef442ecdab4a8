"""The training loop of behavioural cloning: epochs of batches from a demonstration source.

:func:`fit` trains a :class:`~trajarena.learn.policy.BCPolicy` on rows of any
:class:`~trajarena.learn.data.DemoSource` (in memory or streamed), batch by batch in the order
:func:`~trajarena.learn.data.epoch_batches` gives, each step's cross-entropy weighted by the source's
``weight``; :func:`split_by_episode` picks the validation episodes. :func:`~trajarena.learn.bc.train_bc`
(plain BC) and :func:`~trajarena.learn.dagger.dagger` (further rounds) both call them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from trajarena.learn.data import DemoSource, epoch_batches
from trajarena.learn.distributed import DataParallel
from trajarena.learn.policy import BCPolicy, _torch, torch_threads

__all__ = ["EpochStats", "fit", "split_by_episode"]


@dataclass(frozen=True)
class EpochStats:
    """Loss and accuracy (all action components right) of one epoch, on the training and validation steps."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float


def _split_by_episode(episode: np.ndarray, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation step indices, whole episodes on each side, in episode-id order.

    Episode ids come from :func:`load_demonstrations` (recorded seeds when known), so the split and the
    batch order do not depend on the order in which the files happen to be listed.
    """
    eps = np.unique(episode)
    n_val = int(round(len(eps) * val_fraction)) if len(eps) > 1 else 0
    n_val = min(max(n_val, 1 if val_fraction > 0 and len(eps) > 1 else 0), len(eps) - 1)
    val_eps = rng.choice(eps, size=n_val, replace=False) if n_val else np.array([], np.int64)
    canonical = np.argsort(episode, kind="stable")
    is_val = np.isin(episode[canonical], val_eps)
    return canonical[~is_val], canonical[is_val]


def _run_epoch(policy: BCPolicy, source: DemoSource, batches: Any, opt: Any = None, sched: Any = None,
               on_batch: Callable[[int, float, float], None] | None = None) -> tuple[float, float]:
    """One pass over ``batches`` (index arrays): trains when ``opt`` is given; returns (loss, accuracy) per step."""
    torch = _torch()
    F = torch.nn.functional
    train = opt is not None
    policy.net.train(train)
    total_loss = total_right = 0.0
    n = 0
    with torch.set_grad_enabled(train):
        for b in batches:
            batch = source.gather(b)
            image = None if batch.image is None else torch.from_numpy(batch.image)
            outs = policy.net(image, torch.from_numpy(batch.vector))
            target = torch.from_numpy(batch.actions)
            weight = torch.from_numpy(batch.weight)
            per_step = sum(F.cross_entropy(o, target[:, j], reduction="none") for j, o in enumerate(outs))
            loss = (per_step * weight).sum() / weight.sum().clamp_min(1e-12)
            if train:
                opt.zero_grad()
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
            right = torch.stack([o.argmax(1) == target[:, j] for j, o in enumerate(outs)]).all(0)
            total_loss += loss.item() * len(b)
            total_right += float(right.sum())
            n += len(b)
            if on_batch is not None:
                on_batch(len(b), loss.item(), right.float().mean().item())
    policy.net.eval()
    return total_loss / max(n, 1), total_right / max(n, 1)


def _pass(policy: BCPolicy, source: DemoSource, idx: np.ndarray, batch_size: int, opt: Any, gen: Any, sched: Any,
          on_batch: Any) -> tuple[float, float]:
    """One epoch over rows ``idx`` in the order of :func:`~trajarena.learn.data.epoch_batches` (shuffled when training)."""
    return _run_epoch(policy, source, epoch_batches(idx, batch_size, gen if opt is not None else None), opt, sched,
                      on_batch)


def fit(policy: BCPolicy, source: DemoSource, train_idx: np.ndarray, val_idx: np.ndarray, epochs: int,
        batch_size: int = 128, lr: float = 1e-3, seed: int = 0, progress: bool = True, threads: int | None = 1,
        first_epoch: int = 1, label: str = "train-bc", dp: DataParallel | None = None) -> list[EpochStats]:
    """Train ``policy`` on the rows ``train_idx`` of ``source`` for ``epochs`` epochs; validate on ``val_idx``.

    Adam with the learning rate decaying from ``lr`` to zero on a cosine over all the gradient steps;
    the batch order comes from :func:`~trajarena.learn.data.epoch_batches` with a torch generator
    seeded by ``seed`` (torch's global RNG is untouched), so a run is reproducible and the same
    indices give the same batches from any source.

    Under ``torchrun`` pass ``dp`` (:class:`~trajarena.learn.distributed.DataParallel`): each rank trains
    on its shard of ``train_idx`` with ``ceil(batch_size / N)`` steps a batch, the network wrapped in
    DDP, and the losses are averaged over ranks (``None``: one process). Per-step weights (e.g.
    intervention data counted more) and filters go through the source's ``weight`` and the
    ``train_idx`` given.

    Returns:
        One :class:`EpochStats` per epoch, numbered from ``first_epoch``.
    """
    torch = _torch()
    dp = dp or DataParallel()
    rank_train, rank_val, rank_batch = dp.shard(train_idx), dp.shard(val_idx), dp.local_batch(batch_size)
    opt = torch.optim.Adam(policy.net.parameters(), lr=lr)
    total = epochs * max(1, math.ceil(len(rank_train) / rank_batch))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total) / total)))
    gen = torch.Generator().manual_seed(seed)
    history = []
    with _Bar(progress and dp.is_main, epochs * len(rank_train), label) as bar, torch_threads(threads):
        for epoch in range(first_epoch, first_epoch + epochs):
            te = time.perf_counter()
            tl, ta = dp.epoch(_pass, policy, source, rank_train, rank_batch, opt, gen, sched, bar.update)
            vl = va = None
            if len(val_idx):
                vl, va = dp.epoch(_pass, policy, source, rank_val, 4 * rank_batch, None, None, None, None)
            history.append(EpochStats(epoch, tl, ta, vl, va, time.perf_counter() - te))
            bar.epoch_done(history[-1])
    return history


def split_by_episode(source: DemoSource, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows of ``source``: whole episodes on each side, drawn from ``seed``."""
    return _split_by_episode(source.episode, val_fraction, np.random.default_rng(seed))


class _Bar:
    """A rich progress bar with loss and accuracy (silent when rich is missing or progress is off)."""

    def __init__(self, enabled: bool, total: int, label: str = "train-bc"):
        self.progress = None
        if enabled:
            try:
                from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            except ImportError:
                return
            self.progress = Progress(TextColumn(label), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f} samples (all epochs)"),
                                     TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn())
            self.task = self.progress.add_task("train", total=total, stats="")
        self.loss = self.acc = 0.0

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()

    def update(self, n: int, loss: float, acc: float) -> None:
        if self.progress is not None:
            self.loss, self.acc = 0.9 * self.loss + 0.1 * loss, 0.9 * self.acc + 0.1 * acc
            self.progress.update(self.task, advance=n, stats=f"loss {self.loss:.3f} acc {self.acc:.2f}")

    def epoch_done(self, e: EpochStats) -> None:
        if self.progress is not None:
            val = "" if e.val_loss is None else f", val loss {e.val_loss:.3f} acc {e.val_accuracy:.3f}"
            self.progress.console.print(f"epoch {e.epoch}: loss {e.train_loss:.3f} acc {e.train_accuracy:.3f}{val}")
