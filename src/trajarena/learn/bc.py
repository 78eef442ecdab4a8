"""Behavioural cloning: the training loop, from a demonstration source to a saved policy.

The data comes from a :class:`~trajarena.learn.data.DemoSource` (:mod:`trajarena.learn.data`): the
steps of trajectory files replayed through the loader (:class:`trajarena.ImitationLearning`, which
re-applies the wrappers settings stored in the files), so the policy sees exactly what a live env made
with the same settings shows. By default the frames are streamed from a file of encoded rows
(``stream=True``), so memory does not grow with the dataset. :func:`train_bc` splits the steps by
episode, and :func:`fit` runs the epochs over batches from :func:`~trajarena.learn.data.epoch_batches`
(each step's loss weighted by the source's ``weight``). DAgger (:mod:`trajarena.learn.dagger`) calls
:func:`fit` again on the aggregated data. The policy side (:class:`BCPolicy`, :class:`ObsEncoder`,
:class:`PolicyAgent`, the network and the policy file format) lives in :mod:`trajarena.learn.policy`;
its public names are re-exported here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trajarena.errors import SettingsError
from trajarena.learn.data import (
    Batch,
    DemoSource,
    Demonstrations,
    epoch_batches,
    file_digest,
    load_demonstrations,
)
from trajarena.learn.policy import (
    ARCHS,
    POLICY_FORMAT,  # noqa: F401 - kept importable from trajarena.learn.bc
    POLICY_VERSION,  # noqa: F401
    BCPolicy,
    ObsEncoder,
    PolicyAgent,
    _torch,
    action_heads,
    load_policy,
    load_policy_agent,
    stack_obs,
    torch_threads,
)

__all__ = [
    "ARCHS",
    "BCPolicy",
    "Batch",
    "DemoSource",
    "Demonstrations",
    "EpochStats",
    "ObsEncoder",
    "PolicyAgent",
    "TrainResult",
    "action_heads",
    "file_digest",
    "fit",
    "load_demonstrations",
    "load_policy",
    "load_policy_agent",
    "split_by_episode",
    "stack_obs",
    "torch_threads",
    "train_bc",
]


@dataclass(frozen=True)
class EpochStats:
    """Loss and accuracy (all action components right) of one epoch, on the training and validation steps."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_bc` did: where the policy is, the learning curve and the data volume.

    >>> r = TrainResult(Path("p.pt"), (EpochStats(1, 0.5, 0.8, 0.6, 0.7, 1.0),), 90, 10, 4, 1.0)
    >>> r.final.val_accuracy
    0.7
    """

    path: Path
    history: tuple[EpochStats, ...]
    train_steps: int
    val_steps: int
    episodes: int
    seconds: float
    dagger: tuple = ()  # one trajarena.learn.dagger.DaggerRound per DAgger round

    @property
    def final(self) -> EpochStats:
        return self.history[-1]

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "train_steps": self.train_steps, "val_steps": self.val_steps,
                "episodes": self.episodes, "seconds": self.seconds,
                "history": [dict(vars(e)) for e in self.history], "dagger": [r.to_dict() for r in self.dagger]}


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


def fit(policy: BCPolicy, source: DemoSource, train_idx: np.ndarray, val_idx: np.ndarray, epochs: int,
        batch_size: int = 128, lr: float = 1e-3, seed: int = 0, progress: bool = True, threads: int | None = 1,
        first_epoch: int = 1, label: str = "train-bc") -> list[EpochStats]:
    """Train ``policy`` on the rows ``train_idx`` of ``source`` for ``epochs`` epochs; validate on ``val_idx``.

    Adam with the learning rate decaying from ``lr`` to zero on a cosine over all the gradient steps;
    the batch order comes from :func:`~trajarena.learn.data.epoch_batches` with a torch generator
    seeded by ``seed`` (torch's global RNG is untouched), so a run is reproducible and the same
    indices give the same batches from any source.

    Returns:
        One :class:`EpochStats` per epoch, numbered from ``first_epoch``.
    """
    torch = _torch()
    opt = torch.optim.Adam(policy.net.parameters(), lr=lr)
    total = epochs * max(1, math.ceil(len(train_idx) / batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total) / total)))
    gen = torch.Generator().manual_seed(seed)
    history = []
    with _Bar(progress, epochs * len(train_idx), label) as bar, torch_threads(threads):
        for epoch in range(first_epoch, first_epoch + epochs):
            te = time.perf_counter()
            tl, ta = _run_epoch(policy, source, epoch_batches(train_idx, batch_size, gen), opt, sched, bar.update)
            vl = va = None
            if len(val_idx):
                vl, va = _run_epoch(policy, source, epoch_batches(val_idx, 4 * batch_size))
            history.append(EpochStats(epoch, tl, ta, vl, va, time.perf_counter() - te))
            bar.epoch_done(history[-1])
    return history


def split_by_episode(source: DemoSource, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows of ``source``: whole episodes on each side, drawn from ``seed``."""
    return _split_by_episode(source.episode, val_fraction, np.random.default_rng(seed))


def train_bc(data: str | Path | Sequence[str | Path] | DemoSource, out: str | Path = "policy.pt", epochs: int = 10,
             batch_size: int = 128, lr: float = 1e-3, val_fraction: float = 0.1, seed: int = 0,
             wrappers_settings: Any = None, max_steps: int | None = None, progress: bool = True,
             threads: int | None = 1, arch: str = "nature", stream: bool = True, cache_dir: str | Path | None = None,
             dagger_rounds: int = 0, dagger: Any = None) -> TrainResult:
    """Train a behavioural-cloning policy from trajectory files and save it to ``out``.

    Args:
        data: a folder of trajectory files, a file, a list of files, or a loaded :class:`~trajarena.learn.data.DemoSource`.
        out: where the policy goes (``.pt``).
        epochs: passes over the training steps.
        batch_size: steps per gradient step.
        lr: Adam learning rate.
        val_fraction: fraction of *episodes* held out for validation.
        seed: seeds the initialisation, the split and the batch order (torch's global RNG is untouched).
        wrappers_settings: None uses the wrappers settings stored in the files.
        max_steps: use at most this many steps.
        progress: show a progress bar (rich) with loss and accuracy.
        threads: torch threads while training (1 by default: robust on busy machines; None keeps torch's).
        arch: the CNN layout for frames, a key of :data:`ARCHS`.
        stream: read frames from a file of encoded rows per batch instead of holding them in memory.
        cache_dir: where that file goes (default: a temporary folder, removed at the end).
        dagger_rounds: DAgger rounds after plain BC (:func:`trajarena.learn.dagger.dagger`): the policy
            plays, the expert labels the states it visits, and training goes on with them aggregated.
        dagger: a :class:`trajarena.learn.dagger.DaggerConfig` (or dict) for those rounds.

    Returns:
        A :class:`TrainResult` with the learning curve (:class:`EpochStats` per epoch) and, after DAgger,
        one :class:`~trajarena.learn.dagger.DaggerRound` per round.
    """
    torch = _torch()
    if epochs < 1 or batch_size < 1 or not 0 <= val_fraction < 1:
        raise SettingsError(f"train_bc needs epochs >= 1, batch_size >= 1 and 0 <= val_fraction < 1, "
                            f"got epochs={epochs}, batch_size={batch_size}, val_fraction={val_fraction}.")
    if isinstance(dagger_rounds, bool) or not isinstance(dagger_rounds, int) or dagger_rounds < 0:
        raise SettingsError(f"dagger_rounds must be an integer >= 0, got {dagger_rounds!r}.")
    t0 = time.perf_counter()
    owned = not isinstance(data, DemoSource)
    source = load_demonstrations(data, wrappers_settings, max_steps, stream, cache_dir) if owned else data
    try:
        train_idx, val_idx = split_by_episode(source, val_fraction, seed)
        meta = {**source.meta, "trained": {"steps": len(train_idx), "val_steps": len(val_idx),
                                           "episodes": source.n_episodes, "epochs": epochs, "batch_size": batch_size,
                                           "lr": lr, "seed": seed}}
        policy = BCPolicy.create(source.observation_space, source.action_space, seed=seed, meta=meta, arch=arch)
        if len(train_idx) and source.vector.shape[1]:
            v = source.vector[train_idx]
            policy.net.v_mean.copy_(torch.from_numpy(v.mean(0)))
            policy.net.v_std.copy_(torch.from_numpy(np.maximum(v.std(0), 1e-3)))
        history = fit(policy, source, train_idx, val_idx, epochs, batch_size, lr, seed, progress, threads)
        rounds: tuple = ()
        if dagger_rounds:
            from trajarena.learn.dagger import DaggerConfig, dagger as run_dagger

            cfg = DaggerConfig.from_any(dagger, rounds=dagger_rounds)
            source, history, rounds = run_dagger(policy, source, history, cfg, batch_size=batch_size, lr=lr,
                                                 val_fraction=val_fraction, seed=seed, progress=progress,
                                                 threads=threads, cache_dir=cache_dir)
            policy.meta["trained"]["dagger"] = [r.to_dict() for r in rounds]
        policy.meta["history"] = [dict(vars(e)) for e in history]
        path = policy.save(out)
        return TrainResult(path, tuple(history), len(train_idx), len(val_idx), source.n_episodes,
                           time.perf_counter() - t0, rounds)
    finally:
        if owned:
            source.close()


class _Bar:
    """A rich progress bar with loss and accuracy (silent when rich is missing or progress is off)."""

    def __init__(self, enabled: bool, total: int, label: str = "train-bc"):
        self.progress = None
        if enabled:
            try:
                from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            except ImportError:
                return
            self.progress = Progress(TextColumn(label), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
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
