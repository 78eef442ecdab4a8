"""Streaming trajectory writer: the background thread that turns chunks into Arrow files.

:class:`TrajectoryWriter` fills chunks through its base :class:`~trajarena.format.chunks.ChunkBuffers`:
the game loop only copies each step's values into preallocated numpy buffers (one per flat
column). A full chunk, or one older than ``flush_seconds``, is queued for a background thread that
encodes it as an Arrow record batch (XOR against the previous frame for image columns), checksums
it, compresses it and appends it to ``<stem>.arrow.partial``, which it holds under an exclusive
``flock``. At an episode end, once the current file is older than ``segment_seconds`` (or holds
``segment_steps`` rows), the thread writes the Arrow footer and atomically renames the file to
``<stem>.arrow``: long episodes get a file each, short ones (e.g. CartPole) share a file, so a fast
env does not create thousands of files a second. An info key first seen after a file was opened
widens its schema (the file is copied into a wider one that atomically replaces it). Nothing in the
game loop waits for compression or disk unless ``max_pending`` chunks are already queued. When the
game loop stops calling the writer (a paused game), the thread itself writes the finished rows of
the current chunk after ``2 * flush_seconds``, so a crash loses at most a few seconds of play.
"""

from __future__ import annotations

import atexit
import functools
import os
import queue
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from gymnasium import spaces

from trajarena.errors import RecordingError, TrajArenaError
from trajarena.format import schema as fmt
from trajarena.format.chunks import Chunk, ChunkBuffers
from trajarena.format.segment import SegmentFile
from trajarena.format.spaces import space_to_json
from trajarena.settings.recording import WriterSettings

__all__ = ["TrajectoryWriter"]

#: zstd levels of ``level=None``: 5 while the writer thread can afford it, else 3 (see ``_choose_level``).
_SMALL_LEVEL, _FAST_LEVEL = 5, 3
#: XOR + CRC + zstd level 5 per raw byte of frames, measured (2-core VM): the first file's prior.
_SMALL_SECONDS_PER_BYTE = 1.0e-9
#: How often the writer thread looks at the game loop when nothing is queued (finished episodes, flushes).
_POLL_SECONDS = 0.025
_NOTHING = object()  # what the thread got from its queue when nothing came
#: How long the game loop waits, at most, for the thread to take the chunks queued before one that
#: holds finished episodes (see TrajectoryWriter._drain).
DRAIN_SECONDS = 0.025


class TrajectoryWriter(ChunkBuffers):
    """Write episodes of an env into trajectory files in ``folder``, streaming, crash safe.

    Args:
        folder: directory for the files (created if missing).
        observation_space: the env's observation space (any nesting).
        action_space: the env's action space (any nesting; two-player ``Dict`` included).
        metadata: JSON-ready settings stored in every file (env id, settings, username, ...).
        settings: a :class:`~trajarena.settings.WriterSettings` (or a dict of its fields).
        **options: its fields as keywords (``chunk_steps``, ``flush_seconds``, ``segment_seconds``,
            ``compression``, ``level``, ``fsync``, ...); an unknown or bad one is a ``SettingsError``.

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
        fmt.check_user_metadata(metadata)
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

        self._columns = [fmt.Column(f.name, f.dtype.name, f.shape, transform(f), packed=transform(f) is not None)
                         for f in self._fields]
        #: this writer's id: every episode it records is ``"<recording>/<n>"`` in the ``episode`` column
        self.recording = fmt.new_file_stem(opts.prefix)
        self._adaptive = level is None and compression == "zstd"
        if self._adaptive:
            level = _SMALL_LEVEL
        self._compression, self._level = compression, level
        self._load = [0.0, 0.0]  # background: writer CPU seconds, game-loop fill seconds, of the open file
        self._meta = {
            "format": fmt.FORMAT_NAME, "format_version": fmt.FORMAT_VERSION,
            "library_version": fmt.library_version(), "host": os.uname().nodename, "pid": os.getpid(),
            "observation_space": space_to_json(observation_space), "action_space": space_to_json(action_space),
            "compression": self._compression_meta(), "chunk_steps": self.chunk_steps,
            "flush_seconds": opts.flush_seconds, "lossy": None, "recording": self.recording, **metadata,
        }
        self.settings = opts
        self.flush_seconds, self.segment_seconds, self.segment_steps = opts.flush_seconds, opts.segment_seconds, \
            opts.segment_steps
        self._fsync, self._prefix = opts.fsync, opts.prefix
        self.files: list[Path] = []
        self._returns: dict[int, float] = {}  # background: running return of open episodes
        self._segment_rows = 0
        self._segment_start = time.monotonic()
        # chunks for the thread: a SimpleQueue (C, no Python lock the game loop could wait on while the
        # thread holds it); the game loop waits in _wait_free when every chunk it may allocate is out
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._file: SegmentFile | None = None  # the file the thread writes (touched by the thread only)
        _warm_pyarrow()
        self._thread = threading.Thread(target=self._run, name="trajarena-writer", daemon=True)
        self._thread.start()
        self._atexit = _closer(weakref.ref(self))
        atexit.register(self._atexit)

    # ------------------------------------------------------------------ public API

    def close(self) -> None:
        """Save everything: an open episode is ended as truncated (dropped if it has no step); finish files."""
        if self._closed:
            return
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
        except RecordingError:
            pass  # the thread failed: reported below
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise RecordingError(f"The background writer failed: {self._error!r}; what it had written is in "
                                 f"{self.folder} (run trajarena repair on it)") from self._error
        if self._invalid is not None:
            invalid, self._invalid = self._invalid, None
            raise invalid

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ handing chunks to the thread

    def _submit(self, chunk: Chunk) -> None:
        rotate = chunk.rotate
        self._segment_rows = 0 if rotate else self._segment_rows + chunk.rows
        if rotate:
            self._segment_start = self._last_handoff
        if self._error is not None or not self._thread.is_alive():
            self._thread_failed()
        behind = self._queue.qsize() > 0
        if chunk.ends:
            self._ends_queued += 1
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
        """Allocate up to ``max_pending + 2`` chunks, then wait for the thread to give one back."""
        if self._chunks_left:
            self._chunks_left -= 1
            return None
        while True:  # max_pending chunks are queued: the game loop waits for the disk (never for a dead thread)
            try:
                return self._free.get(timeout=0.25)
            except queue.Empty:
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
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - any failure is raised as RecordingError by the game loop
            self._error = self._error or exc
            if self._file is not None:
                self._file.abort()
            while True:  # drain, so a game loop that did not notice yet never blocks on a dead thread
                try:
                    if self._queue.get(timeout=1.0) is None:
                        return
                except queue.Empty:
                    if self._closed:
                        return

    def _loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                item = _NOTHING
            if item is None:
                return
            if item is not _NOTHING:
                if item.ends:
                    self._ends_taken += 1  # the only writer of _ends_taken (the game loop: _ends_queued)
                if self._error is None:
                    self.write_chunk(item)
            self._watch()

    def _watch(self) -> None:
        """Ask the game loop for what is due (finished episodes, old steps); write it myself if the loop stalls."""
        now = time.monotonic()
        idle, end_due = now - self._last_handoff, self._end_due
        if idle >= self.flush_seconds or (end_due and now >= end_due):
            self._flush_due = True  # the game loop hands the chunk over at its next step
        if self._error is None and (idle >= 2 * self.flush_seconds or (end_due and now >= end_due + _POLL_SECONDS)):
            self._idle_flush()  # the game loop does not step any more (a paused game): write what is done

    def write_chunk(self, chunk: Chunk) -> None:
        """Encode, checksum and append one chunk; finish the file if the chunk asks to rotate."""
        started = time.thread_time()  # CPU, not wall: a busy machine must not make the level flip
        self._write_rows(chunk, chunk.flushed, chunk.rows, list(chunk.starts), chunk.ends[chunk.ends_flushed :],
                         chunk.info)
        self._load[0] += time.thread_time() - started
        self._load[1] += chunk.fill_s
        if chunk.rotate and self._file is not None:
            final = self._file.finish(self._fsync is not False)
            self._file = None
            if final is not None:
                self.files.append(final)
        self._free.put(chunk)

    def _idle_flush(self) -> None:
        """Write the finished rows of the chunk the game loop is filling, without stopping it.

        Rows below ``self._row`` never change again, and an end record is appended only after
        its episode's rows, so reading the end count, then the row count, gives a consistent
        prefix. If the game loop handed the chunk over meanwhile, the queue is not empty: skip.
        """
        with self._idle_lock:
            chunk = self._chunk
            n_ends = len(chunk.ends)
            hi = self._row
            if self._chunk is not chunk or self._queue.qsize() or hi <= chunk.flushed:
                return
            resets = {s[0] for s in chunk.starts if s[2] == 0 and s[0] < hi}
            if self._actions.first_invalid(chunk.cols[self._n_obs :], chunk.flushed, hi, resets) is not None:
                return  # an invalid action: the game loop's next handoff cuts its episode
            starts = [s for s in list(chunk.starts) if s[0] < hi]
            self._write_rows(chunk, chunk.flushed, hi, starts, chunk.ends[chunk.ends_flushed : n_ends],
                             dict(chunk.info))
            chunk.flushed, chunk.ends_flushed = hi, n_ends

    def _write_rows(self, chunk: Chunk, lo: int, hi: int, starts: list, ends: list, info: dict) -> None:
        if hi > lo:
            if self._file is None:
                self._open_segment(info, chunk)
            elif not self._file.info_names.issuperset(info):
                self._file.widen({k: (v.dtype, v.shape[1:]) for k, (v, _) in info.items()})
            batch, meta = self._encode(chunk, lo, hi, starts, ends, info)
            self._file.write(batch, meta)
        elif ends and self._file is not None:  # an episode ended with no new row (reset/close)
            self._file.write(self._file.empty_batch(), self._chunk_meta([], ends, {}))
        if ends and self._fsync == "episode" and self._file is not None:
            self._file.fsync()  # the episodes that ended survive a power loss too

    def _chunk_meta(self, starts: list, ends: list, crc: dict[str, int]) -> dict[str, str]:
        self._file.kept += sum(e["end_reason"] != "discarded" for e in ends)
        self._file.dropped.update(e["episode"] for e in ends if e["end_reason"] == "discarded")
        notes = dict(self._notes)
        ends = [{**e, "return": fmt.json_safe(self._returns.pop(e["episode"], 0.0)),
                 "final_info": fmt.json_safe(e["final_info"]),
                 **({"notes": notes} if notes else {})} for e in ends]
        return fmt.encode_chunk_meta({"crc32": crc, "starts": starts, "ends": ends})

    def _compression_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"codec": self._compression, "level": self._level}
        if self._adaptive:
            meta["adaptive"] = True
        return meta

    def _choose_level(self, chunk: Chunk) -> int:
        """The zstd level of the next file when ``level=None``: 5 if the writer thread can afford it, else 3.

        Files are lossless at any level and readers never need the level (each zstd frame says
        how to decode it), so it may change from file to file. The *load* is the thread's CPU
        time (compression included: Arrow compresses in this thread) over the game loop thread's
        CPU time to fill the same chunks (the env's steps included), measured over the previous
        file: CPU over CPU, so a machine busy with other work does not make a slow-looking game
        loop pick the costlier level. On XOR-coded frames in 200-row chunks level 5 costs about
        2.5x level 3 (2-core VM, zstd alone: duel's 128x192x3 frames 52 vs 20 us and 786 vs 907
        bytes each; Boxing 48 vs 18 us and 353 vs 465 bytes); levels 1-4 cost about the same. Above a load of
        1/2 the next file uses level 3; back to 5 when level 3's load is below 1/4. The first
        file's load is predicted from its first chunk: ~1 ns per raw byte at level 5 over the
        CPU time to fill it.
        """
        busy, fill = self._load
        self._load = [0.0, 0.0]
        if fill <= 0.0:  # the first file: a prior from the first chunk
            if chunk.rows <= 0 or chunk.fill_s <= 0.0:
                return self._level
            load = _SMALL_SECONDS_PER_BYTE * self._row_bytes * chunk.rows / chunk.fill_s
            return _SMALL_LEVEL if load <= 0.5 else _FAST_LEVEL
        load = busy / fill
        if self._level == _SMALL_LEVEL:
            return _FAST_LEVEL if load > 0.5 else _SMALL_LEVEL
        return _SMALL_LEVEL if load < 0.25 else _FAST_LEVEL

    def _open_segment(self, info: dict, chunk: Chunk) -> None:
        known = {k: (s[1], s[2]) for k, s in list(self._info_spec.items()) if s}
        known.update({k: (v.dtype, v.shape[1:]) for k, (v, _) in info.items()})
        self._meta["created_ns"] = time.time_ns()
        if self._adaptive:
            self._level = self._choose_level(chunk)
            self._meta["compression"] = self._compression_meta()
        path = self.folder / (fmt.new_file_stem(self._prefix) + fmt.PARTIAL_SUFFIX)
        self._file = SegmentFile(path, self._meta, self._columns, self._n_obs, known, self._compression, self._level)

    def _encode(self, chunk: Chunk, lo: int, hi: int, starts: list, ends: list,
                info: dict) -> tuple[pa.RecordBatch, dict[str, str]]:
        """Rows ``[lo, hi)`` of a chunk as a record batch and its metadata (starts made relative)."""
        n = hi - lo
        inside = [[s[0] - lo, *s[1:]] for s in starts if lo <= s[0] < hi]
        if not inside or inside[0][0] != 0:  # the rows begin in the middle of an episode
            row0, ep, step0 = next(s for s in reversed(starts) if s[0] < lo)[:3]
            inside.insert(0, [0, ep, step0 + lo - row0])
        rows = np.array([s[0] for s in inside] + [n], np.int64)
        counts = np.diff(rows)
        eps, step0 = [s[1] for s in inside], np.array([s[2] for s in inside], np.int64)
        step = (np.arange(n) - np.repeat(rows[:-1] - step0, counts)).astype(np.int32)
        earned = [lo + s[0] + (s[2] == 0) for s in inside]  # the reset row's reward is not earned
        sums = fmt.running_sums([self._returns.get(ep, 0.0) for ep in eps], chunk.reward, earned,
                                [lo + stop - a for a, stop in zip(earned, rows[1:].tolist(), strict=True)])
        self._returns.update(zip(eps, sums, strict=True))
        reset = step == 0
        no_action = reset if reset.any() else None  # reset rows: no action taken, no reward earned
        ids = fmt.episode_ids(self.recording, eps, counts)
        arrays, crc = [ids, pa.array(step)], {fmt.EPISODE: fmt.crc_of_strings(ids), fmt.STEP: fmt.crc_of(step)}
        for i, (col, values) in enumerate(zip(self._columns, chunk.cols, strict=True)):
            v = values[lo:hi]
            if v.dtype != col.dtype and col.dtype != "object":  # integer actions are buffered as float64
                v = v.astype(col.dtype)
            if col.transform == fmt.XOR_PREV:
                v = fmt.xor_encode(v)
            mask = no_action if i >= self._n_obs else None
            crc[col.name] = fmt.crc_of(v, mask)
            arrays.append(fmt.to_arrow(col, v, mask))
        reward = chunk.reward[lo:hi]
        crc[fmt.REWARD] = fmt.crc_of(reward, no_action)
        arrays.append(pa.array(reward, mask=no_action))
        for name, values in ((fmt.TERMINATED, chunk.terminated), (fmt.TRUNCATED, chunk.truncated)):
            crc[name] = fmt.crc_of(values[lo:hi])
            arrays.append(pa.array(values[lo:hi]))
        for col in self._file.info_columns:
            values, present = info.get(col.name[5:], (None, None))
            if values is None:
                values, present = np.zeros((hi, *col.shape), col.dtype), np.zeros(hi, bool)
            mask = ~present[lo:hi]
            crc[col.name] = fmt.crc_of(values[lo:hi], mask)
            arrays.append(fmt.to_arrow(col, values[lo:hi], mask))
        for key in info.keys() - self._file.info_names:
            self._notes.setdefault(f"info/{key}", "dropped: first seen after the file was opened")
        return pa.record_batch(arrays, schema=self._file.schema), self._chunk_meta(inside, ends, crc)


@functools.cache
def _warm_pyarrow() -> None:
    """Let pyarrow do its lazy one-time imports now, in the caller's thread.

    pyarrow imports pandas (when installed) on its first ``pa.array()``; if that first call were the
    writer thread's while the interpreter exits (an unclosed writer saved by ``atexit``), pandas could
    not register its own exit hook and the file would stay ``.partial``.
    """
    pa.array(np.zeros(1))


def _closer(ref: weakref.ref) -> Any:
    def close_at_exit() -> None:
        writer = ref()
        if writer is not None and not writer._closed:
            try:
                writer.close()
            except TrajArenaError:
                pass

    return close_at_exit
