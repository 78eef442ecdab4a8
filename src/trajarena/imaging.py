"""Frame resizing and greyscale: the one implementation behind every ``frame_shape`` in trajarena.

The ``duel`` env processes its frames at the source (``EnvironmentSettings.frame_shape``) and the
``FrameResize`` wrapper processes any env's frames (``WrappersSettings.frame_shape``); both call
:class:`FrameResizer`, so the same shape gives the same pixels whichever does it. This module
imports numpy only, so envs and wrappers can both use it without depending on each other.

The contract:

- **Resize** is nearest neighbour: output row ``i`` of ``h`` samples input row
  ``floor((i + 0.5) * H / h)`` (columns alike), done as one ``take()`` over the flattened pixels.
- **Greyscale** is ITU-R 601 luma in integer weights, ``(77 R + 150 G + 29 B) >> 8``. The weights
  sum to 256, so a grey pixel keeps its value. It is computed as one float32 matrix product with
  the weights divided by 256: every intermediate is exact in float32, so the result is bit for
  bit the integer formula, at the speed of BLAS.
- A size or channel count of 0 in the target shape keeps the input's.

>>> import numpy as np
>>> resize = FrameResizer((128, 192, 3), (84, 84, 1))
>>> resize.shape, resize.identity
((84, 84, 1), False)
>>> resize(np.full((128, 192, 3), 200, np.uint8))[0, 0]
array([200], dtype=uint8)
>>> FrameResizer((2, 2, 3), (0, 0, 1))(np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]],
...                                              np.uint8))[..., 0].tolist()
[[76, 149], [28, 255]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["LUMA", "FrameResizer", "nearest_indices"]

#: ITU-R 601 luma weights × 256 (they sum to 256).
LUMA = (77, 150, 29)
_LUMA_F32 = np.array(LUMA, np.float32) / np.float32(256)  # exact: powers of two


def nearest_indices(src: int, dst: int) -> np.ndarray:
    """The ``dst`` source indices that nearest-neighbour resizing from ``src`` samples."""
    return np.minimum((np.arange(dst) + 0.5) * src / dst, src - 1).astype(np.intp)


class FrameResizer:
    """Resizes (nearest neighbour) and/or greyscales ``(H, W, C)`` frames of one shape to another.

    Args:
        source: ``(H, W, C)`` of the frames it will be given; ``C`` is 1 or 3.
        target: ``(h, w, c)`` wanted; 0 keeps the source's size or channels. ``c`` is 1 or 3, and
            only a 3-channel source can become 1 channel (greyscale), not the other way round.

    Attributes:
        shape: the output ``(h, w, c)``, zeros resolved.
        identity: True when the output is the input (nothing to do).
    """

    def __init__(self, source: tuple[int, int, int], target: tuple[int, int, int]) -> None:
        h0, w0, c0 = (int(n) for n in source)
        h, w, c = (int(n) for n in target)
        h, w, c = (h or h0), (w or w0), (c or c0)
        if c0 not in (1, 3) or c not in (1, 3) or (c == 3 and c0 == 1):
            raise ValueError(f"cannot turn a {c0}-channel frame into {c} channels (frame shape {target}).")
        self.shape = (h, w, c)
        self.identity = self.shape == (h0, w0, c0)
        self._channels = c0
        self._grey = c == 1 and c0 == 3
        # one flat index per output pixel into the (H*W, C) pixel array: a single take() is fastest
        if (h, w) == (h0, w0):
            self._flat = None
        else:
            self._flat = (nearest_indices(h0, h)[:, None] * w0 + nearest_indices(w0, w)[None, :]).ravel()

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """The processed frame: a new C-contiguous uint8 array (``frame`` itself when ``identity``)."""
        if self.identity:
            return frame
        h, w, c = self.shape
        pixels = frame.reshape(-1, self._channels)
        if self._flat is not None:
            pixels = pixels.take(self._flat, axis=0)
        if self._grey:
            return (pixels.astype(np.float32) @ _LUMA_F32).astype(np.uint8).reshape(h, w, 1)
        return pixels.reshape(h, w, c)
