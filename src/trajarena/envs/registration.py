"""trajarena's envs in Gymnasium's registry, and the specs that ``make()`` attaches to its envs.

Importing :mod:`trajarena` registers the built-in game with Gymnasium as ``trajarena/Duel-v0``
(and, for the code of 0.1, as ``duel``), so every Gymnasium tool can make it by name, with its
settings as keyword arguments:

>>> import gymnasium as gym
>>> import trajarena  # registers the ids (or: gym.make("trajarena:trajarena/Duel-v0", ...))
>>> env = gym.make("trajarena/Duel-v0", difficulty=3, n_players=2, frame_shape=(64, 64, 1))
>>> env.observation_space["frame"].shape, sorted(env.action_space.spaces)
((64, 64, 1), ['agent_0', 'agent_1'])
>>> env.spec.id, env.spec.kwargs["difficulty"]
('trajarena/Duel-v0', 3)
>>> env.close()

The keyword arguments are those of :class:`~trajarena.settings.EnvironmentSettings`; an unknown
one is a :class:`~trajarena.errors.SettingsError` that lists the valid ones. ``settings=`` also
takes a whole settings dict or dataclass (keywords override it). Envs built by
:func:`trajarena.make` carry the same spec, with every setting in ``spec.kwargs``, so
``gym.make(env.unwrapped.spec)`` rebuilds the env (what Minari's ``recover_environment`` does).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

from trajarena.settings import EnvironmentSettings

__all__ = ["DUEL_ID", "duel_env", "gym_id_of", "register_gymnasium_envs", "spec_for", "trajarena_id_of"]

#: The built-in game's namespaced Gymnasium id.
DUEL_ID = "trajarena/Duel-v0"
#: trajarena env ids -> their Gymnasium ids (the ids ``make()`` stores in files stay trajarena's).
_GYM_IDS = {"duel": DUEL_ID}
_ENTRY_POINT = "trajarena.envs.registration:duel_env"


def duel_env(settings: Any = None, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """Gymnasium's entry point of ``trajarena/Duel-v0``: the duel game from keyword settings.

    Args:
        settings: an :class:`~trajarena.settings.EnvironmentSettings`, a dict of them, or None.
        render_mode: None, ``"rgb_array"`` or ``"human"``.
        **kwargs: single settings (``difficulty=3``), which override ``settings``.

    >>> duel_env(difficulty=2, frame_shape=(32, 32, 1)).observation_space["frame"].shape
    (32, 32, 1)
    """
    from trajarena.envs.duel import DuelEnv

    return DuelEnv(EnvironmentSettings.from_dict(settings, **kwargs), render_mode=render_mode)


def register_gymnasium_envs() -> None:
    """Register ``trajarena/Duel-v0`` and its alias ``duel`` with Gymnasium (once; idempotent)."""
    for env_id in (DUEL_ID, "duel"):
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=_ENTRY_POINT)


def gym_id_of(env_id: str) -> str | None:
    """The Gymnasium id of a trajarena env id (None when it has none).

    >>> gym_id_of("duel"), gym_id_of("trajarena/Duel-v0"), gym_id_of("CartPole-v1")
    ('trajarena/Duel-v0', 'trajarena/Duel-v0', None)
    """
    if env_id in _GYM_IDS.values():
        return env_id
    return _GYM_IDS.get(env_id)


def trajarena_id_of(gym_id: str) -> str | None:
    """The trajarena env id of a Gymnasium id trajarena registered (None for others).

    >>> trajarena_id_of("trajarena/Duel-v0"), trajarena_id_of("duel"), trajarena_id_of("CartPole-v1")
    ('duel', 'duel', None)
    """
    for ours, theirs in _GYM_IDS.items():
        if gym_id in (ours, theirs):
            return ours
    return None


def spec_for(env_id: str, kwargs: dict[str, Any]) -> EnvSpec | None:
    """The Gymnasium spec of a trajarena env made with these settings (None for an id without one).

    >>> spec = spec_for("duel", {"difficulty": 4})
    >>> spec.id, spec.entry_point, spec.kwargs
    ('trajarena/Duel-v0', 'trajarena.envs.registration:duel_env', {'difficulty': 4})
    """
    gym_id = gym_id_of(env_id)
    if gym_id is None:
        return None
    register_gymnasium_envs()
    return dataclasses.replace(gym.spec(gym_id), kwargs=dict(kwargs))
