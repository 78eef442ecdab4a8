"""Looking at replayed observations: DIAMBRA's ``show_obs`` printout and a window for recorded frames.

DIAMBRA Arena's loaders print an observation key by key (``observation["P1"]["health"]: [160]``,
frames as shape/min/max, character indexes with their names) and show its frames;
:func:`describe_observation` is that printout and :class:`FrameWindow` the window (pygame, the
``play`` extra; headless with ``SDL_VIDEODRIVER=dummy``). :func:`frame_image` turns any recorded or
wrapped frame into something to look at: greyscale and stacked frames side by side, frames scaled
to ``[0, 1]`` back to bytes. :class:`~trajarena.replay.imitation.ImitationLearning` uses them for
``show_obs``; the DIAMBRA compatibility loaders for ``render``.

>>> import numpy as np
>>> print(describe_observation({"frame": np.zeros((4, 4, 2), np.uint8), "P1": {"character": 1}},
...                            characters=("Kenji", "Mira")))
observation["P1"]["character"]: 1 / Mira
observation["frame"]: shape (4, 4, 2) - min 0 - max 0
>>> frame_image(np.zeros((4, 4, 2), np.float32)).shape
(4, 8, 3)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from trajarena.errors import require

__all__ = ["FrameWindow", "describe_observation", "frame_image"]


def _character(value: Any, names: Sequence[str] | None) -> str:
    """``3 / Bayman`` for an index or a one-hot vector, when the names are known."""
    arr = np.asarray(value).reshape(-1)
    if not names or arr.size == 0:
        return ""
    index = int(np.argmax(arr)) if arr.size > 1 else int(arr[0])
    return f" / {names[index]}" if 0 <= index < len(names) else ""


def describe_observation(observation: Any, characters: Sequence[str] | None = None, name: str = "observation") -> str:
    """One line per leaf of ``observation``, keys sorted, as DIAMBRA's ``show_obs`` prints them.

    Args:
        observation: a (nested) dict observation, or a frame.
        characters: the game's character names, printed after character indexes.
        name: the name of the whole observation in the printout.
    """
    lines: list[str] = []

    def walk(value: Any, path: str, key: str | None) -> None:
        if isinstance(value, Mapping):
            for k in sorted(value, key=str):
                walk(value[k], f'{path}["{k}"]', str(k))
            return
        arr = np.asarray(value)
        if (key is None or key.endswith("frame")) and arr.ndim >= 2:
            lines.append(f"{path}: shape {arr.shape} - min {arr.min()} - max {arr.max()}")
        elif key is not None and "char" in key.lower():
            lines.append(f"{path}: {_plain(value)}{_character(value, characters)}")
        else:
            lines.append(f"{path}: {_plain(value)}")

    walk(observation, name, None)
    return "\n".join(lines)


def _plain(value: Any) -> str:
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def frame_image(frame: Any) -> np.ndarray | None:
    """An ``(H, W', 3)`` uint8 image of a frame: RGB as is, other channels (grey, stacks) side by side.

    Frames scaled to ``[0, 1]`` (floats) are turned back to bytes; None when ``frame`` is no image.
    """
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.dtype.kind not in "uif" or 0 in arr.shape:
        return None
    if arr.dtype.kind == "f":
        top = float(np.nanmax(arr)) if arr.size else 1.0
        arr = np.nan_to_num(arr * (255.0 if top <= 1.0 else 1.0))
    arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.shape[2] == 3:
        return arr
    planes = np.concatenate([arr[:, :, c] for c in range(arr.shape[2])], axis=1)
    return np.repeat(planes[:, :, None], 3, axis=2)


class FrameWindow:
    """A pygame window that shows frames, scaled up (needs the ``play`` extra).

    >>> FrameWindow("replay").title
    'replay'
    """

    def __init__(self, title: str, fps: int = 0) -> None:
        self.title, self.fps = title, fps
        self._pg: Any = None
        self._window: Any = None
        self._clock: Any = None

    def show(self, frame: Any) -> bool:
        """Show one frame (see :func:`frame_image`); False when it is not an image."""
        image = frame_image(frame)
        if image is None:
            return False
        pg = self._pg = self._pg or require("pygame", "play", "Showing recorded frames")
        scale = max(1, 512 // max(image.shape[:2]))
        size = (image.shape[1] * scale, image.shape[0] * scale)
        if self._window is None or self._window.get_size() != size:
            pg.display.init()
            pg.display.set_caption(self.title)
            self._window = pg.display.set_mode(size)
            self._clock = pg.time.Clock()
        big = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
        pg.surfarray.blit_array(self._window, big.swapaxes(0, 1))
        pg.event.pump()
        pg.display.flip()
        if self.fps:
            self._clock.tick(self.fps)
        return True

    def close(self) -> None:
        if self._window is not None:
            self._pg.display.quit()
            self._window = None
