"""The fighters of ``duel``: body size, speed, reach, power, and their outfits (colour palettes).

The order of :data:`CHARACTERS` is the ``character`` index of the observation and follows
:data:`trajarena.settings.DUEL_CHARACTERS`.

>>> [c.name for c in CHARACTERS]
['Kenji', 'Mira', 'Brutus', 'Longo']
>>> by_name("Brutus").power > by_name("Mira").power
True
"""

from __future__ import annotations

from dataclasses import dataclass

from trajarena.errors import SettingsError
from trajarena.settings import DUEL_CHARACTERS, DUEL_OUTFITS

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Outfit:
    """The colours of one fighter's look: clothes, trim (belt, gloves, boots), skin and hair."""

    clothes: RGB
    trim: RGB
    skin: RGB
    hair: RGB


@dataclass(frozen=True)
class Character:
    """A fighter's build and abilities.

    Args:
        name: shown in the HUD.
        height: standing height in pixels.
        width: body (hurt box) width in pixels.
        speed: walking speed in pixels per frame.
        jump: initial upward speed of a jump in pixels per frame.
        reach: multiplier of every attack's reach.
        power: multiplier of every attack's damage.
        outfits: the palettes of outfits 1..4.

    >>> by_name("Longo").reach > by_name("Kenji").reach
    True
    """

    name: str
    height: int
    width: int
    speed: float
    jump: float
    reach: float
    power: float
    outfits: tuple[Outfit, ...]


_SKIN = ((236, 188, 140), (198, 140, 98), (140, 92, 60), (250, 214, 176))

CHARACTERS: tuple[Character, ...] = (
    Character(
        "Kenji", 50, 16, 1.8, 5.6, 1.0, 1.0,
        (
            Outfit((240, 240, 232), (200, 30, 30), _SKIN[0], (30, 24, 20)),
            Outfit((40, 60, 160), (240, 200, 40), _SKIN[0], (30, 24, 20)),
            Outfit((30, 30, 34), (220, 220, 220), _SKIN[0], (90, 60, 30)),
            Outfit((200, 90, 30), (30, 30, 30), _SKIN[0], (30, 24, 20)),
        ),
    ),
    Character(
        "Mira", 45, 14, 2.5, 6.0, 0.85, 0.8,
        (
            Outfit((40, 150, 220), (250, 250, 250), _SKIN[3], (230, 190, 60)),
            Outfit((220, 60, 150), (60, 20, 60), _SKIN[3], (40, 20, 10)),
            Outfit((60, 180, 90), (250, 230, 120), _SKIN[3], (200, 80, 30)),
            Outfit((120, 60, 200), (230, 230, 250), _SKIN[3], (20, 20, 24)),
        ),
    ),
    Character(
        "Brutus", 56, 24, 1.25, 5.0, 1.0, 1.35,
        (
            Outfit((150, 40, 40), (230, 180, 40), _SKIN[1], (20, 16, 14)),
            Outfit((60, 90, 60), (200, 200, 200), _SKIN[1], (20, 16, 14)),
            Outfit((20, 20, 80), (200, 40, 40), _SKIN[1], (110, 70, 40)),
            Outfit((110, 110, 110), (250, 120, 20), _SKIN[1], (20, 16, 14)),
        ),
    ),
    Character(
        "Longo", 58, 14, 1.6, 5.6, 1.35, 0.9,
        (
            Outfit((230, 200, 60), (40, 40, 40), _SKIN[2], (15, 15, 15)),
            Outfit((250, 130, 40), (40, 40, 140), _SKIN[2], (15, 15, 15)),
            Outfit((180, 30, 200), (240, 240, 240), _SKIN[2], (220, 220, 220)),
            Outfit((30, 130, 130), (240, 90, 60), _SKIN[2], (15, 15, 15)),
        ),
    ),
)

if tuple(c.name for c in CHARACTERS) != DUEL_CHARACTERS or any(len(c.outfits) != DUEL_OUTFITS for c in CHARACTERS):
    raise RuntimeError("duel characters are out of sync with trajarena.settings.DUEL_CHARACTERS/DUEL_OUTFITS")


def by_name(name: str) -> Character:
    """The character called ``name``.

    Raises:
        SettingsError: no such character.
    """
    for c in CHARACTERS:
        if c.name == name:
            return c
    raise SettingsError(f"unknown duel character {name!r}; valid characters: {', '.join(DUEL_CHARACTERS)}")


def index_of(name: str) -> int:
    """The ``character`` index of ``name`` in observations."""
    return DUEL_CHARACTERS.index(by_name(name).name)
