"""Reward wrappers: DIAMBRA's reward normalisation and sign clipping.

Owns :class:`NormalizeReward` (divide by ``normalization_factor`` × the full health) and
:class:`ClipReward` (the sign). Each is a ``gym.RewardWrapper``: observations, flags and actions pass
through untouched, so these commute with every other wrapper of the set.

>>> from trajarena.envs.duel import DuelEnv, MAX_HEALTH
>>> env = NormalizeReward(DuelEnv({"frame_shape": (24, 24, 1)}), factor=0.5)
>>> env.divisor == 0.5 * MAX_HEALTH
True
>>> ClipReward(env).reward(-7.5)
-1.0
"""

from __future__ import annotations

from typing import SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["ClipReward", "NormalizeReward"]


def _full_health(space: spaces.Space) -> float:
    try:
        return float(np.max(space["P1"]["health"].high))  # type: ignore[index]
    except (KeyError, TypeError, AttributeError):
        return 1.0


class NormalizeReward(gym.RewardWrapper):
    """Divide rewards by ``factor`` × the full health (DIAMBRA's normalisation; 1 for other envs)."""

    def __init__(self, env: gym.Env, factor: float):
        super().__init__(env)
        self.divisor = factor * _full_health(env.observation_space)

    def reward(self, reward: SupportsFloat) -> float:
        return float(reward) / self.divisor


class ClipReward(gym.RewardWrapper):
    """Replace rewards by their sign."""

    def reward(self, reward: SupportsFloat) -> float:
        return float(np.sign(float(reward)))
