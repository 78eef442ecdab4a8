"""DAgger: the learner plays, the expert labels the states it visits, training goes on with them aggregated.

Plain behavioural cloning only sees the states the expert visits; once the clone makes a mistake it
drifts into states nobody showed it how to handle (compounding errors). Each DAgger round
(:func:`dagger`, or ``train_bc(..., dagger_rounds=N)``, or ``trajarena dagger``):

1. the current policy plays ``episodes`` episodes against the CPU, in ``workers`` recording processes
   (:func:`trajarena.learn.rollout.record` with ``label_with="expert"``); the files are ordinary
   trajectory files whose info column ``expert_action`` holds, next to each action played, what the
   expert would have played in that state (:class:`~trajarena.learn.agents.ExpertLabels`);
2. those steps are encoded with their labels as targets (:func:`~trajarena.learn.data.load_demonstrations`)
   and appended to the data (:func:`~trajarena.learn.data.concat_sources`);
3. training goes on for ``epochs`` epochs over everything (validation stays on the expert's held-out
   episodes, so the curve is comparable from round to round).

Each round reports the learner's agreement with the expert on the states it visited, and its win rate
and return in those episodes: the learning curve per round (:class:`DaggerRound`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from trajarena.errors import SettingsError
from trajarena.learn.data import DemoSource, Demonstrations, concat_sources
from trajarena.learn.fitting import fit, split_by_episode
from trajarena.learn.loading import load_demonstrations

__all__ = ["DaggerConfig", "DaggerRound", "dagger"]


@dataclass(frozen=True)
class DaggerConfig:
    """How DAgger rounds run.

    Args:
        rounds: learner-plays / expert-labels / train-on rounds.
        episodes: episodes the learner plays per round.
        epochs: training epochs per round, over all the data gathered so far.
        workers: recording processes for the learner's episodes.
        expert: the agent that labels the states (``"expert"``).
        seed: the first seed of the learner's episodes (round ``r`` uses ``seed + r * episodes + i``);
            keep it away from the demonstrations' and the evaluation's seeds.
        out: folder for the labelled files (``round-<r>/`` each); None: a temporary folder, removed after.
        lr: learning rate of each round's training (None: ``train_bc``'s).

    >>> DaggerConfig.from_any({"episodes": 10}, rounds=3)
    DaggerConfig(rounds=3, episodes=10, epochs=3, workers=1, expert='expert', seed=1000000, out=None, lr=None)
    """

    rounds: int = 2
    episodes: int = 20
    epochs: int = 3
    workers: int = 1
    expert: str = "expert"
    seed: int = 1_000_000
    out: str | None = None
    lr: float | None = None

    def __post_init__(self) -> None:
        for name in ("rounds", "episodes", "epochs", "workers", "seed"):
            value = getattr(self, name)
            low = 0 if name == "seed" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SettingsError(f"DaggerConfig.{name} must be an integer >= {low}, got {value!r}.")
        if self.lr is not None and not (isinstance(self.lr, int | float) and self.lr > 0):
            raise SettingsError(f"DaggerConfig.lr must be a positive number or None, got {self.lr!r}.")

    @classmethod
    def from_any(cls, value: DaggerConfig | Mapping[str, Any] | None, **overrides: Any) -> DaggerConfig:
        """A config from a config, a dict of its fields or None, with ``overrides`` applied.

        Raises:
            SettingsError: an unknown field (the message lists the valid ones).
        """
        base = value if isinstance(value, DaggerConfig) else None
        items = {} if base is not None or value is None else dict(value)
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(items) - valid)
        if unknown:
            raise SettingsError(f"unknown DAgger setting(s) {unknown}; valid ones: {sorted(valid)}.")
        return replace(base or cls(**items), **overrides)


@dataclass(frozen=True)
class DaggerRound:
    """One round: what the learner did in its episodes and how training went on.

    ``agreement`` is the fraction of the learner's steps where it played what the expert would have.
    """

    round: int
    episodes: int
    steps: int
    agreement: float
    win_rate: float | None
    mean_return: float
    val_accuracy: float | None
    data_steps: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _play_settings(meta: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The env id, env settings and wrappers settings the policy plays with (as at evaluation)."""
    from trajarena.learn.evaluate import versus_cpu_settings

    env_id = meta.get("env_id") or "duel"
    settings = dict(meta.get("env_settings") or {})
    if env_id == "duel":
        settings = versus_cpu_settings(settings)
        settings.pop("seed", None)
    return env_id, settings, dict(meta.get("wrappers_settings") or {})


def dagger(policy: Any, source: DemoSource, history: list, cfg: DaggerConfig, *, batch_size: int = 128,
           lr: float = 1e-3, val_fraction: float = 0.1, seed: int = 0, progress: bool = True,
           threads: int | None = 1, cache_dir: str | Path | None = None) -> tuple[DemoSource, list, tuple[DaggerRound, ...]]:
    """Run ``cfg.rounds`` DAgger rounds on a trained ``policy`` (a :class:`~trajarena.learn.bc.BCPolicy`).

    Args:
        policy: the policy after plain BC; trained further in place.
        source: the demonstrations it was trained on (their validation episodes stay the validation set).
        history: its learning curve so far; the rounds' epochs are appended.
        cfg: the rounds' settings.
        batch_size, lr, val_fraction, seed, threads: as for :func:`~trajarena.learn.bc.train_bc`.
        progress: progress bars for playing and training.
        cache_dir: where streamed images go (as for ``train_bc``).

    Returns:
        The aggregated source (close it when done), the learning curve, and one :class:`DaggerRound` per round.
    """
    from trajarena.learn.rollout import record

    env_id, settings, wrappers = _play_settings(policy.meta)
    train_idx, val_idx = split_by_episode(source, val_fraction, seed)
    history = list(history)
    rounds: list[DaggerRound] = []
    stream = not isinstance(source, Demonstrations)
    with tempfile.TemporaryDirectory(prefix="trajarena-dagger-") as tmp:
        root = Path(cfg.out) if cfg.out is not None else Path(tmp)
        for r in range(1, cfg.rounds + 1):
            t0 = time.perf_counter()
            learner = policy.save(Path(tmp) / f"learner-{r}.pt")
            folder = root / f"round-{r}"
            played = record(env_id, str(learner), cfg.episodes, cfg.workers, folder, settings=settings,
                            wrappers_settings=wrappers, username="dagger", seed=cfg.seed + (r - 1) * cfg.episodes,
                            progress=progress, label_with=cfg.expert)
            offset = int(source.episode.max()) + 1 if len(source) else 0
            labelled = load_demonstrations(played.files, stream=stream, cache_dir=cache_dir, episode_offset=offset,
                                           progress=progress)
            agreement = float(labelled.meta.get("labelled", {}).get("agreement", np.nan))
            start = len(source)
            source = concat_sources(source, labelled)
            train_idx = np.concatenate([train_idx, np.arange(start, len(source))])
            more = fit(policy, source, train_idx, val_idx, cfg.epochs, batch_size, cfg.lr or lr, seed + r, progress,
                       threads, first_epoch=len(history) + 1, label=f"dagger {r}/{cfg.rounds}")
            history.extend(more)
            rounds.append(DaggerRound(r, played.episodes, played.steps, agreement, played.win_rate, played.mean_return,
                                      more[-1].val_accuracy, len(source), time.perf_counter() - t0))
            if progress:
                wr = "" if played.win_rate is None else f", win rate {played.win_rate:.1%}"
                print(f"dagger round {r}: agreement with the expert {agreement:.1%} on {played.steps:,} learner "
                      f"steps{wr}; {len(source):,} steps aggregated", flush=True)
    return source, history, tuple(rounds)
