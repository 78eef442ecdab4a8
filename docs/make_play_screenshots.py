"""Write the screenshots of ``trajarena play`` into docs/img/, from the real window driven by scripted keys.

- ``play.png``: a human (Mira) fighting the CPU (Longo) while recording;
- ``play_keys.png`` / ``play_keys_2p.png``: the controls screen for one human / two humans;
- ``play_takeover.png``: a saved agent plays, the human has taken over (orange frame, status bar).

The window runs headless (``SDL_VIDEODRIVER=dummy``); each picture is the window's surface at a
chosen turn of the play loop, saved with ``pygame.image.save``.

Run: ``SDL_VIDEODRIVER=dummy PYTHONPATH=src python docs/make_play_screenshots.py``
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import pygame  # noqa: E402

from trajarena.play import play  # noqa: E402

OUT = Path(__file__).parent / "img"


def key(kind: int, k: int) -> pygame.event.Event:
    return pygame.event.Event(kind, key=k)


def shoot(path: Path, at: int, script: dict[int, list], **options) -> None:
    """Play with ``script`` (loop turn -> events) and save the window as it is at turn ``at``."""
    turn = [0]

    def events() -> list:
        turn[0] += 1
        if turn[0] == at:
            pygame.image.save(pygame.display.get_surface(), str(path))
            print("wrote", path)
            return [pygame.event.Event(pygame.QUIT)]
        return script.get(turn[0], [])

    play(events=events, fps=0, print_keymap=False, scale=4, seed=3, **options)


def fight(start: int, end: int, hold: int, punch: int, kick: int) -> dict[int, list]:
    """Walk in (hold the direction), then punch and kick in turn."""
    script: dict[int, list] = {start: [key(pygame.KEYDOWN, hold)]}
    for t in range(start + 40, end, 24):
        button = punch if (t // 24) % 2 else kick
        script[t] = [key(pygame.KEYDOWN, button)]
        script[t + 6] = [key(pygame.KEYUP, button)]
    return script


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        shoot(OUT / "play.png", 330, fight(2, 330, pygame.K_RIGHT, pygame.K_z, pygame.K_x), record=f"{tmp}/a",
              character="Mira", show_help=False, settings={"characters": "Longo"}, difficulty=3)
        shoot(OUT / "play_keys.png", 3, {}, record=f"{tmp}/b", character="Mira", settings={"characters": "Longo"})
        shoot(OUT / "play_keys_2p.png", 3, {}, p2="human", settings={"n_players": 2, "characters": ("Kenji", "Brutus")})
        takeover = fight(120, 420, pygame.K_RIGHT, pygame.K_z, pygame.K_x)
        takeover[120] = [key(pygame.KEYDOWN, pygame.K_t), *takeover[120]]
        shoot(OUT / "play_takeover.png", 300, takeover, p1="expert", record=f"{tmp}/c", show_help=False,
              settings={"characters": "Kenji"}, difficulty=4)
