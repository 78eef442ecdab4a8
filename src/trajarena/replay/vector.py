"""Parallel replay: vector envs of ranks (Gymnasium and Stable-Baselines3) and a stop callback.

Sub-env ``i`` of ``num_envs`` is ``ImitationLearning(files, total_cpus=num_envs, rank=i, ...)``, so
the sub-envs replay disjoint parts of the data that together hold all of it. A sub-env whose part
is used up keeps answering with blank observations and ``terminated=True`` (see
:mod:`trajarena.replay.imitation`) while the others go on; :class:`StopTrainingOnExhausted` stops an SB3
run when every sub-env (or, with ``mode="any"``, the first one) is exhausted. DIAMBRA's callback
returned the wrong boolean; here ``_on_step`` returns True to continue, as SB3 expects.

Stable-Baselines3 is optional (``pip install 'trajarena[sb3]'``); it is imported only by the SB3
helpers.

>>> import tempfile, gymnasium as gym
>>> from trajarena.recording.recorder import TrajectoryRecorder
>>> folder = tempfile.mkdtemp()
>>> env = TrajectoryRecorder(gym.make("CartPole-v1"), folder)
>>> for seed in range(2):
...     _ = env.reset(seed=seed)
...     _ = env.step(0)
>>> env.close()
>>> venv = make_vector_env(folder, num_envs=2)
>>> obs, info = venv.reset()
>>> obs.shape, venv.get_attr("exhausted")
((2, 4), (False, False))
>>> venv.close()
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from trajarena.errors import SettingsError, require
from trajarena.replay.imitation import ImitationLearning

__all__ = ["StopTrainingOnExhausted", "all_exhausted", "make_sb3_vec_env", "make_vector_env", "rank_env_fns"]


def rank_env_fns(traj_files_list: Any, num_envs: int, **options: Any) -> list[Callable[[], ImitationLearning]]:
    """``num_envs`` picklable factories; factory ``i`` builds rank ``i`` of ``num_envs``.

    ``options`` are :class:`~trajarena.replay.imitation.ImitationLearning` keyword arguments; a ``seed``
    is offset by the rank so that shuffled ranks do not share an order.
    """
    if not isinstance(num_envs, int) or num_envs < 1:
        raise SettingsError(f"num_envs must be an integer >= 1, got {num_envs!r}.")
    for bad in ("total_cpus", "rank"):
        if bad in options:
            raise SettingsError(f"{bad} is set by the vector env (one rank per sub-env); remove it from the options.")
    files = [os.fspath(f) for f in traj_files_list] if isinstance(traj_files_list, list | tuple) else traj_files_list
    seed = options.pop("seed", None)
    return [functools.partial(ImitationLearning, files, num_envs, rank,
                              seed=None if seed is None else seed + rank, **options) for rank in range(num_envs)]


def make_vector_env(traj_files_list: Any, num_envs: int = 2, *, vectorization: str = "sync",
                    **options: Any) -> gym.vector.VectorEnv:
    """A Gymnasium vector env whose sub-envs are the ranks of the data.

    Args:
        traj_files_list: trajectory files and/or folders.
        num_envs: sub-envs (= ranks).
        vectorization: ``"sync"`` (:class:`~gymnasium.vector.SyncVectorEnv`) or ``"async"``
            (:class:`~gymnasium.vector.AsyncVectorEnv`, one process per rank).
        **options: :class:`~trajarena.replay.imitation.ImitationLearning` keyword arguments.
    """
    fns = rank_env_fns(traj_files_list, num_envs, **options)
    if vectorization == "sync":
        return gym.vector.SyncVectorEnv(fns)
    if vectorization == "async":
        return gym.vector.AsyncVectorEnv(fns)
    raise SettingsError(f"vectorization must be 'sync' or 'async', got {vectorization!r}.")


def make_sb3_vec_env(traj_files_list: Any, num_envs: int = 2, *, subproc: bool = False,
                     start_method: str | None = None, monitor: bool = True, **options: Any) -> Any:
    """A Stable-Baselines3 ``DummyVecEnv`` (or ``SubprocVecEnv``) whose sub-envs are the ranks.

    Args:
        traj_files_list: trajectory files and/or folders.
        num_envs: sub-envs (= ranks).
        subproc: one process per rank (``SubprocVecEnv``) instead of ``DummyVecEnv``.
        start_method: multiprocessing start method for ``SubprocVecEnv``.
        monitor: wrap each sub-env in SB3's ``Monitor`` (episode returns in the logs).
        **options: :class:`~trajarena.replay.imitation.ImitationLearning` keyword arguments.
    """
    vec_env = require("stable_baselines3.common.vec_env", "sb3", "make_sb3_vec_env")
    fns = rank_env_fns(traj_files_list, num_envs, **options)
    if monitor:
        fns = [functools.partial(_monitored, fn) for fn in fns]
    if subproc:
        return vec_env.SubprocVecEnv(fns, start_method=start_method)
    return vec_env.DummyVecEnv(fns)


def _monitored(fn: Callable[[], gym.Env]) -> gym.Env:
    from stable_baselines3.common.monitor import Monitor

    return Monitor(fn())


def all_exhausted(vec_env: Any, mode: str = "all") -> bool:
    """Whether the sub-envs of a Gymnasium or SB3 vector env are exhausted (``mode`` ``"all"``/``"any"``)."""
    flags = [bool(f) for f in vec_env.get_attr("exhausted")]
    if mode == "all":
        return all(flags)
    if mode == "any":
        return any(flags)
    raise SettingsError(f"mode must be 'all' or 'any', got {mode!r}.")


@functools.cache
def _callback_class() -> type:
    callbacks = require("stable_baselines3.common.callbacks", "sb3", "StopTrainingOnExhausted")

    class StopTrainingOnExhausted(callbacks.BaseCallback):
        """Stop SB3 training when the replayed data is exhausted.

        Args:
            mode: ``"all"`` stops when every sub-env is exhausted, ``"any"`` when one is.
            verbose: 1 prints a line when it stops training.

        >>> StopTrainingOnExhausted(mode="all").mode
        'all'
        """

        def __init__(self, mode: str = "all", verbose: int = 0) -> None:
            super().__init__(verbose)
            if mode not in ("all", "any"):
                raise SettingsError(f"mode must be 'all' or 'any', got {mode!r}.")
            self.mode = mode
            self.stopped_at: int | None = None

        def _on_step(self) -> bool:
            if all_exhausted(self.training_env, self.mode):
                self.stopped_at = self.num_timesteps
                if self.verbose:
                    print(f"StopTrainingOnExhausted: data exhausted ({self.mode}) at {self.num_timesteps} steps")
                return False  # False stops training
            return True

    StopTrainingOnExhausted.__module__ = __name__
    return StopTrainingOnExhausted


def __getattr__(name: str) -> Any:
    if name == "StopTrainingOnExhausted":
        return _callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
