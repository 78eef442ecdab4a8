"""DIAMBRA Arena games (``doapp``, ``sfiii3n``, ``tektagt``...) made by make(), with a normalised Gymnasium API.

``trajarena.make("doapp", settings, wrappers_settings, traj_rec_settings)`` needs the optional
``diambra`` extra (``pip install 'trajarena[diambra]'``, which brings ``diambra-arena`` 2.2) and, as
DIAMBRA itself, a running engine (``diambra run ...``; the tests use the engine mock that ships in
diambra-arena). :func:`make_diambra` builds DIAMBRA's own env from settings in any dialect
(trajarena's names, DIAMBRA 2.1's or 2.2's, see :mod:`trajarena.dialects`), checks them with
DIAMBRA's own checks at once (not at the first reset), and wraps it in :class:`DiambraEnv`, which
make() records and wraps like any env. What :class:`DiambraEnv` normalises:

* observations fit their spaces: RAM states of ``Box(..., int16)`` spaces come as ``int16``
  arrays (DIAMBRA returns ``int64``), discrete ones as ``np.int64``;
* rewards are floats, ``terminated``/``truncated`` bools; ``info`` holds the five done flags (bools)
  and ``agent_side`` (0 when agent_0 plays P1, 1 for P2; DIAMBRA draws a random role per episode
  when none is set), not DIAMBRA's protobuf settings, which no file can hold;
* actions may be numpy values (they are passed to the engine as Python ints);
* ``agent_roles`` (for ``role_relative`` and the replay) and ``single_attacks`` (the game's count of
  single attack buttons, for ``no_attack_buttons_combinations``) are attributes of the env.

>>> is_diambra_game("doapp"), is_diambra_game("duel")
(True, False)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trajarena import dialects
from trajarena.errors import EngineError, SettingsError, close_matches, require

__all__ = ["DIAMBRA_GAMES", "DiambraEnv", "is_diambra_game", "make_diambra"]

#: The games of DIAMBRA Arena 2.2 (a newer diambra-arena's games are found in its game table too).
DIAMBRA_GAMES = ("doapp", "sfiii3n", "tektagt", "umk3", "samsh5sp", "kof98umh", "mvsc", "xmvsf", "soulclbr")
#: The settings a DIAMBRA game takes, in trajarena's names (DIAMBRA's 2.1/2.2 names are aliases).
SETTINGS = ("n_players", "frame_shape", "step_ratio", "difficulty", "continue_game", "role", "characters", "outfits",
            "action_space", "seed", *dialects.DIAMBRA_GAME_KEYS, *dialects.DIAMBRA_ENGINE_KEYS)
_FLAGS = ("round_done", "stage_done", "game_done", "episode_done", "env_done")
#: Seconds to wait for an engine at the default address when DIAMBRA's CLI did not start one (DIAMBRA: 600).
_PROBE_SECONDS = 15


def is_diambra_game(env_id: str) -> bool:
    """Whether ``env_id`` names a DIAMBRA Arena game (known without diambra-arena installed)."""
    return env_id in DIAMBRA_GAMES


_PER_PLAYER = ("role", "characters", "outfits", "action_space", "super_art", "fighting_style", "ultimate_style",
               "speed_mode")


def _is_pair(key: str, value: Any) -> bool:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return False
    return key != "ultimate_style" or all(v is None or isinstance(v, list | tuple) for v in value)


def _to_diambra(values: dict[str, Any], roles: Any, space_types: Any) -> dict[str, Any]:
    """Canonical settings as the fields of DIAMBRA 2.2's settings dataclass (its enums, pairs in 2P)."""
    out = dict(values)
    convert: dict[str, Callable[[Any], Any]] = {
        "role": lambda r: {"P1": roles.P1, "P2": roles.P2}.get(r, r),
        "action_space": lambda a: {"discrete": space_types.DISCRETE, "multi_discrete": space_types.MULTI_DISCRETE}.get(a, a),
        "ultimate_style": lambda u: None if u is None else tuple(u),
    }
    pair = out.get("n_players", 1) == 2
    for key in _PER_PLAYER:
        if key in out:
            f = convert.get(key, lambda v: v)
            value = out[key]
            if pair:  # one value for both players, as trajarena's settings allow
                out[key] = tuple(f(v) for v in (value if _is_pair(key, value) else (value, value)))
            else:
                out[key] = f(value)
    if "frame_shape" in out:
        h, w, c = out["frame_shape"]
        out["frame_shape"] = (h, w, 0 if c == 3 else c)  # DIAMBRA: 0 is the game's colour frame
    return out


def make_diambra(env_id: str, settings: Any = None, render_mode: str | None = None) -> tuple[DiambraEnv, dict[str, Any]]:
    """Make DIAMBRA's env for ``env_id``, normalised; return it with its settings in trajarena's names.

    Raises:
        MissingDependencyError: diambra-arena is not installed (the message names the extra).
        SettingsError: a setting DIAMBRA games do not take, or a value DIAMBRA's checks refuse.
        EngineError: no DIAMBRA engine answers (run the script with ``diambra run``).
    """
    arena = require("diambra.arena", "diambra", f"The DIAMBRA game {env_id!r}")
    from diambra.arena.arena_gym import DiambraGym1P, DiambraGym2P

    values, moved = dialects.canonical("env", settings, game="diambra")
    for key in moved:
        raise SettingsError(f"attack_but_combination is the wrappers setting {key!r} in trajarena; "
                            "pass it to make() or in wrappers_settings.")
    for key in values:
        if key not in SETTINGS:
            raise SettingsError(f"unknown setting {key!r} for the DIAMBRA game {env_id!r}.{close_matches(key, SETTINGS)} "
                                f"Valid settings: {', '.join(sorted(SETTINGS))}")
    fields = _to_diambra(values, arena.Roles, arena.SpaceTypes)
    n_players = fields.get("n_players", 1)
    if n_players not in (1, 2):
        raise SettingsError(f"n_players must be 1 or 2, got {n_players!r}.")
    cls = arena.EnvironmentSettings if n_players == 1 else arena.EnvironmentSettingsMultiAgent
    fields = {k: v for k, v in fields.items() if not (k in ("env_address", "splash_screen") and v is None)}
    fields.setdefault("splash_screen", False)
    addresses = os.getenv("DIAMBRA_ENVS", "").split()
    if not addresses and "env_address" not in fields:  # not under `diambra run`: fail fast if no engine is there
        fields.setdefault("grpc_timeout", _PROBE_SECONDS)
    fields.setdefault("env_address", addresses[0] if addresses else "localhost:50051")
    try:
        diambra_settings = cls(**fields)
    except TypeError as exc:
        raise SettingsError(f"DIAMBRA refused the settings of {env_id!r}: {exc}") from exc
    diambra_settings.game_id, diambra_settings.render_mode, diambra_settings.rank = env_id, render_mode, 0
    try:
        env = (DiambraGym1P if n_players == 1 else DiambraGym2P)(diambra_settings)
    except Exception as exc:
        if type(exc) is not Exception:  # DIAMBRA raises a bare Exception when no engine answers
            raise
        raise EngineError(f"no DIAMBRA engine answered at {fields['env_address']} for {env_id!r}: run your script with "
                          "`diambra run python script.py` (DIAMBRA's CLI starts the engine and sets DIAMBRA_ENVS), or "
                          f"set the env_address setting. DIAMBRA said: {str(exc).splitlines()[0]}") from exc
    try:
        env.env_settings._sanity_check()
    except Exception as exc:  # DIAMBRA checks with assert (AssertionError) and Exception
        env.close()
        raise SettingsError(f"DIAMBRA refused the settings of {env_id!r}: {exc}") from exc
    stored = {"n_players": n_players, **{k: v for k, v in values.items() if k not in dialects.DIAMBRA_ENGINE_KEYS}}
    return DiambraEnv(env, render_mode), stored


def _normaliser(space: spaces.Space) -> Callable[[Any], Any]:
    """A function that makes a DIAMBRA value a value of ``space``."""
    if isinstance(space, spaces.Dict):
        parts = {k: _normaliser(s) for k, s in space.spaces.items()}
        return lambda value: {k: f(value[k]) for k, f in parts.items()}
    if isinstance(space, spaces.Discrete):
        return np.int64
    if isinstance(space, spaces.Box) and space.shape == (1,):
        dtype = space.dtype
        return lambda value: np.asarray(value, dtype=dtype).reshape(1)
    return np.asarray


def _plain_action(action: Any) -> Any:
    if isinstance(action, dict):
        return {k: _plain_action(v) for k, v in action.items()}
    arr = np.asarray(action)
    return int(arr) if arr.ndim == 0 else [int(v) for v in arr.reshape(-1)]


class DiambraEnv(gym.Env):
    """A DIAMBRA Arena env with trajarena's conventions (see the module docstring).

    Args:
        env: DIAMBRA's ``DiambraGym1P`` or ``DiambraGym2P``.
        render_mode: the render mode it was made with.

    >>> DiambraEnv.metadata["render_modes"]
    ['human', 'rgb_array']
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 60}

    def __init__(self, env: Any, render_mode: str | None = None) -> None:
        self.diambra = env
        self.render_mode = render_mode
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.n_players = env.env_settings.n_players
        self.single_attacks = int(env.env_info.available_actions.n_attacks_no_comb)
        self.metadata = {**self.metadata, "render_fps": 60 // max(1, env.env_settings.step_ratio)}
        self._obs = _normaliser(env.observation_space)

    @property
    def agent_roles(self) -> tuple[str, ...]:
        """Each agent's role (``"P1"``/``"P2"``) in the current episode."""
        names = {2: "P1", 3: "P2"}
        players = self.diambra.env_settings.pb_model.episode_settings.player_settings
        if players:  # the roles of the episode (drawn at reset when the settings leave them random)
            return tuple(names.get(p.role, "P1") for p in players)
        chosen = self.diambra.env_settings.role  # before the first reset: the settings' roles, if set
        chosen = tuple(chosen) if isinstance(chosen, list | tuple) else (chosen,)
        roles = tuple(names.get(r) for r in chosen)
        return roles if None not in roles else ("P1", "P2")[: self.n_players]

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        out = {k: bool(info[k]) for k in _FLAGS if k in info}
        out["agent_side"] = 1 if self.agent_roles[0] == "P2" else 0
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        obs, info = self.diambra.reset(seed=seed, options=dict(options or {}))
        return self._obs(obs), self._info(info)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.diambra.step(_plain_action(action))
        return self._obs(obs), float(reward), bool(terminated), bool(truncated), self._info(info)

    def render(self) -> Any:
        return self.diambra.render()

    def close(self) -> None:
        self.diambra.close()
