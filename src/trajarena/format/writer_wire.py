"""What the game process and its writer process share: the messages on the pipe, the chunks in memory.

Messages are a JSON header plus raw array bytes (no pickle): :func:`pack` / :func:`unpack`, which
checks every declared size against the message before it makes an array. The usual message, a chunk
with no episode end, no info values outside the shared memory and nothing new to say about the info
keys, is a fixed binary record instead (:func:`pack_chunk`: its JSON cost the game loop ~40 us per
chunk); :func:`unpack` reads both. :class:`SharedSlots` lays a chunk's arrays out in one
shared-memory file. The game process's end is :mod:`trajarena.format.writer_process`, the child's
:mod:`trajarena.format.writer_child`.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
from typing import Any

import numpy as np

__all__ = ["MAX_MESSAGE_BYTES", "SharedSlots", "pack", "pack_chunk", "unpack"]

#: The largest message either side accepts (a chunk's info values: at most 1 GiB).
MAX_MESSAGE_BYTES = 1 << 30
_ALIGN = 64


# ----------------------------------------------------------------------------- messages


def pack(header: dict[str, Any], arrays: list[np.ndarray] = ()) -> bytes:
    """A message: 4-byte header length, the JSON header (with each array's dtype and shape), the array bytes.

    >>> h, (a,) = unpack(pack({"kind": "x"}, [np.arange(3, dtype=np.int16)]))
    >>> h["kind"], a.tolist()
    ('x', [0, 1, 2])
    """
    arrays = [np.ascontiguousarray(a) for a in arrays]
    head = json.dumps({**header, "arrays": [[a.dtype.str, list(a.shape)] for a in arrays]}).encode()
    return b"".join([len(head).to_bytes(4, "little"), head, *(a.tobytes() for a in arrays)])


#: A :func:`pack_chunk` message starts with this where a :func:`pack` message has its header length
#: (never this large: :func:`unpack` refuses a header longer than the message).
_CHUNK_MARK = b"\xff\xff\xff\xff"
_CHUNK = struct.Struct("<4sIIIdI?Q")  # mark, slot, lo, hi, fill_s, number of starts, rotate, copy job
_START = struct.Struct("<qqqqq")  # row, episode, step, form (3: [row, episode, step]; 4: a seed; 5: seed None), seed


def pack_chunk(slot: int, lo: int, hi: int, starts: list[list], rotate: bool, fill_s: float,
               copied: int = 0) -> bytes | None:
    """A chunk message with no episode end and no info values: a fixed binary record, or ``None``
    when a value does not fit it (then :func:`pack` says it). ``copied``: the copy job that puts the
    chunk's frames in the shared memory (0: none; see :class:`SharedSlots`).

    >>> unpack(pack_chunk(2, 0, 113, [[0, 4, 25], [60, 5, 0, None]], False, 0.5))[0]["starts"]
    [[0, 4, 25], [60, 5, 0, None]]
    """
    try:
        parts = [_CHUNK.pack(_CHUNK_MARK, slot, lo, hi, fill_s, len(starts), rotate, copied)]
        for s in starts:
            if len(s) == 3:
                parts.append(_START.pack(*s, 3, 0))
            elif s[3] is None:
                parts.append(_START.pack(*s[:3], 5, 0))
            else:
                parts.append(_START.pack(s[0], s[1], s[2], 4, s[3]))
    except (struct.error, TypeError, IndexError):  # a seed past 64 bits, ...
        return None
    return b"".join(parts)


def _unpack_chunk(data: bytes) -> dict[str, Any]:
    if len(data) < _CHUNK.size:
        raise ValueError("chunk message shorter than its record")
    _, slot, lo, hi, fill_s, n, rotate, copied = _CHUNK.unpack_from(data)
    if len(data) != _CHUNK.size + n * _START.size:
        raise ValueError(f"chunk message of {len(data)} bytes for {n} episode starts")
    starts = []
    for row, episode, t, form, seed in _START.iter_unpack(memoryview(data)[_CHUNK.size :]):
        if form not in (3, 4, 5):
            raise ValueError(f"chunk message with an episode start of form {form}")
        starts.append([row, episode, t] if form == 3 else [row, episode, t, seed if form == 4 else None])
    return {"kind": "chunk", "slot": slot, "lo": lo, "hi": hi, "starts": starts, "ends": [], "info": [],
            "rotate": rotate, "fill_s": fill_s, "copied": copied}


def unpack(data: bytes) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The header and arrays of a :func:`pack` (or :func:`pack_chunk`) message; every size is checked
    against the message.

    Raises:
        ValueError: a message that is not one :func:`pack` made (sizes that do not add up, a bad
            dtype or shape, an array of Python objects).
    """
    if len(data) < 4:
        raise ValueError("writer message shorter than its header length")
    if data[:4] == _CHUNK_MARK:
        return _unpack_chunk(data), []
    n = int.from_bytes(data[:4], "little")
    if n > len(data) - 4:
        raise ValueError(f"writer message header of {n} bytes in a message of {len(data)}")
    try:
        header = json.loads(data[4 : 4 + n])
        specs = header.pop("arrays")
        arrays, pos, view = [], 4 + n, memoryview(data)
        for dtype, shape in specs:
            dt = np.dtype(dtype)
            if dt.hasobject or not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
                raise ValueError(f"writer message array {dtype} {shape} is not plain data")
            size = dt.itemsize * math.prod(shape)
            if size > len(data) - pos:
                raise ValueError(f"writer message array of {size} bytes past the end of the message")
            arrays.append(np.frombuffer(view[pos : pos + size], dt).reshape(shape))
            pos += size
    except (AttributeError, KeyError, TypeError) as exc:
        raise ValueError(f"not a writer message: {exc!r}") from exc
    if pos != len(data):
        raise ValueError("writer message longer than its arrays")
    return header, arrays


# ----------------------------------------------------------------------------- shared memory


class SharedSlots:
    """``slots`` chunks of arrays in one shared-memory file, then a counter of the chunks written.

    Chunk ``k`` lives at ``k * slot_bytes``. The writer process adds one to :attr:`done` after each
    chunk it has written (chunks are handed over and written in order), so the game loop reuses a
    chunk without waiting for a message: a thread of the game process that waits for a message
    also waits for the GIL, up to a switch interval (5 ms) behind an env that holds it (ALE).
    Frames reach a chunk after its message may have: the game process's copier thread stores the
    number of its last copy job done in :attr:`copied`, and a message names the job it waits for.

    Args:
        layout: ``[(dtype, shape), ...]`` of one chunk's arrays.
        slots: how many chunks.
        fd: an open memfd to map (the child); ``None`` creates one (the game process).
    """

    def __init__(self, layout: list[tuple[np.dtype, tuple[int, ...]]], slots: int, fd: int | None = None) -> None:
        self.layout = [(np.dtype(d), tuple(int(x) for x in s)) for d, s in layout]
        self.offsets, pos = [], 0
        for dtype, shape in self.layout:
            self.offsets.append(pos)
            pos += -(-dtype.itemsize * math.prod(shape) // _ALIGN) * _ALIGN
        self.slot_bytes = -(-max(pos, 1) // mmap.PAGESIZE) * mmap.PAGESIZE
        self.slots = slots
        size = self.slot_bytes * slots + mmap.PAGESIZE  # the last page holds the counter
        if fd is None:
            fd = os.memfd_create("trajarena-chunks", os.MFD_CLOEXEC)
            os.ftruncate(fd, size)  # pages are given only when the game loop first touches them
        elif os.fstat(fd).st_size != size:
            raise ValueError(f"shared memory of {os.fstat(fd).st_size} bytes, expected {size}")
        self._map = mmap.mmap(fd, size)
        self.fd = fd
        #: chunks the writer process has written so far
        self.done = np.frombuffer(self._map, np.uint64, 1, size - mmap.PAGESIZE)
        #: 1 while the writer process sleeps until the game loop wakes it (it naps after each message)
        self.asleep = np.frombuffer(self._map, np.uint64, 1, size - mmap.PAGESIZE + _ALIGN)
        #: the last copy job of the game process's copier thread done (see trajarena.format._capture.Copier)
        self.copied = np.frombuffer(self._map, np.uint64, 1, size - mmap.PAGESIZE + 2 * _ALIGN)

    def release(self) -> None:
        """Free the chunks' memory (not the counter): MADV_REMOVE also drops every other mapping's pages.

        The child calls it once it has written everything: freeing 80 MB of touched pages takes ~15 ms,
        which the game process would otherwise spend when it unmaps them (at a garbage collection,
        inside whatever it does then; bench: a 19 ms stall in the next recording).
        """
        try:
            self._map.madvise(mmap.MADV_REMOVE, 0, self.slots * self.slot_bytes)
        except (OSError, AttributeError, ValueError):
            pass  # an old kernel or another platform: the pages go with the last mapping, as before

    def touch(self) -> None:
        """Give every chunk its memory now (a write a page, ~30 ms for 80 MB, while the child starts).

        A page first written by the game loop costs it a page fault: 18 of them a 73 kB ``duel``
        frame, about 40 us. Chunks are reused, but a writer that falls behind for a moment makes the
        game loop start fresh ones; touched late, they cost ``duel`` 0.80-0.84 of its raw speed
        against 0.86-0.90 touched here. The memory (``max_pending + 2`` chunks) is then held from
        the start.
        """
        np.frombuffer(self._map, np.uint8, self.slots * self.slot_bytes)[:: mmap.PAGESIZE] = 0  # not the counter

    def arrays(self, slot: int) -> list[np.ndarray]:
        """The arrays of chunk ``slot`` (views of the shared memory)."""
        if not 0 <= slot < self.slots:
            raise ValueError(f"chunk slot {slot} outside [0, {self.slots})")
        base = slot * self.slot_bytes
        return [np.frombuffer(self._map, dtype, math.prod(shape), base + off).reshape(shape)
                for (dtype, shape), off in zip(self.layout, self.offsets, strict=True)]

    def describe(self) -> dict[str, Any]:
        return {"layout": [[d.str, list(s)] for d, s in self.layout], "slots": self.slots}
