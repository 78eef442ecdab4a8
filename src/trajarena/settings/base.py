"""The base of every settings class: building from dicts, unknown-key errors, validators, JSON.

:class:`Settings` gives a frozen dataclass ``from_dict`` (a dict, another instance or any
dataclass; an unknown key names the valid ones and the closest match), ``to_dict`` (JSON-ready) and
``replace``. The validators (``as_int``, ``as_bool``, ``as_choice``, ``as_frame_shape``) raise
:class:`~trajarena.errors.SettingsError` naming the class, the key, the value and what was expected.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any, ClassVar, Self

import numpy as np

from trajarena import dialects
from trajarena.errors import SettingsError, close_matches

#: The fighters of the built-in game, in the order of their ``character`` index.
DUEL_CHARACTERS: tuple[str, ...] = ("Kenji", "Mira", "Brutus", "Longo")
#: Number of outfits (colour palettes) per fighter.
DUEL_OUTFITS = 4
ROLES = ("P1", "P2")
#: Largest frame height/width a setting accepts, and the deepest frame/action stack.
MAX_FRAME_SIDE = 4096
MAX_STACK = 1024
ACTION_SPACES = ("multi_discrete", "discrete")


def fail(owner: str, key: str, value: Any, expected: str) -> SettingsError:
    return SettingsError(f"{owner}.{key} must be {expected}, got {value!r}.")


class Settings:
    """Shared behaviour: ``from_dict`` with unknown-key errors, ``to_dict`` and validation hooks."""

    _validators: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    #: other names a key may be given by (old name -> field), e.g. ``compression_level`` -> ``level``
    _aliases: ClassVar[dict[str, str]] = {}
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
        renamed = {}
        for old, new in cls._aliases.items():
            if old in merged:
                if new in merged:
                    raise SettingsError(f"{cls.__name__}: {old!r} and {new!r} name the same setting; give one.")
                merged[new] = merged.pop(old)
                renamed[new] = old
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        for key in merged:
            if key not in names:
                raise SettingsError(
                    f"unknown setting {key!r} for {cls.__name__}.{close_matches(str(key), names)} "
                    f"Valid settings: {', '.join(sorted(names))}"
                )
        try:
            return cls(**merged)
        except SettingsError as exc:
            text = str(exc)
            for new, old in renamed.items():  # name the key as the caller spelled it
                text = text.replace(f"{cls.__name__}.{new} ", f"{cls.__name__}.{old} ")
            if text == str(exc):
                raise
            raise SettingsError(text) from exc

    def to_dict(self, json: bool = True) -> dict[str, Any]:
        """The settings as a dict; with ``json=True`` every value is JSON-serialisable."""
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = jsonable(value) if json else value
        return out

    def replace(self, **changes: Any) -> Self:
        """A copy with some settings changed (validated again)."""
        return self.from_dict(self, **changes)

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)


def jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, type) or callable(value):
        return qualified_name(value)
    return value


def is_number(value: Any) -> bool:
    """A real number (Python or numpy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def as_int(owner: str, key: str, value: Any, lo: int, hi: int | None = None) -> int:
    if not is_number(value) or not math.isfinite(value) or int(value) != value:
        raise fail(owner, key, value, f"an integer >= {lo}" + (f" and <= {hi}" if hi is not None else ""))
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        raise fail(owner, key, value, f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}")
    return value


def as_bool(owner: str, key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise fail(owner, key, value, "True or False")


def as_frame_shape(owner: str, key: str, value: Any) -> tuple[int, int, int]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 3:
        raise fail(owner, key, value, "a (height, width, channels) triple, 0 meaning 'keep'")
    h, w, c = (as_int(owner, key, v, 0, MAX_FRAME_SIDE) for v in value)
    if c not in (0, 1, 3):
        raise fail(owner, key, value, "a shape whose channels are 0 (keep), 1 (greyscale) or 3 (RGB)")
    if (h == 0) != (w == 0):
        raise fail(owner, key, value, "a shape with both height and width set, or both 0 (keep)")
    return (h, w, c)


def as_choice(owner: str, key: str, value: Any, choices: Sequence[Any]) -> Any:
    if value not in choices:
        hint = close_matches(str(value), [str(c) for c in choices]) if isinstance(value, str) else ""
        raise SettingsError(
            f"{owner}.{key} must be one of {', '.join(map(repr, choices))}, got {value!r}.{hint}"
        )
    return value


def qualified_name(obj: Any) -> str:
    """``module.QualName`` of a class: how a user wrapper is stored in a file.

    >>> import gymnasium
    >>> qualified_name(gymnasium.wrappers.TimeLimit)
    'gymnasium.wrappers.common.TimeLimit'
    """
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def as_settings(cls: type[Settings], value: Any) -> Any:
    """Coerce ``None``, a dict or an instance to ``cls``."""
    return cls.from_dict(value)
