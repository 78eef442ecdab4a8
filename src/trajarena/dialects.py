"""DIAMBRA Arena's settings names (v2.1 and v2.2) as aliases of trajarena's: one canonical form.

DIAMBRA users bring settings written for ``diambra.arena.make``: dicts or DIAMBRA's own settings
dataclasses, in the names and values of 2.1 (``player="P1P2"``, ``frame_stack``,
``reward_normalization``, ``hwc_obs_resize``...) or 2.2 (``role=Roles.P2``,
``action_space=SpaceTypes.DISCRETE``, ``dataset_path``...). :func:`canonical` turns each of the three
settings (environment, wrappers, recording) into trajarena's names and values, which is what the
settings dataclasses validate and what every file stores; :func:`canonical_all` also moves the one
setting DIAMBRA 2.1 keeps elsewhere (``attack_but_combination`` is an environment setting there, a
wrappers setting here). ``docs/diambra.md`` has the whole table.

Settings that only DIAMBRA's engine has are handled like DIAMBRA handles a game that lacks them:
connection and window settings (``env_address``, ``grpc_timeout``, ``splash_screen``...) and DIAMBRA's
bookkeeping fields are dropped; game-specific options (``super_art``, ``tower``...) are kept for a
DIAMBRA game and dropped for ``duel`` (with a :class:`~trajarena.errors.DialectWarning` when one is
set to anything but its default); 2.1's ``hardcore=True``, which would change the observation, is
refused with the trajarena equivalent. Only this module knows DIAMBRA's names; it imports nothing
of diambra.

>>> env, wrappers, recording = canonical_all({"player": "P2", "char_outfits": 2, "attack_but_combination": False},
...                                          {"frame_stack": 4, "reward_normalization": True},
...                                          {"dataset_path": "data/doapp", "username": "alex"})
>>> env
{'role': 'P2', 'outfits': 2}
>>> wrappers
{'stack_frames': 4, 'normalize_reward': True, 'no_attack_buttons_combinations': True}
>>> recording
{'file_path': 'data/doapp', 'username': 'alex'}
"""

from __future__ import annotations

import dataclasses
import enum
import warnings
from collections.abc import Mapping
from typing import Any

from trajarena.errors import DialectWarning, SettingsError

__all__ = ["DIAMBRA_GAME_KEYS", "IGNORED", "RENAMED", "canonical", "canonical_all", "plain"]

KINDS = ("env", "wrappers", "recording")

#: Plain renames, per kind: DIAMBRA name -> trajarena name.
RENAMED: dict[str, dict[str, str]] = {
    "env": {"char_outfits": "outfits"},
    "wrappers": {"sticky_actions": "repeat_action", "clip_rewards": "clip_reward",
                 "reward_normalization": "normalize_reward", "reward_normalization_factor": "normalization_factor",
                 "frame_stack": "stack_frames"},
    "recording": {"dataset_path": "file_path"},
}

#: DIAMBRA engine options for some games: kept for a DIAMBRA game, dropped for duel. Value: their defaults.
DIAMBRA_GAME_KEYS: dict[str, tuple[Any, ...]] = {
    "show_final": (True, False), "tower": (None, 3), "super_art": (None, 0), "fighting_style": (None, 0),
    "ultimate_style": (None, (0, 0, 0)), "speed_mode": (None, 0),
}
#: DIAMBRA engine connection and window settings: kept for a DIAMBRA game, dropped for duel.
DIAMBRA_ENGINE_KEYS = ("disable_keyboard", "disable_joystick", "splash_screen", "env_address", "grpc_timeout")

#: Settings dropped everywhere, and why (the reason is in the docs' table).
IGNORED: dict[str, str] = {
    "game_id": "make()'s env_id names the game, as diambra.arena.make's game_id argument overrides this field",
    "render_mode": "make()'s render_mode argument sets it, as diambra.arena.make's does",
    "rank": "the engine instance of a parallel run; diambra.arena.make sets it from its rank argument",
    "pb_model": "bookkeeping field of DIAMBRA's settings dataclass",
    "_last_seed": "bookkeeping field of DIAMBRA's settings dataclass",
    "scale_mod": "DIAMBRA 2.1 accepts only 0",
}

_ROLE_VALUES = {2: "P1", 3: "P2", "P1": "P1", "P2": "P2", None: None, "Random": None}
_SPACE_VALUES = {1: "discrete", 2: "multi_discrete", "DISCRETE": "discrete", "MULTI_DISCRETE": "multi_discrete",
                 "discrete": "discrete", "multi_discrete": "multi_discrete"}


def plain(data: Any, owner: str = "settings") -> dict[str, Any]:
    """Settings given as None, a dict or a dataclass instance (DIAMBRA's included), as a plain dict.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class S:
    ...     frame_stack: int = 4
    >>> plain(S()), plain(None)
    ({'frame_stack': 4}, {})
    """
    if data is None:
        return {}
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
    if isinstance(data, Mapping):
        return dict(data)
    raise SettingsError(f"{owner} must be a dict or a settings dataclass, got {type(data).__name__}.")


def _put(out: dict[str, Any], key: str, value: Any, source: str) -> None:
    if key in out and out[key] != value:
        raise SettingsError(f"{source!r} and {key!r} both set {key!r} ({value!r} vs {out[key]!r}); keep one of them.")
    out[key] = value


def _enum_value(value: Any) -> Any:
    """DIAMBRA's enums (protobuf ints or Python enums) as plain values."""
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _per_player(value: Any, convert: Any, key: str) -> Any:
    if isinstance(value, list | tuple):
        return tuple(convert(v, key) for v in value)
    return convert(value, key)


def _role(value: Any, key: str) -> Any:
    value = _enum_value(value)
    try:
        return _ROLE_VALUES[value]
    except (KeyError, TypeError):
        raise SettingsError(f"{key} must be 'P1', 'P2' or None (DIAMBRA's Roles.P1/Roles.P2 accepted), "
                            f"got {value!r}.") from None


def _space(value: Any, key: str) -> Any:
    value = _enum_value(value)
    try:
        return _SPACE_VALUES[value]
    except (KeyError, TypeError):
        return value  # not a DIAMBRA value: the settings dataclass names the valid ones


def _one(value: Any) -> Any:
    return None if value == "Random" else value


def _fighter(value: Any, key: str) -> Any:
    """For duel: one fighter; a DIAMBRA team tuple is accepted when it names one fighter (the rest random)."""
    if not isinstance(value, list | tuple):
        return _one(value)
    named = [_one(v) for v in value]
    if any(v is not None for v in named[1:]):
        raise SettingsError(f"{key} {value!r} names a team of fighters; duel has one fighter per player.")
    return named[0] if named else None


def _characters(value: Any, game: str, n_players: Any) -> Any:
    """2.1's "Random" -> None; for duel, a team tuple of one fighter is that fighter."""
    if game != "duel":
        if isinstance(value, list | tuple):
            return tuple(_characters(v, game, 1) for v in value)
        return _one(value)
    if n_players == 2 and isinstance(value, list | tuple) and len(value) == 2:
        return tuple(_fighter(v, "characters") for v in value)
    return _fighter(value, "characters")


def _env(data: dict[str, Any], game: str) -> tuple[dict[str, Any], dict[str, Any]]:
    out: dict[str, Any] = {}
    moved: dict[str, Any] = {}
    for key, value in data.items():
        if key in IGNORED:
            continue
        if key in RENAMED["env"]:
            _put(out, RENAMED["env"][key], value, key)
        elif key == "player":  # 2.1: "Random" | "P1" | "P2" | "P1P2"
            if value == "P1P2":
                _put(out, "n_players", 2, key)
                _put(out, "role", ("P1", "P2"), key)
            elif value in ("P1", "P2", "Random"):
                _put(out, "role", _ROLE_VALUES[value], key)
            else:
                raise SettingsError(f"player must be 'Random', 'P1', 'P2' or 'P1P2' (DIAMBRA 2.1), got {value!r}.")
        elif key == "attack_but_combination":  # 2.1: an environment setting; a wrappers setting here
            values = set(value) if isinstance(value, list | tuple) else {value}
            if len(values) != 1:
                raise SettingsError(f"attack_but_combination {value!r} differs between players; trajarena's "
                                    "no_attack_buttons_combinations applies to both. Use one value.")
            moved["no_attack_buttons_combinations"] = not values.pop()
        elif key == "hardcore":
            if value:
                raise SettingsError("hardcore=True (DIAMBRA 2.1: frame-only observations) is a wrappers setting in "
                                    "trajarena: use wrappers_settings {'flatten': True, 'filter_keys': ['frame']}.")
        elif key == "role":
            _put(out, "role", _per_player(value, _role, key), key)
        elif key == "action_space":
            _put(out, "action_space", _per_player(value, _space, key), key)
        elif key == "characters":
            n_players = data.get("n_players", 2 if data.get("player") == "P1P2" else 1)
            _put(out, "characters", _characters(value, game, n_players), key)
        elif key == "seed":
            _put(out, "seed", None if value == -1 else value, key)
        elif key in DIAMBRA_GAME_KEYS or key in DIAMBRA_ENGINE_KEYS:
            if game != "duel":
                _put(out, key, value, key)
            elif key in DIAMBRA_GAME_KEYS and not _is_default(value, DIAMBRA_GAME_KEYS[key]):
                warnings.warn(f"{key}={value!r} has no effect in duel, which has no such option; ignored (as DIAMBRA "
                              "ignores it for games without it).", DialectWarning, stacklevel=4)
        else:
            _put(out, key, value, key)
    return out, moved


def _is_default(value: Any, defaults: tuple[Any, ...]) -> bool:
    """Whether a DIAMBRA game option is at one of its defaults (for one player or both)."""
    value = tuple(value) if isinstance(value, list) else value
    if any(value == d for d in defaults):
        return True
    return isinstance(value, tuple) and len(value) == 2 and all(_is_default(v, defaults) for v in value)


def _wrappers(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in IGNORED:
            if key == "scale_mod" and value != 0:
                raise SettingsError(f"scale_mod={value!r}: DIAMBRA 2.1 accepts only 0, and trajarena has no scale modes.")
            continue
        if key in RENAMED["wrappers"]:
            _put(out, RENAMED["wrappers"][key], value, key)
        elif key == "actions_stack":  # 2.1 always added the last actions to the observation
            _put(out, "add_last_action", True, key)
            _put(out, "stack_actions", value, key)
        elif key == "hwc_obs_resize":  # 2.1: channels 0 disables the resize
            if not isinstance(value, list | tuple) or len(value) != 3:
                raise SettingsError(f"hwc_obs_resize must be (height, width, channels), got {value!r}.")
            _put(out, "frame_shape", (0, 0, 0) if value[2] == 0 else tuple(value), key)
        elif key == "filter_keys" and value is not None and len(value) == 0:
            _put(out, key, None, key)  # DIAMBRA 2.2's default [] means no filtering
        else:
            _put(out, key, value, key)
    return out


def _recording(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in RENAMED["recording"]:
            _put(out, RENAMED["recording"][key], value, key)
        elif key in ("ignore_p1", "ignore_p2") and isinstance(value, bool):
            _put(out, key, int(value), key)
        else:
            _put(out, key, value, key)
    return out


def canonical(kind: str, data: Any, game: str = "duel") -> tuple[dict[str, Any], dict[str, Any]]:
    """One kind of settings in trajarena's names: ``(settings, moved)``.

    Args:
        kind: ``"env"``, ``"wrappers"`` or ``"recording"``.
        data: None, a dict or a dataclass instance (trajarena's or DIAMBRA's), in any dialect.
        game: ``"duel"`` or ``"diambra"`` (a DIAMBRA game keeps DIAMBRA's engine options).

    Returns:
        The settings in trajarena's names and values, and the wrappers settings that DIAMBRA 2.1
        kept among the environment settings (``moved``, only for ``kind="env"``).

    Raises:
        SettingsError: a DIAMBRA value with no trajarena equivalent, or two names for one setting
            that disagree.

    >>> canonical("env", {"role": 3, "action_space": 1, "seed": -1})
    ({'role': 'P2', 'action_space': 'discrete', 'seed': None}, {})
    """
    if kind not in KINDS:
        raise SettingsError(f"kind must be one of {KINDS}, got {kind!r}.")
    values = plain(data, f"{kind} settings")
    if kind == "env":
        return _env(values, game)
    return (_wrappers(values) if kind == "wrappers" else _recording(values)), {}


def canonical_all(settings: Any, wrappers_settings: Any, traj_rec_settings: Any,
                  game: str = "duel") -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The three settings of ``make()`` in trajarena's names (a ``None`` recording stays None)."""
    env, moved = canonical("env", settings, game)
    wrappers, _ = canonical("wrappers", wrappers_settings, game)
    for key, value in moved.items():
        _put(wrappers, key, value, "attack_but_combination")
    recording = None if traj_rec_settings is None else canonical("recording", traj_rec_settings, game)[0]
    return env, wrappers, recording
