"""The writer's side of a writer process: chunks handed over, taken back, the child's answers heard.

:class:`ProcessHandoff` is the part of :class:`~trajarena.format.writer.TrajectoryWriter` that only a
``writer="process"`` writer runs; the link itself (shared memory, messages, the child) is
:mod:`trajarena.format.writer_process`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from trajarena.errors import RecordingError
from trajarena.format.chunks import Chunk
from trajarena.format.info import cut_info
from trajarena.format.metadata import json_safe
from trajarena.format.writer_process import WriterLink

__all__ = ["POLL_SECONDS", "ProcessHandoff"]

#: How often the writer's background thread looks at the game loop when nothing arrives (finished
#: episodes, flushes).
POLL_SECONDS = 0.025
#: At a chunk handoff, how long the game loop lets a listener that waits for the GIL have it, at most
#: (in sleeps of _YIELD_SLEEP seconds).
_YIELD_SECONDS, _YIELD_SLEEP = 0.005, 0.0002


class ProcessHandoff:
    """The writer-process half of :class:`~trajarena.format.writer.TrajectoryWriter` (a mixin: it shares
    its state): hand chunks over through ``self._link`` (:class:`WriterLink`), take them back once
    written (``_inflight`` -> ``_free``), and listen to the child's answers on the writer's background
    thread. The writer sets ``_shared_sent``, ``_spec_sent``, ``_reclaimed``, ``_closed_ok`` and
    ``_answered`` up; ``_watch`` (flushes of a stalled game loop) is its own.
    """

    _link: WriterLink
    _clock: np.ndarray
    _error: BaseException | None
    _closed: bool
    files: list[Path]
    folder: Path

    def _send(self, chunk: Chunk, kind: str, lo: int, hi: int, starts: list, ends: list, info: dict,
              rotate: bool, fill_s: float) -> None:
        """Hand rows ``[lo, hi)`` of a chunk in shared memory to the writer process."""
        at = chunk.info_at  # the columns in shared memory: the child reads them there
        shared = chunk.shared_desc
        if shared is None or len(shared) != len(at):  # made again when the chunk's info columns changed
            shared = [[k, *at[k], info[k][0].dtype.str, list(info[k][0].shape[1:])] for k in info if k in at]
            chunk.shared_desc = shared = self._shared_sent if shared == self._shared_sent else shared
        try:
            if (kind == "chunk" and not ends and len(at) == len(info) and shared is self._shared_sent
                    and self._spec_sent == self._spec_changes
                    and self._link.send_chunk(chunk.slot, lo, hi, starts, rotate, fill_s)):
                return  # the usual chunk: a binary record, no JSON
            rows = cut_info({k: v for k, v in info.items() if k not in at}, lo, hi)
            arrays = [a for pair in rows.values() for a in pair]
            ends = [{**e, "final_info": json_safe(e["final_info"])} for e in ends]
            header = {"kind": kind, "slot": chunk.slot, "lo": lo, "hi": hi, "starts": starts, "ends": ends,
                      "info": list(rows), "rotate": rotate, "fill_s": fill_s}
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
            messages = self._link.receive(POLL_SECONDS, self._clock)
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
