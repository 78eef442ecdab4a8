"""Writes the format-version-1 files in this folder (run once with trajarena 0.1/0.2 before format v2).

    python tests/data/v1/make_v1_files.py

Each ``*.arrow`` file comes with ``<stem>.expected.npz``: every decoded column of every episode as
the version-1 reader returned it, so the tests can check that newer readers read old files the same.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/ for the test env

from trajarena.format.reader import TrajectoryReader  # noqa: E402
from trajarena.recording.recorder import TrajectoryRecorder  # noqa: E402


def record(name: str, env: gym.Env, episodes: int, seed: int, discard: int | None = None, **meta) -> None:
    tmp = HERE / f"_{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    rec = TrajectoryRecorder(env, tmp, segment_seconds=1e9, chunk_steps=16, **meta)
    rng = np.random.default_rng(seed)
    for e in range(episodes):
        rec.reset(seed=seed + e)
        done, steps = False, 0
        while not done:
            rec.action_space.seed(int(rng.integers(1 << 31)))
            _, _, term, trunc, _ = rec.step(rec.action_space.sample())
            done, steps = term or trunc, steps + 1
            if discard == e and steps == 20:  # 16 rows already in the file: a "discarded" end record
                rec.discard_episode()
                break
    rec.close()
    (path,) = tmp.glob("*.arrow")
    out = HERE / f"{name}.arrow"
    path.replace(out)
    shutil.rmtree(tmp)
    reader = TrajectoryReader(out)
    arrays: dict[str, np.ndarray] = {}
    for i, ep in enumerate(reader.iter_episodes()):
        flatten(arrays, f"{i}/obs", ep.observations)
        flatten(arrays, f"{i}/action", ep.actions)
        for key in ("rewards", "terminations", "truncations"):
            arrays[f"{i}/{key}"] = getattr(ep, key)
        flatten(arrays, f"{i}/info", ep.infos)
    np.savez_compressed(HERE / f"{name}.expected.npz", **arrays)


def flatten(out: dict[str, np.ndarray], prefix: str, value) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(out, f"{prefix}/{k}", v)
    elif isinstance(value, tuple):
        for k, v in enumerate(value):
            flatten(out, f"{prefix}/{k}", v)
    else:
        out[prefix] = np.asarray(value)

if __name__ == "__main__":
    from _helpers_format import SpriteDuel  # noqa: E402

    record("sprite_duel_2p", SpriteDuel(size=24, n_players=2, max_steps=30), episodes=3, seed=7, discard=1,
           username="v1", players={"P1": "agent", "P2": "agent"})
    record("cartpole", gym.make("CartPole-v1"), episodes=4, seed=3, env_id="CartPole-v1")
