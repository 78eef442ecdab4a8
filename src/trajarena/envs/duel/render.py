"""Numpy renderer of ``duel``: stage backgrounds, fighter sprites and HUD, at the native size.

Fighters are drawn from a skeleton (hip, neck, head, two arms, two legs) per pose: capsules and
discs rasterised once into a sprite per (character, outfit, pose, facing) and cached, then pasted
with a mask each frame. Everything is numpy; pygame is only used by the env's ``"human"`` mode.
Resizing and greyscale (``frame_shape``) are :mod:`trajarena.imaging`'s, shared with the wrappers.

>>> from trajarena.envs.duel.game import Game, HEIGHT, WIDTH
>>> from trajarena.envs.duel.characters import CHARACTERS
>>> r = Renderer()
>>> frame = r.draw(Game(CHARACTERS[0], CHARACTERS[2]), stage=1, outfits=(1, 1))
>>> frame.shape == (HEIGHT, WIDTH, 3), frame.dtype.name
(True, 'uint8')
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from trajarena.envs.duel.characters import Character, Outfit
from trajarena.envs.duel.game import (
    ATTACK, ATTACKS, BLOCKSTUN, CROUCH, FLOOR_Y, GUARD, HEIGHT, HITSTUN, JUMP, KNOCKDOWN, KO,
    MAX_HEALTH, N_STAGES, WALK, WIDTH, Fighter, Game,
)

Point = tuple[float, float]

# ---- the tiny 3x5 font used by the HUD (M, N, O are wider: 3 px cannot draw their diagonals and curves) --

_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001010010010",
    "8": "111101111101111", "9": "111101111001111", "A": "010101111101101", "B": "110101110101110",
    "C": "011100100100011", "D": "110101101101110", "E": "111100110100111", "F": "111100110100100",
    "G": "011100101101011", "H": "101101111101101", "I": "111010010010111", "J": "001001001101010",
    "K": "10011010110010101001", "L": "100100100100111", "M": "1000111011101011000110001", "N": "10011101101110011001",
    "O": "01101001100110010110", "P": "110101110100100", "R": "110101110101101", "S": "011100010001110",
    "T": "111010010010010", "U": "101101101101111", "V": "101101101101010", "W": "101101111111101",
    "X": "101101010101101", "Y": "101101010010010", " ": "000000000000000",
}
_FONT = {ch: np.array([int(b) for b in bits], dtype=bool).reshape(5, -1) for ch, bits in _GLYPHS.items()}


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """A boolean mask of ``text`` in the 3x5 font (1 px between letters), scaled by ``scale``.

    >>> text_mask("NO").shape, text_mask("KI").shape
    ((5, 9), (5, 8))
    """
    cols = []
    for ch in text.upper():
        cols.append(_FONT.get(ch, _FONT[" "]))
        cols.append(np.zeros((5, 1), bool))
    mask = np.concatenate(cols[:-1], axis=1) if cols else np.zeros((5, 0), bool)
    return mask.repeat(scale, 0).repeat(scale, 1)


def draw_text(img: np.ndarray, text: str, x: int, y: int, colour, scale: int = 1, shadow=None) -> None:
    """Draw ``text`` with its top-left corner at (x, y), clipped to the image."""
    m = text_mask(text, scale)
    if shadow is not None:
        _paint(img, m, x + 1, y + 1, shadow)
    _paint(img, m, x, y, colour)


def _paint(img: np.ndarray, mask: np.ndarray, x: int, y: int, colour) -> None:
    h, w = mask.shape
    y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + h, img.shape[0]), min(x + w, img.shape[1])
    if y1 > y0 and x1 > x0:
        img[y0:y1, x0:x1][mask[y0 - y:y1 - y, x0 - x:x1 - x]] = colour


# ---- poses: skeleton joints in units of the fighter's height, x forward, y up from the feet ------

def _pose(hip: Point, neck: Point, head: Point, fa, ba, fl, bl) -> dict:
    return {"hip": hip, "neck": neck, "head": head, "fa": fa, "ba": ba, "fl": fl, "bl": bl}


_STAND_LEGS = (((0.10, 0.26), (0.14, 0.0)), ((-0.06, 0.26), (-0.12, 0.0)))
_CROUCH_LEGS = (((0.17, 0.22), (0.15, 0.0)), ((-0.02, 0.13), (-0.15, 0.0)))
_JUMP_LEGS = (((0.15, 0.42), (0.07, 0.26)), ((0.02, 0.36), (-0.08, 0.25)))


def _poses(e: Callable[[str], float]) -> dict[str, dict]:
    """All poses; ``e(attack)`` is the attack's reach from the body centre, in heights.

    Each attack has a chamber pose ``_c`` (startup), an extended one ``_x`` (active frames) and a
    half-withdrawn one ``_r`` (recovery), so its phase can be read from a single frame.
    """
    fl, bl = _STAND_LEGS
    cfl, cbl = _CROUCH_LEGS
    jfl, jbl = _JUMP_LEGS
    up = ((0.0, 0.50), (0.02, 0.80), (0.04, 0.90))
    low = ((0.0, 0.30), (0.05, 0.56), (0.08, 0.65))
    air = ((0.0, 0.55), (0.02, 0.85), (0.04, 0.95))
    fist = ((0.12, 0.66), (0.20, 0.76))
    bfist = ((0.06, 0.62), (0.13, 0.72))
    P, K, S, LP, SW = e("punch"), e("kick"), e("special"), e("low_punch"), e("sweep")
    AP, AK, T = e("air_punch"), e("air_kick"), e("throw")
    out = {
        "idle": _pose(*up, fist, bfist, fl, bl),
        "walk1": _pose(*up, fist, bfist, ((0.15, 0.27), (0.21, 0.0)), ((-0.10, 0.25), (-0.17, 0.0))),
        "walk2": _pose(*up, fist, bfist, ((0.07, 0.26), (0.03, 0.0)), ((0.01, 0.27), (-0.03, 0.0))),
        "crouch": _pose(*low, ((0.15, 0.42), (0.22, 0.52)), ((0.09, 0.40), (0.16, 0.48)), cfl, cbl),
        "jump": _pose(*air, ((0.10, 0.72), (0.18, 0.84)), ((0.0, 0.70), (0.06, 0.80)), jfl, jbl),
        "guard": _pose((0.0, 0.5), (0.0, 0.8), (0.0, 0.9), ((0.15, 0.70), (0.15, 0.90)),
                       ((0.11, 0.66), (0.12, 0.86)), fl, bl),
        "cguard": _pose(*low, ((0.17, 0.46), (0.17, 0.64)), ((0.13, 0.44), (0.14, 0.62)), cfl, cbl),
        "hit": _pose((-0.03, 0.5), (-0.11, 0.77), (-0.16, 0.85), ((0.02, 0.60), (0.08, 0.50)),
                     ((-0.18, 0.70), (-0.27, 0.64)), ((0.08, 0.26), (0.10, 0.0)), ((-0.09, 0.26), (-0.16, 0.0))),
        "down": _pose((0.0, 0.08), (-0.30, 0.10), (-0.41, 0.12), ((-0.20, 0.22), (-0.10, 0.30)),
                      ((-0.24, 0.03), (-0.10, 0.03)), ((0.18, 0.13), (0.38, 0.04)), ((0.18, 0.06), (0.36, 0.03))),
        "punch_c": _pose(*up, ((0.03, 0.66), (0.10, 0.72)), bfist, fl, bl),
        "punch_x": _pose((0.02, 0.50), (0.06, 0.80), (0.08, 0.90), ((P * 0.5, 0.76), (P, 0.76)),
                         ((0.02, 0.64), (0.08, 0.70)), ((0.14, 0.27), (0.20, 0.0)), bl),
        "kick_c": _pose((0.0, 0.5), (-0.03, 0.8), (-0.04, 0.9), fist, bfist,
                        ((0.19, 0.44), (0.10, 0.22)), ((-0.04, 0.26), (-0.06, 0.0))),
        "kick_x": _pose((0.0, 0.5), (-0.07, 0.79), (-0.10, 0.88), ((0.06, 0.64), (0.12, 0.72)),
                        ((-0.12, 0.64), (-0.20, 0.58)), ((K * 0.5, 0.47), (K, 0.45)), ((-0.05, 0.26), (-0.08, 0.0))),
        "special_c": _pose((-0.02, 0.46), (-0.07, 0.74), (-0.09, 0.84), ((-0.06, 0.60), (-0.15, 0.62)),
                           ((-0.10, 0.60), (-0.19, 0.57)), ((0.14, 0.24), (0.20, 0.0)), ((-0.08, 0.24), (-0.16, 0.0))),
        "special_x": _pose((0.02, 0.46), (0.10, 0.74), (0.14, 0.83), ((S * 0.5, 0.60), (S, 0.60)),
                           ((S * 0.45, 0.55), (S * 0.9, 0.53)), ((0.18, 0.24), (0.26, 0.0)), ((-0.08, 0.24), (-0.18, 0.0))),
        "low_punch_c": _pose(*low, ((0.08, 0.40), (0.12, 0.46)), ((0.09, 0.40), (0.16, 0.48)), cfl, cbl),
        "low_punch_x": _pose(*low, ((LP * 0.5, 0.42), (LP, 0.42)), ((0.06, 0.40), (0.12, 0.46)), cfl, cbl),
        "sweep_c": _pose((0.0, 0.22), (0.02, 0.46), (0.04, 0.55), ((0.10, 0.30), (0.14, 0.06)),
                         ((0.0, 0.30), (-0.02, 0.06)), ((0.16, 0.16), (0.20, 0.0)), ((-0.04, 0.12), (-0.16, 0.0))),
        "sweep_x": _pose((0.0, 0.22), (-0.03, 0.46), (-0.05, 0.55), ((0.06, 0.30), (0.10, 0.04)),
                         ((-0.06, 0.30), (-0.08, 0.04)), ((SW * 0.5, 0.10), (SW, 0.06)), ((-0.05, 0.13), (-0.16, 0.0))),
        "air_punch_c": _pose(*air, ((0.04, 0.74), (0.10, 0.80)), ((0.0, 0.70), (0.06, 0.80)), jfl, jbl),
        "air_punch_x": _pose(*air, ((AP * 0.5, 0.62), (AP, 0.56)), ((0.0, 0.70), (0.06, 0.80)), jfl, jbl),
        "air_kick_c": _pose(*air, ((0.10, 0.72), (0.18, 0.84)), ((0.0, 0.70), (0.06, 0.80)), jfl, jbl),
        "air_kick_x": _pose((0.0, 0.55), (-0.04, 0.84), (-0.05, 0.94), ((0.08, 0.74), (0.14, 0.84)),
                            ((-0.08, 0.72), (-0.14, 0.80)), ((AK * 0.5, 0.30), (AK, 0.12)), jbl),
        "throw_c": _pose(*up, ((0.14, 0.62), (0.22, 0.64)), ((0.10, 0.60), (0.18, 0.62)), fl, bl),
        "throw_x": _pose((0.02, 0.5), (0.06, 0.8), (0.08, 0.9), ((T * 0.6, 0.66), (T, 0.62)),
                         ((T * 0.5, 0.60), (T * 0.9, 0.58)), fl, bl),
        "win": _pose(*up, ((0.08, 0.92), (0.10, 1.06)), ((-0.06, 0.92), (-0.08, 1.04)), fl, bl),
    }
    for name in ATTACKS:  # recovery: the limb half withdrawn, so a whiff is visible in one frame
        out[name + "_r"] = _blend(out[name + "_c"], out[name + "_x"])
    return out


def _blend(a, b):
    if isinstance(a, dict):
        return {k: _blend(a[k], b[k]) for k in a}
    if isinstance(a[0], tuple):
        return tuple(_blend(u, v) for u, v in zip(a, b, strict=True))
    return ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)


POSES = tuple(_poses(lambda name: 0.3))


def pose_name(f: Fighter) -> str:
    """The pose the renderer shows for a fighter's current state."""
    st = f.state
    if st == ATTACK and f.attack is not None:
        return f.attack.name + ("_c", "_c", "_x", "_r")[f.attack_phase]
    if st == WALK:
        return "walk1" if (f.frames // 8) % 2 == 0 else "walk2"
    if st == CROUCH:
        return "crouch"
    if st == GUARD or st == BLOCKSTUN:
        return "cguard" if f.crouching else "guard"
    if st == JUMP:
        return "jump"
    if st == HITSTUN:
        return "hit"
    if st == KNOCKDOWN or st == KO:
        return "down" if f.y <= 0.0 else "hit"
    return "idle"


# ---- rasterising a sprite ------------------------------------------------------------------------

_OUTLINE = np.array((16, 14, 22), np.uint8)


def _shade(c, k: float) -> tuple[int, int, int]:
    return tuple(int(min(255, v * k)) for v in c)  # type: ignore[return-value]


def build_sprite(char: Character, outfit: Outfit, pose: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Rasterise one pose facing right: (rgb, mask, anchor_x, anchor_y) with the feet at the anchor."""
    H = float(char.height)
    half = char.width / 2
    poses = _poses(lambda name: (half + ATTACKS[name].reach * char.reach) / H)
    p = poses[pose]
    cw, ch = 2 * int(H * 0.9) + 1, int(H * 1.15) + 4
    ax, ay = cw // 2, ch - 3
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    rgb = np.zeros((ch, cw, 3), np.uint8)
    mask = np.zeros((ch, cw), bool)

    def px(pt: Point) -> tuple[float, float]:
        return ax + pt[0] * H, ay - pt[1] * H

    def capsule(a: Point, b: Point, r: float, colour) -> None:
        (x0, y0), (x1, y1) = px(a), px(b)
        dx, dy = x1 - x0, y1 - y0
        ll = dx * dx + dy * dy
        t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / ll, 0, 1) if ll > 0 else 0.0
        m = (xx - x0 - t * dx) ** 2 + (yy - y0 - t * dy) ** 2 <= r * r
        rgb[m] = colour
        mask[m] = True

    hip, neck, head = p["hip"], p["neck"], p["head"]
    sh = (neck[0], neck[1] - 0.04)
    leg_r, arm_r = 1.0 + char.width * 0.075, 0.7 + char.width * 0.06
    torso_r = half * 0.78
    clothes, trim, skin, hair = outfit.clothes, outfit.trim, outfit.skin, outfit.hair

    def arm(joints, k: float) -> None:
        (e, h) = joints
        capsule(sh, e, arm_r, _shade(clothes, k))
        capsule(e, h, arm_r * 0.9, _shade(skin, k))
        capsule(h, h, arm_r * 1.25, _shade(trim, k))

    def leg(joints, k: float) -> None:
        (kn, ft) = joints
        capsule(hip, kn, leg_r, _shade(clothes, k))
        capsule(kn, ft, leg_r * 0.9, _shade(clothes, k))
        capsule(ft, (ft[0] + 0.06, ft[1]), leg_r * 0.8, _shade(trim, k))

    arm(p["ba"], 0.62)
    leg(p["bl"], 0.62)
    capsule(hip, (neck[0], neck[1] - 0.02), torso_r, clothes)
    vx, vy = neck[0] - hip[0], neck[1] - hip[1]
    belt = (hip[0] + vx * 0.12, hip[1] + vy * 0.12)
    bw = torso_r * 0.8 / H
    capsule((belt[0] - bw, belt[1]), (belt[0] + bw, belt[1]), 1.1, trim)
    capsule((belt[0] + 0.01, belt[1] - 0.01), (belt[0] - 0.06, belt[1] - 0.10), 0.8, trim)
    leg(p["fl"], 1.0)
    hr = H * 0.085
    capsule(head, head, hr, skin)
    hx, hy = head
    capsule((hx - 0.035, hy + 0.03), (hx + 0.01, hy + 0.04), hr * 0.72, hair)
    capsule((hx - 0.06, hy + 0.0), (hx - 0.1, hy - 0.04), hr * 0.35, trim)  # headband tail
    ex, ey = px((hx + 0.045, hy + 0.005))
    if 0 <= int(ey) < ch and 0 <= int(ex) < cw:
        rgb[int(ey), int(ex)] = (20, 20, 30)
    arm(p["fa"], 1.0)
    # a 1-pixel dark outline makes the fighters stand out on any stage
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    rgb[grown & ~mask] = _OUTLINE
    return rgb, grown, ax, ay


# ---- stages and HUD ------------------------------------------------------------------------------

STAGE_NAMES = ("DOJO", "CITY", "TEMPLE", "VOLCANO")


def _gradient(top, bottom, n: int) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (np.array(top) * (1 - t) + np.array(bottom) * t)


def build_stage(stage: int) -> np.ndarray:
    """The background of stage 1..N_STAGES (sky, scenery, floor), without the HUD."""
    i = (stage - 1) % N_STAGES
    img = np.zeros((HEIGHT, WIDTH, 3), np.float64)
    skies = (((250, 150, 80), (120, 60, 120)), ((10, 12, 40), (50, 40, 90)),
             ((120, 200, 190), (200, 230, 200)), ((60, 10, 10), (200, 70, 20)))
    floors = (((150, 100, 60), (110, 70, 40)), ((70, 70, 80), (40, 40, 50)),
              ((150, 150, 140), (110, 110, 100)), ((50, 40, 40), (30, 24, 24)))
    img[:FLOOR_Y] = _gradient(*skies[i], FLOOR_Y)[:, None, :]
    xs = np.arange(WIDTH)
    rng = np.random.default_rng(1234 + i)  # fixed scenery, independent of any env seed
    if i == 0:  # dusk dojo: sun, mountains, wooden wall
        yy, xx = np.mgrid[0:FLOOR_Y, 0:WIDTH]
        img[:FLOOR_Y][(yy - 52) ** 2 + (xx - 140) ** 2 < 14 ** 2] = (255, 220, 120)
        ridge = 62 + 10 * np.sin(xs / 17.0) + 6 * np.sin(xs / 7.0 + 1)
        for x in range(WIDTH):
            img[int(ridge[x]):FLOOR_Y, x] = (90, 50, 90)
        img[84:FLOOR_Y] = (120, 60, 40)
        img[84:86] = (70, 35, 25)
        for x in range(4, WIDTH, 24):
            img[84:FLOOR_Y, x:x + 3] = (80, 40, 28)
    elif i == 1:  # night city: stars, buildings with windows
        for _ in range(60):
            img[rng.integers(0, 60), rng.integers(0, WIDTH)] = (230, 230, 255)
        x = 0
        while x < WIDTH:
            w, h = int(rng.integers(14, 30)), int(rng.integers(30, 80))
            top = FLOOR_Y - h
            img[top:FLOOR_Y, x:x + w - 2] = (25, 25, 45)
            for wy in range(top + 4, FLOOR_Y - 6, 6):
                for wx in range(x + 3, x + w - 5, 5):
                    if rng.random() < 0.45:
                        img[wy:wy + 2, wx:wx + 2] = (250, 220, 120)
            x += w
    elif i == 2:  # temple garden: pagoda, trees
        for x in range(0, WIDTH, 16):
            h = int(rng.integers(20, 40))
            yy, xx = np.mgrid[0:FLOOR_Y, 0:WIDTH]
            img[:FLOOR_Y][((yy - (FLOOR_Y - h)) ** 2 / 1.5 + (xx - x) ** 2) < 90] = (40, 110, 60)
        for k, y in enumerate(range(40, 100, 14)):
            img[y:y + 3, 70 + k * 2:122 - k * 2] = (120, 30, 30)
            img[y + 3:y + 14, 80 + k * 2:112 - k * 2] = (200, 180, 150)
    else:  # volcano: peaks and lava glow
        ridge = 50 + 20 * np.abs(np.sin(xs / 30.0)) + 5 * np.sin(xs / 5.0)
        for x in range(WIDTH):
            img[int(ridge[x]):FLOOR_Y, x] = (40, 20, 20)
        peak = int(np.argmin(ridge))
        for k in range(6):  # a glowing crater and a lava stream down the slope
            img[int(ridge[peak]) + 2 * k:int(ridge[peak]) + 2 * k + 2, peak - 3 + k:peak + 1 + k] = (255, 140 - 10 * k, 30)
        img[96:FLOOR_Y] = _gradient((240, 90, 20), (120, 30, 10), FLOOR_Y - 96)[:, None, :]
    fl = _gradient(*floors[i], HEIGHT - FLOOR_Y)
    img[FLOOR_Y:] = fl[:, None, :]
    for r in range(FLOOR_Y, HEIGHT):  # floor boards in perspective
        k = 1 + (r - FLOOR_Y) * 0.12
        for c in np.arange(-20, 21) * 14 * k + WIDTH / 2:
            if 0 <= c < WIDTH:
                img[r, int(c)] *= 0.8
    img[FLOOR_Y] *= 0.7
    return img.clip(0, 255).astype(np.uint8)


BAR_W, BAR_Y0, BAR_Y1 = 78, 4, 10
BAR_X = (8, 106)  # left edges of P1's and P2's bars
_FILL, _LOST = np.array((250, 210, 40), np.uint8), np.array((190, 30, 30), np.uint8)


# the player marker: a yellow arrow with a dark edge, 9x6 pixels
_MARKER = np.array([[abs(c - 4) <= 4 - r + (r == 0) for c in range(9)] for r in range(6)], bool)
_MARKER_IN = np.zeros_like(_MARKER)
_MARKER_IN[1:5] = _MARKER[2:6]
_MARKER_IN[0] = False

# Sprites and stage backgrounds depend only on their keys, so all renderers share them (read-only).
_SPRITES: dict[tuple, tuple[np.ndarray, np.ndarray, int, int]] = {}
_STAGES: dict[int, np.ndarray] = {}


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class Renderer:
    """Draws game states into native ``(HEIGHT, WIDTH, 3)`` uint8 frames; caches sprites and backgrounds.

    >>> from trajarena.envs.duel.characters import CHARACTERS
    >>> Renderer().sprite(CHARACTERS[0], 1, "kick_x", 1)[0].ndim
    3
    """

    def __init__(self) -> None:
        self._hud_key: tuple | None = None
        self._hud_bg: np.ndarray | None = None
        self._digits = [np.broadcast_to(np.where(text_mask(str(d), 2)[..., None], 255, 0).astype(np.uint8),
                                        (10, 6, 3)).copy() for d in range(10)]

    def sprite(self, char: Character, outfit: int, pose: str, facing: int):
        """The cached sprite ``(rgb, mask, anchor_x, anchor_y)``, cropped; ``mask`` has 3 channels."""
        key = (char.name, outfit, pose, facing)
        s = _SPRITES.get(key)
        if s is None:
            rgb, mask, ax, ay = build_sprite(char, char.outfits[outfit - 1], pose)
            if facing < 0:
                rgb, mask, ax = rgb[:, ::-1].copy(), mask[:, ::-1].copy(), rgb.shape[1] - 1 - ax
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1  # crop to the drawn pixels
            rgb, mask = rgb[r0:r1, c0:c1], mask[r0:r1, c0:c1]
            # a full 3-channel mask: copyto with a broadcast mask is ~20x slower
            mask3 = np.ascontiguousarray(np.repeat(mask[..., None], 3, axis=2))
            s = _SPRITES[key] = (_frozen(np.ascontiguousarray(rgb)), _frozen(mask3), ax - c0, ay - r0)
        return s

    def _background(self, game: Game, stage: int, outfits: tuple[int, int]) -> np.ndarray:
        f1, f2 = game.fighters
        shown_round = game.round - 1 if game.round_over else game.round  # the round just played
        key = (stage, f1.char.name, f2.char.name, f1.wins, f2.wins, shown_round)
        if key != self._hud_key:
            bg = _STAGES.get(stage)
            if bg is None:
                bg = _STAGES[stage] = _frozen(build_stage(stage))
            img = bg.copy()
            for x in BAR_X:
                img[BAR_Y0 - 1:BAR_Y1 + 1, x - 1:x + BAR_W + 1] = (245, 245, 245)
                img[BAR_Y0:BAR_Y1, x:x + BAR_W] = _LOST
            img[2:14, 89:103] = (10, 10, 20)
            draw_text(img, f1.char.name, BAR_X[0], 13, (255, 255, 255), shadow=(0, 0, 0))
            n2 = f2.char.name
            draw_text(img, n2, BAR_X[1] + BAR_W - text_mask(n2).shape[1], 13, (255, 255, 255), shadow=(0, 0, 0))
            for k in range(2):  # round-win marks next to the timer
                for side, x in ((0, 80 - 6 * k), (1, 109 + 6 * k)):
                    won = game.fighters[side].wins > k
                    img[13:17, x:x + 4] = (20, 20, 20)
                    img[14:16, x + 1:x + 3] = (255, 200, 0) if won else (90, 90, 90)
            draw_text(img, f"R{min(shown_round, 9)}", 92, 16, (255, 255, 255), shadow=(0, 0, 0))
            self._hud_key, self._hud_bg = key, img
        return self._hud_bg  # type: ignore[return-value]

    def draw(self, game: Game, stage: int, outfits: tuple[int, int], marker: int | None = None) -> np.ndarray:
        """A new native frame of the game state, on the background of ``stage`` (1..N_STAGES).

        ``marker`` (a side, 0 or 1) puts a small arrow over that fighter: the player's fighter
        in 1-player mode, so that the frame alone tells which fighter the agent controls.
        """
        img = self._background(game, stage, outfits).copy()
        f1, f2 = game.fighters
        w1 = BAR_W * f1.health // MAX_HEALTH
        w2 = BAR_W * f2.health // MAX_HEALTH
        if w1:
            img[BAR_Y0:BAR_Y1, BAR_X[0] + BAR_W - w1:BAR_X[0] + BAR_W] = _FILL
        if w2:
            img[BAR_Y0:BAR_Y1, BAR_X[1]:BAR_X[1] + w2] = _FILL
        t = game.timer
        img[3:13, 90:96] = self._digits[min(t // 10, 9)]
        img[3:13, 97:103] = self._digits[t % 10]
        for f in (f1, f2):  # shadows
            x0, x1 = int(f.x - f.half_w - 2), int(f.x + f.half_w + 2)
            img[FLOOR_Y:FLOOR_Y + 2, max(x0, 0):max(x1, 0)] //= 2
        # the fighter that attacks is drawn in front
        order = (f2, f1) if f1.state == ATTACK or f2.state in (HITSTUN, KNOCKDOWN, KO) else (f1, f2)
        for f in order:
            pose = "win" if game.round_over and game.round_winner == f.side and f.y <= 0.0 else pose_name(f)
            rgb, mask, ax, ay = self.sprite(f.char, outfits[f.side], pose, f.facing)
            top, left = FLOOR_Y - int(f.y + 0.5) - ay, int(f.x + 0.5) - ax
            h, w = mask.shape[0], mask.shape[1]
            y0, x0 = max(top, 0), max(left, 0)
            y1, x1 = min(top + h, HEIGHT), min(left + w, WIDTH)
            if y1 > y0 and x1 > x0:
                np.copyto(img[y0:y1, x0:x1], rgb[y0 - top:y1 - top, x0 - left:x1 - left],
                          where=mask[y0 - top:y1 - top, x0 - left:x1 - left])
        if marker is not None:
            f = game.fighters[marker]
            mx, my = int(f.x + 0.5) - 4, FLOOR_Y - int(f.top() + 0.5) - 8
            _paint(img, _MARKER, mx, my, (20, 16, 24))
            _paint(img, _MARKER_IN, mx, my, (255, 226, 0))
        for sx, sy, left_, blocked in game.sparks:  # hit sparks
            x, y = int(sx), FLOOR_Y - int(sy)
            r = 2 + int(left_) // 3
            c = (120, 200, 255) if blocked else (255, 255, 160)
            if 0 <= y < HEIGHT and 0 <= x < WIDTH:
                img[max(y - r, 0):y + r + 1, x] = c
                img[y, max(x - r, 0):x + r + 1] = c
        return img
