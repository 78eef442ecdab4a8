"""Checking recorded actions against the action space, a chunk at a time.

The game loop copies each action into the chunk's buffers and checks nothing per step. Integer
leaves (``Discrete``, ``MultiDiscrete``, ``MultiBinary``, integer ``Box``) are buffered as
``float64`` while a chunk fills, so an action like ``3.7`` is kept as given instead of being
truncated to ``3`` by numpy; when the chunk is handed over, :class:`ActionCheck` tests all its new
rows at once (vectorised: integral, inside the bounds, finite) and the writer casts them to the
leaf's dtype. Float ``Box`` leaves must be finite: out-of-bounds values are accepted, since many
environments clip continuous actions themselves. Reset rows hold no action and are not checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.format.leaves import Field

__all__ = ["ActionCheck"]

#: integers up to this size survive a float64 buffer exactly
_EXACT = float(1 << 53)


class ActionCheck:
    """The vectorised check of one action space's leaves, and the buffer dtype of each leaf.

    Args:
        fields: the action space's leaf fields (:func:`~trajarena.format.leaves.leaf_fields` order).

    >>> from trajarena.format.leaves import leaf_fields
    >>> check = ActionCheck(leaf_fields(spaces.Discrete(2), "action"))
    >>> check.buffer_dtypes
    [dtype('float64')]
    >>> check.first_invalid([np.array([0.0, 1.0, 3.7, 1.0])], 0, 4, set())
    (2, 0)
    """

    def __init__(self, fields: Sequence[Field]) -> None:
        self.fields = list(fields)
        self.buffer_dtypes: list[np.dtype] = []
        self._bounds: list[tuple[np.ndarray, np.ndarray] | None] = []  # [lo, hi) per leaf, or None: finite only
        for f in self.fields:
            bounds = _integer_bounds(f.space)
            if bounds is not None and max(abs(bounds[0]).max(), abs(bounds[1]).max()) < _EXACT:
                self.buffer_dtypes.append(np.dtype(np.float64))
                self._bounds.append(bounds)
            else:
                self.buffer_dtypes.append(f.dtype)
                self._bounds.append(None)

    def c_checks(self) -> list[Any]:
        """Each leaf's test for the C setter (``trajarena.format._capture``): ``(low, high)`` as flat float64
        arrays for an integer leaf, True for a float leaf (finite), None for none (text)."""
        out: list[Any] = []
        for f, bounds, dtype in zip(self.fields, self._bounds, self.buffer_dtypes, strict=True):
            if bounds is not None:
                out.append(tuple(np.ascontiguousarray(np.broadcast_to(b, f.shape), np.float64).ravel() for b in bounds))
            else:
                out.append(True if dtype.kind == "f" else None)
        return out

    def first_invalid(self, buffers: Sequence[np.ndarray], lo: int, hi: int, reset_rows: set[int]) -> tuple[int, int] | None:
        """The first row in ``[lo, hi)`` (not a reset row) whose action is not in the space, and its leaf.

        Returns:
            ``(row, leaf index)``, or ``None`` when every row is valid.
        """
        if hi <= lo:
            return None
        found: tuple[int, int] | None = None
        for i, (buf, bounds) in enumerate(zip(buffers, self._bounds, strict=True)):
            v = buf[lo:hi]
            if bounds is not None:
                ok = (v == np.floor(v)) & (v >= bounds[0]) & (v < bounds[1])
            elif v.dtype.kind == "f":
                ok = np.isfinite(v)
            else:
                continue
            if ok.all():
                continue  # the usual case: one test per leaf and chunk
            wrong = ~ok.reshape(len(v), -1).all(axis=1)
            for r in reset_rows:
                if lo <= r < hi:
                    wrong[r - lo] = False
            rows = np.flatnonzero(wrong)
            if len(rows) and (found is None or lo + rows[0] < found[0]):
                found = (lo + int(rows[0]), i)  # the earliest row; at a tie, the first leaf
        return found

    def describe(self, leaf: int, value: Any) -> str:
        """``"action 3.7 for <space>"`` for an error message."""
        f = self.fields[leaf]
        shown = np.asarray(value).tolist()
        where = f"action{f.name[len('action'):]}" if f.name != "action" else "action"
        return f"{where} {shown} is not in {f.space}"


def _integer_bounds(space: spaces.Space) -> tuple[np.ndarray, np.ndarray] | None:
    """``[lo, hi)`` per element of an integer leaf, or ``None`` for float and text leaves."""
    if isinstance(space, spaces.Discrete):
        return np.asarray(space.start, np.float64), np.asarray(space.start + space.n, np.float64)
    if isinstance(space, spaces.MultiDiscrete):
        start = np.asarray(space.start, np.float64)
        return start, start + np.asarray(space.nvec, np.float64)
    if isinstance(space, spaces.MultiBinary):
        return np.zeros(space.shape), np.full(space.shape, 2.0)
    if isinstance(space, spaces.Box) and space.dtype.kind in "iub":
        return np.asarray(space.low, np.float64), np.asarray(space.high, np.float64) + 1
    return None
