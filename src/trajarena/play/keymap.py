"""Key maps: which keys and gamepad buttons drive each player's controls and the play loop's commands.

A :class:`Keymap` holds the keyboard keys of up to two humans (:class:`PlayerKeys`, pygame key names,
several keys per control), the gamepad buttons and sticks (:class:`GamepadMap`) and the global
commands (pause, discard, help, quit, and take over: a human takes the controls from the agent and
hands them back). It owns the defaults, loading from a TOML or JSON file
(plain data, never pickle) with validation that names the bad entry, and printing: as TOML
(:meth:`Keymap.to_toml`), as a table for the screen and as text for the terminal. Everything here is
data and needs no pygame, except :meth:`Keymap.key_codes`, which resolves the key names with pygame
(:func:`init_pygame`) for :class:`~trajarena.play.controls.HumanController`.

>>> km = Keymap.from_dict({"players": [{"punch": ["space", "z"]}]})
>>> km.players[0].punch, key_label(km.players[0].punch), km.quit
(('space', 'z'), 'Space / Z', ('escape',))
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from trajarena.errors import SettingsError, close_matches, require

__all__ = ["COMMANDS", "CONTROLS", "GamepadMap", "Keymap", "PlayerKeys", "init_pygame", "key_label"]

#: The controls of one player, and the global commands of the play loop.
CONTROLS = ("up", "down", "left", "right", "punch", "kick", "guard")
COMMANDS = ("pause", "discard", "help", "quit", "takeover")


def _names(owner: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) and v for v in value):
        raise SettingsError(f"key map entry {owner!r} must be a key name or a non-empty list of them "
                            f"(e.g. ['left', 'a']), got {value!r}.")
    return tuple(v.lower() for v in value)


def _ints(owner: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, list | tuple) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise SettingsError(f"gamepad entry {owner!r} must be a button number >= 0 or a non-empty list of them "
                            f"(e.g. [2, 3]), got {value!r}.")
    return tuple(value)


def _from_mapping(cls: type, data: Any, owner: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise SettingsError(f"key map section {owner!r} must be a table/object, got {type(data).__name__}.")
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            raise SettingsError(
                f"unknown key map entry {key!r} in {owner!r}.{close_matches(str(key), names)} Valid entries: {', '.join(names)}"
            )
    return dict(data)


@dataclass(frozen=True)
class PlayerKeys:
    """The keyboard keys of one player, as pygame key names (``pygame.key.name``); several keys per control.

    >>> PlayerKeys(left=("a",), right=("d",)).left
    ('a',)
    """

    up: tuple[str, ...] = ("up",)
    down: tuple[str, ...] = ("down",)
    left: tuple[str, ...] = ("left",)
    right: tuple[str, ...] = ("right",)
    punch: tuple[str, ...] = ("z",)
    kick: tuple[str, ...] = ("x",)
    guard: tuple[str, ...] = ("c",)

    def __post_init__(self) -> None:
        for name in CONTROLS:
            object.__setattr__(self, name, _names(name, getattr(self, name)))

    @classmethod
    def from_dict(cls, data: Any, owner: str = "player") -> PlayerKeys:
        """Build from a dict of control -> key name(s); missing controls keep their defaults."""
        return cls(**_from_mapping(cls, data, owner))


@dataclass(frozen=True)
class GamepadMap:
    """Gamepad buttons (SDL joystick numbers) and sticks; directions come from the hat and the stick.

    The defaults fit an Xbox-style pad: X/Y punch, A/B kick, shoulders guard, Start pauses, Back discards,
    a click of the left stick takes over from the agent (and hands back).

    >>> GamepadMap().punch
    (2, 3)
    """

    punch: tuple[int, ...] = (2, 3)
    kick: tuple[int, ...] = (0, 1)
    guard: tuple[int, ...] = (4, 5)
    pause: tuple[int, ...] = (7,)
    discard: tuple[int, ...] = (6,)
    takeover: tuple[int, ...] = (9,)
    axis_x: int = 0
    axis_y: int = 1
    dead_zone: float = 0.5

    def __post_init__(self) -> None:
        owner: dict[int, str] = {}
        for name in ("punch", "kick", "guard", "pause", "discard", "takeover"):
            object.__setattr__(self, name, _ints(name, getattr(self, name)))
            for button in getattr(self, name):
                if owner.setdefault(button, name) != name:
                    raise SettingsError(f"gamepad button {button} is bound twice in the key map ({owner[button]} "
                                        f"and {name}); give each control its own button.")
        for name in ("axis_x", "axis_y"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SettingsError(f"gamepad entry {name!r} must be an axis number >= 0, got {value!r}.")
        if not isinstance(self.dead_zone, int | float) or not 0 < self.dead_zone < 1:
            raise SettingsError(f"gamepad entry 'dead_zone' must be a number in (0, 1), got {self.dead_zone!r}.")

    @classmethod
    def from_dict(cls, data: Any) -> GamepadMap:
        """Build from a dict; missing entries keep their defaults."""
        return cls(**_from_mapping(cls, data, "gamepad"))


_P1_TWO = PlayerKeys(up=("w",), down=("s",), left=("a",), right=("d",), punch=("f",), kick=("g",), guard=("h",))
_P2_TWO = PlayerKeys(punch=("[1]", "j"), kick=("[2]", "k"), guard=("[3]", "l"))


@dataclass(frozen=True)
class Keymap:
    """The keys and gamepad buttons of up to two human players, and the global commands.

    ``players[0]`` is the first human (whichever side P1/P2 it plays), ``players[1]`` the second.
    Load one from a TOML or JSON file with :meth:`load`; missing entries keep the defaults.

    >>> km = Keymap.default(n_humans=2)
    >>> km.players[0].left, km.players[1].left, km.pause
    (('a',), ('left',), ('p', 'pause'))
    >>> Keymap.from_dict({"players": [{"punch": "space"}]}).players[0].punch
    ('space',)
    """

    players: tuple[PlayerKeys, ...] = (PlayerKeys(), _P2_TWO)
    pause: tuple[str, ...] = ("p", "pause")
    discard: tuple[str, ...] = ("backspace",)
    help: tuple[str, ...] = ("f1", "tab")
    quit: tuple[str, ...] = ("escape",)
    takeover: tuple[str, ...] = ("t",)
    gamepad: GamepadMap = field(default_factory=GamepadMap)

    def __post_init__(self) -> None:
        if not isinstance(self.players, list | tuple) or not 1 <= len(self.players) <= 2:
            raise SettingsError(f"a key map has key sets for 1 or 2 players, got {self.players!r}.")
        players = tuple(p if isinstance(p, PlayerKeys) else PlayerKeys.from_dict(p) for p in self.players)
        object.__setattr__(self, "players", players)
        for name in COMMANDS:
            object.__setattr__(self, name, _names(name, getattr(self, name)))
        if not isinstance(self.gamepad, GamepadMap):
            object.__setattr__(self, "gamepad", GamepadMap.from_dict(self.gamepad))

    @classmethod
    def default(cls, n_humans: int = 1) -> Keymap:
        """Arrows + Z/X/C for one human; W/A/S/D + F/G/H and arrows + J/K/L (or keypad 1/2/3) for two."""
        if n_humans == 2:
            return cls(players=(_P1_TWO, _P2_TWO))
        return cls()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], n_humans: int = 1) -> Keymap:
        """Build from a dict shaped like the TOML file; the players' entries override :meth:`default`."""
        data = _from_mapping(cls, data, "keymap")
        base = cls.default(n_humans)
        players = list(base.players)
        given = data.pop("players", [])
        if not isinstance(given, list | tuple) or len(given) > 2:
            raise SettingsError(f"key map 'players' must be a list of at most 2 tables, got {given!r}.")
        for i, p in enumerate(given):
            defaults = {f.name: getattr(players[i], f.name) for f in fields(PlayerKeys)}
            players[i] = PlayerKeys.from_dict({**defaults, **_from_mapping(PlayerKeys, p, f"players[{i}]")})
        if "gamepad" in data:
            data["gamepad"] = GamepadMap.from_dict(data["gamepad"])
        return cls(players=tuple(players), **data)

    @classmethod
    def load(cls, path: str | os.PathLike[str], n_humans: int = 1) -> Keymap:
        """Load a key map from a ``.toml`` or ``.json`` file (plain data, never pickle).

        Raises:
            SettingsError: unknown extension, unreadable file, unknown entries or bad values.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(f"cannot read the key map file {str(path)!r}: {exc}.") from exc
        try:
            if path.suffix.lower() == ".toml":
                data = tomllib.loads(text)
            elif path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                raise SettingsError(f"a key map file must end in .toml or .json, got {str(path)!r}.")
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise SettingsError(f"the key map file {str(path)!r} is not valid {path.suffix[1:].upper()}: {exc}") from exc
        return cls.from_dict(data, n_humans=n_humans)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` reads back."""
        out: dict[str, Any] = {name: list(getattr(self, name)) for name in COMMANDS}
        out["players"] = [{name: list(getattr(p, name)) for name in CONTROLS} for p in self.players]
        gp = self.gamepad
        out["gamepad"] = {f.name: list(v) if isinstance(v := getattr(gp, f.name), tuple) else v for f in fields(gp)}
        return out

    def to_toml(self) -> str:
        """The key map as a TOML document (what ``--keymap file.toml`` reads)."""

        def value(v: Any) -> str:
            return json.dumps(v) if not isinstance(v, list) else "[" + ", ".join(json.dumps(x) for x in v) + "]"

        d = self.to_dict()
        lines = ["# trajarena key map: pygame key names; several keys per control are allowed."]
        lines += [f"{k} = {value(d[k])}" for k in COMMANDS]
        for p in d["players"]:
            lines += ["", "[[players]]"] + [f"{k} = {value(v)}" for k, v in p.items()]
        lines += ["", "[gamepad]"] + [f"{k} = {value(v)}" for k, v in d["gamepad"].items()]
        return "\n".join(lines) + "\n"

    def table(self, n_humans: int = 1, takeover: bool = False) -> tuple[list[str], list[tuple[str, list[str]]]]:
        """The key map as a table: column headers and ``(control, [keys per column])`` rows.

        Columns are the humans' keyboards, then the gamepad; the global commands follow in one column.
        ``takeover`` adds the take-over row (shown when an agent plays that a human may take over from).

        >>> head, rows = Keymap.default(1).table(1)
        >>> head, rows[0], rows[1]
        (['keyboard', 'gamepad'], ('move', ['arrows', 'd-pad / stick']), ('punch', ['Z', 'X / Y']))
        """
        players = self.players[:n_humans]
        head = ["keyboard"] if n_humans == 1 else [f"player {i + 1}" for i in range(n_humans)]
        head.append("gamepad" if n_humans == 1 else "gamepads")
        gp = self.gamepad
        rows = [("move", [_move_label(p) for p in players] + ["d-pad / stick"])]
        for control in ("punch", "kick", "guard"):
            rows.append((control, [key_label(getattr(p, control)) for p in players] + [_pad_label(getattr(gp, control))]))
        rows.append(("pause", [key_label(self.pause)] + [""] * (n_humans - 1) + [_pad_label(gp.pause)]))
        rows.append(("discard episode", [key_label(self.discard)] + [""] * (n_humans - 1) + [_pad_label(gp.discard)]))
        if takeover:
            rows.append(("take over / hand back", [key_label(self.takeover)] + [""] * (n_humans - 1)
                         + [_pad_label(gp.takeover)]))
        rows.append(("help", [key_label(self.help)] + [""] * n_humans))
        rows.append(("quit", [key_label(self.quit) + " / close window"] + [""] * n_humans))
        return head, rows

    def describe(self, n_humans: int = 1, takeover: bool = False) -> list[str]:
        """The key map as aligned text lines (printed in the terminal at start)."""
        head, rows = self.table(n_humans, takeover)
        width = [max(len(r[0]) for r in rows)] + [
            max(len(head[c]), *(len(r[1][c]) for r in rows)) for c in range(len(head))
        ]
        lines = ["  ".join(x.ljust(w) for x, w in zip(["", *head], width, strict=True)).rstrip()]
        lines += ["  ".join(x.ljust(w) for x, w in zip([r[0], *r[1]], width, strict=True)).rstrip() for r in rows]
        return lines

    def key_codes(self, n_humans: int) -> dict[int, tuple[str, int | None]]:
        """Resolve key names with pygame: key code -> (control or command, player index or None).

        Raises:
            SettingsError: an unknown key name, or one key bound twice.
        """
        pygame = init_pygame()
        table: dict[int, tuple[str, int | None]] = {}
        names: dict[int, str] = {}

        def bind(name: str, target: tuple[str, int | None]) -> None:
            try:
                code = pygame.key.key_code(name)
            except ValueError:
                raise SettingsError(
                    f"unknown key name {name!r} in the key map; use pygame key names such as 'left', 'a', "
                    f"'space', 'return', 'left shift', '[1]' (keypad 1), 'f1'."
                ) from None
            if code in table and table[code] != target:
                raise SettingsError(
                    f"key {name!r} is bound twice in the key map ({_label(table[code])} and {_label(target)}); "
                    "give each control its own key."
                )
            table[code], names[code] = target, name

        for name in COMMANDS:
            for key in getattr(self, name):
                bind(key, (name, None))
        for i, p in enumerate(self.players[:n_humans]):
            for control in CONTROLS:
                for key in getattr(p, control):
                    bind(key, (control, i))
        return table


_KEY_LABELS = {
    "escape": "Esc", "backspace": "Backspace", "return": "Enter", "space": "Space", "tab": "Tab",
    "left shift": "LShift", "right shift": "RShift", "left ctrl": "LCtrl", "right ctrl": "RCtrl",
    "up": "Up", "down": "Down", "left": "Left", "right": "Right", "pause": "Pause",
}
_PAD_LABELS = ("A", "B", "X", "Y", "LB", "RB", "Back", "Start", "Guide", "LS click", "RS click")


def key_label(names: Iterable[str]) -> str:
    """How key names are shown: ``('[1]', 'j')`` -> ``'Num1 / J'``.

    >>> key_label(("escape",)), key_label(("[1]", "j")), key_label(("f1", "tab"))
    ('Esc', 'Num1 / J', 'F1 / Tab')
    """
    out = []
    for n in names:
        if n in _KEY_LABELS:
            out.append(_KEY_LABELS[n])
        elif len(n) == 3 and n[0] == "[" and n[2] == "]":
            out.append("Num" + n[1])
        else:
            out.append(n.upper() if len(n) <= 3 else n.title())
    return " / ".join(out)


def _move_label(p: PlayerKeys) -> str:
    keys = (p.up, p.left, p.down, p.right)
    if keys == (("up",), ("left",), ("down",), ("right",)):
        return "arrows"
    return " ".join(key_label(k) for k in keys)


def _pad_label(buttons: tuple[int, ...]) -> str:
    return " / ".join(_PAD_LABELS[b] if b < len(_PAD_LABELS) else f"button {b}" for b in buttons)


def init_pygame() -> Any:
    """Import pygame (or fail with the install command) and start its display and joystick parts.

    Raises:
        MissingDependencyError: pygame is not installed (``pip install 'trajarena[play]'``).
    """
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    pygame = require("pygame", "play", "Human play")
    if not pygame.display.get_init():
        pygame.display.init()
    if not pygame.joystick.get_init():
        pygame.joystick.init()
    return pygame


def _label(target: tuple[str, int | None]) -> str:
    name, player = target
    return name if player is None else f"player {player + 1} {name}"
