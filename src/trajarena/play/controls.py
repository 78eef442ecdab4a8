"""Human controls: key maps, gamepads, held-input tracking and the mapping to fighting-game actions.

The data half of this module (:class:`Keymap`, :func:`encode_action`) needs no pygame; the event half
(:class:`HumanController`) reads pygame events. Input state is tracked from the events themselves
(``KEYDOWN``/``KEYUP``, joystick hat/axis/button events), never from ``pygame.key.get_pressed()``,
so events injected by a test or a script drive it exactly like a real keyboard.

Actions follow the DIAMBRA layout of ``duel``: moves ``0`` no-move, ``1`` left, ``2`` up-left,
``3`` up, ``4`` up-right, ``5`` right, ``6`` down-right, ``7`` down, ``8`` down-left; attacks
``0`` none, ``1`` P, ``2`` K, ``3`` G, ``4`` P+K, ``5`` P+G, ``6`` K+G, ``7`` P+K+G. Opposite
directions cancel. In ``Discrete(16)`` (``0`` no-op, ``1..8`` moves, ``9..15`` attacks ``1..7``) a
held button wins over a held direction, since one discrete action cannot carry both.

>>> encode_action(Buttons(right=True, punch=True, kick=True), spaces.MultiDiscrete([9, 8])).tolist()
[5, 4]
>>> encode_action(Buttons(left=True, right=True, down=True), spaces.Discrete(16))
7
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.errors import SettingsError, close_matches, require

__all__ = [
    "ATTACK_NAMES",
    "CONTROLS",
    "COMMANDS",
    "MOVE_NAMES",
    "Buttons",
    "GamepadMap",
    "HumanController",
    "Keymap",
    "PlayerKeys",
    "attack_index",
    "encode_action",
    "init_pygame",
    "key_label",
    "move_index",
]

#: Names of the 9 moves and 8 attack-button combinations, by action index.
MOVE_NAMES = ("no-move", "left", "up-left", "up", "up-right", "right", "down-right", "down", "down-left")
ATTACK_NAMES = ("none", "P", "K", "G", "P+K", "P+G", "K+G", "P+K+G")
#: The controls of one player, and the global commands of the play loop.
CONTROLS = ("up", "down", "left", "right", "punch", "kick", "guard")
COMMANDS = ("pause", "discard", "help", "quit")

# (dx, dy) -> move index; dy = +1 is up
_MOVES = {(0, 0): 0, (-1, 0): 1, (-1, 1): 2, (0, 1): 3, (1, 1): 4, (1, 0): 5, (1, -1): 6, (0, -1): 7, (-1, -1): 8}
# (punch, kick, guard) -> attack index
_ATTACKS = {
    (False, False, False): 0, (True, False, False): 1, (False, True, False): 2, (False, False, True): 3,
    (True, True, False): 4, (True, False, True): 5, (False, True, True): 6, (True, True, True): 7,
}


@dataclass(frozen=True)
class Buttons:
    """What one player holds during one env step.

    >>> Buttons(up=True, guard=True).pressed()
    ('up', 'guard')
    """

    up: bool = False
    down: bool = False
    left: bool = False
    right: bool = False
    punch: bool = False
    kick: bool = False
    guard: bool = False

    def pressed(self) -> tuple[str, ...]:
        """The names of the held controls, in :data:`CONTROLS` order."""
        return tuple(name for name in CONTROLS if getattr(self, name))

    @classmethod
    def of(cls, names: Iterable[str]) -> Buttons:
        """Buttons with the named controls held."""
        return cls(**{name: True for name in names})


def move_index(left: bool, right: bool, up: bool, down: bool) -> int:
    """The move index of a held direction; opposite directions cancel.

    >>> move_index(left=True, right=False, up=True, down=False), move_index(True, True, False, False)
    (2, 0)
    """
    return _MOVES[(int(right) - int(left), int(up) - int(down))]


def attack_index(punch: bool, kick: bool, guard: bool, n_attacks: int = 8) -> int:
    """The attack index of held buttons; with 4 attacks (no combinations) P beats K beats G.

    >>> attack_index(True, True, False), attack_index(True, True, False, n_attacks=4)
    (4, 1)
    """
    if n_attacks == 8:
        return _ATTACKS[(bool(punch), bool(kick), bool(guard))]
    if n_attacks == 4:
        return 1 if punch else 2 if kick else 3 if guard else 0
    raise SettingsError(f"fighting-game actions have 8 attacks (4 without combinations), got {n_attacks}.")


def encode_action(buttons: Buttons, space: spaces.Space) -> Any:
    """The action of ``space`` (``MultiDiscrete([9, n])`` or ``Discrete(9 + n - 1)``) for ``buttons``.

    Raises:
        SettingsError: the space is not a fighting-game action space a human can drive.
    """
    move = move_index(buttons.left, buttons.right, buttons.up, buttons.down)
    if isinstance(space, spaces.MultiDiscrete) and space.shape == (2,) and int(space.nvec[0]) == 9:
        attack = attack_index(buttons.punch, buttons.kick, buttons.guard, int(space.nvec[1]))
        return np.array([move, attack], dtype=space.dtype)
    if isinstance(space, spaces.Discrete) and int(space.n) in (16, 12) and int(space.start) == 0:
        attack = attack_index(buttons.punch, buttons.kick, buttons.guard, int(space.n) - 8)
        return int(8 + attack) if attack else int(move)
    raise SettingsError(
        f"human play needs a fighting-game action space, MultiDiscrete([9, 8]) or Discrete(16) (or their "
        f"no-combination forms [9, 4] / Discrete(12)), got {space}. Play 'duel' or a game with that layout."
    )


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

    The defaults fit an Xbox-style pad: X/Y punch, A/B kick, shoulders guard, Start pauses, Back discards.

    >>> GamepadMap().punch
    (2, 3)
    """

    punch: tuple[int, ...] = (2, 3)
    kick: tuple[int, ...] = (0, 1)
    guard: tuple[int, ...] = (4, 5)
    pause: tuple[int, ...] = (7,)
    discard: tuple[int, ...] = (6,)
    axis_x: int = 0
    axis_y: int = 1
    dead_zone: float = 0.5

    def __post_init__(self) -> None:
        owner: dict[int, str] = {}
        for name in ("punch", "kick", "guard", "pause", "discard"):
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

    def table(self, n_humans: int = 1) -> tuple[list[str], list[tuple[str, list[str]]]]:
        """The key map as a table: column headers and ``(control, [keys per column])`` rows.

        Columns are the humans' keyboards, then the gamepad; the global commands follow in one column.

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
        rows.append(("help", [key_label(self.help)] + [""] * n_humans))
        rows.append(("quit", [key_label(self.quit) + " / close window"] + [""] * n_humans))
        return head, rows

    def describe(self, n_humans: int = 1) -> list[str]:
        """The key map as aligned text lines (printed in the terminal at start)."""
        head, rows = self.table(n_humans)
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
_PAD_LABELS = ("A", "B", "X", "Y", "LB", "RB", "Back", "Start", "Guide", "LS", "RS")


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



class HumanController:
    """Tracks what each human holds, from pygame keyboard and joystick events, and makes actions.

    Feed it events with :meth:`handle` (or let :meth:`poll` read them), then :meth:`sample` once per
    env step. A press and release between two samples still counts for the next sample, so short taps
    are never lost at ``step_ratio > 1``. Gamepads are given to the humans in the order they appear
    (``JOYDEVICEADDED``, or their first event) and freed when unplugged (``JOYDEVICEREMOVED``).

    Args:
        keymap: the key map; :meth:`Keymap.default` for ``n_humans`` when None.
        n_humans: 1 or 2 players sharing the keyboard (and one gamepad each).
        events: a callable returning the pending events; ``pygame.event.get`` when None.

    >>> import pygame
    >>> c = HumanController(n_humans=1, events=lambda: [])
    >>> c.handle(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RIGHT))
    >>> c.handle(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_z))
    >>> c.handle(pygame.event.Event(pygame.KEYUP, key=pygame.K_z))      # a tap between two samples
    >>> c.sample(0).pressed(), c.sample(0).pressed()
    (('right', 'punch'), ('right',))
    """

    def __init__(self, keymap: Keymap | None = None, n_humans: int = 1, events: Any = None) -> None:
        if n_humans not in (1, 2):
            raise SettingsError(f"n_humans must be 1 or 2, got {n_humans!r}.")
        self.pygame = init_pygame()
        self.keymap = keymap if keymap is not None else Keymap.default(n_humans)
        if len(self.keymap.players) < n_humans:
            raise SettingsError(f"the key map has keys for {len(self.keymap.players)} player(s), {n_humans} humans play.")
        self.n_humans = n_humans
        self._events = events if events is not None else self.pygame.event.get
        self._codes = self.keymap.key_codes(n_humans)
        self._keys_down: set[int] = set()
        self._latched: list[set[str]] = [set() for _ in range(n_humans)]
        self._pads: dict[int, int] = {}  # joystick instance id -> human index
        self._pad_state: dict[int, dict[str, Any]] = {}
        self._joysticks: dict[int, Any] = {}  # keep opened devices alive
        #: set by :meth:`handle` on any key or gamepad button press (the caller clears it)
        self.any_press = False
        #: the commands of the last :meth:`get_actions` call
        self.commands: list[str] = []

    # -- events ---------------------------------------------------------------------------------
    def poll(self) -> list[str]:
        """Handle every pending event; return the commands they gave (``"pause"``, ``"quit"``…)."""
        return [cmd for event in self._events() if (cmd := self.handle(event)) is not None]

    def handle(self, event: Any) -> str | None:
        """Update the input state from one event; return a command name or None."""
        pg, t = self.pygame, event.type
        if t in (pg.KEYDOWN, pg.JOYBUTTONDOWN):
            self.any_press = True
        if t == pg.QUIT:
            return "quit"
        if t in (pg.KEYDOWN, pg.KEYUP):
            target = self._codes.get(event.key)
            if target is None:
                return None
            name, player = target
            if player is None:
                return name if t == pg.KEYDOWN else None
            if t == pg.KEYDOWN:
                self._keys_down.add(event.key)
                self._latched[player].add(name)
            else:
                self._keys_down.discard(event.key)
            return None
        if t == getattr(pg, "WINDOWFOCUSLOST", None):
            self._keys_down.clear()  # keys released elsewhere never send KEYUP here
            return None
        if t == pg.JOYDEVICEADDED:
            self._add_pad(event)
            return None
        if t == pg.JOYDEVICEREMOVED:
            self._remove_pad(event.instance_id)
            return None
        if t in (pg.JOYBUTTONDOWN, pg.JOYBUTTONUP, pg.JOYHATMOTION, pg.JOYAXISMOTION):
            return self._pad_event(event)
        return None

    def _add_pad(self, event: Any) -> None:
        iid = getattr(event, "instance_id", None)
        try:
            stick = self.pygame.joystick.Joystick(event.device_index)
            iid = stick.get_instance_id()
            self._joysticks[iid] = stick
        except (self.pygame.error, AttributeError, IndexError):
            pass  # an injected event for a device that is not there
        if iid is not None:
            self._assign(iid)

    def _assign(self, iid: int) -> int | None:
        if iid in self._pads:
            return self._pads[iid]
        free = [i for i in range(self.n_humans) if i not in self._pads.values()]
        if not free:
            return None
        self._pads[iid] = free[0]
        self._pad_state[iid] = {"buttons": set(), "hat": (0, 0), "axes": {}}
        return free[0]

    def _remove_pad(self, iid: int) -> None:
        self._pads.pop(iid, None)
        self._pad_state.pop(iid, None)
        stick = self._joysticks.pop(iid, None)
        if stick is not None:
            stick.quit()

    def _pad_event(self, event: Any) -> str | None:
        pg = self.pygame
        iid = getattr(event, "instance_id", getattr(event, "joy", None))
        player = self._assign(iid) if iid is not None else None
        if player is None:
            return None
        state, gp = self._pad_state[iid], self.keymap.gamepad
        if event.type == pg.JOYBUTTONDOWN:
            if event.button in gp.pause:
                return "pause"
            if event.button in gp.discard:
                return "discard"
            state["buttons"].add(event.button)
            self._latched[player].update(n for n in ("punch", "kick", "guard") if event.button in getattr(gp, n))
        elif event.type == pg.JOYBUTTONUP:
            state["buttons"].discard(event.button)
        elif event.type == pg.JOYHATMOTION:
            if event.hat == 0:
                state["hat"] = tuple(event.value)
                self._latched[player].update(self._directions(*state["hat"]))
        else:
            state["axes"][event.axis] = float(event.value)
            self._latched[player].update(self._stick(state))
        return None

    @staticmethod
    def _directions(x: int, y: int) -> set[str]:
        out = set()
        if x < 0:
            out.add("left")
        if x > 0:
            out.add("right")
        if y > 0:
            out.add("up")  # hats report up as +1
        if y < 0:
            out.add("down")
        return out

    def _stick(self, state: dict[str, Any]) -> set[str]:
        gp = self.keymap.gamepad
        x, y = state["axes"].get(gp.axis_x, 0.0), state["axes"].get(gp.axis_y, 0.0)
        dz = gp.dead_zone
        return self._directions((x > dz) - (x < -dz), (y < -dz) - (y > dz))  # sticks report down as +

    # -- sampling -------------------------------------------------------------------------------
    def held(self, player: int) -> set[str]:
        """The controls human ``player`` holds right now (keyboard and gamepad)."""
        out = {name for code in self._keys_down if (name := self._codes[code][0]) and self._codes[code][1] == player}
        for iid, owner in self._pads.items():
            if owner == player:
                state, gp = self._pad_state[iid], self.keymap.gamepad
                out |= {n for n in ("punch", "kick", "guard") if state["buttons"] & set(getattr(gp, n))}
                out |= self._directions(*state["hat"]) | self._stick(state)
        return out

    def sample(self, player: int = 0) -> Buttons:
        """The buttons of human ``player`` for one env step: held now, or pressed since the last sample."""
        names = self.held(player) | self._latched[player]
        self._latched[player] = set()
        return Buttons.of(names)

    def clear_presses(self) -> None:
        """Forget presses latched since the last sample (held keys stay held)."""
        self._latched = [set() for _ in range(self.n_humans)]

    def release_all(self) -> None:
        """Forget every held key and latched press (e.g. after a pause)."""
        self._keys_down.clear()
        self._latched = [set() for _ in range(self.n_humans)]
        for state in self._pad_state.values():
            state["buttons"].clear()
            state["hat"], state["axes"] = (0, 0), {}

    @property
    def gamepads(self) -> dict[int, int]:
        """Connected gamepads: joystick instance id -> human index."""
        return dict(self._pads)

    def get_actions(self, action_space: spaces.Space) -> Any:
        """Poll events and return the action for ``action_space`` (DIAMBRA's ``controller.get_actions``).

        A ``Dict(agent_0=…, agent_1=…)`` space is driven by two humans. Commands given by the events are
        kept in :attr:`commands` for the caller (e.g. ``"quit"``).
        """
        self.commands = self.poll()
        if isinstance(action_space, spaces.Dict):
            return {k: encode_action(self.sample(i), action_space[k]) for i, k in enumerate(action_space.keys())}
        return encode_action(self.sample(0), action_space)
