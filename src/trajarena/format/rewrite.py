"""Rewriting chunks without the rows of discarded episodes: no finished file holds them.

``TrajectoryRecorder.discard_episode()`` drops an episode in progress. Its rows still in the
writer's memory are never written, but rows that already reached the ``.partial`` file (earlier
chunks, a flush) are there, followed by an end record that says ``"discarded"``. Before the writer
finishes the file (and when :func:`~trajarena.format.integrity.repair` salvages a crashed one),
the file is copied without those rows and records, so a plain Arrow reader (polars, DuckDB, HF
``datasets``) never sees them. :func:`drop_episodes` does it for one chunk: untouched chunks are
copied as they are; a chunk that loses rows gets its XOR-coded columns coded again from the new
first row (a keyframe), its ``starts`` shifted and every CRC recomputed. :func:`copy_without`
does a whole file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from trajarena.errors import CorruptFileError
from trajarena.format import schema as fmt
from trajarena.format.index import ARROW_ERRORS, FileIndex, index_file, map_file
from trajarena.format.metadata import encode_chunk_meta

__all__ = ["copy_without", "discarded_episodes", "drop_episodes"]


def discarded_episodes(chunks: Iterable[dict[str, Any]]) -> set[int]:
    """The episodes whose end record says ``"discarded"``, from chunks' metadata.

    >>> sorted(discarded_episodes([{"ends": [{"episode": 3, "end_reason": "discarded"},
    ...                                      {"episode": 4, "end_reason": "env"}]}]))
    [3]
    """
    return {int(e["episode"]) for c in chunks for e in c.get("ends", []) if e.get("end_reason") == "discarded"}


def _crc(col: fmt.Column, arr: pa.Array) -> int:
    if col.dtype == "object" and col.name == fmt.EPISODE:
        return fmt.crc_of_strings(arr)
    mask = np.asarray(arr.is_null()) if arr.null_count else None
    return fmt.crc_of(fmt.from_arrow(col, arr), mask)


def drop_episodes(f: FileIndex, batch: pa.RecordBatch, meta: dict[str, Any],
                  drop: set[int]) -> tuple[pa.RecordBatch, dict[str, Any]] | None:
    """One chunk without the rows, starts and end records of the episodes in ``drop``.

    Returns:
        The new batch and metadata, or ``None`` when nothing (no row, no end record) is left.
    """
    n = batch.num_rows
    starts = meta.get("starts", [])
    bounds = [int(s[0]) for s in starts] + [n]
    keep = np.ones(n, bool)
    for s, stop in zip(starts, bounds[1:], strict=True):
        if int(s[1]) in drop:
            keep[int(s[0]) : stop] = False
    ends = [e for e in meta.get("ends", []) if int(e["episode"]) not in drop]
    if keep.all():
        return batch, {**meta, "ends": ends}
    if not keep.any() and not ends:
        return None
    new_row = np.concatenate([[0], np.cumsum(keep)])
    meta = {**meta, "ends": ends,
            "starts": [[int(new_row[int(s[0])]), *s[1:]] for s in starts if int(s[1]) not in drop]}
    rows, arrays, crc = pa.array(keep), [], dict(meta.get("crc32", {}))
    for col, arr in zip(f.schema_columns(), batch.columns, strict=True):
        if col.transform == fmt.XOR_PREV:  # the XOR chain restarts at the first kept row
            frames = fmt.xor_decode(fmt.from_arrow(col, arr))[keep]
            arr = fmt.to_arrow(col, fmt.xor_encode(frames))
        else:
            arr = arr.filter(rows)
        arrays.append(arr)
        crc[col.name] = _crc(col, arr)
    meta["crc32"] = crc
    return pa.record_batch(arrays, schema=batch.schema), meta


def copy_without(path: Path, out: Path, drop: set[int]) -> None:
    """Copy the finished file ``path`` to ``out`` without the episodes in ``drop`` (every chunk checked first).

    Raises:
        CorruptFileError: ``path`` is damaged.
    """
    f = index_file(path, partial=False, keep_chunk_meta=True)
    buf = map_file(path)
    codec = f.meta.get("compression", {}).get("codec")
    level = f.meta.get("compression", {}).get("level")
    options = pa.ipc.IpcWriteOptions(compression=None if codec is None else pa.Codec(codec, level))
    try:
        with pa.OSFile(os.fsencode(out), "wb") as sink, pa.ipc.new_file(sink, f.schema, options=options) as writer:
            for offset, chunk in zip(f.offsets, f.chunks, strict=True):
                batch = pa.ipc.read_record_batch(pa.ipc.read_message(pa.BufferReader(buf.slice(offset))), f.schema)
                kept = drop_episodes(f, batch, chunk, drop)
                if kept is not None:
                    writer.write_batch(kept[0], custom_metadata=encode_chunk_meta(kept[1]))
    except ARROW_ERRORS as exc:
        out.unlink(missing_ok=True)
        raise CorruptFileError(f"{path}: a chunk cannot be copied ({exc}).") from exc
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    if not os.path.getsize(out):
        raise CorruptFileError(f"{path}: nothing left to copy.")
