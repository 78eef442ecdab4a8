"""The writer's side of a writer process: chunks handed over, taken back, the child's answers heard.

:class:`ProcessHandoff` is the part of :class:`~trajarena.format.writer.TrajectoryWriter` that only a
``writer="process"`` writer runs; the link itself (shared memory, messages, the child) is
:mod:`trajarena.format.writer_process`.
"""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path

import numpy as np

from trajarena.errors import RecordingError
from trajarena.format.chunks import Chunk
from trajarena.format.info import cut_info
from trajarena.format.metadata import json_safe
from trajarena.format.writer_process import WriterLink

try:  # its Copier: the frames of a chunk reach the shared memory on a thread without the GIL
    from trajarena.format import _capture
except ImportError:  # pragma: no cover - a build without a C compiler: the game loop writes them there itself
    _capture = None

__all__ = ["POLL_SECONDS", "STAGE_ROW_BYTES", "ProcessHandoff"]

#: How often the writer's background thread looks at the game loop when nothing arrives (finished
#: episodes, flushes).
POLL_SECONDS = 0.025
#: At a chunk handoff, how long the game loop lets a listener that waits for the GIL have it, at most
#: (in sleeps of _YIELD_SLEEP seconds).
_YIELD_SECONDS, _YIELD_SLEEP = 0.005, 0.0002
#: Columns with rows of at least this many bytes (frames) are filled in private memory and copied into
#: the shared chunk at its handoff by the copier thread (see :meth:`ProcessHandoff._stage`).
STAGE_ROW_BYTES = 16 << 10
#: At a handoff the game loop does itself a copy job the copier thread (low priority) has not started for this long.
_HELP_AGE_S = 0.005
_HUGE_PAGE = 2 << 20


def _private_like(shared: np.ndarray) -> np.ndarray:
    """A zeroed private array shaped like ``shared``, in transparent huge pages where the kernel gives
    them (``madvise``), touched now (a page fault per 2 MB, here, not in the game loop's steps)."""
    m = mmap.mmap(-1, shared.nbytes + _HUGE_PAGE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        m.madvise(mmap.MADV_HUGEPAGE)
    except (AttributeError, OSError):
        pass  # no THP here: 4 kB pages, private all the same
    raw = np.frombuffer(m, np.uint8)
    start = -raw.ctypes.data % _HUGE_PAGE
    raw[start : start + shared.nbytes : mmap.PAGESIZE] = 0
    return raw[start : start + shared.nbytes].view(shared.dtype).reshape(shared.shape)


class ProcessHandoff:
    """The writer-process half of :class:`~trajarena.format.writer.TrajectoryWriter` (a mixin: it shares
    its state): hand chunks over through ``self._link`` (:class:`WriterLink`), take them back once
    written (``_inflight`` -> ``_free``), and listen to the child's answers on the writer's background
    thread. The writer sets ``_shared_sent``, ``_spec_sent``, ``_reclaimed``, ``_closed_ok`` and
    ``_answered`` up; ``_watch`` (flushes of a stalled game loop) is its own.
    """

    _link: WriterLink
    _clock: np.ndarray
    _copier: object | None  # trajarena.format._capture.Copier, made with the first staged chunk
    _copy_seq: int  # copy jobs submitted
    _staged: dict[int, list[tuple[np.ndarray, np.ndarray]]]  # slot -> (private, shared) arrays of its frames
    _error: BaseException | None
    _closed: bool
    files: list[Path]
    folder: Path

    def _stage(self, arrays: list[np.ndarray], slot: int) -> list[np.ndarray]:
        """A new chunk's arrays (views of ``slot``'s shared memory), its frame columns swapped for private ones.

        The game loop's copy of a frame into shared memory cost it ~2 us a step more than into private
        memory in huge pages (``duel``, 2-core VM): a frame touches 18 fresh 4 kB pages, whose page
        walks miss under the env's cache pressure, and shared memory gets no huge pages on a default
        Linux. The copier thread moves the frames into the slot at the chunk's handoff (:meth:`_copy`).
        """
        if _capture is None or not hasattr(_capture, "Copier") or len(os.sched_getaffinity(0)) < 2:
            return arrays  # no copier, or no core for it
        cols = len(arrays) - 3  # then reward, terminated, truncated
        big = [i for i in range(cols) if arrays[i].dtype != object and len(arrays[i])
               and arrays[i].nbytes // len(arrays[i]) >= STAGE_ROW_BYTES]
        if big and self._copier is None:
            self._copier = _capture.Copier()
        pairs = []
        for i in big:
            private = _private_like(arrays[i])
            pairs.append((private, arrays[i]))
            arrays[i] = private
        if pairs:
            self._staged[slot] = pairs
        return arrays

    def _copy(self, chunk: Chunk, kind: str, lo: int, hi: int) -> int:
        """Put the frames of rows ``[lo, hi)`` in the shared chunk: on the copier thread for a handoff (the
        job's number, which the message carries: the child waits for it), here for an idle flush (0)."""
        pairs = self._staged.get(chunk.slot)
        if not pairs or hi <= lo:
            return 0
        views = tuple((private[lo:hi], shared[lo:hi]) for private, shared in pairs)
        if kind != "chunk":  # an idle flush, on the listener thread: the game loop is filling later rows
            for private, shared in views:
                shared[...] = private
            return 0
        self._copier.help(_HELP_AGE_S)  # a busy machine starves the copier: its jobs never wait for long
        self._copy_seq += 1
        self._copier.submit(views, self._link.shared.copied, self._copy_seq)
        return self._copy_seq

    def _send(self, chunk: Chunk, kind: str, lo: int, hi: int, starts: list, ends: list, info: dict,
              rotate: bool, fill_s: float) -> None:
        """Hand rows ``[lo, hi)`` of a chunk in shared memory to the writer process."""
        at = chunk.info_at  # the columns in shared memory: the child reads them there
        shared = chunk.shared_desc
        if shared is None or len(shared) != len(at):  # made again when the chunk's info columns changed
            shared = [[k, *at[k], info[k][0].dtype.str, list(info[k][0].shape[1:])] for k in info if k in at]
            chunk.shared_desc = shared = self._shared_sent if shared == self._shared_sent else shared
        try:
            copied = self._copy(chunk, kind, lo, hi)
            if (kind == "chunk" and not ends and len(at) == len(info) and shared is self._shared_sent
                    and self._spec_sent == self._spec_changes
                    and self._link.send_chunk(chunk.slot, lo, hi, starts, rotate, fill_s, copied)):
                return  # the usual chunk: a binary record, no JSON
            rows = cut_info({k: v for k, v in info.items() if k not in at}, lo, hi)
            arrays = [a for pair in rows.values() for a in pair]
            ends = [{**e, "final_info": json_safe(e["final_info"])} for e in ends]
            header = {"kind": kind, "slot": chunk.slot, "lo": lo, "hi": hi, "starts": starts, "ends": ends,
                      "info": list(rows), "rotate": rotate, "fill_s": fill_s, "copied": copied}
            if shared is not self._shared_sent:  # usually every chunk has the same keys at the same places
                header["shared_info"] = self._shared_sent = shared
            if self._spec_sent != self._spec_changes:  # the info keys and notes, when they changed (JSON costs)
                self._spec_sent = self._spec_changes
                header["notes"] = self._notes
                header["known"] = {k: [d.str, list(shape)] for k, (d, shape) in self._known_info().items()}
            self._link.send(header, arrays)
        except BaseException as exc:  # a KeyboardInterrupt mid-send too: nothing more can be handed over
            self._error = self._error or (exc if isinstance(exc, RecordingError) else RecordingError(
                f"Recording was interrupted ({type(exc).__name__}) while a chunk was handed to the writer process; "
                f"what it had written is in {self.folder} (run trajarena repair on it)."))
            raise

    def _reclaim(self) -> None:
        """Process mode: the chunks the writer process has written are free again."""
        for _ in range(int(self._link.shared.done[0]) - self._reclaimed):
            self._free.put(self._inflight.popleft())
            self._reclaimed += 1

    def _yield(self) -> None:
        """Let the listener, which waits for the GIL (``_clock[3]``, see ``_capture.watch``), take it.

        An env that releases the GIL more often than the switch interval starves a thread that waits
        for it (each release wakes it for nothing, the game loop takes it back first); a short sleep
        here, at a chunk handoff, lets it run. It needs the GIL seldom: a file finished, a flush due.
        """
        deadline = time.monotonic() + _YIELD_SECONDS
        while self._clock[3] and time.monotonic() < deadline:
            time.sleep(_YIELD_SLEEP)

    def _listen(self) -> None:
        """Process mode: take the writer process's answers (chunks done, files finished, its failure)."""
        while True:
            messages = self._link.receive(POLL_SECONDS, self._clock, self._copier)
            for m in messages or ():
                if "file" in m:
                    self.files.append(Path(m["file"]))
                elif "error" in m:
                    self._error = self._error or RuntimeError(f"the writer process failed: {m['error']}")
                elif m.get("closed") and self._closed:
                    self._closed_ok = True  # its last message: close() returns now (not when _run ends);
                    self._answered.set()  # its exit is reaped here, not by a thread started then (~0.5-4 ms
                    self._link.proc.wait()  # while the child frees the shared pages: it blocks a stack's mmap)
                    return
            if messages is None:
                if not self._closed and self._error is None:
                    code = self._link.proc.wait()
                    self._error = RuntimeError(f"the writer process (pid {self._link.proc.pid}) stopped "
                                               f"(exit code {code})")
                return
            self._watch()
