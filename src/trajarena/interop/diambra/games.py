"""What a DIAMBRA game is like: its action counts and RAM states, from DIAMBRA's own game table.

A DIAMBRA 2.2 recording stores actions, RAM-state values and the settings, but neither the action
counts nor the RAM states' ranges, which its loader never needed; a Gymnasium space needs both
(``MultiDiscrete([9, 10])`` for sfiii3n, ``Discrete(20)`` for a character index). DIAMBRA Arena
ships them in its game table (``diambra/arena/utils/integratedGames.json``, the file its engine
mock reads). :func:`game_facts` reads that table *as data* from the installed ``diambra-arena``
(``pip install 'trajarena[diambra]'``; nothing of diambra is imported) or from a path given, and
turns a game's entry into the spaces the live env has: ``Discrete(max + 1)`` for binary and
discrete RAM states, ``Box(min, max, (1,), int16)`` for the others, as DIAMBRA's env builds them.
The table is DIAMBRA Inc.'s; trajarena does not copy it.

>>> facts = GameFacts("demo", 9, 8, 4, ("Ann", "Bob"), {"common": {"timer": ("BOX", 0, 99)},
...                   "Px": {"side": ("BINARY", 0, 1), "health": ("BOX", 0, 100)}})
>>> facts.action_space("discrete"), facts.action_space("multi_discrete")
(Discrete(16), MultiDiscrete([9 8]))
>>> facts.observation_space((48, 64, 1))["P1"]
Dict('health': Box(0, 100, (1,), int16), 'side': Discrete(2))
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.errors import FormatError, MissingDependencyError

__all__ = ["GameFacts", "game_facts", "game_table", "installed_table_path"]

_TABLE = ("arena", "utils", "integratedGames.json")
_MAX_TABLE_BYTES = 4 << 20
_INT16 = np.iinfo(np.int16)


@dataclass(frozen=True)
class GameFacts:
    """One game of DIAMBRA's table: action counts, characters and RAM states.

    Args:
        game_id: DIAMBRA's id (``"doapp"``).
        n_moves: moves of the multi-discrete action (9 in every game).
        n_attacks: attack buttons and their combinations.
        n_attacks_no_comb: single attack buttons (``no_attack_buttons_combinations``).
        characters: the character names, in index order.
        ram_states: ``{"common": {name: (type, min, max)}, "Px": {...}}``; ``Px`` holds each player's.

    >>> GameFacts("demo", 9, 10, 7, (), {"Px": {"health": ("BOX", -1, 160)}}).ram_space("Px", "health")
    Box(-1, 160, (1,), int16)
    """

    game_id: str
    n_moves: int
    n_attacks: int
    n_attacks_no_comb: int
    characters: tuple[str, ...]
    ram_states: dict[str, dict[str, tuple[str, int, int]]]

    def action_space(self, kind: str, combinations: bool = True) -> spaces.Space:
        """One agent's action space: ``"discrete"`` or ``"multi_discrete"``, as DIAMBRA's env makes it."""
        attacks = self.n_attacks if combinations else self.n_attacks_no_comb
        if kind == "discrete":
            return spaces.Discrete(self.n_moves + attacks - 1)
        return spaces.MultiDiscrete([self.n_moves, attacks])

    def ram_space(self, category: str, name: str) -> spaces.Space:
        """The space of one RAM state, as DIAMBRA's env builds it."""
        kind, low, high = self.ram_states[category][name]
        if kind in ("BINARY", "DISCRETE"):
            return spaces.Discrete(high + 1)
        return spaces.Box(low, high, (1,), np.int16)

    def observation_space(self, frame_shape: tuple[int, int, int]) -> spaces.Dict:
        """The raw env's observation space for frames of ``(H, W, C)``: frame, common states, P1 and P2."""
        out: dict[str, spaces.Space] = {"frame": spaces.Box(0, 255, frame_shape, np.uint8)}
        for name in self.ram_states.get("common", {}):
            out[name] = self.ram_space("common", name)
        player = spaces.Dict({name: self.ram_space("Px", name) for name in self.ram_states.get("Px", {})})
        out["P1"], out["P2"] = player, spaces.Dict(dict(player.spaces))
        return spaces.Dict(out)


def installed_table_path() -> Path | None:
    """Where the installed diambra-arena keeps its game table, or None (found without importing diambra)."""
    try:
        spec = importlib.util.find_spec("diambra")
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root, *_TABLE)
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=8)
def _read_table(path: str) -> dict[str, GameFacts]:
    try:
        size = os.path.getsize(path)
        if size > _MAX_TABLE_BYTES:
            raise FormatError(f"{path}: a DIAMBRA game table of {size} bytes is larger than any real one")
        with open(path, "rb") as fh:
            raw = json.loads(fh.read())
    except (OSError, ValueError) as exc:
        raise FormatError(f"{path}: not a readable DIAMBRA game table (integratedGames.json): {exc}") from exc
    if not isinstance(raw, dict):
        raise FormatError(f"{path}: a DIAMBRA game table is a JSON object of games")
    return {game_id: _facts(path, game_id, entry) for game_id, entry in raw.items()}


def _facts(path: str, game_id: str, entry: Any) -> GameFacts:
    where = f"{path}: game {game_id!r}"
    try:
        n_moves, n_attacks, no_comb = (int(n) for n in entry["n_actions"])
        characters = tuple(str(c) for c in entry["char_list"])
        states: dict[str, dict[str, tuple[str, int, int]]] = {}
        for category, items in entry["ram_states"].items():
            states[category] = {}
            for name, (kind, low, high) in items.items():
                if kind not in ("BINARY", "DISCRETE", "BOX") or not _INT16.min <= int(low) <= int(high) <= _INT16.max:
                    raise ValueError(f"RAM state {name!r} is {kind} [{low}, {high}]")
                states[category][name] = (kind, int(low), int(high))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FormatError(f"{where} is not laid out as DIAMBRA's game table: {exc!r}") from exc
    if not (0 < n_moves <= 64 and 0 < no_comb <= n_attacks <= 256):
        raise FormatError(f"{where} has impossible action counts {[n_moves, n_attacks, no_comb]}")
    return GameFacts(game_id, n_moves, n_attacks, no_comb, characters, states)


def game_table(path: str | os.PathLike | None = None) -> dict[str, GameFacts]:
    """Every game of DIAMBRA's table, from ``path`` or from the installed diambra-arena.

    Raises:
        MissingDependencyError: no path given and diambra-arena is not installed.
        FormatError: the table is not laid out as DIAMBRA's.
    """
    found = Path(path) if path is not None else installed_table_path()
    if found is None:
        raise MissingDependencyError(
            "a DIAMBRA 2.2 recording stores neither action counts nor RAM-state ranges; trajarena reads them from "
            "the game table that diambra-arena ships (integratedGames.json), and diambra-arena is not installed. "
            "Install it with: pip install 'trajarena[diambra]' (or pass games=PATH to a copy of that table)"
        )
    return _read_table(str(found))


def game_facts(game_id: str, path: str | os.PathLike | None = None) -> GameFacts:
    """The facts of one game (see :func:`game_table`).

    Raises:
        FormatError: the table has no such game (the recording names a game this diambra-arena lacks).
    """
    table = game_table(path)
    if game_id not in table:
        raise FormatError(f"DIAMBRA game {game_id!r} is not in the game table of the installed diambra-arena "
                          f"(it has {', '.join(sorted(table))}); install the diambra-arena version that recorded it")
    return table[game_id]


def guess_game(characters: Any, path: str | os.PathLike | None = None) -> str | None:
    """The id of the one game whose character list is ``characters`` (2.1 files do not name their game)."""
    try:
        table = game_table(path)
    except MissingDependencyError:
        return None
    names = tuple(str(c) for c in characters) if isinstance(characters, list | tuple) else ()
    found = [g for g, facts in table.items() if facts.characters == names]
    return found[0] if len(found) == 1 else None
