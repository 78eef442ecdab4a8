"""Live controls: what the humans hold on keyboards and gamepads, turned into fighting-game actions.

:class:`HumanController` tracks held input from pygame events (keys by the
:class:`~trajarena.play.keymap.Keymap`, gamepads given to the humans as they are plugged in and freed
when unplugged) and samples one :class:`Buttons` per player and env step; :func:`encode_action`
turns buttons into an action of the game's action space. Input state is tracked from the events
themselves (``KEYDOWN``/``KEYUP``, joystick hat/axis/button events), never from
``pygame.key.get_pressed()``, so events injected by a test or a script drive it exactly like a real
keyboard; :func:`scripted_events` is such a source for tests and demos. Only the controller needs
pygame; the action mapping is plain data.

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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.errors import SettingsError
from trajarena.fighting import ATTACK_NAMES, MOVE_NAMES
from trajarena.play.keymap import CONTROLS, Keymap, init_pygame


__all__ = [
    "ATTACK_NAMES",
    "MOVE_NAMES",
    "Buttons",
    "HumanController",
    "attack_index",
    "encode_action",
    "move_index",
    "scripted_events",
]

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
            if event.button in gp.takeover:
                return "takeover"
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


def scripted_events(frames: Iterable[Sequence[Any]], then_quit: bool = True) -> Callable[[], list[Any]]:
    """An event source for tests and demos: each poll returns the next list of events.

    When the script runs out, every poll returns a ``QUIT`` event (or nothing with ``then_quit=False``).

    >>> import pygame
    >>> source = scripted_events([[pygame.event.Event(pygame.KEYDOWN, key=pygame.K_z)]])
    >>> len(source()), source()[0].type == pygame.QUIT
    (1, True)
    """
    pygame = init_pygame()
    it = iter(frames)

    def poll() -> list[Any]:
        try:
            return list(next(it))
        except StopIteration:
            return [pygame.event.Event(pygame.QUIT)] if then_quit else []

    return poll
