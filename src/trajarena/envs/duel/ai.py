"""The CPU opponent of ``duel`` and the tactics it shares with the scripted ``expert`` agent.

:func:`read` turns the game state into a small :class:`Situation` seen from one side;
:func:`tactic` maps a situation to a ``(move, attack)`` input with simple, visible rules (guard
a threatening attack, punish a whiff, poke in range, walk in otherwise). The expert agent applies
:func:`tactic` exactly; :class:`CpuAI` applies it with a reaction delay, mistakes and a blocking
probability that all improve with ``difficulty`` (1-8), and at higher levels mixes in
:func:`mixup` options (throws, sweeps, specials, jump-ins).

>>> import numpy as np
>>> from trajarena.envs.duel.game import Game
>>> from trajarena.envs.duel.characters import CHARACTERS
>>> ai = CpuAI(level=8, rng=np.random.default_rng(0))
>>> move, attack = ai.act(Game(CHARACTERS[0], CHARACTERS[1]), side=1)
>>> 0 <= move < 9 and 0 <= attack < 8
True
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from trajarena.envs.duel.game import BLOCKSTUN, GUARD, HITSTUN, KNOCKDOWN, KO, THROW_RANGE, Game

# inputs in the env's multi-discrete encoding
NOOP, LEFT, UP_LEFT, UP, UP_RIGHT, RIGHT, DOWN_RIGHT, DOWN, DOWN_LEFT = range(9)
A_NONE, A_P, A_K, A_G, A_PK, A_PG, A_KG, A_PKG = range(8)


class Situation(NamedTuple):
    """What one fighter sees: distances in pixels, the foe's pose, who is free to act."""

    gap: float            # distance between the two bodies (0 = touching)
    toward: int           # +1 if the foe is to the right, else -1
    punch: float          # my punch reach
    kick: float           # my kick reach
    me_free: bool         # I can act this frame
    threat: bool          # the foe's attack is starting or active and could reach me
    threat_low: bool      # ... and it must be guarded crouching
    whiff: bool           # the foe is recovering from an attack or stunned: free hit
    foe_air: bool         # the foe is jumping
    foe_down: bool        # the foe is knocked down (invulnerable)
    foe_guard: bool = False    # the foe holds guard
    foe_crouch: bool = False   # the foe crouches (a punch whiffs over it; it guards low)
    me_air: bool = False       # I am jumping
    sweep: float = 0.0         # my sweep reach
    special: float = 0.0       # my special's reach


def read(game: Game, side: int) -> Situation:
    """The :class:`Situation` of fighter ``side`` (0 = P1, 1 = P2)."""
    me, foe = game.fighters[side], game.fighters[1 - side]
    gap = game.gap()
    phase = foe.attack_phase
    threat = False
    low = False
    if phase in (1, 2) and foe.attack is not None:
        threat = gap <= foe.attack.reach * foe.char.reach + 6.0
        low = foe.attack.low
    return Situation(
        gap=gap,
        toward=1 if foe.x > me.x else -1,
        punch=me.reach_of("punch"),
        kick=me.reach_of("kick"),
        me_free=me.actionable,
        threat=threat,
        threat_low=low,
        whiff=phase == 3 or foe.state in (HITSTUN, BLOCKSTUN),
        foe_air=foe.airborne and foe.state not in (KNOCKDOWN, KO),
        foe_down=foe.state in (KNOCKDOWN, KO),
        foe_guard=foe.state in (GUARD, BLOCKSTUN),
        foe_crouch=foe.crouching,
        me_air=me.airborne,
        sweep=me.reach_of("sweep"),
        special=me.reach_of("special"),
    )


def walk(toward: int) -> int:
    """The move that walks toward direction ``toward`` (+1 right, -1 left)."""
    return RIGHT if toward > 0 else LEFT


def tactic(s: Situation, block: bool = True, punish: bool = True) -> tuple[int, int]:
    """The rule-based input for situation ``s``.

    Rules, first match wins: guard a threat (crouching against a low one); hit a whiffing or
    stunned foe in reach; guard against a jump-in nearby; punch when in punch range, kick when in
    kick range; step back from a knocked-down foe; otherwise walk in.
    """
    if s.threat and block:
        return (DOWN, A_G) if s.threat_low else (NOOP, A_G)
    if s.foe_down:
        return (walk(-s.toward), A_NONE) if s.gap < s.kick else (NOOP, A_NONE)
    if s.whiff and punish and s.gap <= s.kick + 2:
        return (NOOP, A_P) if s.gap <= s.punch else (NOOP, A_K)
    if s.foe_air and s.gap < 30:
        return (NOOP, A_G)
    if s.gap <= s.punch:
        return (NOOP, A_P)
    if s.gap <= s.kick:
        return (NOOP, A_K)
    return (walk(s.toward), A_NONE)


def mixup(s: Situation, r: float) -> tuple[int, int] | None:
    """A stronger CPU's extra options (``r`` uniform in [0, 1)), or None to follow :func:`tactic`.

    Throw a guarding foe up close, sweep a standing guard, punish a whiff with the special,
    jump in from mid range and kick on the way down.
    """
    if s.me_air:
        return (NOOP, A_K) if s.gap < s.kick else None
    if s.foe_guard and s.gap <= THROW_RANGE:
        return (NOOP, A_PG)
    if s.foe_guard and not s.foe_crouch and s.gap <= s.sweep:
        return (DOWN, A_K)
    if s.whiff and s.kick < s.gap <= s.special and r < 0.5:
        return (NOOP, A_PK)
    if not s.threat and not s.foe_air and 40 < s.gap < 70 and r < 0.15:
        return (UP_RIGHT if s.toward > 0 else UP_LEFT, A_NONE)
    return None


class CpuAI:
    """The CPU fighter: :func:`tactic` with human-like flaws that shrink as ``level`` rises.

    Args:
        level: strength in [1, 8] (fractional levels interpolate).
        rng: the generator for its random choices (seeded by the env).
    """

    def __init__(self, level: float, rng: np.random.Generator) -> None:
        t = (min(max(level, 1.0), 8.0) - 1.0) / 7.0
        self.level = level
        self.think_every = max(2, round(18 - 15 * t))     # reaction time in frames
        self.mistake = 0.45 - 0.42 * t                    # chance of a random decision
        self.block = 0.05 + 0.9 * t                        # chance of guarding a seen threat
        self.punish = 0.1 + 0.85 * t                       # chance of punishing a whiff
        self.aggression = 0.35 + 0.6 * t                   # chance of walking in when idle
        self.variety = 0.05 + 0.6 * t                      # chance of using a mix-up (throw, sweep...)
        self._rng = rng
        self._buf = rng.random(1024)
        self._i = 0
        self._clock = 0
        self._last = (NOOP, A_NONE)

    def _rand(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self._rng.random(1024)
            self._i = 0
        self._i += 1
        return float(self._buf[self._i - 1])

    def act(self, game: Game, side: int) -> tuple[int, int]:
        """The input for this frame of fighter ``side``."""
        self._clock += 1
        if self._clock < self.think_every:
            return self._last
        self._clock = 0
        s = read(game, side)
        extra = mixup(s, self._rand()) if self._rand() < self.variety else None
        if self._rand() < self.mistake:
            choice = (int(self._rand() * 9), int(self._rand() * 4))
        elif extra is not None:
            choice = extra
        else:
            choice = tactic(s, block=self._rand() < self.block, punish=self._rand() < self.punish)
            if choice[1] == A_NONE and choice[0] != NOOP and self._rand() > self.aggression:
                choice = (NOOP, A_NONE) if self._rand() < 0.5 else (walk(-s.toward), A_NONE)
        self._last = choice
        return choice
