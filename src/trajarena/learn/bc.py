"""Behavioural cloning: training a policy from trajectory files.

The data comes through the loader (:class:`trajarena.ImitationLearning`), which re-applies the wrappers
settings stored in the files, so the policy sees exactly what a live env made with the same settings
shows; ``loader_options`` choose the view (``perspective``, ``mirror=True`` to learn from both sides of
a fighting game as P1). Steps where a human took over from the agent (``info["is_intervention"]``,
recorded by ``trajarena play``) can be the only training data (``interventions="only"``) or weigh
more (``intervention_weight``); :mod:`trajarena.learn.selection` holds those choices. The policy side
(:class:`BCPolicy`, :class:`ObsEncoder`, :class:`PolicyAgent`, the network and the policy file format) lives in :mod:`trajarena.learn.policy`; its public names are re-exported here.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.errors import SettingsError
from trajarena.learn.distributed import DataParallel
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
from trajarena.learn.selection import loader_view, select_steps, step_weights

__all__ = [
    "ARCHS",
    "BCPolicy",
    "Demonstrations",
    "EpochStats",
    "ObsEncoder",
    "PolicyAgent",
    "TrainResult",
    "action_heads",
    "file_digest",
    "load_demonstrations",
    "load_policy",
    "load_policy_agent",
    "stack_obs",
    "torch_threads",
    "train_bc",
]


@dataclass(frozen=True)
class Demonstrations:
    """Encoded demonstrations held in memory: what :func:`train_bc` learns from.

    Attributes:
        image: frames (N, H, W, C) uint8, or None for observations without an image.
        vector: the other observation parts, encoded (N, D) float32.
        actions: the recorded actions as head indices (N, n_heads) int64.
        episode: the episode number of each step (N,), for splitting by episode.
        observation_space, action_space: the (wrapped) spaces the policy will see and act in.
        meta: env id, env settings, wrappers settings and the source files.
        intervention: per step, True where a human had taken over from the agent (None: not known).
    """

    image: np.ndarray | None
    vector: np.ndarray
    actions: np.ndarray
    episode: np.ndarray
    observation_space: spaces.Space
    action_space: spaces.Space
    meta: dict[str, Any]
    intervention: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def n_episodes(self) -> int:
        return int(len(np.unique(self.episode)))

    def __repr__(self) -> str:
        img = None if self.image is None else self.image.shape
        return f"Demonstrations(steps={len(self)}, episodes={self.n_episodes}, image={img}, vector={self.vector.shape})"

    @classmethod
    def from_steps(cls, observations: Sequence[Any], actions: Sequence[Any], episode: Sequence[int],
                   observation_space: spaces.Space, action_space: spaces.Space,
                   meta: Mapping[str, Any] | None = None) -> Demonstrations:
        """Encode lists of (unbatched) observations and env-format actions."""
        encoder = ObsEncoder.from_space(observation_space)
        _, start = action_heads(action_space)
        images, vectors = [], []
        for i in range(0, len(observations), 4096):  # encode in blocks to bound memory
            img, vec = encoder.encode(stack_obs(observations[i:i + 4096]))
            images.append(img)
            vectors.append(vec)
        acts = np.asarray(actions, np.int64).reshape(len(actions), -1) - np.asarray(start, np.int64)
        return cls(None if encoder.image_path is None else np.concatenate(images), np.concatenate(vectors), acts,
                   np.asarray(episode, np.int64), observation_space, action_space, dict(meta or {}))


def _trajectory_files(data: str | Path | Sequence[str | Path]) -> list[Path]:
    from trajarena.replay.dataset import list_trajectory_files

    return [Path(f) for f in list_trajectory_files(data)]


def file_digest(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Name, size and sha256 of each file (what a policy was trained on)."""
    out = []
    for p in paths:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        out.append({"name": p.name, "bytes": p.stat().st_size, "sha256": h.hexdigest()})
    return out


def load_demonstrations(data: str | Path | Sequence[str | Path], wrappers_settings: Any = None,
                        max_steps: int | None = None, loader_options: Mapping[str, Any] | None = None) -> Demonstrations:
    """Replay trajectory files through :class:`trajarena.ImitationLearning` and encode every step.

    Args:
        data: a folder of trajectory files, one file, or a list of files.
        wrappers_settings: None re-applies the wrappers settings stored in the files (the default).
        max_steps: stop after this many steps (None: all of them).
        loader_options: more keyword arguments of the loader, e.g. ``{"perspective": "both", "mirror": True}``.
    """
    from trajarena.replay.imitation import ImitationLearning

    files = _trajectory_files(data)
    kwargs: dict[str, Any] = {**loader_view(loader_options), "traj_files_list": [str(f) for f in files],
                              "total_cpus": 1, "rank": 0}
    if wrappers_settings is not None:
        kwargs["wrappers_settings"] = wrappers_settings
    env = ImitationLearning(**kwargs)
    try:
        encoder = ObsEncoder.from_space(env.observation_space)
        _, start = action_heads(env.action_space)
        images: list[np.ndarray] = []
        vectors: list[np.ndarray] = []
        pending: list[Any] = []
        actions: list[np.ndarray] = []
        episode: list[int] = []
        intervention: list[bool] = []

        def flush() -> None:  # encode in blocks: memory holds encoded arrays, not observation dicts
            if pending:
                img, vec = encoder.encode(stack_obs(pending))
                images.append(img)
                vectors.append(vec)
                pending.clear()

        full = False
        keys: list[str] = []
        obs, info = env.reset()
        ep = 0
        keys.append(_episode_key(env, info))
        while not env.exhausted and not full:
            done = False
            while not done and not full:
                obs_next, _, terminated, truncated, info = env.step(env.action_space.sample())
                pending.append(obs)
                actions.append(np.asarray(info["action"]))
                intervention.append(bool(info.get("is_intervention", False)))
                episode.append(ep)
                if len(pending) >= 2048:
                    flush()
                obs, done = obs_next, terminated or truncated
                full = max_steps is not None and len(actions) >= max_steps
            if not full:
                obs, info = env.reset()
                if not env.exhausted:
                    ep += 1
                    keys.append(_episode_key(env, info))
        flush()
        if not actions:
            raise FileNotFoundError(f"the trajectory files {[str(f) for f in files]} hold no steps to learn from.")
        meta = _loader_meta(env)
        meta["files"] = file_digest(files)
        meta["loader_options"] = loader_view(loader_options)
        meta["mirror"] = bool(meta["loader_options"].get("mirror", False))
        acts = np.asarray(actions, np.int64).reshape(len(actions), -1) - np.asarray(start, np.int64)
        return Demonstrations(None if encoder.image_path is None else np.concatenate(images), np.concatenate(vectors),
                              acts, _episode_ids(keys, episode), env.observation_space, env.action_space, meta,
                              np.asarray(intervention, bool))
    finally:
        env.close()


def _episode_ids(keys: list[str], episode: list[int]) -> np.ndarray:
    """Per-step episode ids numbered in sorted key order (the same ids for the same data in any file order)."""
    uniq, inverse = np.unique(np.asarray(keys), return_inverse=True)
    return inverse.astype(np.int64)[np.asarray(episode, np.int64)]


def _loader_meta(env: Any) -> dict[str, Any]:
    """Env id, env settings and the wrappers settings the loader applied."""
    first = env.file_metadata[0] if env.file_metadata else {}
    return {"env_id": env.env_id, "env_settings": env.env_settings, "wrappers_settings": env.wrappers_settings.to_dict(),
            "username": first.get("username"), "format_version": first.get("format_version")}


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

    @property
    def final(self) -> EpochStats:
        return self.history[-1]

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "train_steps": self.train_steps, "val_steps": self.val_steps,
                "episodes": self.episodes, "seconds": self.seconds,
                "history": [dict(vars(e)) for e in self.history]}


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


def _episode_key(env: Any, info: Mapping[str, Any]) -> str:
    """A key that names a replayed episode whatever the file order: its recorded seed, else file + index.

    Both sides of a two-player episode share the key, so they land on the same side of the split.
    """
    data = env.replay.dataset
    idx = info.get("episode")
    if data is None or idx is None:
        return f"order:{idx}"
    e = data.episodes[int(idx)]
    seed = (e.meta or {}).get("seed")
    return f"seed:{seed:012d}" if isinstance(seed, int) else f"file:{Path(e.file).name}:{e.episode:09d}"


def _run_epoch(policy: BCPolicy, demos: Demonstrations, idx: np.ndarray, batch_size: int, opt: Any,
               gen: Any, on_batch: Any = None, sched: Any = None, weights: np.ndarray | None = None) -> tuple[float, float]:
    torch = _torch()
    F = torch.nn.functional
    train = opt is not None
    policy.net.train(train)
    if train:
        idx = idx[torch.randperm(len(idx), generator=gen).numpy()]
    total_loss = total_right = 0.0
    with torch.set_grad_enabled(train):
        for i in range(0, len(idx), batch_size):
            b = np.sort(idx[i:i + batch_size])
            image = None if demos.image is None else torch.from_numpy(demos.image[b])
            outs = policy.net(image, torch.from_numpy(demos.vector[b]))
            target = torch.from_numpy(demos.actions[b])
            if weights is None:
                loss = sum(F.cross_entropy(o, target[:, j]) for j, o in enumerate(outs))
            else:  # intervention steps weigh more: a weighted mean of the per-step losses
                w = torch.from_numpy(weights[b])
                loss = sum((F.cross_entropy(o, target[:, j], reduction="none") * w).sum()
                           for j, o in enumerate(outs)) / w.sum()
            if train:
                opt.zero_grad()
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
            right = torch.stack([o.argmax(1) == target[:, j] for j, o in enumerate(outs)]).all(0)
            total_loss += loss.item() * len(b)
            total_right += float(right.sum())
            if on_batch is not None:
                on_batch(len(b), loss.item(), right.float().mean().item())
    policy.net.eval()
    n = max(len(idx), 1)
    return total_loss / n, total_right / n


def train_bc(data: str | Path | Sequence[str | Path] | Demonstrations, out: str | Path = "policy.pt", epochs: int = 10,
             batch_size: int = 128, lr: float = 1e-3, val_fraction: float = 0.1, seed: int = 0,
             wrappers_settings: Any = None, max_steps: int | None = None, progress: bool = True,
             threads: int | None = 1, arch: str = "nature", interventions: str = "all",
             intervention_weight: float = 1.0, loader_options: Mapping[str, Any] | None = None) -> TrainResult:
    """Train a behavioural-cloning policy from trajectory files and save it to ``out``.

    Args:
        data: a folder of trajectory files, a file, a list of files, or already loaded :class:`Demonstrations`.
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
        interventions: ``"all"`` steps, or ``"only"`` those where a human took over from the agent
            (``info["is_intervention"]``, training and validation alike).
        intervention_weight: the loss weight of intervention steps (1: no weighting).
        loader_options: the loader's view of the data, e.g. ``{"perspective": "both", "mirror": True}``
            (see :class:`trajarena.ImitationLearning`); recorded in the policy file.

    The learning rate decays from ``lr`` to zero on a cosine over all the gradient steps. Under
    ``torchrun --nproc_per_node N`` each rank trains on its 1/N of the steps, DDP averages the
    gradients, every transition is used once per epoch, and rank 0 saves
    (:mod:`trajarena.learn.distributed`).

    Returns:
        A :class:`TrainResult` with the learning curve (:class:`EpochStats` per epoch).
    """
    torch = _torch()
    if epochs < 1 or batch_size < 1 or not 0 <= val_fraction < 1:
        raise SettingsError(f"train_bc needs epochs >= 1, batch_size >= 1 and 0 <= val_fraction < 1, "
                            f"got epochs={epochs}, batch_size={batch_size}, val_fraction={val_fraction}.")
    t0 = time.perf_counter()
    demos = data if isinstance(data, Demonstrations) else load_demonstrations(data, wrappers_settings, max_steps,
                                                                              loader_options)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = _split_by_episode(demos.episode, val_fraction, rng)
    train_idx = select_steps(demos.intervention, train_idx, interventions)
    val_idx = select_steps(demos.intervention, val_idx, interventions)
    if not len(train_idx):
        raise SettingsError(f"no step left to train on ({interventions=}, {len(val_idx)} validation steps); "
                            "lower val_fraction or record more.")
    weights = step_weights(demos.intervention, intervention_weight)
    meta = {**demos.meta, "trained": {"steps": len(train_idx), "val_steps": len(val_idx), "episodes": demos.n_episodes,
                                      "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
                                      "interventions": interventions, "intervention_weight": intervention_weight}}
    policy = BCPolicy.create(demos.observation_space, demos.action_space, seed=seed, meta=meta, arch=arch)
    if len(train_idx) and demos.vector.shape[1]:
        v = demos.vector[train_idx]
        policy.net.v_mean.copy_(torch.from_numpy(v.mean(0)))
        policy.net.v_std.copy_(torch.from_numpy(np.maximum(v.std(0), 1e-3)))
    opt = torch.optim.Adam(policy.net.parameters(), lr=lr)
    # data parallel under torchrun (trajarena.learn.distributed; one process: no-ops): this rank's share
    # of the steps and of each batch; dp.epoch (DDP, averaged results) and dp.finish (rank 0 saves) below
    dp = DataParallel.from_env()
    rank_train, rank_val, rank_batch = dp.shard(train_idx), dp.shard(val_idx), dp.local_batch(batch_size)
    total_batches = epochs * max(1, math.ceil(len(rank_train) / rank_batch))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total_batches) / total_batches)))
    gen = torch.Generator().manual_seed(seed)
    history = []
    bar = _Bar(progress and dp.is_main, epochs * len(rank_train))
    with bar, torch_threads(threads):
        for epoch in range(1, epochs + 1):
            te = time.perf_counter()
            tl, ta = dp.epoch(_run_epoch, policy, demos, rank_train, rank_batch, opt, gen, bar.update, sched, weights)
            vl = va = None
            if len(val_idx):
                vl, va = dp.epoch(_run_epoch, policy, demos, rank_val, 4 * rank_batch, None, gen)
            history.append(EpochStats(epoch, tl, ta, vl, va, time.perf_counter() - te))
            bar.epoch_done(history[-1])
    policy.meta["history"] = [dict(vars(e)) for e in history]
    path = dp.finish(lambda: policy.save(out), out)
    return TrainResult(path, tuple(history), len(train_idx), len(val_idx), demos.n_episodes, time.perf_counter() - t0)


class _Bar:
    """A rich progress bar with loss and accuracy (silent when rich is missing or progress is off)."""

    def __init__(self, enabled: bool, total: int):
        self.progress = None
        if enabled:
            try:
                from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            except ImportError:
                return
            self.progress = Progress(TextColumn("train-bc"), BarColumn(),
                                     TextColumn("{task.completed:,.0f}/{task.total:,.0f} samples (all epochs)"),
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
