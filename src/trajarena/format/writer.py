"""Streaming trajectory writer: chunks handed from the game loop to a writer thread or process.

:class:`TrajectoryWriter` fills chunks through its base :class:`~trajarena.format.chunks.ChunkBuffers`:
the game loop only copies each step's values into preallocated numpy buffers (one per flat
column). A full chunk, or one older than ``flush_seconds``, is handed to a
:class:`~trajarena.format.encoder.ChunkEncoder` that encodes it as an Arrow record batch (XOR
against the previous frame for image columns), checksums it, compresses it and appends it to
``<stem>.arrow.partial``, which it holds under an exclusive ``flock``. The encoder runs on a
background thread (``writer="thread"``) or in a child process fed through shared memory
(``writer="process"``, :mod:`trajarena.format.writer_process`), which never holds the game loop's
GIL; ``"auto"`` picks the process while a core is free for it (else the thread).
At an episode end, once the current file is older than ``segment_seconds`` (or holds
``segment_steps`` rows), the encoder writes the Arrow footer and atomically renames the file to
``<stem>.arrow``: long episodes get a file each, short ones (e.g. CartPole) share a file, so a fast
env does not create thousands of files a second. An info key first seen after a file was opened
widens its schema (the file is copied into a wider one that atomically replaces it). Nothing in the
game loop waits for compression or disk unless ``max_pending`` chunks are already queued. When the
game loop stops calling the writer (a paused game), the background thread itself hands over the
finished rows of the current chunk after ``2 * flush_seconds``, so a crash loses at most a few
seconds of play.
"""

from __future__ import annotations

import atexit
import collections
import os
import queue
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.errors import RecordingError, TrajArenaError
from trajarena.format import schema as fmt
from trajarena.format.chunks import Chunk, ChunkBuffers
from trajarena.format.encoder import ChunkEncoder
from trajarena.format.handoff import POLL_SECONDS, ProcessHandoff
from trajarena.format.info import cut_info
from trajarena.format.metadata import check_user_metadata
from trajarena.format.spaces import space_to_json
from trajarena.format.writer_process import TOUCH_ROW_BYTES, WriterLink, choose_writer
from trajarena.settings.recording import WriterSettings

__all__ = ["TrajectoryWriter"]

#: Shared bytes per row for the info columns of a chunk in the writer process's memory (duel's 12 keys
#: take 73); keys beyond go in numpy memory and through the pipe.
INFO_ARENA_ROW_BYTES = 256
_NOTHING = object()  # what the thread got from its queue when nothing came
#: How long the game loop waits, at most, for the writer thread to take the chunks queued before one
#: that holds finished episodes (see TrajectoryWriter._drain; a writer process needs no wait).
DRAIN_SECONDS = 0.025
_writers: weakref.WeakSet = weakref.WeakSet()  # the open writers, told when this process forks


def _after_fork_in_child() -> None:
    for writer in list(_writers):
        writer._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


class TrajectoryWriter(ProcessHandoff, ChunkBuffers):
    """Write episodes of an env into trajectory files in ``folder``, streaming, crash safe.

    Args:
        folder: directory for the files (created if missing).
        observation_space: the env's observation space (any nesting).
        action_space: the env's action space (any nesting; two-player ``Dict`` included).
        metadata: JSON-ready settings stored in every file (env id, settings, username, ...).
        settings: a :class:`~trajarena.settings.WriterSettings` (or a dict of its fields).
        **options: its fields as keywords (``chunk_steps``, ``flush_seconds``, ``segment_seconds``,
            ``compression``, ``level``, ``fsync``, ``writer``, ...); an unknown or bad one is a ``SettingsError``.

    The game-loop methods (``reset``, ``step``, ``discard``, ``flush``, ``episodes``) come from
    :class:`~trajarena.format.chunks.ChunkBuffers`.

    >>> import tempfile, numpy as np
    >>> from gymnasium.spaces import Box, Discrete
    >>> folder = tempfile.mkdtemp()
    >>> with TrajectoryWriter(folder, Box(-1, 1, (2,)), Discrete(2), {"env_id": "demo"}) as w:
    ...     w.reset(np.zeros(2, np.float32), {}, seed=0)
    ...     w.step(1, np.ones(2, np.float32), 1.0, True, False, {})
    >>> len(w.files)
    1
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        metadata: dict[str, Any] | None = None,
        settings: WriterSettings | dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        opts = WriterSettings.from_dict(settings, **options)
        metadata = dict(metadata or {})
        check_user_metadata(metadata)
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordingError(f"Cannot create the recording folder {self.folder}: {exc.strerror or exc}. "
                                 "Choose a folder you can write to.") from exc
        if not os.access(self.folder, os.W_OK | os.X_OK):
            raise RecordingError(f"The recording folder {self.folder} is not writable; choose a folder you can write to.")
        # chunks the game loop may still allocate: max_pending queued + the one written + the one filled
        self._chunks_left = opts.max_pending + 2
        # chunks with episode ends: handed over (game loop) / started on (the thread). Not the queue's size:
        # an item leaves the queue before the thread runs again, and _drain must wait until the thread is
        # at work (it then holds the GIL for a switch interval); with qsize, p99 under load was 230 ms.
        self._ends_queued = self._ends_taken = 0
        super().__init__(observation_space, action_space, opts.chunk_steps, opts.chunk_bytes)
        frame_transform, level, compression = opts.frame_transform, opts.level, opts.compression

        def transform(f: Any) -> str | None:
            if frame_transform is None or f.dtype != np.uint8:
                return None
            return fmt.XOR_PREV if frame_transform == fmt.XOR_PREV or len(f.shape) >= 2 else None

        columns = [fmt.Column(f.name, f.dtype.name, f.shape, transform(f), packed=transform(f) is not None)
                   for f in self._fields]
        #: this writer's id: every episode it records is ``"<recording>/<n>"`` in the ``episode`` column
        self.recording = fmt.new_file_stem(opts.prefix)
        adaptive = level is None and compression == "zstd"
        meta = {
            "format": fmt.FORMAT_NAME, "format_version": fmt.FORMAT_VERSION,
            "library_version": fmt.library_version(), "host": os.uname().nodename, "pid": os.getpid(),
            "observation_space": space_to_json(observation_space), "action_space": space_to_json(action_space),
            "compression": None, "chunk_steps": self.chunk_steps,
            "flush_seconds": opts.flush_seconds, "lossy": None, "recording": self.recording, **metadata,
        }
        self.settings = opts
        self.flush_seconds, self.segment_seconds, self.segment_steps = opts.flush_seconds, opts.segment_seconds, \
            opts.segment_steps
        self._clock[2] = opts.flush_seconds
        self.files: list[Path] = []
        self._segment_rows = 0
        self._segment_start = time.monotonic()
        self._slots = 0  # chunks made in shared memory
        self._copier, self._copy_seq, self._staged = None, 0, {}  # their frames' private memory (ProcessHandoff._stage)
        self._inflight: collections.deque[Chunk] = collections.deque()  # handed to the process, in order
        self._reclaimed = 0  # chunks of _inflight the process had written, and were freed
        self._link: WriterLink | None = None
        self._spec_sent = -1  # the _spec_changes the writer process was last told of
        self._closed_ok = False  # the writer process said it finished every file after close()
        self._answered = threading.Event()  # set by the listener: the child said "closed", or the listener ended
        self._shared_sent: list | None = None  # the last shared_info the writer process was told of
        self._encoder: ChunkEncoder | None = None
        #: ``"thread"`` or ``"process"``: where the chunks are encoded (see the ``writer`` setting)
        self.mode = choose_writer(opts.writer, any(f.dtype == object for f in self._fields))
        if self.mode == "process":
            config = {"folder": str(self.folder), "columns": [c.to_json() for c in columns], "n_obs": self._n_obs,
                      "meta": meta, "compression": compression, "level": level, "adaptive": adaptive,
                      "fsync": opts.fsync, "prefix": opts.prefix, "row_bytes": self._row_bytes,
                      "chunk_steps": self.chunk_steps}
            arena = (np.dtype(np.uint8), (self.chunk_steps * INFO_ARENA_ROW_BYTES,))  # see _info_arrays
            try:
                self._link = WriterLink(config, [*self._layout(), arena], self._chunks_left,
                                        touch=self._row_bytes >= TOUCH_ROW_BYTES)
            except RecordingError:
                if opts.writer == "process":
                    raise
                self.mode = "thread"  # auto: no process here, the thread does
        if self._link is None:
            self._encoder = ChunkEncoder(self.folder, columns, self._n_obs, meta, compression, level, adaptive,
                                         opts.fsync, opts.prefix, self._row_bytes, self._notes, self._known_info)
        # chunks for the thread: a SimpleQueue (C, no Python lock the game loop could wait on while the
        # thread holds it); the game loop waits in _wait_free when every chunk it may allocate is out
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        try:
            fmt.warm_pyarrow()  # in this thread: see its doc
            self._begin()
            self._thread = threading.Thread(target=self._run, name="trajarena-writer", daemon=True)
            self._thread.start()
        except BaseException:
            if self._link is not None:  # no writer process left behind
                self._link.kill()
            raise
        self._atexit = _closer(weakref.ref(self))
        atexit.register(self._atexit)
        _writers.add(self)

    def _known_info(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        """The info keys stored so far: ``{key: (dtype, shape)}``."""
        return {k: (s[1], s[2]) for k, s in list(self._info_spec.items()) if s}

    # ------------------------------------------------------------------ public API

    def close(self) -> None:
        """Save everything: an open episode is ended as truncated (dropped if it has no step); finish files."""
        if self._closed or os.getpid() != self._pid:
            return  # a forked copy (its exit runs the parent's atexit hooks) leaves the writer to its owner
        self._closed = True
        atexit.unregister(self._atexit)
        try:
            if self._error is None:
                if self._t == 0:
                    self._drop()
                elif self._t > 0:
                    self._end("close", terminated=False, truncated=True, info=None)
                self._chunk.rotate = True
                self._handoff()
        except (RecordingError, OSError):
            pass  # the writer failed: reported below
        finally:
            self._stop()
        if self._error is not None:
            raise RecordingError(f"The background writer failed: {self._error!r}; what it had written is in "
                                 f"{self.folder} (run trajarena repair on it)") from self._error
        if self._invalid is not None:
            invalid, self._invalid = self._invalid, None
            raise invalid

    def _stop(self) -> None:
        """Let the thread (and the writer process) finish what was handed over, and wait for them."""
        if self._link is None:
            self._queue.put(None)
            self._thread.join()
            return
        self._link.close_input()  # the process writes what it has, then exits: the listener sees it
        self._answered.wait()
        if self._copier is not None:
            self._copier.close()  # its jobs are done (the child waited for them) or moot (the child is gone)
        if self._closed_ok:  # it has finished every file: its exit (unmapping the chunks) is not waited for
            self._link.detach()  # the listener reaps it
            return
        self._thread.join()
        code = self._link.wait()
        if code and self._error is None:
            self._error = RuntimeError(f"the writer process exited with code {code}")

    def _forked(self) -> None:
        """In a forked copy of this process: refuse every call, and drop this copy's ends of the pipes."""
        self._error = self._error or RuntimeError("forked")  # step() then goes through _check(), which says why
        if self._link is not None and not self._closed:
            self._link.forget()

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ handing chunks over

    def _alloc(self, layout: list[tuple[np.dtype, tuple[int, ...]]]) -> tuple[list[np.ndarray], int]:
        if self._link is None:
            return super()._alloc(layout)
        slot, self._slots = self._slots, self._slots + 1
        *arrays, self._arenas[slot] = self._link.shared.arrays(slot)
        return self._stage(arrays, slot), slot

    def _submit(self, chunk: Chunk) -> None:
        rotate = chunk.rotate
        self._segment_rows = 0 if rotate else self._segment_rows + chunk.rows
        if rotate:
            self._segment_start = self._last_handoff
        if self._error is not None or not self._thread.is_alive():
            self._thread_failed()
        if self._link is not None:
            self._inflight.append(chunk)
            with self._idle_lock:  # an idle flush of this chunk is sent before it, or not at all
                chunk.handed = True
                self._send(chunk, "chunk", chunk.flushed, chunk.rows, list(chunk.starts),
                           chunk.ends[chunk.ends_flushed :], chunk.info, rotate, chunk.fill_s)
            self._reclaim()
            if self._clock[3]:
                self._yield()
            return  # no drain: a kill of this process does not stop the writer process from writing it
        behind = self._queue.qsize() > 0
        if chunk.ends:
            self._ends_queued += 1
        with self._idle_lock:
            chunk.handed = True
        self._queue.put(chunk)
        if chunk.ends and behind:
            self._drain()

    def _drain(self) -> None:
        """Wait (up to DRAIN_SECONDS) until the thread has started on this chunk (those before it are done).

        Called when finished episodes are handed over while chunks are still queued (the thread is
        behind). Without this wait a saturated thread (a busy
        machine) lets max_pending chunks of finished episodes queue up, and a kill could lose
        episodes that ended several hundred milliseconds before it (CartPole under load: p99 230 ms
        from an episode's end to the file; with the wait, 65-75 ms). The bound keeps a big-frame
        env's episode end (Boxing: a full 8 MiB chunk ahead) from pausing the game longer. Sleeping
        hands the GIL to the thread.
        """
        deadline = time.monotonic() + DRAIN_SECONDS
        while self._ends_queued > self._ends_taken and time.monotonic() < deadline:
            if self._error is not None or not self._thread.is_alive():
                self._thread_failed()
            time.sleep(0.0005)

    def _wait_free(self) -> Chunk | None:
        """Allocate up to ``max_pending + 2`` chunks, then wait for the thread (or process) to give one back."""
        if self._chunks_left:
            self._chunks_left -= 1
            return None
        while True:  # max_pending chunks are queued: the game loop waits for the disk (never for a dead thread)
            try:
                if self._link is None:
                    return self._free.get(timeout=0.25)
                self._reclaim()
                return self._free.get_nowait()
            except queue.Empty:
                if self._link is not None:
                    self._link.wait_done(0.25)  # the process signals each chunk it has written
                if self._error is not None or not self._thread.is_alive():
                    self._thread_failed()

    def _thread_failed(self) -> None:
        self._error = self._error or RuntimeError("the writer thread stopped")
        raise RecordingError(f"The background writer failed: {self._error!r}") from self._error

    def _segment_due(self) -> bool:
        return (time.monotonic() - self._segment_start >= self.segment_seconds
                or self._segment_rows + self._row >= self.segment_steps)

    # ------------------------------------------------------------------ background thread

    def _run(self) -> None:
        try:
            self._loop() if self._link is None else self._listen()
        except BaseException as exc:  # noqa: BLE001 - any failure is raised as RecordingError by the game loop
            self._error = self._error or exc
            if self._encoder is not None:
                self._encoder.abort()
            while self._link is None:  # drain, so a game loop that did not notice yet never blocks on a dead thread
                try:
                    if self._queue.get(timeout=1.0) is None:
                        return
                except queue.Empty:
                    if self._closed:
                        return
        finally:
            self._answered.set()  # close() of a writer process waits for it: set on every way out

    def _loop(self) -> None:
        """Thread mode: encode the queued chunks here."""
        while True:
            try:
                item = self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                item = _NOTHING
            if item is None:
                return
            if item is not _NOTHING:
                if item.ends:
                    self._ends_taken += 1  # the only writer of _ends_taken (the game loop: _ends_queued)
                if self._error is None:
                    final = self._encoder.write(item, item.flushed, item.rows, list(item.starts),
                                                item.ends[item.ends_flushed :], cut_info(item.info, item.flushed, item.rows),
                                                item.rotate, item.fill_s)
                    if final is not None:
                        self.files.append(final)
                self._free.put(item)
            self._watch()

    def _watch(self) -> None:
        """Ask the game loop for what is due (finished episodes, old steps); write it myself if the loop stalls."""
        now = time.monotonic()
        idle, end_due = now - self._last_handoff, self._end_due
        if idle >= self.flush_seconds or (end_due and now >= end_due):
            self._flush_due = True  # the game loop hands the chunk over at its next step
        if self._error is None and (idle >= 2 * self.flush_seconds or (end_due and now >= end_due + POLL_SECONDS)):
            self._idle_flush()  # the game loop does not step any more (a paused game): write what is done

    def _idle_flush(self) -> None:
        """Write the finished rows of the chunk the game loop is filling, without stopping it.

        Rows below ``self._row`` never change again, and an end record is appended only after
        its episode's rows, so reading the end count, then the row count, gives a consistent
        prefix. A chunk the game loop handed over meanwhile is written from the queue instead.
        """
        with self._idle_lock:
            chunk = self._chunk
            n_ends = len(chunk.ends)
            hi = self._row
            if chunk.handed or hi <= chunk.flushed:
                return
            resets = {s[0] for s in chunk.starts if s[2] == 0 and s[0] < hi}
            if self._actions.first_invalid(chunk.cols[self._n_obs :], chunk.flushed, hi, resets) is not None:
                return  # an invalid action: the game loop's next handoff cuts its episode
            starts = [s for s in list(chunk.starts) if s[0] < hi]
            ends = chunk.ends[chunk.ends_flushed : n_ends]
            if self._link is not None:
                self._send(chunk, "rows", chunk.flushed, hi, starts, ends, dict(chunk.info), False, 0.0)
            else:
                self._encoder.write(chunk, chunk.flushed, hi, starts, ends, cut_info(dict(chunk.info), chunk.flushed, hi))
            chunk.flushed, chunk.ends_flushed = hi, n_ends


def _closer(ref: weakref.ref) -> Any:
    def close_at_exit() -> None:
        writer = ref()
        if writer is not None and not writer._closed:
            try:
                writer.close()
            except TrajArenaError:
                pass

    return close_at_exit
