"""Settings of the built-in fighting game ``duel`` (DIAMBRA's ``EnvironmentSettings``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from trajarena.settings.base import (
    ACTION_SPACES,
    DUEL_CHARACTERS,
    DUEL_OUTFITS,
    ROLES,
    Settings,
    as_choice,
    as_frame_shape,
    as_int,
    fail,
    is_number,
)

__all__ = ["EnvironmentSettings"]


@dataclass(frozen=True)
class EnvironmentSettings(Settings):
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
        self._set("n_players", as_int(o, "n_players", self.n_players, 1, 2))
        self._set("frame_shape", as_frame_shape(o, "frame_shape", self.frame_shape))
        self._set("step_ratio", as_int(o, "step_ratio", self.step_ratio, 1, 60))
        if self.difficulty is not None:
            self._set("difficulty", as_int(o, "difficulty", self.difficulty, 1, 8))
        cg = self.continue_game
        if not is_number(cg) or not math.isfinite(cg) or cg > 1 or (cg < 0 and int(cg) != cg):
            raise fail(o, "continue_game", cg, "a probability in [0, 1] or a negative integer of continues")
        self._set("continue_game", float(cg))
        if self.seed is not None:
            self._set("seed", as_int(o, "seed", self.seed, 0))
        self._set("role", self._per_player("role", self.role, lambda k, v: None if v is None else as_choice(o, k, v, ROLES)))
        self._set(
            "characters",
            self._per_player("characters", self.characters, lambda k, v: None if v is None else as_choice(o, k, v, DUEL_CHARACTERS)),
        )
        self._set("outfits", self._per_player("outfits", self.outfits, lambda k, v: as_int(o, k, v, 1, DUEL_OUTFITS)))
        self._set("action_space", self._per_player("action_space", self.action_space, lambda k, v: as_choice(o, k, v, ACTION_SPACES)))
        if self.n_players == 2 and isinstance(self.role, tuple):
            a, b = self.role
            if a is not None and a == b:
                raise fail(o, "role", self.role, "two different sides, e.g. ('P1', 'P2'), or (None, None)")

    def _per_player(self, key: str, value: Any, check: Callable[[str, Any], Any]) -> Any:
        if isinstance(value, list | tuple):
            if self.n_players == 1:
                raise fail(type(self).__name__, key, value, "a single value in 1-player mode (pairs are for n_players=2)")
            if len(value) != 2:
                raise fail(type(self).__name__, key, value, "a pair (agent_0's, agent_1's) in 2-player mode")
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
