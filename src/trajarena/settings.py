"""Settings as data: frozen dataclasses with validation and JSON round trips.

Every settings object can be built from a plain dict (as DIAMBRA users write them), is validated on
construction, and turns back into a JSON-ready dict that is stored in every trajectory file.

>>> s = EnvironmentSettings.from_dict({"difficulty": 3, "frame_shape": (84, 84, 1)})
>>> s.difficulty, s.frame_shape
(3, (84, 84, 1))
>>> EnvironmentSettings.from_dict({"dificulty": 3})
Traceback (most recent call last):
...
trajarena.errors.SettingsError: unknown setting 'dificulty' for EnvironmentSettings. Did you mean 'difficulty'? Valid settings: action_space, characters, continue_game, difficulty, frame_shape, n_players, outfits, role, seed, step_ratio
"""

from __future__ import annotations

import dataclasses
import math
import warnings
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

import gymnasium as gym
import numpy as np

from trajarena import dialects
from trajarena.errors import SettingsError, WrapperNotAppliedWarning, close_matches

#: The fighters of the built-in game, in the order of their ``character`` index.
DUEL_CHARACTERS: tuple[str, ...] = ("Kenji", "Mira", "Brutus", "Longo")
#: Number of outfits (colour palettes) per fighter.
DUEL_OUTFITS = 4
ROLES = ("P1", "P2")
#: Largest frame height/width a setting accepts, and the deepest frame/action stack.
MAX_FRAME_SIDE = 4096
MAX_STACK = 1024
ACTION_SPACES = ("multi_discrete", "discrete")


def _fail(owner: str, key: str, value: Any, expected: str) -> SettingsError:
    return SettingsError(f"{owner}.{key} must be {expected}, got {value!r}.")


class _Settings:
    """Shared behaviour: ``from_dict`` with unknown-key errors, ``to_dict`` and validation hooks."""

    _validators: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    #: Which of DIAMBRA's settings these are (:mod:`trajarena.dialects` maps its names to ours).
    _dialect: ClassVar[str] = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Self | None = None, **overrides: Any) -> Self:
        """Build settings from a dict (or return a copy of settings with ``overrides``).

        DIAMBRA Arena's names and values (v2.1 and v2.2, dicts or its settings dataclasses) are
        accepted too and stored in trajarena's (see :mod:`trajarena.dialects`).
        """
        if data is None:
            data = {}
        elif isinstance(data, cls):
            data = data.to_dict(json=False)
        elif dataclasses.is_dataclass(data) and not isinstance(data, type):
            data = {f.name: getattr(data, f.name) for f in fields(data)}
        elif not isinstance(data, Mapping):
            raise SettingsError(
                f"{cls.__name__} must be built from a dict or a {cls.__name__}, got {type(data).__name__}."
            )
        merged = {**dict(data), **overrides}
        if cls._dialect:
            merged, moved = dialects.canonical(cls._dialect, merged)
            for key in moved:
                raise SettingsError(f"{cls.__name__} got DIAMBRA 2.1's attack_but_combination, which is the wrappers "
                                    f"setting {key!r} in trajarena; pass it to make() or in wrappers_settings.")
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        for key in merged:
            if key not in names:
                raise SettingsError(
                    f"unknown setting {key!r} for {cls.__name__}.{close_matches(str(key), names)} "
                    f"Valid settings: {', '.join(sorted(names))}"
                )
        return cls(**merged)

    def to_dict(self, json: bool = True) -> dict[str, Any]:
        """The settings as a dict; with ``json=True`` every value is JSON-serialisable."""
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = _jsonable(value) if json else value
        return out

    def replace(self, **changes: Any) -> Self:
        """A copy with some settings changed (validated again)."""
        return self.from_dict(self, **changes)

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, type) or callable(value):
        return qualified_name(value)
    return value


def _number(value: Any) -> bool:
    """A real number (Python or numpy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _int(owner: str, key: str, value: Any, lo: int, hi: int | None = None) -> int:
    if not _number(value) or not math.isfinite(value) or int(value) != value:
        raise _fail(owner, key, value, f"an integer >= {lo}" + (f" and <= {hi}" if hi is not None else ""))
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        raise _fail(owner, key, value, f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}")
    return value


def _bool(owner: str, key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _fail(owner, key, value, "True or False")


def _frame_shape(owner: str, key: str, value: Any) -> tuple[int, int, int]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 3:
        raise _fail(owner, key, value, "a (height, width, channels) triple, 0 meaning 'keep'")
    h, w, c = (_int(owner, key, v, 0, MAX_FRAME_SIDE) for v in value)
    if c not in (0, 1, 3):
        raise _fail(owner, key, value, "a shape whose channels are 0 (keep), 1 (greyscale) or 3 (RGB)")
    if (h == 0) != (w == 0):
        raise _fail(owner, key, value, "a shape with both height and width set, or both 0 (keep)")
    return (h, w, c)


def _choice(owner: str, key: str, value: Any, choices: Sequence[Any]) -> Any:
    if value not in choices:
        hint = close_matches(str(value), [str(c) for c in choices]) if isinstance(value, str) else ""
        raise SettingsError(
            f"{owner}.{key} must be one of {', '.join(map(repr, choices))}, got {value!r}.{hint}"
        )
    return value


@dataclass(frozen=True)
class EnvironmentSettings(_Settings):
    """Settings of the built-in fighting game ``duel`` (DIAMBRA's ``EnvironmentSettings``).

    Per-player settings (``role``, ``characters``, ``outfits``, ``action_space``) take one value, or in
    two-player mode a pair ``(agent_0's, agent_1's)`` (as in DIAMBRA; with the default roles agent_0
    plays P1); a single value is used for both players.

    Args:
        n_players: 1 (agent vs CPU tower) or 2 (one match between two agents).
        frame_shape: (H, W, C) of the observed frame; 0 keeps the native size/colour; C=1 is greyscale.
        step_ratio: game frames simulated per env step (1 = human speed at 60 fps).
        difficulty: CPU strength 1-8, or None for a random one per episode (1-player mode).
        continue_game: 0 = game over on a lost match; p in (0, 1] = continue with probability p;
            a negative integer -n = continue n times.
        role: "P1", "P2" or None (random) — the side the agent plays.
        characters: a name from ``DUEL_CHARACTERS`` or None (random); a pair in 2-player mode.
        outfits: palette number 1-4; a pair in 2-player mode.
        action_space: "multi_discrete" (moves, attacks) or "discrete" (moves + attacks - 1).
        seed: seed used by the first ``reset()`` that is given no seed.

    >>> EnvironmentSettings(n_players=2, characters=("Mira", "Brutus")).characters
    ('Mira', 'Brutus')
    """

    _dialect: ClassVar[str] = "env"

    n_players: int = 1
    frame_shape: tuple[int, int, int] = (0, 0, 0)
    step_ratio: int = 6
    difficulty: int | None = None
    continue_game: float = 0.0
    role: Any = None
    characters: Any = None
    outfits: Any = 1
    action_space: Any = "multi_discrete"
    seed: int | None = None

    def __post_init__(self) -> None:
        o = type(self).__name__
        self._set("n_players", _int(o, "n_players", self.n_players, 1, 2))
        self._set("frame_shape", _frame_shape(o, "frame_shape", self.frame_shape))
        self._set("step_ratio", _int(o, "step_ratio", self.step_ratio, 1, 60))
        if self.difficulty is not None:
            self._set("difficulty", _int(o, "difficulty", self.difficulty, 1, 8))
        cg = self.continue_game
        if not _number(cg) or not math.isfinite(cg) or cg > 1 or (cg < 0 and int(cg) != cg):
            raise _fail(o, "continue_game", cg, "a probability in [0, 1] or a negative integer of continues")
        self._set("continue_game", float(cg))
        if self.seed is not None:
            self._set("seed", _int(o, "seed", self.seed, 0))
        self._set("role", self._per_player("role", self.role, lambda k, v: None if v is None else _choice(o, k, v, ROLES)))
        self._set(
            "characters",
            self._per_player("characters", self.characters, lambda k, v: None if v is None else _choice(o, k, v, DUEL_CHARACTERS)),
        )
        self._set("outfits", self._per_player("outfits", self.outfits, lambda k, v: _int(o, k, v, 1, DUEL_OUTFITS)))
        self._set("action_space", self._per_player("action_space", self.action_space, lambda k, v: _choice(o, k, v, ACTION_SPACES)))
        if self.n_players == 2 and isinstance(self.role, tuple):
            a, b = self.role
            if a is not None and a == b:
                raise _fail(o, "role", self.role, "two different sides, e.g. ('P1', 'P2'), or (None, None)")

    def _per_player(self, key: str, value: Any, check: Callable[[str, Any], Any]) -> Any:
        if isinstance(value, list | tuple):
            if self.n_players == 1:
                raise _fail(type(self).__name__, key, value, "a single value in 1-player mode (pairs are for n_players=2)")
            if len(value) != 2:
                raise _fail(type(self).__name__, key, value, "a pair (agent_0's, agent_1's) in 2-player mode")
            return tuple(check(key, v) for v in value)
        value = check(key, value)
        return (value, value) if self.n_players == 2 else value

    def player(self, key: str, index: int) -> Any:
        """The value of a per-player setting for player ``index`` (0 or 1).

        >>> EnvironmentSettings(outfits=2).player("outfits", 0)
        2
        """
        value = getattr(self, key)
        return value[index] if self.n_players == 2 else value


@dataclass(frozen=True)
class WrappersSettings(_Settings):
    """Wrappers applied on top of the raw env (DIAMBRA's ``WrappersSettings``).

    The same settings build the same observations on a live env and on the replay env.

    Args:
        no_op_max: up to this many no-op steps after reset (seeded).
        repeat_action: repeat each action this many steps.
        normalize_reward: divide rewards by ``normalization_factor`` times the full health.
        normalization_factor: see ``normalize_reward``.
        clip_reward: reward → its sign.
        no_attack_buttons_combinations: keep only single attack buttons in the action space.
        frame_shape: resize/greyscale the frame (0 keeps).
        stack_frames: stack this many frames on the last axis.
        dilation: take every ``dilation``-th frame of the history when stacking.
        add_last_action: add the last action(s) to the observation as ``action``.
        stack_actions: how many last actions to keep.
        scale: scale values to [0, 1] (one-hot for discrete values).
        exclude_image_scaling: with ``scale``, leave the frame as uint8.
        process_discrete_binary: with ``scale``, one-hot encode binary discrete values too.
        role_relative: rename P1/P2 to own/opp from the agent's point of view.
        flatten: flatten nested observation dicts to ``P1_health``-style keys.
        filter_keys: keep only these keys (after flattening).
        wrappers: user wrappers, a sequence of ``[WrapperClass, kwargs]`` applied last.

    >>> WrappersSettings(stack_frames=4, scale=True).stack_frames
    4
    """

    _dialect: ClassVar[str] = "wrappers"

    no_op_max: int = 0
    repeat_action: int = 1
    normalize_reward: bool = False
    normalization_factor: float = 0.5
    clip_reward: bool = False
    no_attack_buttons_combinations: bool = False
    frame_shape: tuple[int, int, int] = (0, 0, 0)
    stack_frames: int = 1
    dilation: int = 1
    add_last_action: bool = False
    stack_actions: int = 1
    scale: bool = False
    exclude_image_scaling: bool = False
    process_discrete_binary: bool = False
    role_relative: bool = False
    flatten: bool = False
    filter_keys: tuple[str, ...] | None = None
    wrappers: tuple[Any, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        o = type(self).__name__
        self._set("no_op_max", _int(o, "no_op_max", self.no_op_max, 0, 100_000))
        self._set("repeat_action", _int(o, "repeat_action", self.repeat_action, 1, 10_000))
        self._set("stack_frames", _int(o, "stack_frames", self.stack_frames, 1, MAX_STACK))
        self._set("dilation", _int(o, "dilation", self.dilation, 1, MAX_STACK))
        self._set("stack_actions", _int(o, "stack_actions", self.stack_actions, 1, MAX_STACK))
        for name in (
            "normalize_reward", "clip_reward", "no_attack_buttons_combinations", "add_last_action",
            "scale", "exclude_image_scaling", "process_discrete_binary", "role_relative", "flatten",
        ):
            self._set(name, _bool(o, name, getattr(self, name)))
        nf = self.normalization_factor
        if not _number(nf) or not math.isfinite(nf) or not nf > 0:
            raise _fail(o, "normalization_factor", nf, "a number > 0")
        self._set("normalization_factor", float(nf))
        self._set("frame_shape", _frame_shape(o, "frame_shape", self.frame_shape))
        if self.filter_keys is not None:
            if isinstance(self.filter_keys, str) or not all(isinstance(k, str) for k in self.filter_keys):
                raise _fail(o, "filter_keys", self.filter_keys, "a list of observation key names, or None")
            self._set("filter_keys", tuple(self.filter_keys))
        self._set("wrappers", tuple(_user_wrapper(o, w) for w in (self.wrappers or ())))

    @property
    def is_identity(self) -> bool:
        """True when these settings change nothing."""
        return self == WrappersSettings()

    @classmethod
    def from_json(cls, data: Mapping[str, Any], wrappers: Sequence[type] = ()) -> WrappersSettings:
        """Rebuild settings stored in a file or a policy: data never names code.

        A recorded user wrapper is only a name (``"package.module.Class"``); nothing read is
        imported or called. It is re-applied only when ``wrappers`` (classes the caller passes in
        code) holds a class of that qualified name; every other recorded wrapper is left out with
        one :class:`~trajarena.errors.WrapperNotAppliedWarning` that names it.

        >>> stored = {"stack_frames": 2, "wrappers": [["os.system", {"command": "echo owned"}]]}
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     s = WrappersSettings.from_json(stored)
        >>> s.stack_frames, s.wrappers
        (2, ())
        >>> print(caught[0].message)
        recorded user wrapper(s) not re-applied: os.system (data never names code; pass the class in wrappers=[...] to re-apply it)
        """
        if not isinstance(data, Mapping):
            raise _fail(cls.__name__, "(stored settings)", type(data).__name__, "a JSON object")
        data = dict(data)
        by_name = {qualified_name(w): w for w in wrappers}
        recorded = data.get("wrappers") or ()
        if not isinstance(recorded, list | tuple):
            raise _fail(cls.__name__, "wrappers", recorded, "a list of [name, kwargs] pairs")
        applied, missing = [], []
        for item in recorded:
            if not (isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str)
                    and isinstance(item[1], Mapping)):
                raise _fail(cls.__name__, "wrappers", item, "a [qualified class name, kwargs] pair")
            if item[0] in by_name:
                applied.append((by_name[item[0]], dict(item[1])))
            else:
                missing.append(item[0][:200])
        if missing:
            warnings.warn(f"recorded user wrapper(s) not re-applied: {', '.join(missing)} (data never names code; "
                          "pass the class in wrappers=[...] to re-apply it)", WrapperNotAppliedWarning, stacklevel=2)
        data["wrappers"] = applied
        return cls.from_dict(data)


def qualified_name(obj: Any) -> str:
    """``module.QualName`` of a class: how a user wrapper is stored in a file.

    >>> import gymnasium
    >>> qualified_name(gymnasium.wrappers.TimeLimit)
    'gymnasium.wrappers.common.TimeLimit'
    """
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _user_wrapper(owner: str, item: Any) -> tuple[type, dict[str, Any]]:
    if isinstance(item, type):
        item = (item, {})
    if (
        not isinstance(item, list | tuple) or len(item) != 2 or not isinstance(item[0], type)
        or not issubclass(item[0], gym.Wrapper) or not isinstance(item[1], Mapping)
    ):
        raise _fail(owner, "wrappers", item, "a [WrapperClass, kwargs_dict] pair (a gymnasium.Wrapper subclass)")
    return (item[0], dict(item[1]))


@dataclass(frozen=True)
class RecordingSettings(_Settings):
    """Trajectory recording settings (DIAMBRA's ``RecordingSettings``, plus a few extras).

    Args:
        username: who played; stored in every file.
        file_path: the folder the trajectory files go to (created if missing).
        ignore_p2: 1 marks P2's side of a 2-player recording as not a demonstration (e.g. an agent
            playing against a human P1); the loader then replays only P1's side.
        ignore_p1: 1 marks P1's side of a 2-player recording as not a demonstration (e.g. an agent
            playing against a human P2); the loader then replays only P2's side. At most one of
            ``ignore_p1`` and ``ignore_p2`` may be 1.
        players: who controls each side, e.g. ``{"P1": "human", "P2": "cpu"}``; stored in the metadata.
        flush_seconds: the longest time steps stay in memory before reaching the disk.
        compression: "zstd" (default), "lz4" or "none".
        compression_level: codec level, None for the library's measured default.

    >>> RecordingSettings(username="alex", file_path="data/duel").ignore_p2
    0
    >>> RecordingSettings(file_path="data/duel", ignore_p1=1).ignore_p1
    1
    """

    _dialect: ClassVar[str] = "recording"

    username: str = ""
    file_path: str = ""
    ignore_p2: int = 0
    ignore_p1: int = 0
    players: dict[str, str] | None = None
    flush_seconds: float = 2.0
    compression: str = "zstd"
    compression_level: int | None = None

    def __post_init__(self) -> None:
        o = type(self).__name__
        if not isinstance(self.username, str):
            raise _fail(o, "username", self.username, "a string")
        if not isinstance(self.file_path, str) or not self.file_path:
            import os

            if isinstance(self.file_path, os.PathLike):
                self._set("file_path", os.fspath(self.file_path))
            else:
                raise _fail(o, "file_path", self.file_path, "a non-empty folder path where files are written")
        for name in ("ignore_p2", "ignore_p1"):
            value = getattr(self, name)
            if value not in (0, 1) or isinstance(value, float):
                raise _fail(o, name, value, "0 or 1")
            self._set(name, int(value))
        if self.ignore_p1 and self.ignore_p2:
            raise SettingsError(f"{o}: ignore_p1 and ignore_p2 are both 1, so no side would be a demonstration; "
                                "set at most one of them.")
        if self.players is not None:
            if not isinstance(self.players, Mapping) or not all(
                k in ROLES and isinstance(v, str) for k, v in self.players.items()
            ):
                raise _fail(o, "players", self.players, "a dict like {'P1': 'human', 'P2': 'cpu'}")
            self._set("players", dict(self.players))
        fs = self.flush_seconds
        if isinstance(fs, bool) or not isinstance(fs, int | float) or not 0 < fs <= 3600:
            raise _fail(o, "flush_seconds", fs, "a number of seconds in (0, 3600]")
        self._set("compression", _choice(o, "compression", self.compression, ("zstd", "lz4", "none")))
        if self.compression_level is not None:
            self._set("compression_level", _int(o, "compression_level", self.compression_level, -7, 22))


def as_settings(cls: type[_Settings], value: Any) -> Any:
    """Coerce ``None``, a dict or an instance to ``cls``."""
    return cls.from_dict(value)
