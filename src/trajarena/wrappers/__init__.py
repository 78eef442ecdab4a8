"""DIAMBRA's wrapper set as small Gymnasium wrappers, for live envs and replay envs alike.

This package's ``__init__`` owns :func:`apply_wrappers`, the one place that knows DIAMBRA's order,
and the public names. The wrappers live by kind: :mod:`~trajarena.wrappers.action` (no-op reset,
action repeat, attack buttons, last actions), :mod:`~trajarena.wrappers.reward` (normalise, clip) and
:mod:`~trajarena.wrappers.observation` (frames, scaling, role-relative keys, flattening).

Each wrapper reads only the observation, the reward, the info flags and the action, so the same
settings give the same observations on a live ``duel`` env and on :class:`trajarena.ImitationLearning`
replaying it. A replay env passes the recorded action as ``info["action"]``; the last-action wrapper
prefers it to the (ignored) action given to ``step``.

>>> import trajarena as arena
>>> env = arena.make("duel", {"frame_shape": (48, 48, 1)}, {"stack_frames": 3, "add_last_action": True,
...                                                        "stack_actions": 2, "scale": True, "flatten": True})
>>> sorted(env.observation_space.spaces)[:4]
['P1_character', 'P1_health', 'P1_side', 'P1_wins']
>>> env.observation_space["frame"].shape, env.observation_space["action"].shape
((48, 48, 3), (34,))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from trajarena.settings import WrappersSettings
from trajarena.wrappers.action import AddLastAction, NoAttackButtonsCombinations, NoOpReset, RepeatAction
from trajarena.wrappers.observation import FlattenFilterKeys, FrameResize, FrameStack, RoleRelative, Scale
from trajarena.wrappers.reward import ClipReward, NormalizeReward

__all__ = [
    "AddLastAction",
    "ClipReward",
    "FlattenFilterKeys",
    "FrameResize",
    "FrameStack",
    "NoAttackButtonsCombinations",
    "NoOpReset",
    "NormalizeReward",
    "RepeatAction",
    "RoleRelative",
    "Scale",
    "apply_wrappers",
]


def apply_wrappers(env: gym.Env, settings: WrappersSettings | Mapping[str, Any] | None) -> gym.Env:
    """Wrap ``env`` as ``settings`` say, in DIAMBRA's order; identity settings return ``env`` itself."""
    s = WrappersSettings.from_dict(settings)
    if s.no_op_max > 0:
        env = NoOpReset(env, s.no_op_max)
    if s.repeat_action > 1:
        env = RepeatAction(env, s.repeat_action)
    if s.normalize_reward:
        env = NormalizeReward(env, s.normalization_factor)
    if s.clip_reward:
        env = ClipReward(env)
    if s.no_attack_buttons_combinations:
        env = NoAttackButtonsCombinations(env)
    if s.frame_shape != (0, 0, 0):
        env = FrameResize(env, s.frame_shape)
    if s.stack_frames > 1:
        env = FrameStack(env, s.stack_frames, s.dilation)
    if s.add_last_action:
        env = AddLastAction(env, s.stack_actions)
    if s.scale:
        env = Scale(env, s.exclude_image_scaling, s.process_discrete_binary)
    if s.role_relative:
        env = RoleRelative(env)
    if s.flatten or s.filter_keys is not None:
        env = FlattenFilterKeys(env, s.flatten, s.filter_keys)
    for cls, kwargs in s.wrappers:
        env = cls(env, **kwargs)
    return env
