"""Shared fixtures: an isolated data root and a small generic fighting-game-shaped env."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import settings

#: Property tests draw the same examples on every run (a failure reproduces; CI never flakes on a new
#: draw); ``make fuzz`` runs random ones. Set TRAJARENA_HYPOTHESIS=random to explore locally. No
#: deadline: on a loaded 2-core machine one example of a fast property may take over hypothesis's
#: 200 ms, which fails a test on time, not on behaviour.
settings.register_profile("deterministic", derandomize=True, database=None, deadline=None)
settings.register_profile("random", derandomize=False, deadline=None)
settings.load_profile("random" if os.environ.get("TRAJARENA_HYPOTHESIS") == "random" else "deterministic")

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

#: tests/data holds fixture files and the scripts that made them (some need other venvs): not tests.
collect_ignore_glob = ["data/*"]


@pytest.fixture
def data_root(tmp_path):
    """A fresh folder for trajectory files."""
    root = tmp_path / "data"
    root.mkdir()
    return root


def _player_space() -> spaces.Dict:
    return spaces.Dict(
        side=spaces.Discrete(2),
        wins=spaces.Box(0, 2, (1,), np.int8),
        character=spaces.Discrete(4),
        health=spaces.Box(0, 100, (1,), np.int16),
    )


class MiniFight(gym.Env):
    """A deterministic env with duel's observation/action layout, tiny frames and a round every 5 steps.

    The frame encodes the step counter so tests can tell frames apart; health falls by the attack index.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, n_players: int = 1, action_space: str = "multi_discrete", shape=(12, 16, 3)):
        self.n_players = n_players
        one = spaces.MultiDiscrete([9, 8]) if action_space == "multi_discrete" else spaces.Discrete(16)
        self.action_space = one if n_players == 1 else spaces.Dict(agent_0=one, agent_1=one)
        self.observation_space = spaces.Dict(
            frame=spaces.Box(0, 255, shape, np.uint8),
            stage=spaces.Box(1, 4, (1,), np.int8),
            timer=spaces.Box(0, 99, (1,), np.int16),
            P1=_player_space(),
            P2=_player_space(),
        )
        self.agent_roles = ("P2",) if n_players == 1 else ("P1", "P2")
        self.shape = shape
        self.t = 0

    def _obs(self) -> dict:
        frame = np.full(self.shape, self.t % 256, np.uint8)
        frame[0, 0, 0] = 255 - self.t % 256
        player = lambda side, hp: {  # noqa: E731
            "side": side, "wins": np.array([0], np.int8), "character": 1, "health": np.array([hp], np.int16)
        }
        return {
            "frame": frame,
            "stage": np.array([1], np.int8),
            "timer": np.array([99 - self.t], np.int16),
            "P1": player(0, 100 - self.t),
            "P2": player(1, 100 - 2 * self.t),
        }

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {"round_done": False, "stage_done": False, "game_done": False}

    def step(self, action):
        self.t += 1
        round_done = self.t % 5 == 0
        terminated = self.t >= 20
        info = {"round_done": round_done, "stage_done": False, "game_done": terminated}
        return self._obs(), 1.5, terminated, False, info


@pytest.fixture
def minifight():
    return MiniFight
