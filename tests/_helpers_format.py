"""Test doubles for the format tests: tiny deterministic envs and a recording loop."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class SpriteDuel(gym.Env):
    """A tiny deterministic two-player image env: two sprites move on a gradient background.

    Observation: ``Dict(frame=Box(uint8, (H, W, 3)), timer=Box, P1/P2=Dict(health, side))``;
    action: ``Dict(agent_0=MultiDiscrete([9, 8]), agent_1=...)`` (or one player's MultiDiscrete).
    """

    metadata = {"render_modes": []}

    def __init__(self, size: int = 32, n_players: int = 2, max_steps: int = 40, info_arrays: bool = True) -> None:
        self.size, self.n_players, self.max_steps, self.info_arrays = size, n_players, max_steps, info_arrays
        player = spaces.Dict(health=spaces.Box(0, 100, (), np.float32), side=spaces.Discrete(2))
        self.observation_space = spaces.Dict(
            frame=spaces.Box(0, 255, (size, size, 3), np.uint8),
            timer=spaces.Box(0, 99, (1,), np.int16),
            P1=player,
            P2=player,
        )
        one = spaces.MultiDiscrete([9, 8])
        self.action_space = (
            spaces.Dict(agent_0=one, agent_1=one) if n_players == 2 else one
        )
        yy, xx = np.mgrid[0:size, 0:size]
        self._bg = np.stack([xx * 4 % 256, yy * 4 % 256, (xx + yy) * 2 % 256], -1).astype(np.uint8)

    def _obs(self) -> dict[str, Any]:
        frame = self._bg.copy()
        for (x, y), color in zip(self._pos, ((255, 0, 0), (0, 0, 255)), strict=True):
            frame[y : y + 5, x : x + 4] = color
        return {
            "frame": frame,
            "timer": np.array([99 - self._t], np.int16),
            "P1": {"health": np.array(self._hp[0], np.float32), "side": int(self._pos[0][0] > self._pos[1][0])},
            "P2": {"health": np.array(self._hp[1], np.float32), "side": int(self._pos[1][0] > self._pos[0][0])},
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self._t = 0
        self._hp = [100.0, 100.0]
        s = self.size - 6
        self._pos = [list(self.np_random.integers(0, s, 2)), list(self.np_random.integers(0, s, 2))]
        return self._obs(), {"round": 0, "lives": np.array([3, 3], np.int8)} if self.info_arrays else {"round": 0}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        acts = [action["agent_0"], action["agent_1"]] if self.n_players == 2 else [action, self.action_space.sample()]
        moves = [(0, 0), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1)]
        s = self.size - 6
        for p, a in zip(self._pos, acts, strict=True):
            dx, dy = moves[int(a[0])]
            p[0], p[1] = int(np.clip(p[0] + dx, 0, s)), int(np.clip(p[1] + dy, 0, s))
        dist = abs(self._pos[0][0] - self._pos[1][0]) + abs(self._pos[0][1] - self._pos[1][1])
        dmg = [float(acts[i][1] > 0 and dist < 8) * 5 for i in range(2)]
        self._hp = [self._hp[0] - dmg[1], self._hp[1] - dmg[0]]
        self._t += 1
        terminated = min(self._hp) <= 0
        truncated = self._t >= self.max_steps
        info = {"round": 0, "round_done": terminated, "text": "not numeric"}
        if self.info_arrays:
            info["lives"] = np.array([3, 3], np.int8)
        return self._obs(), dmg[0] - dmg[1], terminated, truncated, info


def run_episodes(env: gym.Env, episodes: int, seed: int = 0, rng_seed: int = 1) -> list[dict[str, Any]]:
    """Play ``episodes`` with seeded random actions; return what the env produced, per episode."""
    rng = np.random.default_rng(rng_seed)
    env.action_space.seed(int(rng.integers(1 << 31)))
    out = []
    for e in range(episodes):
        obs, info = env.reset(seed=seed + e)
        ep = {"obs": [obs], "actions": [], "rewards": [], "terminated": [], "truncated": [], "seed": seed + e}
        done = False
        while not done:
            action = env.action_space.sample()
            obs, r, te, tr, info = env.step(action)
            for k, v in (("actions", action), ("obs", obs), ("rewards", r), ("terminated", te), ("truncated", tr)):
                ep[k].append(v)
            done = te or tr
        out.append(ep)
    return out


def assert_nested_equal(a: Any, b: Any) -> None:
    """Bit-identical comparison of nested values (dicts, tuples, arrays, scalars, strings)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), (list(a), b)
        for k in a:
            assert_nested_equal(a[k], b[k])
    elif isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_nested_equal(x, y)
    elif isinstance(a, str):
        assert a == b
    else:
        x, y = np.asarray(a), np.asarray(b)
        assert x.shape == y.shape, (x.shape, y.shape)
        if x.dtype == object or y.dtype == object:
            assert x.tolist() == y.tolist()
            return
        assert x.tobytes() == y.astype(x.dtype, copy=False).tobytes() or np.array_equal(x, y, equal_nan=True), (x, y)


def stack(space: spaces.Space, values: list[Any]) -> Any:
    """Stack a list of nested values along a new first axis, as the reader returns them."""
    if isinstance(space, spaces.Dict):
        return {k: stack(s, [v[k] for v in values]) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(stack(s, [v[i] for v in values]) for i, s in enumerate(space.spaces))
    if isinstance(space, spaces.Text):
        return np.array(values, dtype=object)
    dtype = np.int64 if isinstance(space, spaces.Discrete) else space.dtype
    return np.stack([np.asarray(v, dtype=dtype) for v in values])
