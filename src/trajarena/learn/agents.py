"""Scripted agents that play any env (``random``) or the built-in ``duel`` game (``expert``).

An agent has ``act(obs, info) -> action`` and ``reset(seed=None)``. In a 2-player env an agent plays
one ``player`` (``agent_0`` or ``agent_1``) and returns that player's action only.

>>> from trajarena.envs.duel import DuelEnv
>>> env = DuelEnv({"seed": 0, "difficulty": 1})
>>> agent = make_agent("expert", env)
>>> obs, info = env.reset()
>>> env.action_space.contains(agent.act(obs, info))
True
>>> sorted(AGENTS)
['cartpole-expert', 'expert', 'random']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trajarena.errors import NotSupportedError, SettingsError, close_matches

__all__ = ["AGENTS", "Agent", "CartPoleExpert", "ExpertAgent", "ExpertLabels", "RandomAgent", "encode_action",
           "make_agent"]


@runtime_checkable
class Agent(Protocol):
    """What the recorder, the CLI and human play expect of an agent."""

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """The action to take after observing ``obs`` and ``info``."""

    def reset(self, seed: int | None = None) -> None:
        """Forget the past episode; reseed when ``seed`` is given."""


def _player_space(env: gym.Env, player: int) -> spaces.Space:
    space = env.action_space
    if isinstance(space, spaces.Dict) and f"agent_{player}" in space.spaces:
        return space[f"agent_{player}"]
    if player != 0:
        raise SettingsError(f"player={player} needs a 2-player env (an action space with 'agent_{player}'), got {space}.")
    return space


class RandomAgent:
    """Uniformly random actions from one player's action space, from its own seeded generator.

    >>> import gymnasium as gym
    >>> a, b = RandomAgent(gym.spaces.Discrete(5), seed=1), RandomAgent(gym.spaces.Discrete(5), seed=1)
    >>> [a.act(None, {}) for _ in range(5)] == [b.act(None, {}) for _ in range(5)]
    True
    """

    def __init__(self, space: spaces.Space, seed: int | None = None) -> None:
        self.space = space
        self._seed = seed
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Reseed the generator when ``seed`` is given."""
        if seed is not None or not hasattr(self, "_space_copy"):
            self._space_copy = _copy_space(self.space)
            self._space_copy.seed(seed if seed is not None else self._seed)

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """A random action."""
        return self._space_copy.sample()


def _copy_space(space: spaces.Space) -> spaces.Space:
    import copy

    return copy.deepcopy(space)


def encode_action(move: int, attack: int, space: spaces.Space) -> Any:
    """Express a duel ``(move, attack)`` input in ``space`` (raw or after attack-combination removal).

    ``MultiDiscrete([9, n])`` gets ``[move, attack]``; ``Discrete(9 + n - 1)`` gets one index, the
    attack when both are set. A button combination the space lacks (``n == 4``, DIAMBRA's
    ``no_attack_buttons_combinations``) becomes plain guard if it contains guard, else no attack.

    >>> encode_action(5, 1, spaces.MultiDiscrete([9, 8])).tolist(), encode_action(5, 1, spaces.Discrete(16))
    ([5, 1], 9)
    """
    if isinstance(space, spaces.MultiDiscrete):
        n_att = int(space.nvec[1])
        if attack >= n_att:
            attack = 3 if attack in (5, 6, 7) and n_att > 3 else 0
        return np.array([move, attack], dtype=space.dtype)
    if isinstance(space, spaces.Discrete):
        n_att = int(space.n) - 8
        if attack >= n_att:
            attack = 3 if attack in (5, 6, 7) and n_att > 3 else 0
        return int(8 + attack if attack else move)
    raise NotSupportedError(f"cannot express a duel action in {space}; expected MultiDiscrete([9, n]) or Discrete(n).")


class ExpertAgent:
    """A scripted ``duel`` player: :func:`trajarena.envs.duel.ai.tactic` applied every step, no noise.

    It reads the game state from ``env.unwrapped.game`` (distances, the foe's pose) — things that
    are visible on screen — and is fully deterministic, so behavioural cloning can learn it.

    Args:
        env: a ``duel`` env (possibly wrapped).
        player: which agent it plays in 2-player mode (0 or 1).
    """

    def __init__(self, env: gym.Env, player: int = 0) -> None:
        if not hasattr(env.unwrapped, "game") or not hasattr(env.unwrapped, "agent_sides"):
            raise NotSupportedError(
                f"the 'expert' agent plays the built-in 'duel' game only, got {env.unwrapped!r}; use 'random' for other envs."
            )
        self.env = env
        self.player = player
        self.space = _player_space(env, player)

    def reset(self, seed: int | None = None) -> None:
        """Nothing to forget: the expert is stateless."""

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """The expert's action for the current game state."""
        from trajarena.envs.duel.ai import read, tactic

        u = self.env.unwrapped
        side = u.agent_sides[self.player]
        move, attack = tactic(read(u.game, side))
        return encode_action(move, attack, self.space)


class CartPoleExpert:
    """The classic PD rule for CartPole: push toward where the pole falls (angle, spin, cart drift).

    Scores 500 (the maximum) on CartPole-v1 from any start; deterministic, so BC can clone it.

    >>> CartPoleExpert().act(np.array([0.0, 0.0, 0.05, 0.0]), {})
    1
    """

    name = "cartpole-expert"

    def __init__(self, env: gym.Env | None = None, player: int = 0) -> None:
        self.player = player

    def reset(self, seed: int | None = None) -> None:
        """Stateless."""

    def act(self, obs: Any, info: Any = None) -> int:
        x, x_dot, theta, theta_dot = (float(v) for v in np.asarray(obs, np.float64).ravel()[:4])
        return int(10.0 * theta + 2.0 * theta_dot + 0.1 * x + 0.5 * x_dot > 0)


def _is_cartpole(env: gym.Env) -> bool:
    spec = getattr(env.unwrapped, "spec", None) or getattr(env, "spec", None)
    return spec is not None and str(spec.id).startswith("CartPole")


def _make_random(env: gym.Env, player: int, seed: int | None) -> Agent:
    return RandomAgent(_player_space(env, player), seed=seed)


def _make_expert(env: gym.Env, player: int, seed: int | None) -> Agent:
    return CartPoleExpert(env, player) if _is_cartpole(env) else ExpertAgent(env, player)


#: Agent names the CLI lists, with their factories ``(env, player, seed) -> Agent``.
AGENTS: dict[str, Callable[[gym.Env, int, int | None], Agent]] = {
    "random": _make_random,
    "expert": _make_expert,
    "cartpole-expert": lambda env, player, seed: CartPoleExpert(env, player),
}


def make_agent(name: str, env: gym.Env, player: int = 0, seed: int | None = None) -> Agent:
    """Build the agent called ``name`` for ``env``, playing agent index ``player`` in 2-player mode.

    ``name`` is a key of :data:`AGENTS` (``"expert"`` is the PD rule on CartPole) or the path of a policy
    saved by ``trajarena train-bc`` (``*.pt``; needs the torch extra).

    Raises:
        SettingsError: an unknown agent name (the message lists the valid ones).
    """
    if str(name).endswith(".pt"):
        from trajarena.learn.policy import load_policy_agent

        return load_policy_agent(name, env, player)
    if name not in AGENTS:
        raise SettingsError(
            f"unknown agent {name!r}.{close_matches(str(name), AGENTS)} Valid agents: {', '.join(sorted(AGENTS))}, "
            "or the path of a saved policy ending in .pt"
        )
    return AGENTS[name](env, player, seed)


class ExpertLabels(gym.Wrapper):
    """Adds the expert's choice for the state each action was taken in as ``info["expert_action"]``.

    Put it on the raw env, below the recorder: the recorded files then hold, next to each action played,
    what the expert would have played there (DAgger's labels; the format stores it as an info column).

    >>> from trajarena.envs.duel import DuelEnv
    >>> env = ExpertLabels(DuelEnv({"seed": 0, "difficulty": 1}))
    >>> _ = env.reset(seed=0)
    >>> env.step(env.action_space.sample())[-1]["expert_action"].shape
    (2,)
    """

    def __init__(self, env: gym.Env, expert: str = "expert", seed: int | None = None) -> None:
        super().__init__(env)
        self.expert = make_agent(expert, env, seed=seed)
        self._last: tuple[Any, dict[str, Any]] = (None, {})

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.expert.reset(seed)
        self._last = (obs, info)
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict]:
        label = self.expert.act(*self._last)  # before the step: the state the action was taken in
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._last = (obs, info)
        return obs, reward, terminated, truncated, {**info, "expert_action": label}
