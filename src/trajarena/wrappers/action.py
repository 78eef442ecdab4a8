"""Action-side wrappers: the no-op action, no-op resets, action repeat, single attack buttons, last actions.

Owns :func:`noop_action` (also the replay env's placeholder action), :class:`NoOpReset`,
:class:`RepeatAction` (and :data:`DONE_FLAGS`, the info flags it OR-s over repeated steps),
:class:`NoAttackButtonsCombinations` and :class:`AddLastAction`, which adds the last ``k`` actions to
the observation: on a replay env, the recorded ones from ``info["action"]``.

>>> import trajarena as arena
>>> env = arena.make("duel", {"frame_shape": (24, 24, 1)}, {"repeat_action": 2, "add_last_action": True,
...                                                        "stack_actions": 3, "no_attack_buttons_combinations": True})
>>> env.action_space, env.observation_space["action"]
(MultiDiscrete([9 4]), MultiDiscrete([[9 4]
 [9 4]
 [9 4]]))
>>> obs, _ = env.reset(seed=0)
>>> obs["action"].tolist()
[[0, 0], [0, 0], [0, 0]]
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trajarena.errors import SettingsError
from trajarena.wrappers.observation import REFILL_FLAGS, is_refill

__all__ = ["AddLastAction", "NoAttackButtonsCombinations", "NoOpReset", "RepeatAction", "noop_action"]

_MOVES = 9  # moves of every fighting game here (DIAMBRA's and duel)
_DUEL_SINGLE_ATTACKS = 4  # duel's attacks without combinations: none, punch, kick, guard
#: Info flags OR-ed over repeated steps.
DONE_FLAGS = (*REFILL_FLAGS, "episode_done", "env_done")


def noop_action(space: spaces.Space) -> Any:
    """The "do nothing" action of a space: 0 moves/attacks, zeros, per agent for Dict spaces."""
    if isinstance(space, spaces.Discrete):
        return np.int64(space.start)
    if isinstance(space, spaces.MultiDiscrete):
        return np.asarray(space.start, dtype=space.dtype).copy()
    if isinstance(space, spaces.MultiBinary):
        return np.zeros(space.shape, dtype=space.dtype)
    if isinstance(space, spaces.Box):
        return np.zeros(space.shape, dtype=space.dtype).clip(space.low, space.high)
    if isinstance(space, spaces.Dict):
        return {k: noop_action(s) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(noop_action(s) for s in space.spaces)
    raise SettingsError(f"no no-op action is defined for {space}; set no_op_max=0.")


class NoOpReset(gym.Wrapper):
    """After ``reset``, take 1..``no_op_max`` no-op steps (a seeded random count)."""

    def __init__(self, env: gym.Env, no_op_max: int):
        super().__init__(env)
        self.no_op_max = no_op_max
        self._noop = noop_action(env.action_space)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        for _ in range(int(self.np_random.integers(1, self.no_op_max + 1))):
            obs, _, terminated, truncated, info = self.env.step(self._noop)
            if terminated or truncated:
                obs, info = self.env.reset(options=options)
        return obs, info


class RepeatAction(gym.Wrapper):
    """Repeat each action ``repeat`` steps: rewards summed, done flags OR-ed, last observation kept."""

    def __init__(self, env: gym.Env, repeat: int):
        super().__init__(env)
        self.repeat = repeat

    def step(self, action: Any):
        total = 0.0
        flags: dict[str, bool] = {}
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            for flag in DONE_FLAGS:
                if info.get(flag):
                    flags[flag] = True
            if terminated or truncated:
                break
        if flags:
            info = {**info, **flags}
        return obs, total, terminated, truncated, info


class NoAttackButtonsCombinations(gym.ActionWrapper):
    """Keep only single attack buttons: MultiDiscrete([9, 8]) → [9, 4]; Discrete(16) → Discrete(12).

    The game numbers the single buttons first, so the kept actions mean the same thing in both spaces.
    How many attacks are single buttons comes from the env's ``single_attacks`` attribute (a DIAMBRA
    game's count, e.g. 7 of sfiii3n's 10), or is duel's 4 (none, punch, kick, guard).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        single = getattr(env.unwrapped, "single_attacks", None)
        self.action_space = self._reduce(env.action_space, single)

    @staticmethod
    def _reduce(space: spaces.Space, single: int | None = None) -> spaces.Space:
        if isinstance(space, spaces.Dict):
            return spaces.Dict({k: NoAttackButtonsCombinations._reduce(s, single) for k, s in space.spaces.items()})
        keep = single or _DUEL_SINGLE_ATTACKS
        if isinstance(space, spaces.MultiDiscrete) and space.nvec.shape == (2,) and space.nvec[0] == _MOVES and \
                (space.nvec[1] > keep if single else space.nvec.tolist() == [9, 8]):
            return spaces.MultiDiscrete([_MOVES, keep], seed=space.np_random)
        if isinstance(space, spaces.Discrete) and (space.n > _MOVES + keep - 1 if single else space.n == 16):
            return spaces.Discrete(_MOVES + keep - 1, seed=space.np_random)
        raise SettingsError(
            f"no_attack_buttons_combinations needs a fighting-game action space (duel's MultiDiscrete([9, 8]) or "
            f"Discrete(16), or a DIAMBRA game's), got {space}; leave it False for this env."
        )

    def action(self, action: Any) -> Any:
        if not self.action_space.contains(action):
            raise SettingsError(f"action {action!r} is outside {self.action_space} (no attack button combinations).")
        return action


def _action_record(space: spaces.Space, k: int) -> tuple[spaces.Space, np.ndarray]:
    """The stacked-actions space for one agent and its no-op fill value."""
    if isinstance(space, spaces.Discrete):
        return spaces.MultiDiscrete(np.full(k, space.n)), np.zeros(k, dtype=np.int64)
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
        return spaces.MultiDiscrete(np.tile(space.nvec, (k, 1))), np.zeros((k, len(space.nvec)), dtype=np.int64)
    raise SettingsError(f"add_last_action needs Discrete or MultiDiscrete actions, got {space}; set it False.")


class AddLastAction(gym.Wrapper):
    """Add the last ``k`` actions to the observation as ``obs["action"]`` (per agent in two-player envs).

    The stack starts and restarts (at round/stage/game changes) filled with no-op actions. On a replay
    env the recorded action in ``info["action"]`` is used.
    """

    def __init__(self, env: gym.Env, k: int = 1):
        super().__init__(env)
        if not isinstance(env.observation_space, spaces.Dict):
            raise SettingsError(f"add_last_action needs a Dict observation, got {env.observation_space}.")
        self.k = k
        act = env.action_space
        self._agents = list(act.spaces) if isinstance(act, spaces.Dict) else None
        if self._agents is None:
            space, self._blank = _action_record(act, k)
            self._offset = np.asarray(getattr(act, "start", 0))
        else:
            parts = {a: _action_record(act[a], k) for a in self._agents}
            space = spaces.Dict({a: p[0] for a, p in parts.items()})
            self._blank = {a: p[1] for a, p in parts.items()}
            self._offset = {a: np.asarray(getattr(act[a], "start", 0)) for a in self._agents}
        self.observation_space = spaces.Dict({**env.observation_space.spaces, "action": space})
        self._stack: Any = None

    def _reset_stack(self) -> None:
        if self._agents is None:
            self._stack = self._blank.copy()
        else:
            self._stack = {a: b.copy() for a, b in self._blank.items()}

    @staticmethod
    def _push(stack: np.ndarray, action: Any, offset: np.ndarray) -> None:
        stack[:-1] = stack[1:]
        stack[-1] = np.asarray(action) - offset

    def _obs(self, obs: dict) -> dict:
        if self._agents is None:
            return {**obs, "action": self._stack.copy()}
        return {**obs, "action": {a: s.copy() for a, s in self._stack.items()}}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._reset_stack()
        return self._obs(obs), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        taken = info.get("action", action)
        if is_refill(info):
            self._reset_stack()
        elif self._agents is None:
            self._push(self._stack, taken, self._offset)
        else:
            for a in self._agents:
                self._push(self._stack[a], taken[a], self._offset[a])
        return self._obs(obs), reward, terminated, truncated, info
