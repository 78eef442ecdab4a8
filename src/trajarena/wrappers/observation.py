"""Observation wrappers: frames (resize/greyscale, stack with dilation) and the observation's shape.

Owns :class:`FrameResize`, :class:`FrameStack`, :class:`Scale`, :class:`RoleRelative` and
:class:`FlattenFilterKeys`, the helpers that find the frame in an observation, and the info flags
that restart a stack (:data:`REFILL_FLAGS`). Frame pixels come from :mod:`trajarena.imaging`.

>>> import trajarena as arena
>>> env = arena.make("duel", {"frame_shape": (48, 48, 3)}, {"frame_shape": (24, 24, 1), "stack_frames": 4,
...                                                        "dilation": 2})
>>> env.observation_space["frame"].shape
(24, 24, 4)
>>> obs, _ = env.reset(seed=0)
>>> obs["frame"].shape, obs["frame"].dtype.name
((24, 24, 4), 'uint8')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trajarena.errors import SettingsError, close_matches
from trajarena.imaging import FrameResizer

__all__ = ["FlattenFilterKeys", "FrameResize", "FrameStack", "RoleRelative", "Scale"]

#: Info flags that mark a change of round/stage/game: stacks are refilled with the new frame there.
REFILL_FLAGS = ("round_done", "stage_done", "game_done")
FRAME_KEY = "frame"


def _frame_key(space: spaces.Space, wrapper: str) -> str | None:
    """``"frame"`` for a Dict obs with a frame, ``None`` when the obs itself is an image."""
    if isinstance(space, spaces.Dict) and FRAME_KEY in space.spaces:
        return FRAME_KEY
    if isinstance(space, spaces.Box) and len(space.shape) == 3:
        return None
    raise SettingsError(
        f"{wrapper} needs an image observation (an (H, W, C) Box or a Dict with a 'frame' key), "
        f"got {space}. Remove the frame settings from wrappers_settings for this env."
    )


def _get(obs: Any, key: str | None) -> Any:
    return obs if key is None else obs[key]


def _put(obs: Any, key: str | None, value: Any) -> Any:
    if key is None:
        return value
    out = dict(obs)
    out[key] = value
    return out


def _with_space(space: spaces.Space, key: str | None, sub: spaces.Space) -> spaces.Space:
    if key is None:
        return sub
    return spaces.Dict({**space.spaces, key: sub})


def is_refill(info: Mapping[str, Any]) -> bool:
    """Whether a step's info says a round, stage or game changed (stacks restart there)."""
    return any(bool(info.get(flag, False)) for flag in REFILL_FLAGS)



class FrameResize(gym.ObservationWrapper):
    """Resize (nearest neighbour) and/or greyscale the frame; 0 in ``frame_shape`` keeps that size.

    The pixels are :class:`trajarena.imaging.FrameResizer`'s, as for the ``duel`` env's own ``frame_shape``.
    """

    def __init__(self, env: gym.Env, frame_shape: tuple[int, int, int]):
        super().__init__(env)
        self._key = _frame_key(env.observation_space, "frame_shape")
        box = _get(env.observation_space, self._key)
        c0, c = box.shape[2], frame_shape[2] or box.shape[2]
        if c0 not in (1, 3) or (c == 3 and c0 == 1):
            raise SettingsError(f"frame_shape {frame_shape} cannot turn a {c0}-channel frame into {c} channels.")
        self._resize = FrameResizer(box.shape, frame_shape)
        self.observation_space = _with_space(
            env.observation_space, self._key, spaces.Box(0, 255, self._resize.shape, np.uint8)
        )

    def observation(self, obs: Any) -> Any:
        return _put(obs, self._key, np.ascontiguousarray(self._resize(_get(obs, self._key))))


class FrameStack(gym.Wrapper):
    """Stack the last ``n`` frames (every ``dilation``-th) on the channel axis, oldest first.

    At reset, and when a round, stage or game changes, the stack is refilled with the new frame.
    """

    def __init__(self, env: gym.Env, n: int, dilation: int = 1):
        super().__init__(env)
        self._key = _frame_key(env.observation_space, "stack_frames")
        box = _get(env.observation_space, self._key)
        h, w, c = box.shape
        self.n, self.dilation = n, dilation
        self._history = np.zeros(((n - 1) * dilation + 1, h, w, c), dtype=box.dtype)
        self._pos = 0
        self.observation_space = _with_space(env.observation_space, self._key, spaces.Box(
            np.concatenate([box.low] * n, axis=-1), np.concatenate([box.high] * n, axis=-1), (h, w, c * n), box.dtype))

    def _fill(self, frame: np.ndarray) -> None:
        self._history[:] = frame
        self._pos = 0

    def _stacked(self, obs: Any) -> Any:
        length = len(self._history)
        idx = [(self._pos - (self.n - 1 - i) * self.dilation) % length for i in range(self.n)]
        return _put(obs, self._key, np.concatenate(self._history[idx], axis=-1))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._fill(_get(obs, self._key))
        return self._stacked(obs), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        frame = _get(obs, self._key)
        if is_refill(info):
            self._fill(frame)
        else:
            self._pos = (self._pos + 1) % len(self._history)
            self._history[self._pos] = frame
        return self._stacked(obs), reward, terminated, truncated, info



def _is_frame(space: spaces.Box) -> bool:
    """A uint8 (H, W, C) image."""
    return len(space.shape) == 3 and space.dtype == np.uint8


class Scale(gym.ObservationWrapper):
    """Scale observations to [0, 1] float32: boxes by their bounds, discrete values one-hot.

    Box dimensions without finite bounds (CartPole's velocities) are passed through unscaled.

    Frames (uint8 images) become ``frame / 255`` unless ``exclude_image_scaling``; Discrete(2) values
    stay a 0/1 number unless ``process_discrete_binary``.
    """

    def __init__(self, env: gym.Env, exclude_image_scaling: bool = False, process_discrete_binary: bool = False):
        super().__init__(env)
        self.exclude_image_scaling = exclude_image_scaling
        self.process_discrete_binary = process_discrete_binary
        # per-leaf constants, computed once from the bounds (keyed by the id of the env's leaf space)
        self._affine: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._offsets: dict[int, np.ndarray] = {}
        self.observation_space = self._space(env.observation_space)

    def _space(self, space: spaces.Space) -> spaces.Space:
        if isinstance(space, spaces.Dict):
            return spaces.Dict({k: self._space(s) for k, s in space.spaces.items()})
        if isinstance(space, spaces.Tuple):
            return spaces.Tuple([self._space(s) for s in space.spaces])
        if isinstance(space, spaces.Box):
            if _is_frame(space) and self.exclude_image_scaling:
                return space
            low, high = space.low.astype(np.float64), space.high.astype(np.float64)
            bounded = np.isfinite(high - low) & (high > low)
            self._affine[id(space)] = (np.where(bounded, low, 0.0), np.where(bounded, high - low, 1.0))
            if bounded.all():
                return spaces.Box(0.0, 1.0, space.shape, np.float32)
            # unbounded dimensions are passed through unscaled, so they keep their bounds
            return spaces.Box(np.where(bounded, 0.0, low).astype(np.float32),
                              np.where(bounded, 1.0, high).astype(np.float32), space.shape, np.float32)
        if isinstance(space, spaces.Discrete):
            if space.n == 2 and not self.process_discrete_binary:
                return spaces.Box(0.0, 1.0, (1,), np.float32)
            return spaces.Box(0.0, 1.0, (int(space.n),), np.float32)
        if isinstance(space, spaces.MultiDiscrete):
            self._offsets[id(space)] = np.concatenate(([0], np.cumsum(space.nvec.ravel())[:-1]))
            return spaces.Box(0.0, 1.0, (int(space.nvec.sum()),), np.float32)
        if isinstance(space, spaces.MultiBinary):
            return spaces.Box(0.0, 1.0, space.shape, np.float32)
        raise SettingsError(f"scale does not know how to scale {space}; set scale=False or filter that key out.")

    def _scale(self, value: Any, space: spaces.Space) -> Any:
        if isinstance(space, spaces.Dict):
            return {k: self._scale(value[k], s) for k, s in space.spaces.items()}
        if isinstance(space, spaces.Tuple):
            return tuple(self._scale(v, s) for v, s in zip(value, space.spaces, strict=True))
        if isinstance(space, spaces.Box):
            if _is_frame(space):
                return value if self.exclude_image_scaling else np.asarray(value, np.float32) * np.float32(1 / 255)
            base, span = self._affine[id(space)]
            return ((np.asarray(value, np.float64) - base) / span).astype(np.float32)
        if isinstance(space, spaces.Discrete):
            v = int(value) - int(space.start)
            if space.n == 2 and not self.process_discrete_binary:
                return np.array([v], np.float32)
            out = np.zeros(int(space.n), np.float32)
            out[v] = 1.0
            return out
        if isinstance(space, spaces.MultiDiscrete):
            flat = (np.asarray(value) - space.start).ravel()
            out = np.zeros(int(space.nvec.sum()), np.float32)
            out[self._offsets[id(space)] + flat] = 1.0
            return out
        return np.asarray(value, np.float32)

    def observation(self, obs: Any) -> Any:
        return self._scale(obs, self.env.observation_space)


class RoleRelative(gym.ObservationWrapper):
    """Rename the players' keys from the agent's point of view: ``P1``/``P2`` → ``own``/``opp``.

    One player: the agent's side comes from ``env.unwrapped.agent_roles`` (``("P2",)``) or
    ``env.unwrapped.agent_sides`` (``(1,)``). Two players: the
    observation gets ``agent_0`` and ``agent_1`` entries, each with ``own``/``opp`` (and its ``action``
    stack when there is one).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Dict) or not {"P1", "P2"} <= set(space.spaces):
            raise SettingsError(f"role_relative needs an observation with 'P1' and 'P2' keys, got {space}.")
        self._two = isinstance(env.action_space, spaces.Dict)
        shared = {k: s for k, s in space.spaces.items() if k not in ("P1", "P2", "action")}
        pair = {"own": space["P1"], "opp": space["P2"]}
        if not self._two:
            extra = {"action": space["action"]} if "action" in space.spaces else {}
            self.observation_space = spaces.Dict({**shared, **pair, **extra})
        else:
            agents = {}
            for a in env.action_space.spaces:
                extra = {"action": space["action"][a]} if "action" in space.spaces else {}
                agents[a] = spaces.Dict({**pair, **extra})
            self.observation_space = spaces.Dict({**shared, **agents})

    def _roles(self) -> tuple[str, ...]:
        env = self.env.unwrapped
        roles = getattr(env, "agent_roles", None)
        if roles is None and getattr(env, "agent_sides", None) is not None:
            roles = tuple(("P1", "P2")[side] for side in env.agent_sides)
        if roles is None:
            raise SettingsError(
                "role_relative needs an env that reports agent_roles or agent_sides (the built-in duel or its replay)."
            )
        return tuple(roles)

    def observation(self, obs: dict) -> dict:
        roles = self._roles()
        out = {k: v for k, v in obs.items() if k not in ("P1", "P2", "action")}
        other = {"P1": "P2", "P2": "P1"}
        if not self._two:
            out["own"], out["opp"] = obs[roles[0]], obs[other[roles[0]]]
            if "action" in obs:
                out["action"] = obs["action"]
            return out
        for i, a in enumerate(self.env.action_space.spaces):
            entry = {"own": obs[roles[i]], "opp": obs[other[roles[i]]]}
            if "action" in obs:
                entry["action"] = obs["action"][a]
            out[a] = entry
        return out


def _flatten_space(space: spaces.Dict, prefix: str = "") -> dict[str, spaces.Space]:
    out: dict[str, spaces.Space] = {}
    for k, s in space.spaces.items():
        if isinstance(s, spaces.Dict):
            out.update(_flatten_space(s, f"{prefix}{k}_"))
        else:
            out[f"{prefix}{k}"] = s
    return out


def _flatten_value(value: Mapping, prefix: str, out: dict) -> dict:
    for k, v in value.items():
        if isinstance(v, Mapping):
            _flatten_value(v, f"{prefix}{k}_", out)
        else:
            out[f"{prefix}{k}"] = v
    return out


class FlattenFilterKeys(gym.ObservationWrapper):
    """Flatten nested Dict observations to ``P1_health``-style keys and/or keep only ``filter_keys``."""

    def __init__(self, env: gym.Env, flatten: bool = True, filter_keys: tuple[str, ...] | None = None):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Dict):
            raise SettingsError(f"flatten/filter_keys need a Dict observation, got {space}.")
        self.flatten = flatten
        flat = _flatten_space(space) if flatten else dict(space.spaces)
        if filter_keys is not None:
            for key in filter_keys:
                if key not in flat:
                    raise SettingsError(
                        f"filter_keys names {key!r}, which is not an observation key.{close_matches(key, flat)} "
                        f"Valid keys: {', '.join(flat)}"
                    )
            flat = {k: flat[k] for k in filter_keys}
        self._keys = tuple(flat)
        self.observation_space = spaces.Dict(flat)

    def observation(self, obs: dict) -> dict:
        flat = _flatten_value(obs, "", {}) if self.flatten else obs
        return {k: flat[k] for k in self._keys}
