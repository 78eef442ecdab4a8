"""One trajectory file while it is written: created whole, locked, appended, widened and finished atomically.

A :class:`SegmentFile` is the writer thread's handle on ``<stem>.arrow.partial``. It is made under
a temporary name (``.opening``), locked with an exclusive ``flock`` (so
:func:`~trajarena.format.integrity.repair` never touches a live recording) and given its schema
and an empty first chunk before it is renamed: no ``.partial`` file is ever empty or half-made. It
appends chunks (each flushed to the OS at once, so a killed process loses nothing written), widens
its schema when an info key appears after it was opened, and is finished by writing the Arrow footer,
copying out the rows of discarded episodes, optionally ``fsync``-ing, and renaming it to
``<stem>.arrow`` with ``os.replace``. Temporary names all end in one of :data:`TEMP_SUFFIXES`.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from trajarena.format import schema as fmt
from trajarena.format.metadata import encode_chunk_meta, encode_metadata
from trajarena.format.rewrite import copy_without

__all__ = ["TEMP_SUFFIXES", "SegmentFile"]

#: What temporary files end with: a file being created, widened, cleaned of discarded rows, or repaired.
TEMP_SUFFIXES = (".opening", ".widening", ".dropping", ".repairing")


class SegmentFile:
    """A ``.partial`` trajectory file being written by one writer thread.

    Args:
        path: the ``<stem>.arrow.partial`` path.
        meta: the file's metadata document (its ``columns``/``info_columns`` are filled in here).
        columns: the leaf columns (observation leaves first, then ``n_obs``... action leaves).
        n_obs: how many of ``columns`` are observation leaves (action columns are null on reset rows).
        info: the info columns to create: ``{key: (dtype, shape)}``.
        codec, level: the IPC buffer compression.
    """

    def __init__(self, path: Path, meta: dict[str, Any], columns: list[fmt.Column], n_obs: int,
                 info: dict[str, tuple[np.dtype, tuple[int, ...]]], codec: str | None, level: int | None) -> None:
        self.path, self._meta, self._columns, self._n_obs = path, meta, columns, n_obs
        self._codec, self._level = codec, level
        self.kept = 0  # episodes of the file that were not discarded
        self.dropped: set[int] = set()  # discarded episodes with rows in the file
        self._lock_fd: int | None = None
        opening = path.with_name(path.name + ".opening")
        self._start(info, opening)
        os.replace(opening, path)  # appears locked and with its schema: repair() never sees it half-made

    # ------------------------------------------------------------------ writing

    def write(self, batch: pa.RecordBatch, meta: dict[str, str]) -> None:
        """Append one chunk and hand it to the OS (a process kill after this loses none of it)."""
        self._arrow.write_batch(batch, custom_metadata=meta)
        self._sink.flush()

    def empty_batch(self) -> pa.RecordBatch:
        """A chunk with no row (for end records alone)."""
        return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in self.schema], schema=self.schema)

    def fsync(self) -> None:
        """Make what was written survive a power loss."""
        os.fsync(self._sink.fileno())

    def widen(self, info: dict[str, tuple[np.dtype, tuple[int, ...]]]) -> None:
        """Add the columns of info keys first seen after the file was opened, keeping its chunks.

        The chunks written so far are copied into a new file with the wider schema (their new
        columns all null), which then atomically replaces the ``.partial`` file; recording goes
        on in it. This happens at most once per new key and file, so no value is lost whatever
        the moment the writer thread opened the file.
        """
        old = {c.name[5:]: (np.dtype(c.dtype), c.shape) for c in self.info_columns}
        self._close()
        tmp = self.path.with_name(self.path.name + ".widening")
        with pa.memory_map(os.fsencode(self.path), "r") as source:
            previous = pa.ipc.open_file(source)
            self._start({**info, **old}, tmp)
            new_cols = [c for c in self.info_columns if c.name[5:] not in old]
            empty_crc = {c.name: fmt.crc_of(np.zeros((0, *c.shape), c.dtype)) for c in new_cols}
            for i in range(1, previous.num_record_batches):  # the new file has its own empty first chunk
                batch, custom = previous.get_batch_with_custom_metadata(i)
                doc = json.loads(custom[fmt.CHUNK_KEY.encode()])
                doc["crc32"] = {**doc.get("crc32", {}), **empty_crc}
                arrays = [batch.column(f.name) if f.name in batch.schema.names else pa.nulls(batch.num_rows, f.type)
                          for f in self.schema]
                self.write(pa.record_batch(arrays, schema=self.schema), encode_chunk_meta(doc))
        os.replace(tmp, self.path)

    def finish(self, fsync: bool) -> Path | None:
        """Write the footer and rename the file to ``<stem>.arrow``; ``None`` (deleted) if it holds no kept episode."""
        self._arrow.close()
        self._sink.close()
        try:
            if not self.kept:  # every episode in it was discarded
                self.path.unlink()
                return None
            if self.dropped:  # rows of discarded episodes reached the file: a finished file has none
                dropping = self.path.with_name(self.path.name + ".dropping")
                copy_without(self.path, dropping, self.dropped)
                os.replace(dropping, self.path)
            final = self.path.with_name(self.path.name[: -len(fmt.PARTIAL_SUFFIX)] + fmt.SUFFIX)
            if fsync:
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(self.path, final)
            return final
        finally:
            self._unlock()

    def abort(self) -> None:
        """Stop writing after a failure; the ``.partial`` file stays for :func:`~trajarena.format.integrity.repair`."""
        try:
            self._sink.close()
        except Exception:  # noqa: BLE001 - already failing
            pass
        self._unlock()

    # ------------------------------------------------------------------ internals

    def _start(self, info: dict[str, tuple[np.dtype, tuple[int, ...]]], path: Path) -> None:
        """Open an Arrow file at ``path`` whose info columns are ``info``, with its schema on disk."""
        info_cols = [fmt.Column(f"info/{k}", np.dtype(info[k][0]).name, tuple(info[k][1])) for k in sorted(info)]
        self.info_columns = info_cols
        self.info_names = {c.name[5:] for c in info_cols}
        self._meta["columns"] = [c.to_json() for c in self._columns]
        self._meta["info_columns"] = [c.to_json() for c in info_cols]
        fields = [pa.field(fmt.EPISODE, pa.large_string(), False), pa.field(fmt.STEP, pa.int32(), False)]
        fields += [pa.field(c.field, c.arrow_type(), i >= self._n_obs, metadata=_field_meta(c))  # actions: null on reset rows
                   for i, c in enumerate(self._columns)]
        fields += [pa.field(fmt.REWARD, pa.float64(), True), pa.field(fmt.TERMINATED, pa.bool_(), False),
                   pa.field(fmt.TRUNCATED, pa.bool_(), False)]
        fields += [pa.field(c.name, c.arrow_type(), True) for c in info_cols]
        self.schema = pa.schema(fields, metadata=encode_metadata(self._meta))
        self._sink = pa.OSFile(os.fsencode(path), "wb")
        self._lock(path)
        codec = None if self._codec is None else pa.Codec(self._codec, self._level)
        options = pa.ipc.IpcWriteOptions(compression=codec, use_threads=False)
        self._arrow = pa.ipc.new_file(self._sink, self.schema, options=options)
        # Arrow writes the schema with the first batch: an empty one puts it on disk now, so no
        # .partial file is ever empty (a kill at any moment leaves a file repair can read)
        self.write(self.empty_batch(), encode_chunk_meta({"crc32": {}, "starts": [], "ends": []}))

    def _close(self) -> None:
        self._arrow.close()
        self._sink.close()
        self._unlock()

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


def _field_meta(col: fmt.Column) -> dict[str, str] | None:
    """What a plain Arrow reader needs to decode a packed column, on its field."""
    if not col.packed:
        return None
    return {"trajarena.transform": str(col.transform), "trajarena.dtype": col.dtype,
            "trajarena.shape": json.dumps(list(col.shape))}
