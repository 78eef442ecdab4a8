"""Streaming trajectory writer: numpy chunk buffers in the game loop, Arrow + zstd on a thread.

The game loop only copies each step's values into preallocated numpy buffers (one per flat
column). A full chunk, or one older than ``flush_seconds``, is handed to a background thread that
encodes it (XOR against the previous frame for image columns), checksums it, compresses it and
appends it to ``<stem>.arrow.partial``. At an episode end, once the current file is older than
``segment_seconds`` (or holds ``segment_steps`` rows), the thread writes the Arrow footer and
atomically renames the file to ``<stem>.arrow``: long episodes get a file each, short ones (e.g.
CartPole) share a file, so a fast env does not create thousands of files a second. Nothing in the
game loop waits for compression or disk unless ``max_pending`` chunks are already queued. When the
game loop stops calling the writer (a paused game), the thread itself writes the finished rows of
the current chunk after ``2 * flush_seconds``, so a crash loses at most a few seconds of play.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import math
import os
import queue
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from gymnasium import spaces

from trajarena.format import schema as fmt
from trajarena.errors import RecordingError, SettingsError, SpaceError
from trajarena.format.spaces import compile_setter, leaf_fields, space_to_json

__all__ = ["TrajectoryWriter"]


_SKIP = object()  # the info slot of a key that is not stored
#: zstd levels of ``level=None``: 5 while the writer thread can afford it, else 3 (see ``_choose_level``).
_SMALL_LEVEL, _FAST_LEVEL = 5, 3
#: XOR + CRC + zstd level 5 per raw byte of frames, measured (2-core VM): the first file's prior.
_SMALL_SECONDS_PER_BYTE = 1.0e-9


@dataclass
class _Chunk:
    """One chunk of rows being filled by the game loop (mutable, owned by one thread at a time)."""

    cols: list[np.ndarray]
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    info: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    rows: int = 0
    flushed: int = 0  # rows [0, flushed) already written by an idle flush
    ends_flushed: int = 0
    starts: list[list[int]] = field(default_factory=list)
    ends: list[dict[str, Any]] = field(default_factory=list)
    rotate: bool = False
    fill_s: float = 0.0  # the game loop's seconds to fill the chunk (waits for the thread excluded)
    setters: tuple = ()  # compiled once per chunk: (set_obs, set_action) writing into ``cols``


class TrajectoryWriter:
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
        self.observation_space, self.action_space = observation_space, action_space
        obs_fields, act_fields = leaf_fields(observation_space, "obs"), leaf_fields(action_space, "action")
        self._fields = obs_fields + act_fields
        for f in self._fields:
            if f.dtype != object and 0 in f.shape:
                raise SpaceError(f"The space of {f.name!r} ({f.space}) holds no value (a zero in its shape "
                                 f"{f.shape}); trajarena cannot record it. Drop it from the space.")

        def transform(f: Any) -> str | None:
            if frame_transform is None or f.dtype != np.uint8:
                return None
            return fmt.XOR_PREV if frame_transform == fmt.XOR_PREV or len(f.shape) >= 2 else None

        self._columns = [fmt.Column(f.name, f.dtype.name, f.shape, transform(f)) for f in self._fields]
        row_bytes = sum(max(1, f.dtype.itemsize) * math.prod(f.shape) for f in self._fields) + 10
        self.chunk_steps = int(chunk_steps or max(1, min(16384, chunk_bytes // row_bytes)))
        if not 1 <= self.chunk_steps <= fmt.MAX_CHUNK_ROWS:
            raise SettingsError(f"chunk_steps must be in [1, {fmt.MAX_CHUNK_ROWS}], got {self.chunk_steps}.")
        if self.chunk_steps * row_bytes > fmt.MAX_CHUNK_BYTES // 2:
            raise SettingsError(
                f"chunk_steps={self.chunk_steps} makes chunks of {self.chunk_steps * row_bytes} bytes; readers "
                f"refuse chunks above {fmt.MAX_CHUNK_BYTES} bytes. Use fewer steps per chunk (or chunk_bytes)."
            )
        self._n_obs = len(obs_fields)
        self._adaptive = level is None and compression == "zstd"
        if self._adaptive:
            level = _SMALL_LEVEL
        self._compression, self._level = compression, level
        self._row_bytes = row_bytes
        self._load = [0.0, 0.0]  # background: writer CPU seconds, game-loop fill seconds, of the open file
        self._meta = {
            "format": fmt.FORMAT_NAME, "format_version": fmt.FORMAT_VERSION,
            "library_version": fmt.library_version(), "host": os.uname().nodename, "pid": os.getpid(),
            "observation_space": space_to_json(observation_space), "action_space": space_to_json(action_space),
            "compression": self._compression_meta(), "chunk_steps": self.chunk_steps,
            "flush_seconds": flush_seconds, "lossy": None, **metadata,
        }
        self.flush_seconds, self.segment_seconds, self.segment_steps = flush_seconds, segment_seconds, segment_steps
        self._fsync, self._prefix = fsync, prefix
        self.files: list[Path] = []
        self._info_spec: dict[str, tuple[type, np.dtype, tuple[int, ...]] | None] = {}
        self._notes: dict[str, str] = {}
        self._error: BaseException | None = None
        self._closed = False
        self._flush_due = False
        self._episode = -1  # id of the current episode; -1 before the first reset
        self._t = -1  # steps taken in the current episode; -1 when no episode is open
        self._seed: int | None = None
        self._returns: dict[int, float] = {}  # background: running return of open episodes
        self._segment_rows = 0
        self._segment_start = time.monotonic()
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._last_handoff = time.monotonic()
        self._idle_lock = threading.Lock()  # an idle flush vs. discard() rewinding the current chunk
        self._bind(self._new_chunk())
        # background state (touched by the thread only)
        self._segment_kept = 0  # episodes of the open file that were not discarded
        self._sink: Any = None
        self._arrow: Any = None
        self._path: Path | None = None
        self._schema: pa.Schema | None = None
        self._lock_fd: int | None = None
        self._info_names: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="trajarena-writer", daemon=True)
        self._thread.start()
        self._atexit = _closer(weakref.ref(self))
        atexit.register(self._atexit)

    # ------------------------------------------------------------------ public API

    def reset(self, obs: Any, info: dict[str, Any] | None = None, seed: int | None = None) -> None:
        """Start an episode with its initial observation (ends an open one as truncated).

        Args:
            obs: the observation ``env.reset`` returned.
            info: the info ``env.reset`` returned (numeric values are stored).
            seed: the seed given to ``env.reset``, stored with the episode.

        Raises:
            SpaceError: ``obs`` does not fit the observation space.
            RecordingError: the writer is closed or its thread failed.
        """
        self._check()
        if self._t == 0:
            self._drop()  # an episode without a step holds nothing to learn from
        elif self._t > 0:
            self._end("reset", terminated=False, truncated=True, info=None)
        if self._row == self._cap:
            self._handoff()
        row = self._row
        if not row:
            self._bound_at = time.perf_counter()  # the game loop's time to fill a chunk starts now
        try:
            self._set_obs(row, obs)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise SpaceError(f"Observation does not fit {self.observation_space}: {exc}") from exc
        self._episode += 1
        self._t, self._seed = 0, None if seed is None else int(seed)
        self._start_ns = time.time_ns()
        self._chunk.starts.append([row, self._episode, 0, self._seed])
        self._zero_action(row)
        self._reward[row], self._term[row], self._trunc[row] = 0.0, False, False
        if info:
            self._put_info(row, info)
        self._row = row + 1
        if self._row == self._cap or self._flush_due:
            self._handoff()

    def step(self, action: Any, obs: Any, reward: float, terminated: bool, truncated: bool,
             info: dict[str, Any] | None = None) -> None:
        """Record one step; ends the episode when ``terminated`` or ``truncated``.

        Args:
            action: the action given to ``env.step``.
            obs, reward, terminated, truncated, info: what ``env.step`` returned.

        Raises:
            SpaceError: the action or observation does not fit its space.
            RecordingError: no open episode, the writer is closed, or its thread failed.
        """
        if self._error is not None or self._t < 0:
            self._check()
            raise RecordingError("step() called with no open episode: call reset() first.")
        row = self._row
        try:
            self._set_action(row, action)
            self._set_obs(row, obs)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise SpaceError(f"Step values do not fit the spaces ({self.action_space}, {self.observation_space}): {exc}") from exc
        self._reward[row] = reward
        self._term[row] = terminated
        self._trunc[row] = truncated
        if info:
            self._put_info(row, info)
        self._t += 1
        self._row = row = row + 1
        if terminated or truncated:
            self._end("env", bool(terminated), bool(truncated), info)
        elif row == self._cap or self._flush_due:
            self._handoff()

    def discard(self) -> bool:
        """Drop the episode in progress: readers never replay or sample any of it.

        Its rows still in memory are dropped; if some already reached the file (earlier chunks,
        an idle flush), the episode is ended there with ``end_reason="discarded"``, which every
        reader skips, and a file that holds only discarded episodes is deleted when finished.

        Returns:
            True if an episode was open (and is now dropped), False otherwise.

        Raises:
            RecordingError: the writer is closed or its thread failed.
        """
        self._check()
        if self._t < 0:
            return False
        self._drop()
        return True

    def flush(self) -> None:
        """Hand the buffered rows to the background thread now (e.g. when the game is paused)."""
        self._check()
        if self._row:
            self._handoff()

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

    @property
    def episodes(self) -> int:
        """Episodes started so far."""
        return self._episode + 1

    # ------------------------------------------------------------------ game-loop internals

    def _check(self) -> None:
        if self._error is not None:
            raise RecordingError(f"The background writer failed: {self._error!r}") from self._error
        if self._closed:
            raise RecordingError("This TrajectoryWriter is closed; create a new one.")

    def _new_chunk(self) -> _Chunk:
        try:
            chunk = self._free.get_nowait()
            chunk.info, chunk.rows, chunk.starts, chunk.ends, chunk.rotate, chunk.fill_s = {}, 0, [], [], False, 0.0
            chunk.flushed = chunk.ends_flushed = 0
            return chunk
        except queue.Empty:
            pass
        n = self.chunk_steps
        cols = [np.zeros((n, *f.shape), dtype=f.dtype) for f in self._fields]
        for c in cols:
            if c.dtype == object:
                c.fill("")
        setters = (compile_setter(self.observation_space, cols[: self._n_obs]),
                   compile_setter(self.action_space, cols[self._n_obs :]))
        return _Chunk(cols, np.zeros(n, np.float64), np.zeros(n, bool), np.zeros(n, bool), setters=setters)

    def _bind(self, chunk: _Chunk) -> None:
        self._chunk, self._row, self._cap = chunk, 0, self.chunk_steps
        self._bound_at = time.perf_counter()
        self._set_obs, self._set_action = chunk.setters
        self._reward, self._term, self._trunc = chunk.reward, chunk.terminated, chunk.truncated
        # info key -> (type, shape, values, present) of this chunk, or _SKIP for a dropped key
        self._info_slots: dict[str, Any] = {k: _SKIP for k, spec in self._info_spec.items() if spec is None}

    def _zero_action(self, row: int) -> None:
        for col in self._chunk.cols[self._n_obs :]:
            col[row] = "" if col.dtype == object else 0

    def _put_info(self, row: int, info: dict[str, Any]) -> None:
        slots = self._info_slots
        for key, value in info.items():
            slot = slots.get(key)
            if slot is not None:
                if slot is _SKIP:
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
            self._info_slots[key] = _SKIP
            return
        store = self._chunk.info
        try:
            values, present = store[key]
        except KeyError:
            values = np.zeros((self.chunk_steps, *spec[2]), spec[1])
            present = np.zeros(self.chunk_steps, bool)
            store[key] = values, present
        values[row] = value
        present[row] = True
        if type(value) is spec[0]:
            self._info_slots[key] = (spec[0], spec[2], values, present)

    def _info_check(self, key: str, value: Any) -> tuple[type, np.dtype, tuple[int, ...]] | None:
        """Decide (once per key) whether an info value is stored; later values must match."""
        old = self._info_spec.get(key, False)
        if old is None:
            return None
        arr = np.asarray(value) if isinstance(value, bool | int | float | np.ndarray | np.generic) else None
        if arr is None or arr.dtype.kind not in "biuf" or arr.size > 4096:
            reason = f"not a numeric scalar/array ({type(value).__name__})"
        elif old is False:
            spec = (type(value), arr.dtype, arr.shape)
            self._info_spec[key] = spec
            return spec
        elif old and arr.shape == old[2] and np.can_cast(arr.dtype, old[1], "same_kind"):
            return old
        else:
            reason = f"its type/shape changed ({type(value).__name__} {arr.shape})"
        self._info_spec[key] = None
        self._notes[f"info/{key}"] = f"dropped: {reason}"
        return None

    def _end(self, reason: str, terminated: bool, truncated: bool, info: dict[str, Any] | None) -> None:
        self._chunk.ends.append({
            "episode": self._episode, "seed": self._seed, "length": self._t,
            "terminated": terminated, "truncated": truncated, "end_reason": reason,
            "start_ns": self._start_ns, "end_ns": time.time_ns(),
            "final_info": dict(info) if info else {},
        })
        self._t = -1
        now = time.monotonic()
        if now - self._segment_start >= self.segment_seconds or self._segment_rows + self._row >= self.segment_steps:
            self._chunk.rotate = True
            self._handoff()
        elif self._row == self._cap or self._flush_due:
            self._handoff()

    def _drop(self) -> None:
        """Forget the open episode's rows still in the current chunk; end it as discarded if some were written."""
        chunk = self._chunk
        with self._idle_lock:  # chunk.flushed is stable while held
            start = next(s for s in reversed(chunk.starts) if s[1] == self._episode)
            keep = max(start[0], chunk.flushed)
            written = start[2] + keep - start[0]  # its rows in earlier chunks and idle-flushed ones
            for _, present in chunk.info.values():
                present[keep : self._row] = False
            self._row = keep
            if keep == start[0]:
                chunk.starts.remove(start)
        if written:
            self._t = written - 1
            self._end("discarded", terminated=False, truncated=True, info=None)
            if self._chunk.ends:  # hand the end record over now, so a crash is unlikely to revive the episode
                self._handoff()
        else:
            self._t = -1

    def _handoff(self) -> None:
        chunk = self._chunk
        chunk.rows = self._row
        chunk.fill_s = time.perf_counter() - self._bound_at
        rotate = chunk.rotate
        self._segment_rows = 0 if rotate else self._segment_rows + chunk.rows
        self._flush_due = False
        self._last_handoff = time.monotonic()
        if rotate:
            self._segment_start = self._last_handoff
        self._queue.put(chunk)
        self._bind(self._new_chunk())
        if self._t >= 0:
            self._chunk.starts.append([0, self._episode, self._t + 1])

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

    def write_chunk(self, chunk: _Chunk) -> None:
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

    def _write_rows(self, chunk: _Chunk, lo: int, hi: int, starts: list, ends: list, info: dict) -> None:
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

    def _choose_level(self, chunk: _Chunk) -> int:
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

    def _open_segment(self, info: dict, chunk: _Chunk) -> None:
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
        self._segment_kept = 0

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
        fields = [pa.field(fmt.EPISODE, pa.int32(), False), pa.field(fmt.STEP, pa.int32(), False)]
        fields += [pa.field(c.name, c.arrow_type(), False) for c in self._columns]
        fields += [pa.field(fmt.REWARD, pa.float64(), False), pa.field(fmt.TERMINATED, pa.bool_(), False),
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

    def _encode(self, chunk: _Chunk, lo: int, hi: int, starts: list, ends: list,
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
        arrays, crc = [pa.array(episode), pa.array(step)], {}
        for col, values in zip(self._columns, chunk.cols, strict=True):
            v = values[lo:hi]
            if col.transform == fmt.XOR_PREV:
                v = fmt.xor_encode(v)
            crc[col.name] = fmt.crc_of(v)
            arrays.append(fmt.to_arrow(col, v))
        for name, values in ((fmt.REWARD, chunk.reward), (fmt.TERMINATED, chunk.terminated),
                             (fmt.TRUNCATED, chunk.truncated)):
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
        crc[fmt.EPISODE], crc[fmt.STEP] = fmt.crc_of(episode), fmt.crc_of(step)
        return pa.record_batch(arrays, schema=self._schema), self._chunk_meta(inside, ends, crc)

    def _write_batch(self, batch: pa.RecordBatch, meta: dict[str, str]) -> None:
        self._arrow.write_batch(batch, custom_metadata=meta)
        self._sink.flush()

    def _finish_segment(self) -> None:
        self._arrow.close()
        self._sink.close()
        self._unlock()
        if not self._segment_kept:  # every episode in it was discarded
            self._path.unlink()
            self._arrow = self._sink = self._path = None
            return
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


def _closer(ref: weakref.ref) -> Any:
    def close_at_exit() -> None:
        writer = ref()
        if writer is not None and not writer._closed:
            try:
                writer.close()
            except RecordingError:
                pass

    return close_at_exit
