"""Info values in columns of their own, a chunk at a time (the game loop's half of the writer).

A key is stored when its first value is a numeric (bool, int, float) scalar or array of at most 4096
values; that value fixes its type and shape. A later value that is not numeric, has another shape, or
whose dtype does not cast to the first one's (``same_kind``) drops the key for the rest of the
recording; the reason is noted in the episodes' end records (``notes``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["SKIP", "InfoColumns", "cut_info"]

SKIP = object()  # the info slot of a key that is not stored


def cut_info(info: dict[str, tuple[np.ndarray, np.ndarray]], lo: int, hi: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Rows ``[lo, hi)`` of a chunk's info values (``{key: (values, present)}``)."""
    return {k: (v[lo:hi], p[lo:hi]) for k, (v, p) in info.items()}


class InfoColumns:
    """The info half of :class:`~trajarena.format.chunks.ChunkBuffers` (a mixin: it shares its state).

    It keeps ``_info_spec`` (key -> ``(type, dtype, shape)``, or None for a dropped key), ``_notes``
    (why keys were dropped) and ``_spec_changes`` (how often either changed; the writer process is told
    of them), and writes into the current chunk's (``self._chunk``) ``info`` columns through
    ``self._info_slots``, the per-chunk cache that :meth:`_bind_info` makes and that the C setter
    reads too.
    """

    chunk_steps: int
    _chunk: Any
    _info_slots: dict[str, Any]

    def _info_init(self) -> None:
        self._info_spec: dict[str, tuple[type, np.dtype, tuple[int, ...]] | None] = {}
        self._notes: dict[str, str] = {}
        self._spec_changes = 0

    def _bind_info(self) -> dict[str, Any]:
        """The bound chunk's slots: key -> ``(type, shape, values, present)``, or ``SKIP`` for a dropped key.

        Every stored key gets its zeroed columns here, not at its first value in the chunk (the first
        step of each chunk made a dozen of them: ~50 us on ``duel``), and a chunk reuses the columns of
        its previous use when the keys are the same. A column with no value is what a missing key is
        written as (nulls), so the files do not change.
        """
        chunk = self._chunk
        cache = chunk.info_cache
        if cache is not None and cache[0] == self._spec_changes:  # the keys of its last use: its columns again
            _, info, at, used, slots, loose = cache
            if used:
                chunk.arena[:used] = 0
            for values, present in loose:  # in numpy memory (the arena was full)
                values.fill(0)
                present.fill(False)
            chunk.info, chunk.info_at, chunk.arena_used = dict(info), dict(at), used
            return dict(slots)
        chunk.info, chunk.info_at, chunk.arena_used, chunk.shared_desc = {}, {}, 0, None
        slots: dict[str, Any] = {}
        for key, spec in self._info_spec.items():
            if spec is None:
                slots[key] = SKIP
            else:
                chunk.info[key] = self._info_arrays(key, spec[1], spec[2])
                slots[key] = (spec[0], spec[2], *chunk.info[key])
        loose = [pair for key, pair in chunk.info.items() if key not in chunk.info_at]
        chunk.info_cache = (self._spec_changes, dict(chunk.info), dict(chunk.info_at), chunk.arena_used, dict(slots), loose)
        return slots

    def _put_info(self, row: int, info: dict[str, Any]) -> None:
        slots = self._info_slots
        for key, value in info.items():
            slot = slots.get(key)
            if slot is not None:
                if slot is SKIP:
                    continue
                if type(value) is slot[0] and (not slot[1] or value.shape == slot[1]):
                    slot[2][row] = value
                    slot[3][row] = True
                    continue
            self._put_info_slow(row, key, value)

    def _put_info_slow(self, row: int, key: str, value: Any) -> None:
        """First value of a key in this chunk, or one of another type: check it, then cache its slot."""
        spec = self._info_spec.get(key, False)
        if spec is False or type(value) is not spec[0] or (spec[2] and value.shape != spec[2]):
            spec = self._info_check(key, value)
        if spec is None:
            self._info_slots[key] = SKIP
            return
        store = self._chunk.info
        try:
            values, present = store[key]
        except KeyError:
            values, present = store[key] = self._info_arrays(key, spec[1], spec[2])
        values[row] = value
        present[row] = True
        if type(value) is spec[0]:
            self._info_slots[key] = (spec[0], spec[2], values, present)

    def _info_arrays(self, key: str, dtype: np.dtype, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Zeroed ``(values, present)`` columns of an info key in the current chunk.

        A chunk in shared memory has an arena for them: the writer process reads them there (and the
        message that hands the chunk over holds no info values); they go in numpy memory when it is full.
        """
        n, chunk = self.chunk_steps, self._chunk
        if chunk.arena is not None:
            start = -(-chunk.arena_used // 64) * 64
            flags = start + -(-n * dtype.itemsize * math.prod(shape) // 64) * 64
            if flags + n <= len(chunk.arena):
                chunk.arena[start : flags + n] = 0
                chunk.arena_used, chunk.info_at[key] = flags + n, (start, flags)
                return (chunk.arena[start : start + n * dtype.itemsize * math.prod(shape)].view(dtype).reshape(n, *shape),
                        chunk.arena[flags : flags + n].view(bool))
        return np.zeros((n, *shape), dtype), np.zeros(n, bool)

    def _info_check(self, key: str, value: Any) -> tuple[type, np.dtype, tuple[int, ...]] | None:
        """Decide (once per key) whether an info value is stored; later values must match."""
        old = self._info_spec.get(key, False)
        if old is None:
            return None
        arr = np.asarray(value) if isinstance(value, bool | int | float | np.ndarray | np.generic) else None
        if not isinstance(key, str):
            reason = f"its key is not a string ({type(key).__name__})"
        elif arr is None or arr.dtype.kind not in "biuf" or arr.size > 4096:
            reason = f"not a numeric scalar/array ({type(value).__name__})"
        elif old is False:
            spec = (type(value), arr.dtype, arr.shape)
            self._info_spec[key] = spec
            self._spec_changes += 1
            return spec
        elif old and arr.shape == old[2] and np.can_cast(arr.dtype, old[1], "same_kind"):
            return old
        else:
            reason = f"its type/shape changed ({type(value).__name__} {arr.shape})"
        self._info_spec[key] = None
        self._notes[f"info/{key}"] = f"dropped: {reason}"
        self._spec_changes += 1
        return None
