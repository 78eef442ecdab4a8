"""The writer's game-loop half: each step's values copied into chunks of preallocated numpy rows.

A :class:`Chunk` holds ``chunk_steps`` rows of one numpy buffer per flat column of the spaces
(see :func:`~trajarena.format.leaves.leaf_fields`) plus reward, terminated and truncated; the info
columns, created on the first value of a key; and the records of where episodes start and end in
its rows. :class:`ChunkBuffers`, the base of :class:`~trajarena.format.writer.TrajectoryWriter`,
fills the current chunk: ``reset``/``step`` copy values through setters compiled once per chunk
(:func:`~trajarena.format.leaves.compile_setter`), so a step allocates nothing; ``discard`` rewinds
the open episode. A full chunk, an episode end that finishes a file, or a due flush hands
the chunk to :meth:`ChunkBuffers._submit`, which the writer implements (Arrow and files on a
thread); a chunk it is done with comes back through ``_free`` and is reused.

Info values go in columns of their own (:class:`~trajarena.format.info.InfoColumns`, which says which
are stored).
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.errors import RecordingError, SettingsError, SpaceError
from trajarena.format import limits
from trajarena.format.actions import ActionCheck
from trajarena.format.info import SKIP, InfoColumns
from trajarena.format.leaves import compile_setter, leaf_fields, leaf_plan

try:  # the C setter (built with the package when a compiler was there); else the Python setters do it
    from trajarena.format import _capture
except ImportError:  # pragma: no cover - a build without a C compiler
    _capture = None

__all__ = ["EPISODE_FLUSH_SECONDS", "Chunk", "ChunkBuffers"]

#: A finished episode is handed to the writer thread this long after the last handoff (so at most this
#: long after its last step): a kill loses no finished episode older than about twice this.
EPISODE_FLUSH_SECONDS = 0.02
#: While finished episodes wait for their handoff, the game loop reads the clock once per this many rows.
_CLOCK_ROWS = 16


@dataclass
class Chunk:
    """One chunk of rows being filled by the game loop (mutable, owned by one thread at a time)."""

    cols: list[np.ndarray]
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    info: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    rows: int = 0
    flushed: int = 0  # rows [0, flushed) already written by an idle flush
    checked: int = 0  # rows [0, checked) whose actions were checked against the action space
    ends_flushed: int = 0
    starts: list[list[int]] = field(default_factory=list)
    ends: list[dict[str, Any]] = field(default_factory=list)
    rotate: bool = False
    handed: bool = False  # handed over (to the thread or process): an idle flush no longer writes from it
    slot: int = -1  # its place in the writer process's shared memory (-1: a thread-mode chunk)
    fill_s: float = 0.0  # the game loop thread's CPU seconds while it filled the chunk (env steps included)
    setters: tuple = ()  # compiled once per chunk: (set_obs, set_action) writing into ``cols``
    plans: tuple | None = None  # the same for the C setter: (action plan, observation plan), or None
    arena: np.ndarray | None = None  # bytes of shared memory for its info columns (writer process), or None
    arena_used: int = 0
    info_at: dict[str, tuple[int, int]] = field(default_factory=dict)  # info key -> offsets of its columns in arena
    info_cache: tuple | None = None  # its info columns of the last use, for the next (see InfoColumns._bind_info)
    shared_desc: list | None = None  # the writer process's description of its info columns in arena (see ProcessHandoff._send)


class ChunkBuffers(InfoColumns, ABC):
    """Record episodes into chunks of preallocated rows; subclasses decide what becomes of a chunk.

    Args:
        observation_space: the env's observation space (any nesting).
        action_space: the env's action space (any nesting).
        chunk_steps: rows per chunk; default: about ``chunk_bytes`` of raw values, at most 16384.
        chunk_bytes: target raw size of a chunk when ``chunk_steps`` is not given.

    Subclasses implement :meth:`_submit` (what becomes of a closed chunk) and :meth:`_segment_due`,
    and report a failure of what consumes the chunks in ``_error`` (the game loop raises it as
    :class:`RecordingError`).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 chunk_steps: int | None, chunk_bytes: int) -> None:
        self.observation_space, self.action_space = observation_space, action_space
        obs_fields, act_fields = leaf_fields(observation_space, "obs"), leaf_fields(action_space, "action")
        self._fields = obs_fields + act_fields
        for f in self._fields:
            if f.dtype != object and 0 in f.shape:
                raise SpaceError(f"The space of {f.name!r} ({f.space}) holds no value (a zero in its shape "
                                 f"{f.shape}); trajarena cannot record it. Drop it from the space.")
        row_bytes = sum(max(1, f.dtype.itemsize) * math.prod(f.shape) for f in self._fields) + 10
        self.chunk_steps = int(chunk_steps or max(1, min(16384, chunk_bytes // row_bytes)))
        if not 1 <= self.chunk_steps <= limits.MAX_CHUNK_ROWS:
            raise SettingsError(f"chunk_steps must be in [1, {limits.MAX_CHUNK_ROWS}], got {self.chunk_steps}.")
        if self.chunk_steps * row_bytes > limits.MAX_CHUNK_BYTES // 2:
            raise SettingsError(
                f"chunk_steps={self.chunk_steps} makes chunks of {self.chunk_steps * row_bytes} bytes; readers "
                f"refuse chunks above {limits.MAX_CHUNK_BYTES} bytes. Use fewer steps per chunk (or chunk_bytes)."
            )
        self._n_obs = len(obs_fields)
        self._actions = ActionCheck(act_fields)
        self._c_checks = self._actions.c_checks() if _capture is not None else []  # the C setter's, for every chunk
        self._row_bytes = row_bytes
        if row_bytes > limits.MAX_ROW_BYTES:
            raise SpaceError(f"One step of these spaces holds {row_bytes} bytes; readers refuse rows above "
                             f"{limits.MAX_ROW_BYTES} bytes (trajarena.format.limits.MAX_ROW_BYTES). Record smaller "
                             "observations (e.g. frame_shape) or raise the limit for writers and readers alike.")
        self._info_init()
        self._error: BaseException | None = None  # set by whatever consumes the chunks when it fails
        self._closed = False
        self._pid = os.getpid()  # a forked copy must not write into the chunks (shared memory with a writer process)
        self._flush_due = False  # set when the current chunk should be handed over at the next step
        # when finished episodes not yet handed over are due (time.monotonic()), or 0: the game loop
        # looks at the clock every _CLOCK_ROWS rows while it is set, the consumer (the writer thread)
        # when the game loop stalls
        self._end_due = 0.0
        self._last_handoff = time.monotonic()
        #: ``[_last_handoff, _end_due, flush seconds, a consumer waits for the GIL]`` for a consumer that
        #: reads them without the GIL (``_capture.watch``); a subclass with a flush period sets the third
        self._clock = np.array([self._last_handoff, 0.0, math.inf, 0.0])
        self._invalid: SpaceError | None = None  # an invalid action found at a handoff, raised at the next call
        self._episode = -1  # id of the current episode; -1 before the first reset
        self._t = -1  # steps taken in the current episode; -1 when no episode is open
        self._seed: int | None = None
        self._free: queue.SimpleQueue = queue.SimpleQueue()  # handed-over chunks, back for reuse
        # 1 when a row since the last handoff holds an action the C setter did not find inside the space
        # (or no C setter wrote it): _check_actions then tests the rows with numpy
        self._unchecked = np.ones(1, np.uint8)
        # where the C setter's dict lookups found their keys the step before (see _capture.c: Hints)
        self._hints = np.full(256, -1, np.int64)
        self._arenas: dict[int, np.ndarray] = {}  # slot -> shared bytes for info columns (see _info_arrays)
        self._idle_lock = threading.Lock()  # an idle flush vs. discard() rewinding or a handoff of the current chunk

    def _begin(self) -> None:
        """Bind the first chunk (a subclass calls it once it can allocate chunks)."""
        self._bind(self._new_chunk())

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
            self._bound_at = time.thread_time()  # the game loop's CPU time to fill a chunk starts now
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
        row, plan = self._row, self._plan
        try:
            # the C setter: what _set_row does, a few us faster per step; on an error, _set_row says what
            slow = _capture.step(row, action, obs, reward, terminated, truncated, info, plan) if plan else True
        except Exception:  # noqa: BLE001 - the Python setters raise the error, as they would have
            slow = True
        if slow is True:
            self._set_row(row, action, obs, reward, terminated, truncated, info)
        elif slow:  # info keys without a slot in this chunk, or values that do not match it
            self._put_info(row, {k: info[k] for k in slow})
        self._t += 1
        self._row = row = row + 1
        if terminated or truncated:
            self._end("env", bool(terminated), bool(truncated), info)
        elif row == self._cap or self._flush_due or (self._end_due and not row % _CLOCK_ROWS
                                                     and time.monotonic() >= self._end_due):
            self._handoff()

    def _set_row(self, row: int, action: Any, obs: Any, reward: float, terminated: bool, truncated: bool,
                 info: dict[str, Any] | None) -> None:
        """Write one step into ``row`` with the Python setters (no C setter, or a value it refused)."""
        self._unchecked[0] = 1  # its action is tested at the handoff
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
        """Hand the buffered rows over now (e.g. when the game is paused)."""
        self._check()
        if self._row:
            self._handoff()

    @property
    def episodes(self) -> int:
        """Episodes started so far."""
        return self._episode + 1

    # ------------------------------------------------------------------ game-loop internals

    def _check(self) -> None:
        if os.getpid() != self._pid:
            raise RecordingError(f"This TrajectoryWriter belongs to process {self._pid}, not to this forked copy "
                                 f"(pid {os.getpid()}); create a new one in this process.")
        if self._invalid is not None:
            invalid, self._invalid = self._invalid, None
            raise invalid
        if self._error is not None:
            raise RecordingError(f"The background writer failed: {self._error!r}") from self._error
        if self._closed:
            raise RecordingError("This TrajectoryWriter is closed; create a new one.")

    def _new_chunk(self) -> Chunk:
        try:
            chunk = self._free.get_nowait()
        except queue.Empty:
            chunk = self._wait_free()
        if chunk is not None:
            # its info columns are set up by _bind (InfoColumns._bind_info)
            chunk.rows, chunk.starts, chunk.ends, chunk.rotate, chunk.fill_s = 0, [], [], False, 0.0
            chunk.flushed = chunk.ends_flushed = chunk.checked = 0  # `handed` stays True until _bind (idle flush)
            return chunk
        arrays, slot = self._alloc(self._layout())
        cols, reward, terminated, truncated = arrays[:-3], arrays[-3], arrays[-2], arrays[-1]
        for c in cols:
            if c.dtype == object:
                c.fill("")
        setters = (compile_setter(self.observation_space, cols[: self._n_obs]),
                   compile_setter(self.action_space, cols[self._n_obs :]))
        plans = None
        if _capture is not None:
            act, obs = leaf_plan(self.action_space, cols[self._n_obs :]), leaf_plan(self.observation_space, cols[: self._n_obs])
            if act is not None and obs is not None:  # the C setter tests the actions as ActionCheck does
                plans = tuple((*leaf, check) for leaf, check in zip(act, self._c_checks, strict=True)), obs
        return Chunk(cols, reward, terminated, truncated, setters=setters, plans=plans, slot=slot,
                     arena=self._arenas.get(slot))

    def _layout(self) -> list[tuple[np.dtype, tuple[int, ...]]]:
        """dtype and shape of each array of a chunk: the flat columns, then reward, terminated, truncated."""
        n = self.chunk_steps
        dtypes = [f.dtype for f in self._fields[: self._n_obs]] + self._actions.buffer_dtypes
        out = [(np.dtype(d), (n, *f.shape)) for f, d in zip(self._fields, dtypes, strict=True)]
        return [*out, (np.dtype(np.float64), (n,)), (np.dtype(bool), (n,)), (np.dtype(bool), (n,))]

    def _alloc(self, layout: list[tuple[np.dtype, tuple[int, ...]]]) -> tuple[list[np.ndarray], int]:
        """New arrays for a chunk, in :meth:`_layout` order, and its slot (-1: numpy memory, here)."""
        return [np.zeros(shape, dtype) for dtype, shape in layout], -1

    def _bind(self, chunk: Chunk) -> None:
        with self._idle_lock:  # an idle flush sees the old chunk (handed over) or this one (no row yet)
            self._chunk, self._row, self._cap = chunk, 0, self.chunk_steps
            chunk.handed = False
        self._bound_at = time.thread_time()
        self._set_obs, self._set_action = chunk.setters
        self._reward, self._term, self._trunc = chunk.reward, chunk.terminated, chunk.truncated
        self._info_slots = self._bind_info()
        self._plan = None if chunk.plans is None else (*chunk.plans, chunk.reward, chunk.terminated, chunk.truncated,
                                                       self._info_slots, SKIP, self._unchecked, self._hints)

    def _zero_action(self, row: int) -> None:
        for col in self._chunk.cols[self._n_obs :]:
            col[row] = "" if col.dtype == object else 0

    def _end(self, reason: str, terminated: bool, truncated: bool, info: dict[str, Any] | None) -> None:
        self._chunk.ends.append({
            "episode": self._episode, "seed": self._seed, "length": self._t,
            "terminated": terminated, "truncated": truncated, "end_reason": reason,
            "start_ns": self._start_ns, "end_ns": time.time_ns(),
            "final_info": dict(info) if info else {},
        })
        self._t = -1
        now = time.monotonic()
        if self._segment_due():
            self._chunk.rotate = True
            self._handoff()
        elif self._row == self._cap or self._flush_due or now - self._last_handoff >= EPISODE_FLUSH_SECONDS:
            self._handoff()  # a finished episode reaches the file within EPISODE_FLUSH_SECONDS
        elif not self._end_due:
            self._end_due = self._clock[1] = self._last_handoff + EPISODE_FLUSH_SECONDS  # with the episodes ending meanwhile

    def _drop(self) -> None:
        """Forget the open episode's rows still in the current chunk; end it as discarded if some were written."""
        if self._cut(self._episode):  # hand the end record over now, so a crash is unlikely to revive the episode
            self._handoff()

    def _cut(self, episode: int) -> bool:
        """Remove ``episode``'s rows from the current chunk (later rows move up); end it as discarded if rows of it were written.

        Returns:
            True when an end record was added (rows of the episode already reached the file).
        """
        chunk = self._chunk
        with self._idle_lock:  # chunk.flushed is stable while held
            i, start = next((i, s) for i, s in enumerate(chunk.starts) if s[1] == episode)
            keep = max(start[0], chunk.flushed)  # the rows an idle flush wrote stay (they are valid)
            stop = chunk.starts[i + 1][0] if i + 1 < len(chunk.starts) else self._row
            written = start[2] + keep - start[0]  # its rows in earlier chunks and idle-flushed ones
            gone, moved = stop - keep, self._row - stop
            if moved:  # later episodes of the chunk move up over the removed rows
                for buf in (*chunk.cols, chunk.reward, chunk.terminated, chunk.truncated,
                            *(a for pair in chunk.info.values() for a in pair)):
                    buf[keep : keep + moved] = buf[stop : self._row]
            for _, present in chunk.info.values():
                present[keep + moved : self._row] = False
            self._row -= gone
            chunk.checked = min(chunk.checked, keep)
            later = [[s[0] - gone, *s[1:]] for s in chunk.starts[i + 1 :]]
            chunk.starts = chunk.starts[:i] + ([start] if keep > start[0] else []) + later
            old_ends = [e for e in chunk.ends if e["episode"] == episode]
            chunk.ends = [e for e in chunk.ends if e["episode"] != episode]
        if self._t >= 0 and self._episode == episode:  # the open episode: closed
            self._t = -1
        if not written:
            return False
        chunk.ends.append({
            "episode": episode, "seed": start[3] if start[2] == 0 and len(start) > 3 else None,
            "length": written - 1, "terminated": False, "truncated": True, "end_reason": "discarded",
            "start_ns": old_ends[0]["start_ns"] if old_ends else getattr(self, "_start_ns", 0),
            "end_ns": time.time_ns(), "final_info": {},
        })
        return True

    def _check_actions(self) -> None:
        """Check the actions of the current chunk's new rows; remove the episodes of invalid ones.

        The first invalid action is raised as :class:`SpaceError` at the next call; the episodes that
        hold invalid actions are discarded, every other episode is kept.
        """
        chunk = self._chunk
        if not self._unchecked[0]:  # the C setter found every action of these rows inside the space
            chunk.checked = self._row
            return
        self._unchecked[0] = 0 if self._plan is not None else 1
        while True:
            buffers = chunk.cols[self._n_obs :]
            resets = {s[0] for s in chunk.starts if s[2] == 0}
            found = self._actions.first_invalid(buffers, chunk.checked, self._row, resets)
            chunk.checked = self._row
            if found is None:
                return
            row, leaf = found
            start = [s for s in chunk.starts if s[0] <= row][-1]
            if self._invalid is None:
                what = self._actions.describe(leaf, buffers[leaf][row])
                self._invalid = SpaceError(
                    f"Step {start[2] + row - start[0]} of episode {getattr(self, 'recording', '')}/{start[1]}: "
                    f"{what}. The episode is discarded (the others are kept); fix the action and reset() to record on.")
            self._cut(start[1])

    def _handoff(self) -> None:
        """Close the current chunk at ``self._row`` rows, :meth:`_submit` it, and go on in a fresh one."""
        self._check_actions()
        chunk = self._chunk
        chunk.rows = self._row
        chunk.fill_s = max(0.0, time.thread_time() - self._bound_at)
        self._flush_due = False
        self._end_due = self._clock[1] = 0.0
        self._last_handoff = self._clock[0] = time.monotonic()
        self._submit(chunk)
        self._bind(self._new_chunk())
        if self._t >= 0:  # the open episode continues in the fresh chunk
            self._chunk.starts.append([0, self._episode, self._t + 1])

    # ------------------------------------------------------------------ what a subclass provides

    @abstractmethod
    def _submit(self, chunk: Chunk) -> None:
        """Take a closed chunk (``chunk.rotate``: finish the file after it); put it in ``_free`` once done."""

    def _wait_free(self) -> Chunk | None:
        """No chunk came back for reuse: wait for one, or return None to allocate a new one."""
        return None

    @abstractmethod
    def _segment_due(self) -> bool:
        """Whether the file in progress should be finished at this episode end."""
