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
import fcntl
import functools
import json
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

from trajarena.errors import RecordingError, SettingsError
from trajarena.format import schema as fmt
from trajarena.format.chunks import Chunk, ChunkBuffers
from trajarena.format.rewrite import copy_without
from trajarena.format.spaces import space_to_json

__all__ = ["TrajectoryWriter"]

#: zstd levels of ``level=None``: 5 while the writer thread can afford it, else 3 (see ``_choose_level``).
_SMALL_LEVEL, _FAST_LEVEL = 5, 3
#: XOR + CRC + zstd level 5 per raw byte of frames, measured (2-core VM): the first file's prior.
_SMALL_SECONDS_PER_BYTE = 1.0e-9


class TrajectoryWriter(ChunkBuffers):
    """Write episodes of an env into trajectory files in ``folder``, streaming, crash safe.

    Args:
        folder: directory for the files (created if missing).
        observation_space: the env's observation space (any nesting).
        action_space: the env's action space (any nesting; two-player ``Dict`` included).
        metadata: JSON-ready settings stored in every file (env id, settings, username, ...).
        chunk_steps: rows per chunk; default: about ``chunk_bytes`` of raw values, at most 16384.
        chunk_bytes: target raw size of a chunk when ``chunk_steps`` is not given.
        flush_seconds: a chunk is handed over at least this often, even if not full.
        segment_seconds: a file is finished at the first episode end after it is this old.
        segment_steps: a file is finished at the first episode end after it has this many rows.
        compression: ``"zstd"``, ``"lz4"`` or ``None``.
        level: the compression level. ``None`` with zstd: adaptive, per file, between level 5
            (smaller) and level 3 (about 2.5x faster on frames): see :meth:`_choose_level`.
        frame_transform: ``"auto"`` (XOR with the previous row for uint8 leaves of 2+ dimensions),
            ``"xor_prev"`` for every uint8 leaf, or ``None``.
        fsync: also ``fsync`` finished files (survives power loss, not only process death).
        max_pending: chunks queued for the thread before the game loop waits for it.
        prefix: prefix of the file names.

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
        *,
        chunk_steps: int | None = None,
        chunk_bytes: int = 4 << 20,
        flush_seconds: float = 2.0,
        segment_seconds: float = 2.0,
        segment_steps: int = 1 << 20,
        compression: str | None = "zstd",
        level: int | None = None,
        frame_transform: str | None = "auto",
        fsync: bool = False,
        max_pending: int = 8,
        prefix: str = "",
    ) -> None:
        metadata = dict(metadata or {})
        fmt.check_user_metadata(metadata)
        if compression not in ("zstd", "lz4", None):
            raise SettingsError(f"compression must be 'zstd', 'lz4' or None, got {compression!r}.")
        if frame_transform not in ("auto", fmt.XOR_PREV, None):
            raise SettingsError(f"frame_transform must be 'auto', 'xor_prev' or None, got {frame_transform!r}.")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        super().__init__(observation_space, action_space, chunk_steps, chunk_bytes)

        def transform(f: Any) -> str | None:
            if frame_transform is None or f.dtype != np.uint8:
                return None
            return fmt.XOR_PREV if frame_transform == fmt.XOR_PREV or len(f.shape) >= 2 else None

        self._columns = [fmt.Column(f.name, f.dtype.name, f.shape, transform(f), packed=transform(f) is not None)
                         for f in self._fields]
        #: this writer's id: every episode it records is ``"<recording>/<n>"`` in the ``episode`` column
        self.recording = fmt.new_file_stem(prefix)
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
            "flush_seconds": flush_seconds, "lossy": None, "recording": self.recording, **metadata,
        }
        self.flush_seconds, self.segment_seconds, self.segment_steps = flush_seconds, segment_seconds, segment_steps
        self._fsync, self._prefix = fsync, prefix
        self.files: list[Path] = []
        self._returns: dict[int, float] = {}  # background: running return of open episodes
        self._segment_rows = 0
        self._segment_start = time.monotonic()
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._last_handoff = time.monotonic()
        # background state (touched by the thread only)
        self._segment_kept = 0  # episodes of the open file that were not discarded
        self._segment_dropped: set[int] = set()  # discarded episodes with rows in the open file
        self._sink: Any = None
        self._arrow: Any = None
        self._path: Path | None = None
        self._schema: pa.Schema | None = None
        self._lock_fd: int | None = None
        self._info_names: set[str] = set()
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
        if self._error is None:
            if self._t == 0:
                self._drop()
            elif self._t > 0:
                self._end("close", terminated=False, truncated=True, info=None)
            self._chunk.rotate = True
            self._handoff()
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise RecordingError(f"The background writer failed: {self._error!r}") from self._error

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ handing chunks to the thread

    def _submit(self, chunk: Chunk) -> None:
        rotate = chunk.rotate
        self._segment_rows = 0 if rotate else self._segment_rows + chunk.rows
        self._last_handoff = time.monotonic()
        if rotate:
            self._segment_start = self._last_handoff
        self._queue.put(chunk)

    def _segment_due(self) -> bool:
        return (time.monotonic() - self._segment_start >= self.segment_seconds
                or self._segment_rows + self._row >= self.segment_steps)

    # ------------------------------------------------------------------ background thread

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=max(0.05, self.flush_seconds / 4))
            except queue.Empty:
                idle = time.monotonic() - self._last_handoff
                if idle >= self.flush_seconds:
                    self._flush_due = True  # the game loop hands the chunk over at its next step
                if idle >= 2 * self.flush_seconds and self._error is None:
                    try:  # ... and if it does not step any more (paused game), write what is done
                        self._idle_flush()
                    except BaseException as exc:  # noqa: BLE001 - surfaced as RecordingError
                        self._error = exc
                        self._abort_segment()
                continue
            if item is None:
                return
            if self._error is not None:
                continue  # drain so the game loop never blocks on a dead thread
            try:
                self.write_chunk(item)
            except BaseException as exc:  # noqa: BLE001 - surfaced as RecordingError by the game loop
                self._error = exc
                self._abort_segment()

    def write_chunk(self, chunk: Chunk) -> None:
        """Encode, checksum and append one chunk; finish the file if the chunk asks to rotate."""
        started = time.thread_time()  # CPU, not wall: a busy machine must not make the level flip
        self._write_rows(chunk, chunk.flushed, chunk.rows, list(chunk.starts), chunk.ends[chunk.ends_flushed :],
                         chunk.info)
        self._load[0] += time.thread_time() - started
        self._load[1] += chunk.fill_s
        if chunk.rotate and self._arrow is not None:
            self._finish_segment()
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
            starts = [s for s in list(chunk.starts) if s[0] < hi]
            self._write_rows(chunk, chunk.flushed, hi, starts, chunk.ends[chunk.ends_flushed : n_ends],
                             dict(chunk.info))
            chunk.flushed, chunk.ends_flushed = hi, n_ends

    def _write_rows(self, chunk: Chunk, lo: int, hi: int, starts: list, ends: list, info: dict) -> None:
        if hi > lo:
            if self._arrow is None:
                self._open_segment(info, chunk)
            elif not self._info_names.issuperset(info):
                self._widen(info)
            batch, meta = self._encode(chunk, lo, hi, starts, ends, info)
            self._write_batch(batch, meta)
        elif ends and self._arrow is not None:  # an episode ended with no new row (reset/close)
            empty = pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in self._schema], schema=self._schema)
            self._write_batch(empty, self._chunk_meta([], ends, {}))

    def _chunk_meta(self, starts: list, ends: list, crc: dict[str, int]) -> dict[str, str]:
        self._segment_kept += sum(e["end_reason"] != "discarded" for e in ends)
        self._segment_dropped.update(e["episode"] for e in ends if e["end_reason"] == "discarded")
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
        time (compression included: Arrow compresses in this thread) over the game loop's wall
        time to fill the same chunks, measured over the previous file. Level 5 costs the thread
        about 1.7x level 3 (``bench/bench_format.py``, whole writer per step: duel 104 vs 62 us,
        861 vs 987 bytes; Boxing 92 vs 52 us, 420 vs 543 bytes). Above a load of 1/2 the next
        file uses level 3; back to 5 when level 3's load is below 1/4. The first file's load is
        predicted from its first chunk: ~1 ns per raw byte at level 5 over the time to fill it.
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
        self._path = self.folder / (fmt.new_file_stem(self._prefix) + fmt.PARTIAL_SUFFIX)
        opening = self._path.with_name(self._path.name + ".opening")
        self._start_file(known, opening)
        os.replace(opening, self._path)  # appears locked and with its schema: repair() never sees it half-made
        self._segment_kept, self._segment_dropped = 0, set()

    def _widen(self, info: dict) -> None:
        """Add the columns of info keys first seen after the file was opened, keeping its chunks.

        The chunks written so far are copied into a new file with the wider schema (their new
        columns all null), which then atomically replaces the ``.partial`` file; recording goes
        on in it. This happens at most once per new key and file, so no value is lost whatever
        the moment the writer thread opened the file.
        """
        old = {c.name[5:]: (np.dtype(c.dtype), c.shape) for c in self._info_columns}
        known = {**old, **{k: (v.dtype, v.shape[1:]) for k, (v, _) in info.items() if k not in old}}
        self._arrow.close()
        self._sink.close()
        self._unlock()
        path, tmp = self._path, self._path.with_name(self._path.name + ".widening")
        with pa.memory_map(str(path), "r") as source:
            previous = pa.ipc.open_file(source)
            self._start_file(known, tmp)
            new_cols = [c for c in self._info_columns if c.name[5:] not in old]
            empty_crc = {c.name: fmt.crc_of(np.zeros((0, *c.shape), c.dtype)) for c in new_cols}
            for i in range(previous.num_record_batches):
                batch, custom = previous.get_batch_with_custom_metadata(i)
                doc = json.loads(custom[fmt.CHUNK_KEY.encode()])
                doc["crc32"] = {**doc.get("crc32", {}), **empty_crc}
                arrays = [batch.column(f.name) if f.name in batch.schema.names else pa.nulls(batch.num_rows, f.type)
                          for f in self._schema]
                self._write_batch(pa.record_batch(arrays, schema=self._schema), fmt.encode_chunk_meta(doc))
        os.replace(tmp, path)

    def _start_file(self, known: dict[str, tuple[np.dtype, tuple[int, ...]]], path: Path) -> None:
        """Open an Arrow file at ``path`` whose info columns are ``known`` (name: dtype, shape)."""
        info_cols = [fmt.Column(f"info/{k}", known[k][0].name, tuple(known[k][1])) for k in sorted(known)]
        self._info_columns = info_cols
        self._info_names = {c.name[5:] for c in info_cols}
        self._meta["columns"] = [c.to_json() for c in self._columns]
        self._meta["info_columns"] = [c.to_json() for c in info_cols]
        fields = [pa.field(fmt.EPISODE, pa.large_string(), False), pa.field(fmt.STEP, pa.int32(), False)]
        fields += [pa.field(c.field, c.arrow_type(), i >= self._n_obs, metadata=_field_meta(c))  # actions: null on reset rows
                   for i, c in enumerate(self._columns)]
        fields += [pa.field(fmt.REWARD, pa.float64(), True), pa.field(fmt.TERMINATED, pa.bool_(), False),
                   pa.field(fmt.TRUNCATED, pa.bool_(), False)]
        fields += [pa.field(c.name, c.arrow_type(), True) for c in info_cols]
        self._schema = pa.schema(fields, metadata=fmt.encode_metadata(self._meta))
        self._sink = pa.OSFile(str(path), "wb")
        self._lock(path)
        codec = None if self._compression is None else pa.Codec(self._compression, self._level)
        options = pa.ipc.IpcWriteOptions(compression=codec, use_threads=False)
        self._arrow = pa.ipc.new_file(self._sink, self._schema, options=options)

    def _lock(self, path: Path) -> None:
        """Hold an exclusive ``flock`` on the open file, so :func:`~trajarena.format.integrity.repair` leaves it alone."""
        self._lock_fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a file system without locks: the recency check of repair() still applies
            pass

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None

    def _encode(self, chunk: Chunk, lo: int, hi: int, starts: list, ends: list,
                info: dict) -> tuple[pa.RecordBatch, dict[str, str]]:
        """Rows ``[lo, hi)`` of a chunk as a record batch and its metadata (starts made relative)."""
        n = hi - lo
        inside = [[s[0] - lo, *s[1:]] for s in starts if lo <= s[0] < hi]
        if not inside or inside[0][0] != 0:  # the rows begin in the middle of an episode
            row0, ep, step0 = next(s for s in reversed(starts) if s[0] < lo)[:3]
            inside.insert(0, [0, ep, step0 + lo - row0])
        episode, step = np.empty(n, np.int32), np.empty(n, np.int32)
        bounds = [s[0] for s in inside] + [n]
        for (row, ep, step0, *_), stop in zip(inside, bounds[1:], strict=True):
            episode[row:stop] = ep
            step[row:stop] = np.arange(step0, step0 + stop - row)
            rewards = chunk.reward[lo + row + (step0 == 0) : lo + stop]  # the reset row's reward is not earned
            self._returns[ep] = fmt.running_sum(self._returns.get(ep, 0.0), rewards)
        reset = step == 0
        no_action = reset if reset.any() else None  # reset rows: no action taken, no reward earned
        ids = fmt.episode_ids(self.recording, episode)
        arrays, crc = [ids, pa.array(step)], {fmt.EPISODE: fmt.crc_of_strings(ids), fmt.STEP: fmt.crc_of(step)}
        for i, (col, values) in enumerate(zip(self._columns, chunk.cols, strict=True)):
            v = values[lo:hi]
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
        for col in self._info_columns:
            values, present = info.get(col.name[5:], (None, None))
            if values is None:
                values, present = np.zeros((hi, *col.shape), col.dtype), np.zeros(hi, bool)
            mask = ~present[lo:hi]
            crc[col.name] = fmt.crc_of(values[lo:hi], mask)
            arrays.append(fmt.to_arrow(col, values[lo:hi], mask))
        for key in info.keys() - {c.name[5:] for c in self._info_columns}:
            self._notes.setdefault(f"info/{key}", "dropped: first seen after the file was opened")
        return pa.record_batch(arrays, schema=self._schema), self._chunk_meta(inside, ends, crc)

    def _write_batch(self, batch: pa.RecordBatch, meta: dict[str, str]) -> None:
        self._arrow.write_batch(batch, custom_metadata=meta)
        self._sink.flush()

    def _finish_segment(self) -> None:
        self._arrow.close()
        self._sink.close()
        if not self._segment_kept:  # every episode in it was discarded
            self._unlock()
            self._path.unlink()
            self._arrow = self._sink = self._path = None
            return
        if self._segment_dropped:  # rows of discarded episodes reached the file: a finished file has none
            dropping = self._path.with_name(self._path.name + ".dropping")
            copy_without(self._path, dropping, self._segment_dropped)
            os.replace(dropping, self._path)
        self._unlock()
        final = self._path.with_name(self._path.name[: -len(fmt.PARTIAL_SUFFIX)] + fmt.SUFFIX)
        if self._fsync:
            fd = os.open(self._path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(self._path, final)
        self.files.append(final)
        self._arrow = self._sink = self._path = None

    def _abort_segment(self) -> None:
        try:
            if self._sink is not None:
                self._sink.close()
        except Exception:  # noqa: BLE001 - already failing; the .partial stays for repair()
            pass
        self._unlock()
        self._arrow = self._sink = None


def _field_meta(col: fmt.Column) -> dict[str, str] | None:
    """What a plain Arrow reader needs to decode a packed column, on its field."""
    if not col.packed:
        return None
    return {"trajarena.transform": str(col.transform), "trajarena.dtype": col.dtype,
            "trajarena.shape": json.dumps(list(col.shape))}


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
            except RecordingError:
                pass

    return close_at_exit
