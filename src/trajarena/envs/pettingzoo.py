"""PettingZoo: the two-player ``duel`` as a ``ParallelEnv``, and ``make()`` for PettingZoo parallel envs.

:class:`DuelParallelEnv` is the built-in game's two-player mode in PettingZoo's parallel API
(it passes ``pettingzoo.test.parallel_api_test``), for multi-agent and self-play libraries.
Agents ``agent_0`` and ``agent_1`` observe the game as the loader replays their sides: ``agent_0``
the observation as the game gives it, ``agent_1`` the same with the ``P1``/``P2`` keys exchanged
(so each sees its own fighter where ``agent_0`` sees its own), and rewards are zero-sum
(``agent_1``'s is the negation of ``agent_0``'s); its info's ``outcome``/``round_outcome`` are
negated and ``agent_side`` is its own side. ``max_cycles`` truncates an episode after that many
steps, as PettingZoo's own envs do (None: a match ends it).

:func:`make_parallel` is what :func:`trajarena.make` does with a PettingZoo parallel env: it
records it (one stream per agent, see :mod:`trajarena.recording.pettingzoo`) when recording
settings are given. Needs the ``pettingzoo`` extra (``pip install 'trajarena[pettingzoo]'``).

>>> env = parallel_env(frame_shape=(32, 32, 1), step_ratio=60)
>>> obs, infos = env.reset(seed=0)
>>> env.agents, obs["agent_1"]["P1"]["health"] == obs["agent_0"]["P2"]["health"]
(['agent_0', 'agent_1'], array([ True]))
>>> obs, rewards, terminations, truncations, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
>>> rewards["agent_0"] == -rewards["agent_1"]
True
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from trajarena.errors import NotSupportedError, SettingsError, UnknownEnvError, close_matches, require
from trajarena.settings import EnvironmentSettings, WrappersSettings

require("pettingzoo", "pettingzoo", "PettingZoo envs")

import pettingzoo  # noqa: E402  (after the check that names the extra)
from pettingzoo import ParallelEnv  # noqa: E402

__all__ = ["PETTINGZOO_ID", "PREFIX", "DuelParallelEnv", "is_parallel_env", "make_parallel", "parallel_env"]

AGENTS = ("agent_0", "agent_1")


def is_parallel_env(env: Any) -> bool:
    """True for a PettingZoo parallel env (or anything with its API), False for Gymnasium envs and ids.

    >>> is_parallel_env(parallel_env()), is_parallel_env(gym.make("CartPole-v1")), is_parallel_env("duel")
    (True, False, False)
    """
    if isinstance(env, ParallelEnv):
        return True
    return (not isinstance(env, gym.Env | str) and hasattr(env, "possible_agents")
            and callable(getattr(env, "observation_space", None)) and callable(getattr(env, "step", None)))


def _swap(obs: dict[str, Any]) -> dict[str, Any]:
    return {**obs, "P1": obs["P2"], "P2": obs["P1"]}


class DuelParallelEnv(ParallelEnv):
    """The two-player ``duel`` in PettingZoo's parallel API (see the module docstring).

    Args:
        settings: duel settings (``n_players`` is 2 whatever is given).
        render_mode: None, ``"rgb_array"`` or ``"human"``.
        max_cycles: truncate an episode after this many steps (None: only a match end ends it).

    >>> DuelParallelEnv({"characters": ("Mira", "Longo")}).action_space("agent_1")
    MultiDiscrete([9 8])
    """

    metadata = {"render_modes": ["human", "rgb_array"], "name": "trajarena_duel_v0", "is_parallelizable": True}

    def __init__(self, settings: Any = None, render_mode: str | None = None, max_cycles: int | None = None) -> None:
        from trajarena.envs.duel import DuelEnv

        self.settings = EnvironmentSettings.from_dict(settings, n_players=2)
        self.game = DuelEnv(self.settings, render_mode=render_mode)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.game.metadata["render_fps"]}
        if max_cycles is not None and (isinstance(max_cycles, bool) or not isinstance(max_cycles, int) or max_cycles < 1):
            raise SettingsError(f"max_cycles must be None or an integer >= 1, got {max_cycles!r}.")
        self.max_cycles = max_cycles
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self._t = 0

    def observation_space(self, agent: str) -> gym.spaces.Space:
        """The agent's observation space (the same object every call, as PettingZoo requires)."""
        self._check(agent)
        return self.game.observation_space

    def action_space(self, agent: str) -> gym.spaces.Space:
        """The agent's action space (the same object every call)."""
        self._check(agent)
        return self.game.action_space[agent]

    def _check(self, agent: str) -> None:
        if agent not in AGENTS:
            raise SettingsError(f"unknown agent {agent!r}; the duel's agents are {list(AGENTS)}.")

    def _split(self, obs: dict[str, Any], info: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        other = {**info, "outcome": -info["outcome"], "round_outcome": -info["round_outcome"],
                 "agent_side": self.game.agent_sides[1]}
        return {"agent_0": obs, "agent_1": _swap(obs)}, {"agent_0": info, "agent_1": other}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        obs, info = self.game.reset(seed=seed, options=options)
        self.agents = list(AGENTS)
        self._t = 0
        return self._split(obs, info)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            from trajarena.errors import ResetNeeded

            raise ResetNeeded("DuelParallelEnv.step() called before reset() or after the match ended; call reset().")
        missing = set(AGENTS) - set(actions)
        if missing:
            raise SettingsError(f"step() needs an action for each agent; missing {sorted(missing)}.")
        obs, reward, terminated, truncated, info = self.game.step({a: actions[a] for a in AGENTS})
        self._t += 1
        truncated = truncated or (self.max_cycles is not None and self._t >= self.max_cycles and not terminated)
        observations, infos = self._split(obs, info)
        if terminated or truncated:
            self.agents = []
        flags = dict.fromkeys(AGENTS, bool(terminated)), dict.fromkeys(AGENTS, bool(truncated))
        return observations, {"agent_0": reward, "agent_1": -reward}, *flags, infos

    def render(self) -> np.ndarray | None:
        return self.game.render()

    def close(self) -> None:
        self.game.close()


def parallel_env(settings: Any = None, render_mode: str | None = None, max_cycles: int | None = None,
                 **kwargs: Any) -> DuelParallelEnv:
    """The two-player duel as a PettingZoo parallel env (PettingZoo's ``module.parallel_env()`` convention).

    Keyword arguments are duel settings (``difficulty=3``, ``frame_shape=(84, 84, 1)``...).
    """
    return DuelParallelEnv(EnvironmentSettings.from_dict(settings, n_players=2, **kwargs), render_mode, max_cycles)


def make_parallel(env: Any, settings: Any = None, wrappers_settings: Any = None, traj_rec_settings: Any = None,
                  render_mode: str | None = None) -> Any:
    """:func:`trajarena.make` for PettingZoo: a parallel env, recorded per agent when recording settings are given.

    Args:
        env: a PettingZoo parallel env, or an id of PettingZoo's registry prefixed with
            ``"pettingzoo/"`` (``"pettingzoo/classic/rps-v2"``, ``"pettingzoo/trajarena/duel-v0"``).
        settings: for an id, the keyword arguments of ``pettingzoo.make`` (stored in the files).
        wrappers_settings: must be empty: trajarena's wrappers are single-agent.
        traj_rec_settings: :class:`~trajarena.settings.RecordingSettings` (or a dict): record every
            agent into ``file_path/<agent>/``.
        render_mode: for an id, passed to the env.

    Raises:
        NotSupportedError: wrappers settings; or settings/render_mode with an env already made.
        UnknownEnvError: an id PettingZoo's registry does not hold.
    """
    env_id, env_settings = None, None
    if isinstance(env, str):
        env_id, name = env, env.removeprefix(PREFIX)
        env_settings = dict(settings or {})
        if not isinstance(settings, dict | type(None)):
            raise SettingsError(f"settings for the PettingZoo env {env_id!r} must be a dict of its keyword arguments.")
        try:
            spec = pettingzoo.spec("parallel", name)
        except Exception as exc:  # noqa: BLE001 - PettingZoo raises its own error types
            known = sorted(pettingzoo.parallel_registry)
            raise UnknownEnvError(f"{name!r} is not in PettingZoo's registry of parallel envs."
                                  f"{close_matches(name, known)} Known: {', '.join(known[:12])}...") from exc
        kwargs = {**env_settings, **({"render_mode": render_mode} if render_mode is not None else {})}
        try:
            env = pettingzoo.make("parallel", spec, **kwargs)
        except TypeError as exc:
            raise SettingsError(f"bad settings {env_settings!r} for the PettingZoo env {name!r}: {exc}") from exc
    elif settings is not None or render_mode is not None:
        raise NotSupportedError("a PettingZoo env passed already made takes its settings and render_mode in its own "
                                "constructor, not in trajarena.make(); or pass its id, 'pettingzoo/<id>'.")
    if not WrappersSettings.from_dict(wrappers_settings).is_identity:
        raise NotSupportedError("trajarena's wrappers are single-agent; record the PettingZoo env raw and replay each "
                                "agent's stream with ImitationLearning(folder / agent, wrappers_settings=...).")
    if traj_rec_settings is None:
        return env
    from trajarena.recording.pettingzoo import ParallelTrajectoryRecorder

    return ParallelTrajectoryRecorder.from_settings(env, traj_rec_settings, env_id=env_id, env_settings=env_settings)


#: The prefix of PettingZoo registry ids in :func:`trajarena.make`.
PREFIX = "pettingzoo/"
#: The duel's id in PettingZoo's registry (registered when this module is imported).
PETTINGZOO_ID = "trajarena/duel-v0"

if PETTINGZOO_ID not in pettingzoo.parallel_registry:
    pettingzoo.register("parallel", PETTINGZOO_ID, entry_point="trajarena.envs.pettingzoo:parallel_env")
