"""Whole-column access to trajectory files: memory-mapped files and the decoded-column cache.

:class:`_TrajFile` reads one trajectory file through a memory map: its index (from
:func:`trajarena.format.index.index_file`, every declared size checked first), whole columns, and single
chunks with the next ones decoded ahead on threads (sequential replay). :class:`_Column` is one
flat column over a list of such files, decoded per file on first use and kept in memory or, given
a ``cache_dir``, in ``<cache_dir>/<file hash>/<column>.npy`` memory-mapped files (the hash covers
the file's size and its Arrow footer, so a changed file gets a new entry). Every decoded column is
checked against its CRC-32 unless the file was opened with ``verify=False``. The training dataset of
the replay layer is built on these; this module knows nothing of it.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from trajarena.format import schema as fmt
from trajarena.errors import CorruptFileError, SettingsError
from trajarena.format.index import index_file

#: Chunks decoded ahead (on as many threads) during sequential replay.
PREFETCH_CHUNKS = 2


# ----------------------------------------------------------------------------- one file


class _TrajFile:
    """Read access to one trajectory file: metadata, episode index, decoded columns and chunks.

    Opening goes through :func:`trajarena.format.index.index_file`, which checks every declared size
    before anything is allocated; each decoded column is checked against its CRC-32.
    """

    def __init__(self, path: str, file_index: int, partial: bool = False, verify: bool = True) -> None:
        self.path = path
        self.file_index = file_index
        self.verify = verify
        self._index = index_file(path, partial=partial)
        self.schema = self._index.schema
        self.meta = self._index.meta
        self.observation_space, self.action_space = self._index.observation_space, self._index.action_space
        self.columns = dict(self._index.columns)
        self._all = {**fmt.base_columns(self.meta["format_version"]), **self.columns}
        self.fields = {c.name: self.schema.get_field_index(c.field) for c in self._all.values()}
        self.info_keys = [n[5:] for n in self.columns if n.startswith("info/")]
        self.chunk_offsets = np.asarray(self._index.row_starts, np.int64)
        self.n_rows = int(self.chunk_offsets[-1])
        self.n_batches = len(self._index.rows)
        # (id, row0, length, end meta or None while unfinished, uid)
        self.episodes: list[tuple[int, int, int, dict[str, Any] | None, str]] = []
        for e in self._index.episodes:
            meta = None if e.end_reason == "unfinished" else {
                "seed": e.seed, "return": e.total_return, "terminated": e.terminated, "truncated": e.truncated,
                "end_reason": e.end_reason, "final_info": e.final_info}
            self.episodes.append((e.episode, e.first_row, e.length, meta, e.uid))
        self._chunks: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._mmap: Any = None
        self._executor: Any = None
        self._pending: dict[int, Any] = {}
        self._pid = os.getpid()

    def _batches(self, names: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        """The file's chunks (only the ``names`` columns), read from a memory map."""
        try:
            if self._index.partial:  # no footer: read the checked messages one by one
                for pos in self._index.offsets:
                    msg = pa.ipc.read_message(pa.BufferReader(self._buffer().slice(pos)))
                    batch = pa.ipc.read_record_batch(msg, self.schema)
                    yield batch if names is None else batch.select([self.fields[n] for n in names])
                return
            options = None if names is None else pa.ipc.IpcReadOptions(included_fields=[self.fields[n] for n in names])
            reader = pa.ipc.open_file(pa.BufferReader(self._buffer()), options=options)
            for b in range(reader.num_record_batches):
                yield reader.get_batch(b)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise CorruptFileError(f"{self.path}: a chunk cannot be decoded ({exc}).") from exc

    def _decode(self, name: str, arr: pa.Array, b: int) -> np.ndarray:
        col = self._all[name]
        try:
            values = fmt.from_arrow(col, arr)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise CorruptFileError(f"{self.path} chunk {b}: column {name!r} cannot be decoded ({exc}).") from exc
        crc = self._index.chunks[b].get("crc32", {}).get(name)
        mask = np.asarray(arr.is_null()) if arr.null_count else None
        if self.verify and len(arr) and (crc is None or fmt.crc_of(values, mask) != crc):  # 0 rows: only end records
            raise CorruptFileError(f"{self.path} chunk {b}: column {name!r} fails its checksum (bit rot or tampering).")
        if col.transform == fmt.XOR_PREV:
            values = fmt.xor_decode(values)
        return values

    def read_column(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Decode a whole column: ``(values, present)``; ``present`` only for info columns."""
        values, present = [], []
        for b, batch in enumerate(self._batches([name])):
            arr = batch.column(0)
            values.append(self._decode(name, arr, b))
            if name.startswith("info/"):
                present.append(~np.asarray(arr.is_null(), dtype=bool))
        col = self.columns.get(name)
        out = np.concatenate(values) if values else np.zeros((0, *(col.shape if col else ())))
        return out, (np.concatenate(present) if present else None)

    def chunk(self, b: int) -> dict[str, Any]:
        """All columns of chunk ``b`` decoded, read-only; the next chunks are decoded ahead on threads.

        Besides the arrays, ``"_steps"`` holds per-row Python lists (rewards, flags, info values
        and presence) so that replaying a step builds no array.
        """
        with self._lock:
            hit = self._chunks.get(b)
            if hit is not None:
                self._chunks.move_to_end(b)
            pending = self._pending.pop(b, None) if hit is None else None
        if hit is None:
            hit = pending.result() if pending is not None and self._pid == os.getpid() else self._decode_chunk(b)
            with self._lock:
                self._chunks[b] = hit
                while len(self._chunks) > 1 + PREFETCH_CHUNKS:
                    self._chunks.popitem(last=False)
        wanted = range(b + 1, min(b + 1 + PREFETCH_CHUNKS, self.n_batches))
        with self._lock:  # forget read-aheads that random access made useless (bounded memory)
            for stale in [k for k in self._pending if k not in wanted]:
                self._pending.pop(stale).cancel()
        for ahead in wanted:
            self._prefetch(ahead)
        return hit

    def _prefetch(self, b: int) -> None:
        with self._lock:
            if b in self._chunks or b in self._pending:
                return
            if self._executor is None or self._pid != os.getpid():  # (re)start after a fork
                from concurrent.futures import ThreadPoolExecutor

                self._executor = ThreadPoolExecutor(PREFETCH_CHUNKS, thread_name_prefix="trajarena-prefetch")
                self._pid, self._pending = os.getpid(), {}
            self._pending[b] = self._executor.submit(self._decode_chunk, b)

    def _decode_chunk(self, b: int) -> dict[str, Any]:
        batch = self._chunk_batch(b)
        out: dict[str, Any] = {}
        info_lists = []
        for name in (fmt.REWARD, fmt.TERMINATED, fmt.TRUNCATED, *self.columns):
            arr = batch.column(self.fields[name])
            values = self._decode(name, arr, b)
            values.setflags(write=False)
            out[name] = values
            if name.startswith("info/"):
                present = ~np.asarray(arr.is_null(), dtype=bool)
                out["present/" + name] = present
                info_lists.append((name[5:], values.tolist() if values.ndim == 1 else list(values), present.tolist()))
        out["_steps"] = (out[fmt.REWARD].tolist(), out[fmt.TERMINATED].tolist(), out[fmt.TRUNCATED].tolist(),
                         info_lists)
        return out

    def close(self) -> None:
        """Stop the prefetch thread (it also ends with the process)."""
        if self._executor is not None and self._pid == os.getpid():
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._executor, self._pending = None, {}

    def _chunk_batch(self, b: int) -> pa.RecordBatch:
        try:
            msg = pa.ipc.read_message(pa.BufferReader(self._buffer().slice(self._index.offsets[b])))
            return pa.ipc.read_record_batch(msg, self.schema)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise CorruptFileError(f"{self.path} chunk {b}: cannot be decoded ({exc}).") from exc

    def _buffer(self) -> pa.Buffer:
        """The whole file as one memory-mapped buffer (slices of it are safe to use from threads)."""
        if self._mmap is None:
            with pa.memory_map(os.fsencode(self.path), "r") as source:
                self._mmap = source.read_buffer()
        return self._mmap

    def locate(self, row: int) -> tuple[int, int]:
        """``(chunk, row inside the chunk)`` of a file row."""
        b = int(np.searchsorted(self.chunk_offsets, row, side="right")) - 1
        return b, row - int(self.chunk_offsets[b])

    def footer_hash(self) -> str:
        """A content key for caches: size + the last 64 KiB (Arrow footer, schema, chunk offsets)."""
        size = os.path.getsize(self.path)
        with open(self.path, "rb") as f:
            f.seek(max(0, size - (64 << 10)))
            tail = f.read()
        return hashlib.blake2b(tail + str(size).encode(), digest_size=12).hexdigest()


# ----------------------------------------------------------------------------- columns


class _Column:
    """One flat column over all files: decoded per file on first use, in memory or memory-mapped.

    Args:
        name: a column of the files (``"obs/frame"``, ``"reward"``, ``"info/<key>"``), or
            ``"present/info/<key>"`` for where an info column holds a value.
        files: the files, in row order.
        file_rows: the global row at which each file begins, plus the total (``len(files) + 1`` values).
        cache_dir: where decoded columns are kept as memory-mapped ``.npy`` files; ``None``: in memory.
        max_memory_bytes: without ``cache_dir``, refuse to decode a column larger than this (``None``: no limit).
    """

    def __init__(self, name: str, files: Sequence[_TrajFile], file_rows: np.ndarray, cache_dir: str | None,
                 max_memory_bytes: int | None) -> None:
        self.name, self.files, self.file_rows = name, files, file_rows
        self.cache_dir, self.max_memory_bytes = cache_dir, max_memory_bytes
        self.parts: list[np.ndarray | None] = [None] * len(files)
        self.merged: np.ndarray | None = None
        self._lock = threading.Lock()

    def part(self, f: int) -> np.ndarray:
        if self.parts[f] is None:
            with self._lock:
                if self.parts[f] is None:
                    if self.cache_dir is None and not any(p is not None for p in self.parts):
                        self._check_memory()
                    self.parts[f] = self._load(f)
        return self.parts[f]  # type: ignore[return-value]

    def _check_memory(self) -> None:
        """Refuse to decode a column into memory that cannot hold it (say how to use a disk cache)."""
        name = self.name[8:] if self.name.startswith("present/") else self.name
        col = self.files[0].columns.get(name)
        if col is None or self.name.startswith("present/"):
            return
        need = int(self.file_rows[-1]) * np.dtype(col.dtype).itemsize * math.prod(col.shape)
        limit = self.max_memory_bytes
        if limit is not None and need > limit:
            raise SettingsError(
                f"decoding column {self.name!r} needs {need / 1e9:.1f} GB of memory, above max_memory_bytes="
                f"{limit / 1e9:.1f} GB. Pass cache_dir=... to memory-map decoded columns from disk instead "
                "(or raise max_memory_bytes)."
            )

    def _load(self, f: int) -> np.ndarray:
        src = self.files[f]
        present = self.name.startswith("present/")
        source = self.name[8:] if present else self.name
        cache = self.cache_dir
        if cache is not None:
            safe = source.replace("%", "%25").replace("/", "%2F") + (".present" if present else "")
            path = Path(cache) / src.footer_hash() / f"{safe}.npy"
            if path.exists():
                try:
                    return np.load(path, mmap_mode="r", allow_pickle=False)
                except (ValueError, OSError):
                    path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt
        values, mask = src.read_column(source)
        out = mask if present else values
        if out is None:
            raise SettingsError(f"{self.name!r} is not an info column of {src.path}.")
        if cache is not None and out.dtype != object:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=out.dtype, shape=out.shape)
            mm[...] = out
            mm.flush()
            del mm
            os.replace(tmp, path)
            return np.load(path, mmap_mode="r", allow_pickle=False)
        out = np.ascontiguousarray(out)
        out.setflags(write=False)
        return out

    def all(self) -> np.ndarray:
        """The column over all files: concatenated in memory (the per-file parts become views of it),
        or, with a cache of several files, a new concatenation of the memory-mapped parts."""
        if self.merged is None:
            parts = [self.part(f) for f in range(len(self.parts))]
            if len(parts) == 1:
                self.merged = parts[0]
            else:
                merged = np.concatenate(parts)
                merged.setflags(write=False)
                if self.cache_dir is not None:
                    return merged
                offsets = self.file_rows
                self.parts = [merged[offsets[f] : offsets[f + 1]] for f in range(len(parts))]
                self.merged = merged
        return self.merged

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Gather global ``rows`` (any shape)."""
        if self.merged is not None:
            return self.merged[rows]
        if self.cache_dir is None or len(self.parts) == 1:
            return self.all()[rows]
        offsets = self.file_rows
        rows = np.asarray(rows)
        flat = rows.reshape(-1)
        which = np.searchsorted(offsets, flat, side="right") - 1
        first = self.part(int(which[0])) if len(flat) else self.part(0)
        out = np.empty((len(flat), *first.shape[1:]), first.dtype)
        for f in np.unique(which).tolist():
            sel = which == f
            out[sel] = self.part(f)[flat[sel] - offsets[f]]
        return out[0] if rows.ndim == 0 else out.reshape(rows.shape + first.shape[1:])
