"""Behavioural cloning: the training loop, from a demonstration source to a saved policy.

The data comes from a :class:`~trajarena.learn.data.DemoSource` (:mod:`trajarena.learn.data`): the
steps of trajectory files replayed through the loader (:class:`trajarena.ImitationLearning`, which
re-applies the wrappers settings stored in the files), so the policy sees exactly what a live env made
with the same settings shows. By default the frames are streamed from a file of encoded rows
(``stream=True``), so memory does not grow with the dataset. :func:`train_bc` splits the steps by
episode, and :func:`fit` runs the epochs over batches from :func:`~trajarena.learn.data.epoch_batches`
(each step's loss weighted by the source's ``weight``; both live in :mod:`trajarena.learn.fitting`).
DAgger (:mod:`trajarena.learn.dagger`) calls :func:`fit` again on the aggregated data.
``loader_options`` choose the loader's view (``perspective``, ``mirror=True`` to learn from both sides
of a fighting game as P1); steps where a human took over from the agent (``info["is_intervention"]``,
recorded by ``trajarena play``) can be the only training data (``interventions="only"``) or weigh more
(``intervention_weight``): :mod:`trajarena.learn.selection` holds those choices. The policy side (:class:`BCPolicy`, :class:`ObsEncoder`,
:class:`PolicyAgent`, the network and the policy file format) lives in :mod:`trajarena.learn.policy`;
its public names are re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trajarena.errors import NotSupportedError, SettingsError
from trajarena.learn.data import Batch, DemoSource, Demonstrations, epoch_batches
from trajarena.learn.fitting import EpochStats, fit, split_by_episode
from trajarena.learn.loading import file_digest, load_demonstrations
from trajarena.learn.selection import select_steps, step_weights
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
    "epoch_batches",
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


def train_bc(data: str | Path | Sequence[str | Path] | DemoSource, out: str | Path = "policy.pt", epochs: int = 10,
             batch_size: int = 128, lr: float = 1e-3, val_fraction: float = 0.1, seed: int = 0,
             wrappers_settings: Any = None, max_steps: int | None = None, progress: bool = True,
             threads: int | None = 1, arch: str = "nature", stream: bool = True, cache_dir: str | Path | None = None,
             dagger_rounds: int = 0, dagger: Any = None, interventions: str = "all", intervention_weight: float = 1.0,
             loader_options: Mapping[str, Any] | None = None) -> TrainResult:
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
    source = load_demonstrations(data, wrappers_settings, max_steps, stream, cache_dir, progress=progress,
                                 loader_options=loader_options) if owned else data
    try:
        train_idx, val_idx = split_by_episode(source, val_fraction, seed)
        train_idx = select_steps(source.intervention, train_idx, interventions)
        val_idx = select_steps(source.intervention, val_idx, interventions)
        if not len(train_idx):
            raise SettingsError(f"no step left to train on ({interventions=}, {len(val_idx)} validation steps); "
                                "lower val_fraction or record more.")
        weights = step_weights(source.intervention, intervention_weight)
        if weights is not None:
            source.weight = weights  # the loss weighs each step by it (trajarena.learn.fitting)
        meta = {**source.meta, "trained": {"steps": len(train_idx), "val_steps": len(val_idx),
                                           "episodes": source.n_episodes, "epochs": epochs, "batch_size": batch_size,
                                           "lr": lr, "seed": seed, "interventions": interventions,
                                           "intervention_weight": intervention_weight}}
        policy = BCPolicy.create(source.observation_space, source.action_space, seed=seed, meta=meta, arch=arch)
        if len(train_idx) and source.vector.shape[1]:
            v = source.vector[train_idx]
            policy.net.v_mean.copy_(torch.from_numpy(v.mean(0)))
            policy.net.v_std.copy_(torch.from_numpy(np.maximum(v.std(0), 1e-3)))
        # data parallel under torchrun (trajarena.learn.distributed; one process: no-ops): fit() trains this
        # rank's share of the steps with DDP; dp.finish: rank 0 saves
        dp = DataParallel.from_env()
        if dagger_rounds and dp.enabled:
            raise NotSupportedError("DAgger rounds under torchrun are not supported (every rank would play and "
                                    "label episodes): run train_bc with dagger_rounds in one process.")
        history = fit(policy, source, train_idx, val_idx, epochs, batch_size, lr, seed, progress, threads, dp=dp)
        rounds: tuple = ()
        if dagger_rounds:
            from trajarena.learn.dagger import DaggerConfig, dagger as run_dagger

            cfg = DaggerConfig.from_any(dagger, rounds=dagger_rounds)
            source, history, rounds = run_dagger(policy, source, history, cfg, batch_size=batch_size, lr=lr,
                                                 val_fraction=val_fraction, seed=seed, progress=progress,
                                                 threads=threads, cache_dir=cache_dir)
            policy.meta["trained"]["dagger"] = [r.to_dict() for r in rounds]
        policy.meta["history"] = [dict(vars(e)) for e in history]
        path = dp.finish(lambda: policy.save(out), out)
        return TrainResult(path, tuple(history), len(train_idx), len(val_idx), source.n_episodes,
                           time.perf_counter() - t0, rounds)
    finally:
        if owned:
            source.close()


