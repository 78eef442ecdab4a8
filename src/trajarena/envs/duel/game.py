"""Pure game logic of ``duel``: fighters, attacks, hits, rounds. No rendering, no randomness.

Coordinates: ``x`` is the horizontal position of a fighter's feet in screen pixels (0 = left edge of
the native frame), ``y`` its height above the floor in pixels. The game advances one frame (1/60 s)
per :meth:`Game.tick`; each fighter gets one input per frame, a ``(move, attack)`` pair in the
env's multi-discrete encoding (9 moves in DIAMBRA order, 8 attack-button combinations).

Rules in short: punch (fast, high: whiffs over a crouching fighter), kick (mid), P+K a slow heavy
"special" that knocks down and chips through guard, down+P a crouching jab, down+K a low sweep
that must be guarded crouching, P or K in the air a jump attack, P+G close to a grounded foe a throw
(unblockable; far from the foe it guards), any other combination with G guards (crouch guard with
down). Hits cause hit-stun and knock-back; heavy hits and air hits knock down.

>>> from trajarena.envs.duel.characters import CHARACTERS
>>> g = Game(CHARACTERS[0], CHARACTERS[1])
>>> for _ in range(30):
...     _ = g.tick(5, 0, 1, 0)        # P1 walks right, P2 walks left
>>> g.fighters[0].x < g.fighters[1].x, g.gap() < 50
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trajarena.envs.duel.characters import Character

FPS = 60
WIDTH, HEIGHT = 192, 128
FLOOR_Y = 116
STAGE_LEFT, STAGE_RIGHT = 4.0, 188.0
START_X = (60.0, 132.0)
ROUND_TIME = 40
MAX_HEALTH = 100
N_STAGES = 4
GRAVITY = 0.35

IDLE, WALK, CROUCH, JUMP, ATTACK, GUARD, HITSTUN, BLOCKSTUN, KNOCKDOWN, KO = range(10)
STATE_NAMES = ("idle", "walk", "crouch", "jump", "attack", "guard", "hitstun", "blockstun", "knockdown", "ko")

# Input decoding tables (index: move 0-8 in DIAMBRA order, attack 0-7).
MOVE_DX = (0, -1, -1, 0, 1, 1, 1, 0, -1)
MOVE_UP = (False, False, True, True, True, False, False, False, False)
MOVE_DOWN = (False, False, False, False, False, False, True, True, True)
BTN_P = (False, True, False, False, True, True, False, True)
BTN_K = (False, False, True, False, True, False, True, True)
BTN_G = (False, False, False, True, False, True, True, True)

THROW_RANGE = 7.0
KNOCKDOWN_FRAMES = 40


@dataclass(frozen=True)
class Attack:
    """Frame data of one attack.

    ``reach`` is in pixels beyond the attacker's body edge (times the character's reach);
    ``y0``/``y1`` bound the hit box as fractions of the attacker's height above its feet.
    """

    name: str
    startup: int
    active: int
    recovery: int
    damage: int
    reach: float
    y0: float
    y1: float
    hitstun: int
    knockback: float
    knockdown: bool = False
    low: bool = False
    chip: int = 0
    throw: bool = False
    air: bool = False
    crouch: bool = False

    @property
    def total(self) -> int:
        """Frames from start to the end of recovery."""
        return self.startup + self.active + self.recovery


ATTACKS: dict[str, Attack] = {
    a.name: a
    for a in (
        Attack("punch", 3, 3, 7, 5, 17, 0.64, 0.84, 15, 1.8),
        Attack("kick", 5, 3, 11, 7, 24, 0.30, 0.58, 17, 2.3),
        Attack("special", 10, 4, 20, 13, 29, 0.35, 0.78, 24, 4.5, knockdown=True, chip=3),
        Attack("low_punch", 3, 3, 7, 4, 14, 0.30, 0.50, 13, 1.4, crouch=True),
        Attack("sweep", 6, 3, 16, 6, 25, 0.0, 0.2, 18, 1.7, knockdown=True, low=True, crouch=True),
        Attack("air_punch", 3, 6, 4, 5, 14, 0.40, 0.70, 15, 1.8, air=True),
        Attack("air_kick", 4, 10, 4, 7, 19, -0.05, 0.40, 17, 2.3, air=True),
        Attack("throw", 3, 2, 20, 10, THROW_RANGE, 0.2, 0.8, 0, 3.5, knockdown=True, throw=True),
    )
}


class Fighter:
    """One fighter's state; ``side`` 0 is P1, 1 is P2."""

    __slots__ = (
        "char", "side", "x", "y", "vx", "vy", "facing", "state", "frames", "stun", "attack",
        "attack_frame", "hit_done", "air_attacked", "crouching", "health", "wins", "half_w", "height",
    )

    def __init__(self, char: Character, side: int) -> None:
        self.char = char
        self.side = side
        self.half_w = char.width / 2
        self.height = float(char.height)
        self.wins = 0
        self.reset()

    def reset(self) -> None:
        """Back to the round-start position with full health (wins are kept)."""
        self.x = START_X[self.side]
        self.y = 0.0
        self.vx = self.vy = 0.0
        self.facing = 1 if self.side == 0 else -1
        self.state = IDLE
        self.frames = 0
        self.stun = 0
        self.attack: Attack | None = None
        self.attack_frame = 0
        self.hit_done = False
        self.air_attacked = False
        self.crouching = False
        self.health = MAX_HEALTH

    # ---- read-only helpers used by the AI, the agents and the renderer -------------------------

    @property
    def airborne(self) -> bool:
        """True while in the air."""
        return self.y > 0.0 or self.vy > 0.0

    @property
    def attack_phase(self) -> int:
        """0 not attacking, 1 startup, 2 active, 3 recovery."""
        if self.state != ATTACK or self.attack is None:
            return 0
        a, f = self.attack, self.attack_frame
        return 1 if f < a.startup else 2 if f < a.startup + a.active else 3

    @property
    def actionable(self) -> bool:
        """True when the fighter obeys new inputs this frame."""
        return self.state in (IDLE, WALK, CROUCH, GUARD)

    def reach_of(self, name: str) -> float:
        """The reach in pixels beyond the body edge of attack ``name`` for this character."""
        return ATTACKS[name].reach * self.char.reach

    # ---- per-frame update ----------------------------------------------------------------------

    def _set(self, state: int) -> None:
        if state != self.state:
            self.state = state
            self.frames = 0

    def _start_attack(self, name: str) -> None:
        self.attack = ATTACKS[name]
        self.attack_frame = 0
        self.hit_done = False
        self.crouching = self.attack.crouch
        self._set(ATTACK)
        if not self.attack.air:
            self.vx = 0.0

    def control(self, move: int, atk: int, opp: Fighter) -> None:
        """Apply one frame of input (``move`` 0-8, ``atk`` 0-7)."""
        self.frames += 1
        st = self.state
        if st == ATTACK:
            self.attack_frame += 1
            a = self.attack
            if not a.air and self.attack_frame >= a.total:  # type: ignore[union-attr]
                self.attack = None
                self.crouching = MOVE_DOWN[move]
                self._set(CROUCH if self.crouching else IDLE)
            return
        if st == HITSTUN or st == BLOCKSTUN or st == KNOCKDOWN:
            self.stun -= 1
            if self.stun <= 0 and self.y <= 0.0:
                self._set(IDLE)
                self.crouching = False
            return
        if st == KO:
            return
        if st == JUMP:
            if (BTN_P[atk] or BTN_K[atk]) and not self.air_attacked:
                self.air_attacked = True
                self._start_attack("air_kick" if BTN_K[atk] else "air_punch")
            return
        down = MOVE_DOWN[move]
        if BTN_G[atk]:
            if (
                atk == 5 and not opp.airborne and opp.state not in (HITSTUN, KNOCKDOWN, KO)
                and abs(opp.x - self.x) - self.half_w - opp.half_w <= THROW_RANGE
            ):
                self._start_attack("throw")
                return
            self.crouching = down
            self.vx = 0.0
            self._set(GUARD)
            return
        p, k = BTN_P[atk], BTN_K[atk]
        if p and k:
            self._start_attack("special")
        elif p:
            self._start_attack("low_punch" if down else "punch")
        elif k:
            self._start_attack("sweep" if down else "kick")
        elif MOVE_UP[move]:
            self.crouching = False
            self.vy = self.char.jump
            self.vx = MOVE_DX[move] * self.char.speed * 1.15
            self.y = 0.01
            self.air_attacked = False
            self._set(JUMP)
        elif down:
            self.crouching = True
            self._set(CROUCH)
        elif MOVE_DX[move]:
            dx = MOVE_DX[move]
            self.crouching = False
            self.x += dx * self.char.speed * (1.0 if dx == self.facing else 0.8)
            self._set(WALK)
        else:
            self.crouching = False
            self._set(IDLE)

    def physics(self) -> None:
        """Gravity, momentum, friction and the stage walls for one frame."""
        if self.y > 0.0 or self.vy > 0.0:
            self.vy -= GRAVITY
            self.y += self.vy
            self.x += self.vx
            if self.y <= 0.0:
                self.y = self.vy = 0.0
                self.vx = 0.0
                st = self.state
                if st == JUMP or (st == ATTACK and self.attack is not None and self.attack.air):
                    self.attack = None
                    self._set(IDLE)
                elif st == HITSTUN:
                    self.stun = KNOCKDOWN_FRAMES
                    self._set(KNOCKDOWN)
        elif self.vx:
            self.x += self.vx
            self.vx *= 0.8
            if -0.05 < self.vx < 0.05:
                self.vx = 0.0
        lo, hi = STAGE_LEFT + self.half_w, STAGE_RIGHT - self.half_w
        if self.x < lo:
            self.x = lo
        elif self.x > hi:
            self.x = hi

    def top(self) -> float:
        """Height of the top of the hurt box above the floor."""
        if self.state == KNOCKDOWN or self.state == KO:
            return self.y + self.height * 0.25
        return self.y + self.height * (0.62 if self.crouching else 1.0)


class Game:
    """A match between two fighters: call :meth:`tick` once per frame with both inputs.

    Args:
        p1: P1's character (starts on the left).
        p2: P2's character.
    """

    def __init__(self, p1: Character, p2: Character) -> None:
        self.fighters = (Fighter(p1, 0), Fighter(p2, 1))
        self.frame = 0
        self.round = 1
        self.timer_frames = ROUND_TIME * FPS
        self.round_over = False
        self.round_winner = -1
        #: recent hits for the renderer: (x, y, frames left, blocked)
        self.sparks: list[list[float]] = []

    def start_round(self) -> None:
        """Reset positions, health and timer for the next round (wins are kept)."""
        for f in self.fighters:
            f.reset()
        self.timer_frames = ROUND_TIME * FPS
        self.round_over = False
        self.round_winner = -1
        self.sparks.clear()

    def new_match(self, p1: Character | None = None, p2: Character | None = None) -> None:
        """Start a new match (optionally with new characters): wins to 0, round 1."""
        a, b = self.fighters
        self.fighters = (Fighter(p1 or a.char, 0), Fighter(p2 or b.char, 1))
        self.round = 1
        self.start_round()

    @property
    def timer(self) -> int:
        """Seconds left on the round clock, as shown in the HUD."""
        return -(-self.timer_frames // FPS)

    def gap(self) -> float:
        """Horizontal distance between the two bodies' facing edges (0 when touching)."""
        a, b = self.fighters
        return abs(a.x - b.x) - a.half_w - b.half_w

    def tick(self, m1: int, a1: int, m2: int, a2: int) -> bool:
        """Advance one frame with P1's and P2's inputs; return True when the round just ended."""
        if self.round_over:
            return True
        f1, f2 = self.fighters
        self.frame += 1
        f1.control(m1, a1, f2)
        f2.control(m2, a2, f1)
        f1.physics()
        f2.physics()
        h1 = self._hits(f1, f2)
        h2 = self._hits(f2, f1)
        if h1 is not None:
            self._apply(f1, f2, h1)
        if h2 is not None:
            self._apply(f2, f1, h2)
        self._push(f1, f2)
        for f, o in ((f1, f2), (f2, f1)):
            if f.y <= 0.0 and f.state not in (ATTACK, HITSTUN, KNOCKDOWN, KO) and o.x != f.x:
                f.facing = 1 if o.x > f.x else -1
        if self.sparks:
            for s in self.sparks:
                s[2] -= 1
            self.sparks = [s for s in self.sparks if s[2] > 0]
        self.timer_frames -= 1
        if f1.health <= 0 or f2.health <= 0 or self.timer_frames <= 0:
            self._end_round()
            return True
        return False

    def _end_round(self) -> None:
        f1, f2 = self.fighters
        if f1.health > f2.health:
            self.round_winner = 0
        elif f2.health > f1.health:
            self.round_winner = 1
        else:
            self.round_winner = -1
        if self.round_winner in (0, -1):
            f1.wins = min(2, f1.wins + 1)
        if self.round_winner in (1, -1):
            f2.wins = min(2, f2.wins + 1)
        self.round_over = True
        self.round += 1

    @property
    def match_over(self) -> bool:
        """True when a fighter has won two rounds."""
        return self.fighters[0].wins >= 2 or self.fighters[1].wins >= 2

    @staticmethod
    def _hits(a: Fighter, d: Fighter) -> Attack | None:
        """The attack of ``a`` that connects with ``d`` this frame, if any."""
        atk = a.attack
        if a.state != ATTACK or atk is None or a.hit_done:
            return None
        f = a.attack_frame
        if f < atk.startup or f >= atk.startup + atk.active:
            return None
        if d.state == KNOCKDOWN or d.state == KO:
            return None
        if atk.throw and (d.airborne or d.state in (HITSTUN, BLOCKSTUN) or d.attack_phase in (1, 2)):
            return None
        front = a.x + a.facing * a.half_w
        far = front + a.facing * atk.reach * a.char.reach
        lo_x, hi_x = (front - 2.0, far) if a.facing > 0 else (far, front + 2.0)
        if hi_x < d.x - d.half_w or lo_x > d.x + d.half_w:
            return None
        lo_y = a.y + atk.y0 * a.height
        hi_y = a.y + atk.y1 * a.height
        return None if hi_y < d.y or lo_y > d.top() else atk

    def _apply(self, a: Fighter, d: Fighter, atk: Attack) -> None:
        a.hit_done = True
        toward = 1 if a.x > d.x else -1  # direction from defender to attacker
        guarding = d.state in (GUARD, BLOCKSTUN) and d.facing == toward and d.y <= 0.0
        blocked = guarding and not atk.throw and (not atk.low or d.crouching)
        sy = a.y + (atk.y0 + atk.y1) * 0.5 * a.height
        sx = d.x + toward * d.half_w
        if blocked:
            d.health -= atk.chip
            d.stun = max(6, atk.hitstun - 5)
            d.vx = -toward * atk.knockback * 0.7
            d._set(BLOCKSTUN)
            self.sparks.append([sx, sy, 6, 1])
        else:
            d.health -= max(1, round(atk.damage * a.char.power))
            d.attack = None
            d.vx = -toward * atk.knockback
            if atk.knockdown or d.airborne:
                d.stun = KNOCKDOWN_FRAMES
                if d.airborne:
                    d.vy = max(d.vy, 1.5)
                    d._set(HITSTUN)
                else:
                    d._set(KNOCKDOWN)
                d.crouching = False
            else:
                d.stun = atk.hitstun
                d._set(HITSTUN)
            self.sparks.append([sx, sy, 8, 0])
        if d.health <= 0:
            d.health = 0
            d.stun = 10**6
            d.crouching = False
            d._set(KO)

    @staticmethod
    def _push(f1: Fighter, f2: Fighter) -> None:
        min_d = f1.half_w + f2.half_w
        dx = f2.x - f1.x
        if abs(dx) >= min_d:
            return
        # a jumping fighter high enough passes over the other (and may land behind it)
        if f1.y > f2.height * 0.35 or f2.y > f1.height * 0.35:
            return
        if dx == 0:
            dx = 1.0 if f1.side == 0 else -1.0
        overlap = (min_d - abs(dx)) / 2 + 0.01
        s = math.copysign(1.0, dx)
        f1.x -= s * overlap
        f2.x += s * overlap
        for f in (f1, f2):
            lo, hi = STAGE_LEFT + f.half_w, STAGE_RIGHT - f.half_w
            if f.x < lo:
                other = f2 if f is f1 else f1
                other.x += lo - f.x
                f.x = lo
            elif f.x > hi:
                other = f2 if f is f1 else f1
                other.x -= f.x - hi
                f.x = hi
