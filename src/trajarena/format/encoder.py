"""The writer's file half: rows of a chunk turned into Arrow record batches in trajectory files.

A :class:`ChunkEncoder` owns the files of one recording: it opens ``<stem>.arrow.partial``
(:class:`~trajarena.format.segment.SegmentFile`, under an exclusive ``flock``), encodes rows of a
chunk (XOR against the previous frame for image columns, episode ids, steps, running returns,
CRC-32 of every column), appends them compressed, widens a file for an info key first seen after it
was opened, chooses the zstd level of each file when the level is adaptive, and finishes files. It
never touches the game loop's state: it gets the rows' arrays and what to write of them, so it runs
on the writer thread (:class:`~trajarena.format.writer.TrajectoryWriter`) or in a writer process
(:mod:`trajarena.format.writer_process`) alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from trajarena.format import schema as fmt
from trajarena.format.metadata import encode_chunk_meta, json_safe
from trajarena.format.segment import SegmentFile

__all__ = ["ChunkArrays", "ChunkEncoder"]

#: zstd levels of ``level=None``: 5 while the writer can afford it, else 3 (see ``_choose_level``).
_SMALL_LEVEL, _FAST_LEVEL = 5, 3
#: XOR + CRC + zstd level 5 per raw byte of frames, measured (2-core VM): the first file's prior.
_SMALL_SECONDS_PER_BYTE = 1.0e-9


class ChunkArrays(Protocol):
    """The row arrays of a chunk: one per flat column, then reward, terminated, truncated."""

    cols: list[np.ndarray]
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


class ChunkEncoder:
    """Encode rows of chunks into the trajectory files of one recording.

    Args:
        folder: where the files go.
        columns: the leaf columns (observation leaves first).
        n_obs: how many of ``columns`` are observation leaves.
        meta: the files' metadata document (format, spaces, settings, ``recording``, ...).
        compression, level: the codec; ``adaptive`` lets the zstd level change per file.
        fsync: ``False``, ``"file"`` or ``"episode"``.
        prefix: prefix of the file names.
        row_bytes: raw bytes of one row (the adaptive level's first prior).
        notes: notes on dropped info keys, stored in every end record (shared with the game loop's
            writer in a thread; updated from its messages in a process).
        known_info: returns the info keys known so far, ``{key: (dtype, shape)}``, for a new file.
    """

    def __init__(self, folder: Path, columns: list[fmt.Column], n_obs: int, meta: dict[str, Any],
                 compression: str | None, level: int | None, adaptive: bool, fsync: bool | str, prefix: str,
                 row_bytes: int, notes: dict[str, str], known_info: Callable[[], dict[str, tuple]]) -> None:
        self.folder, self._columns, self._n_obs, self._meta = folder, columns, n_obs, meta
        self.recording = meta["recording"]
        self._compression, self._adaptive, self._fsync, self._prefix = compression, adaptive, fsync, prefix
        self._level = _SMALL_LEVEL if adaptive else level
        self._row_bytes = row_bytes
        self.notes, self._known_info = notes, known_info
        self._meta["compression"] = self.compression_meta()
        self._load = [0.0, 0.0]  # writer CPU seconds, game-loop fill seconds, of the open file
        self._returns: dict[int, float] = {}  # running return of open episodes
        self._file: SegmentFile | None = None
        self._scratches: dict[int, np.ndarray] = {}  # XOR code buffers, by column
        #: the finished files
        self.files: list[Path] = []

    def _scratch(self, i: int, like: np.ndarray) -> np.ndarray:
        """A reused buffer for column ``i``'s XOR code (a fresh 8 MiB array a chunk cost ~2,000 page faults).

        The record batch that views it is written before :meth:`write` returns, so the next chunk may reuse it.
        """
        buf = self._scratches.get(i)
        if buf is None or len(buf) < len(like):
            buf = self._scratches[i] = np.empty_like(like)
        return buf[: len(like)]

    def compression_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"codec": self._compression, "level": self._level}
        if self._adaptive:
            meta["adaptive"] = True
        return meta

    def write(self, arrays: ChunkArrays, lo: int, hi: int, starts: list, ends: list,
              info: dict[str, tuple[np.ndarray, np.ndarray]], rotate: bool = False, fill_s: float = 0.0) -> Path | None:
        """Append rows ``[lo, hi)`` (and the end records ``ends``); finish the file if ``rotate``.

        Args:
            arrays: the chunk's row arrays.
            lo, hi: the rows to write.
            starts: ``[row, episode, step, (seed)]`` of the episodes with rows in the chunk.
            ends: end records of the episodes that ended (their rows included).
            info: ``{key: (values, present)}`` of rows ``[lo, hi)`` (already cut).
            rotate: finish the file after these rows.
            fill_s: the game loop's CPU seconds to fill these rows (the adaptive level's load).

        Returns:
            The finished file, when ``rotate`` finished one that holds kept episodes.
        """
        started = time.thread_time()  # CPU, not wall: a busy machine must not make the level flip
        self._write_rows(arrays, lo, hi, starts, ends, info, fill_s)
        self._load[0] += time.thread_time() - started
        self._load[1] += fill_s
        if not rotate or self._file is None:
            return None
        final = self._file.finish(self._fsync is not False)
        self._file = None
        if final is not None:
            self.files.append(final)
        return final

    def abort(self) -> None:
        """Stop after a failure: the ``.partial`` file stays (unlocked) for repair."""
        if self._file is not None:
            self._file.abort()
            self._file = None

    def _write_rows(self, arrays: ChunkArrays, lo: int, hi: int, starts: list, ends: list, info: dict,
                    fill_s: float) -> None:
        if hi > lo:
            if self._file is None:
                self._open_segment(info, hi - lo, fill_s)
            elif not self._file.info_names.issuperset(info):
                self._file.widen({k: (v.dtype, v.shape[1:]) for k, (v, _) in info.items()})
            batch, meta = self._encode(arrays, lo, hi, starts, ends, info)
            self._file.write(batch, meta)
        elif ends and self._file is not None:  # an episode ended with no new row (reset/close)
            self._file.write(self._file.empty_batch(), self._chunk_meta([], ends, {}))
        if ends and self._fsync == "episode" and self._file is not None:
            self._file.fsync()  # the episodes that ended survive a power loss too

    def _chunk_meta(self, starts: list, ends: list, crc: dict[str, int]) -> dict[str, str]:
        self._file.kept += sum(e["end_reason"] != "discarded" for e in ends)
        self._file.dropped.update(e["episode"] for e in ends if e["end_reason"] == "discarded")
        notes = dict(self.notes)
        ends = [{**e, "return": json_safe(self._returns.pop(e["episode"], 0.0)),
                 "final_info": json_safe(e["final_info"]),
                 **({"notes": notes} if notes else {})} for e in ends]
        return encode_chunk_meta({"crc32": crc, "starts": starts, "ends": ends})

    def _choose_level(self, rows: int, fill_s: float) -> int:
        """The zstd level of the next file when ``level=None``: 5 if the writer can afford it, else 3.

        Files are lossless at any level and readers never need the level (each zstd frame says
        how to decode it), so it may change from file to file. The *load* is the writer's CPU
        time (compression included) over the game loop thread's CPU time to fill the same chunks
        (the env's steps included), measured over the previous file: CPU over CPU, so a machine
        busy with other work does not make a slow-looking game loop pick the costlier level. On
        XOR-coded frames in 200-row chunks level 5 costs about 2.5x level 3 (2-core VM, zstd
        alone: duel's 128x192x3 frames 52 vs 20 us and 786 vs 907 bytes each; Boxing 48 vs 18 us
        and 353 vs 465 bytes); levels 1-4 cost about the same. Above a load of 1/2 the next file
        uses level 3; back to 5 when level 3's load is below 1/4. The first file's load is
        predicted from its first chunk: ~1 ns per raw byte at level 5 over the CPU time to fill it.
        """
        busy, fill = self._load
        self._load = [0.0, 0.0]
        if fill <= 0.0:  # the first file: a prior from the first chunk
            if rows <= 0 or fill_s <= 0.0:
                return self._level
            load = _SMALL_SECONDS_PER_BYTE * self._row_bytes * rows / fill_s
            return _SMALL_LEVEL if load <= 0.5 else _FAST_LEVEL
        load = busy / fill
        if self._level == _SMALL_LEVEL:
            return _FAST_LEVEL if load > 0.5 else _SMALL_LEVEL
        return _SMALL_LEVEL if load < 0.25 else _FAST_LEVEL

    def _open_segment(self, info: dict, rows: int, fill_s: float) -> None:
        known = dict(self._known_info())
        known.update({k: (v.dtype, v.shape[1:]) for k, (v, _) in info.items()})
        self._meta["created_ns"] = time.time_ns()
        if self._adaptive:
            self._level = self._choose_level(rows, fill_s)
            self._meta["compression"] = self.compression_meta()
        path = self.folder / (fmt.new_file_stem(self._prefix) + fmt.PARTIAL_SUFFIX)
        self._file = SegmentFile(path, self._meta, self._columns, self._n_obs, known, self._compression, self._level)

    def _encode(self, arrays: ChunkArrays, lo: int, hi: int, starts: list, ends: list,
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
        sums = fmt.running_sums([self._returns.get(ep, 0.0) for ep in eps], arrays.reward, earned,
                                [lo + stop - a for a, stop in zip(earned, rows[1:].tolist(), strict=True)])
        self._returns.update(zip(eps, sums, strict=True))
        reset = step == 0
        no_action = reset if reset.any() else None  # reset rows: no action taken, no reward earned
        ids = fmt.episode_ids(self.recording, eps, counts)
        out, crc = [ids, pa.array(step)], {fmt.EPISODE: fmt.crc_of_strings(ids), fmt.STEP: fmt.crc_of(step)}
        for i, (col, values) in enumerate(zip(self._columns, arrays.cols, strict=True)):
            v = values[lo:hi]
            if v.dtype != col.dtype and col.dtype != "object":  # integer actions are buffered as float64
                v = v.astype(col.dtype)
            if col.transform == fmt.XOR_PREV:
                v = fmt.xor_encode(v, self._scratch(i, v))
            mask = no_action if i >= self._n_obs else None
            crc[col.name] = fmt.crc_of(v, mask)
            out.append(fmt.to_arrow(col, v, mask))
        reward = arrays.reward[lo:hi]
        crc[fmt.REWARD] = fmt.crc_of(reward, no_action)
        out.append(pa.array(reward, mask=no_action))
        for name, values in ((fmt.TERMINATED, arrays.terminated), (fmt.TRUNCATED, arrays.truncated)):
            crc[name] = fmt.crc_of(values[lo:hi])
            out.append(pa.array(values[lo:hi]))
        for col in self._file.info_columns:
            values, present = info.get(col.name[5:], (None, None))
            if values is None:
                values, present = np.zeros((n, *col.shape), col.dtype), np.zeros(n, bool)
            mask = ~present
            crc[col.name] = fmt.crc_of(values, mask)
            out.append(fmt.to_arrow(col, values, mask))
        for key in info.keys() - self._file.info_names:
            self.notes.setdefault(f"info/{key}", "dropped: first seen after the file was opened")
        return pa.record_batch(out, schema=self._file.schema), self._chunk_meta(inside, ends, crc)
