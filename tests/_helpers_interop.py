"""Recordings shared by the interop tests (Parquet, Minari, Ray, video): made once per test module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import trajarena as arena
from trajarena.recording.recorder import TrajectoryRecorder

#: Small, fast duel settings: tiny frames, 60 frames per step (an episode is ~30-80 steps).
DUEL_FAST = {"step_ratio": 60, "frame_shape": (24, 32, 3), "difficulty": 3}


def record_duel_two_workers(folder: Path, episodes: int = 4, **settings: Any) -> Path:
    """``trajarena record``'s parallel recorder: 2 worker processes, each a rank writing its own files."""
    from trajarena.learn.rollout import record

    record("duel", "random", episodes=episodes, workers=2, out=folder, settings={**DUEL_FAST, **settings},
           progress=False, seed=0)
    return folder


def record_env(env: gym.Env, folder: Path, episodes: int, env_id: str | None = None, env_settings: Any = None,
               seed: int = 0, max_steps: int | None = None) -> Path:
    """Record seeded random episodes of ``env`` (cut at ``max_steps``, recorded as truncated)."""
    rec = TrajectoryRecorder(env, folder, username="test", env_id=env_id, env_settings=env_settings)
    rec.action_space.seed(seed)
    for ep in range(episodes):
        rec.reset(seed=seed + ep)
        for t in range(max_steps or 10**9):
            *_, terminated, truncated, _ = rec.step(rec.action_space.sample())
            if terminated or truncated:
                break
    rec.close()
    return folder


def record_duel(folder: Path, episodes: int = 2, **settings: Any) -> Path:
    """Random duel episodes recorded through ``arena.make`` (1P unless ``n_players=2``)."""
    env = arena.make("duel", {**DUEL_FAST, **settings}, None, {"username": "test", "file_path": str(folder)})
    env.action_space.seed(0)
    for ep in range(episodes):
        env.reset(seed=ep)
        done = False
        while not done:
            *_, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    env.close()
    return folder


def frames_of(ds: arena.TrajectoryDataset) -> np.ndarray:
    """Every observation frame of a dataset, in episode then step order (reset rows included)."""
    return np.concatenate([np.asarray(ds.episode(i).observations["frame"]) for i in range(ds.n_episodes)])


def returns_of(ds: arena.TrajectoryDataset) -> list[float]:
    """Each episode's return, summed from the decoded rewards."""
    return [float(np.sum(ds.episode(i).rewards)) for i in range(ds.n_episodes)]
