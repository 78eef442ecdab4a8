"""Write the screenshots of the built-in game ``duel`` into docs/img/.

- ``duel.png``: a mid-fight frame (expert vs CPU), scaled up 3x;
- ``duel_poses.png``: every pose of every fighter;
- ``duel_stages.png``: the four stages.

Run: ``PYTHONPATH=src python docs/make_screenshots.py``
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trajarena.learn.agents import make_agent
from trajarena.envs.duel import DuelEnv
from trajarena.envs.duel.characters import CHARACTERS
from trajarena.envs.duel.game import HEIGHT, WIDTH, Game
from trajarena.envs.duel.render import POSES, Renderer

OUT = Path(__file__).parent / "img"


def _save(path: Path, img: np.ndarray, scale: int) -> None:
    from PIL import Image

    Image.fromarray(np.repeat(np.repeat(img, scale, 0), scale, 1)).save(path)
    print("wrote", path)


def mid_fight(seed: int = 3, steps: int = 45) -> np.ndarray:
    """A frame from the middle of a fight of the expert against the CPU."""
    env = DuelEnv({"seed": seed, "difficulty": 5, "characters": "Kenji", "role": "P1"}, render_mode="rgb_array")
    agent = make_agent("expert", env)
    obs, info = env.reset()
    best, best_score = env.render(), -1
    for t in range(steps * 4):
        obs, _, terminated, _, info = env.step(agent.act(obs, info))
        if terminated:
            break
        g = env.unwrapped.game
        score = (g.fighters[0].attack_phase == 2 or g.fighters[1].attack_phase == 2) * 2 + bool(g.sparks)
        hurt = (100 - g.fighters[0].health) > 10 and (100 - g.fighters[1].health) > 10
        if t >= steps and hurt and score > best_score:
            best, best_score = env.render(), score
    env.close()
    return best


def pose_strip(columns: int = 9) -> np.ndarray:
    """Kenji in every pose (with its name), then every character in every outfit."""
    from trajarena.envs.duel.render import draw_text

    r = Renderer()
    big = max(c.height for c in CHARACTERS)
    cell_w, cell_h = int(big * 1.5), int(big * 1.15) + 12
    rows = -(-len(POSES) // columns) + 1
    img = np.zeros((cell_h * rows, cell_w * columns, 3), np.uint8)
    img[:] = (60, 62, 84)

    def put(char, outfit, pose, row, col, label=""):
        rgb, mask, ax, ay = r.sprite(char, outfit, pose, 1)
        h, w = mask.shape[:2]
        y0, x0 = row * cell_h + cell_h - 12 - ay, col * cell_w + cell_w // 2 - ax
        np.copyto(img[y0:y0 + h, x0:x0 + w], rgb, where=mask)
        if label:
            draw_text(img, label.replace("_", " "), col * cell_w + 2, row * cell_h + cell_h - 8, (230, 230, 230))

    for k, pose in enumerate(POSES):
        put(CHARACTERS[0], 1, pose, k // columns, k % columns, pose)
    base = -(-len(POSES) // columns)
    for i, ch in enumerate(CHARACTERS):
        for o in range(2):
            put(ch, 1 + o + 2 * (i % 2), "idle" if o == 0 else "kick_x", base + (2 * i + o) // columns,
                (2 * i + o) % columns, ch.name if o == 0 else "")
    return img


def stages() -> np.ndarray:
    """The four stages side by side, with two fighters."""
    r = Renderer()
    tiles = []
    for stage in range(1, 5):
        g = Game(CHARACTERS[stage - 1], CHARACTERS[stage % 4])
        tiles.append(r.draw(g, stage, (stage, 1)))
    top = np.concatenate(tiles[:2], axis=1)
    bottom = np.concatenate(tiles[2:], axis=1)
    return np.concatenate([top, bottom], axis=0)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    _save(OUT / "duel.png", mid_fight(), 3)
    _save(OUT / "duel_poses.png", pose_strip(), 3)
    _save(OUT / "duel_stages.png", stages(), 2)
    assert (HEIGHT, WIDTH) == (128, 192)
