"""The index of a trajectory file: what its headers say, checked, without decoding a column.

:func:`index_file` maps a file and reads its schema (spaces and settings as JSON), then each
chunk's header and JSON metadata, all size-checked before Arrow allocates anything (see
:func:`trajarena.format.messages.check_batch_message`); no frame is decompressed. A finished file's
footer must repeat the stream (same schema, same chunk offsets); a ``.partial`` file is read up to
its last complete chunk. From the chunks' ``starts``/``ends`` records it builds the episode list
(:class:`EpisodeInfo`), skipping episodes the recorder discarded, into a :class:`FileIndex`.
:mod:`~trajarena.format.discover` finds the files to index. The readers
(:mod:`~trajarena.format.reader`, :mod:`~trajarena.format.columns`) and verify/repair
(:mod:`~trajarena.format.integrity`) all start here.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from trajarena.errors import CorruptFileError, FormatError, SpaceError
from trajarena.format import limits
from trajarena.format import schema as fmt
from trajarena.format.discover import diambra_message, finished_name, is_locked
from trajarena.format.messages import Flat, buffer_layout, check_batch_message
from trajarena.format.metadata import decode_metadata

__all__ = ["EpisodeInfo", "FileIndex", "index_file", "index_live_partial"]

#: What Arrow raises on damaged bytes (caught and reported as :class:`~trajarena.errors.CorruptFileError`).
ARROW_ERRORS = (pa.ArrowException, OSError, ValueError, EOFError, MemoryError, IndexError, KeyError, TypeError)


@dataclass(frozen=True)
class EpisodeInfo:
    """What the index knows about one episode, without decoding it.

    Attributes:
        index: position in the reader's episode list.
        file: the file that holds it.
        episode: its number in the recording session (unique within the file).
        length: steps (the episode has ``length + 1`` observations).
        total_return: sum of rewards (NaN for an unfinished episode of a ``.partial`` file).
        seed: the reset seed, if one was given.
        terminated, truncated: how it ended; ``truncated`` also when the recorder ended it.
        end_reason: ``"env"``, ``"reset"``, ``"close"``, ``"crash"`` (repaired) or ``"unfinished"``.
        final_info: the last info dict, as JSON data.
        first_row: the file row of its reset observation.
        partial: it comes from a ``.partial`` file.
        notes: what the writer noted (e.g. dropped info keys and why).
        uid: the id in the file's ``episode`` column, unique across files (``"<recording>/<n>"``;
            ``"<file stem>/<n>"`` for version-1 files).

    >>> EpisodeInfo(0, Path("a.arrow"), 0, 3, 1.0, 7, True, False, "env", {}, 0).length
    3
    """

    index: int
    file: Path
    episode: int
    length: int
    total_return: float
    seed: int | None
    terminated: bool
    truncated: bool
    end_reason: str
    final_info: dict[str, Any]
    first_row: int
    partial: bool = False
    notes: dict[str, str] = field(default_factory=dict)
    uid: str = ""


@dataclass
class FileIndex:
    """What :func:`index_file` learns from one file's headers (no column decoded).

    Attributes:
        path: the file.
        partial: read as a ``.partial`` file (up to its last complete chunk).
        schema: the Arrow schema (its metadata holds the JSON document).
        meta: the decoded JSON metadata (spaces, settings, columns, ...).
        columns: the leaf and info columns by name.
        offsets: byte offset of each chunk's IPC message in the file.
        rows: rows in each chunk.
        chunks: each chunk's JSON metadata (``crc32``, ``starts``, ``ends``).
        episodes: the episodes, in file order (``index`` is 0 here).
        row_starts: the file row at which each chunk begins, plus the total.
    """

    path: Path
    partial: bool
    schema: pa.Schema
    meta: dict[str, Any]
    columns: dict[str, fmt.Column]
    offsets: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    episodes: list[EpisodeInfo] = field(default_factory=list)
    row_starts: np.ndarray | None = None
    layout: tuple | None = None
    observation_space: Any = None
    action_space: Any = None
    size: int = 0  # bytes of the file when it was indexed

    @property
    def version(self) -> int:
        """The file's format version."""
        return int(self.meta["format_version"])

    def schema_columns(self) -> list[fmt.Column]:
        """Every column in the order of the schema's fields: episode, step, leaves, reward, flags, info."""
        base = list(fmt.base_columns(self.version).values())
        n_leaves = len(self.meta["columns"])
        cols = list(self.columns.values())
        return [*base[:2], *cols[:n_leaves], *base[2:], *cols[n_leaves:]]


def map_file(path: Path) -> pa.Buffer:
    """The whole file as one memory-mapped buffer (:class:`~trajarena.errors.CorruptFileError` if it cannot be)."""
    try:
        with pa.memory_map(os.fsencode(path), "r") as source:
            return source.read_buffer()
    except FileNotFoundError:
        raise
    except ARROW_ERRORS as exc:
        raise CorruptFileError(f"{path}: cannot be mapped ({exc}).") from exc


def index_file(path: str | Path, partial: bool | None = None, keep_chunk_meta: bool = False) -> FileIndex:
    """Read a file's headers and build its episode index (no frames decoded).

    Once the episodes are known, each chunk's metadata is cut down to its ``crc32`` (the
    ``starts``/``ends`` lists would double the index's memory) unless ``keep_chunk_meta``.

    Raises:
        FormatError: not a trajarena file.
        CorruptFileError: damaged (a ``.partial`` file is read up to its last complete chunk).
    """
    path = Path(path)
    partial = path.name.endswith(fmt.PARTIAL_SUFFIX) if partial is None else partial
    f, buf, reader = index_header(path, partial)
    where, layout, max_rows = str(path), f.layout, min(int(f.meta["chunk_steps"]), limits.MAX_CHUNK_ROWS)
    while True:
        pos = 8 + reader.tell()
        try:
            msg = pa.ipc.read_message(reader)
        except EOFError:
            break
        except ARROW_ERRORS as exc:
            if partial:
                break
            raise CorruptFileError(f"{where}: damaged chunk at byte {pos} ({exc}).") from exc
        try:
            rows, chunk = check_batch_message(msg, layout, max_rows, f"{where} chunk {len(f.rows)}")
        except CorruptFileError:
            if partial and reader.tell() + 8 >= buf.size:
                break  # the last, half-written chunk of a crashed recording
            raise
        f.offsets.append(pos)
        f.rows.append(rows)
        f.chunks.append(chunk)
    if not partial:
        _check_footer(f, buf)
    build_episodes(f)
    if not keep_chunk_meta:
        f.chunks = [{"crc32": c.get("crc32", {})} for c in f.chunks]
    return f


def _check_footer(f: FileIndex, buf: pa.Buffer) -> None:
    """The footer must repeat the stream: the same schema and metadata, the same chunk offsets.

    Readers that trust only the footer (plain ``pyarrow.ipc.open_file``) then see what the
    checked stream says.
    """
    where = str(f.path)
    try:
        footer = pa.ipc.open_file(buf)
        n, schema = footer.num_record_batches, footer.schema
        size = int.from_bytes(buf.slice(buf.size - 10, 4).to_pybytes(), "little", signed=True)
        fb = Flat(buf.slice(buf.size - 10 - size, size).to_pybytes())
        count, at = fb.vector(fb.ref(0), 3)
        offsets = [fb.u("q", at + 24 * i) for i in range(count)]
    except (*ARROW_ERRORS, struct.error) as exc:
        raise CorruptFileError(f"{where}: damaged footer ({exc}).") from exc
    if n != len(f.rows):
        raise CorruptFileError(f"{where}: the footer lists {n} chunks, the body holds {len(f.rows)}.")
    if not schema.equals(f.schema, check_metadata=True):
        raise CorruptFileError(f"{where}: the footer's copy of the schema or metadata differs from the file's.")
    if offsets != f.offsets:
        raise CorruptFileError(f"{where}: the footer's chunk offsets differ from the chunks in the file.")


def index_header(path: Path, partial: bool) -> tuple[FileIndex, pa.Buffer, pa.BufferReader]:
    """Map a file and read its schema: an index with no chunk yet, the mapping, and a reader past the schema."""
    where = str(path)
    buf = map_file(path)
    if buf.size < 8 or buf.slice(0, 6).to_pybytes() != fmt.ARROW_MAGIC:
        if buf.size >= 3 and buf.slice(0, 3).to_pybytes() == b"BZh":
            raise FormatError(diambra_message([path]))
        raise FormatError(f"{where} is not an Arrow IPC file (bad magic bytes).")
    if not partial and (buf.size < 20 or buf.slice(buf.size - 6).to_pybytes() != fmt.ARROW_MAGIC):
        raise CorruptFileError(f"{where} is truncated (no Arrow footer); if a recorder crashed, run repair().")
    reader = pa.BufferReader(buf.slice(8))
    try:
        msg = pa.ipc.read_message(reader)
        schema = pa.ipc.read_schema(msg)
    except ARROW_ERRORS as exc:
        raise CorruptFileError(f"{where}: unreadable schema ({exc}).") from exc
    meta = decode_metadata(schema, where)
    cols = check_declarations(meta, where)
    f = FileIndex(path, partial, schema, meta, {c.name: c for c in cols}, size=buf.size)
    f.observation_space, f.action_space = _spaces_of(meta, cols, where)
    expected = f.schema_columns()
    if schema.names != [c.field for c in expected] or any(
            f.type != c.arrow_type() for f, c in zip(schema, expected, strict=True)):
        raise CorruptFileError(f"{where}: the columns do not match the metadata's description.")
    try:
        f.layout = buffer_layout(schema)
    except FormatError as exc:
        raise CorruptFileError(f"{where}: {exc}") from exc
    return f, buf, reader


def check_declarations(meta: dict[str, Any], where: str) -> list[fmt.Column]:
    """Check every size a file's metadata declares, before anything is allocated for it; return its columns.

    The spaces and the columns may not declare more than ``MAX_LEAF_VALUES`` values per leaf,
    ``MAX_ROW_BYTES`` per row or ``MAX_CHUNK_BYTES`` per chunk (see :mod:`trajarena.format.limits`),
    and every number must be a finite integer in range.

    Raises:
        CorruptFileError: a declaration is malformed, absurd or beyond the limits.
    """
    from trajarena.format.spaces import declared_bytes

    try:
        chunk_steps = fmt.json_int(meta.get("chunk_steps"), "chunk_steps", 1, limits.MAX_CHUNK_ROWS)
        if not isinstance(meta.get("columns"), list) or not isinstance(meta.get("info_columns"), list):
            raise TypeError("'columns' and 'info_columns' must be lists")
        cols = [fmt.Column.from_json(c) for c in meta["columns"] + meta["info_columns"]]
        if meta["format_version"] < 2 and any(c.packed for c in cols):
            raise ValueError("a version-1 file cannot have packed columns")
        if meta["format_version"] >= 2:
            if any(bool(c.transform) != c.packed for c in cols):
                raise ValueError("a transformed column of a version-2 file must be packed under its own field")
            if not isinstance(meta.get("recording"), str) or not 0 < len(meta["recording"]) <= 200:
                raise ValueError(f"'recording' must be the writer's id (a string), got {str(meta.get('recording'))[:40]}")
        row_bytes = sum(c.row_bytes for c in cols)
        for key in ("observation_space", "action_space"):
            row_bytes = max(row_bytes, declared_bytes(meta.get(key)))
    except SpaceError as exc:
        raise CorruptFileError(f"{where}: bad space declaration ({exc}).") from exc
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise CorruptFileError(f"{where}: bad metadata ({exc}).") from exc
    if row_bytes > limits.MAX_ROW_BYTES:
        raise CorruptFileError(f"{where}: a row declares {row_bytes} bytes, above the limit of {limits.MAX_ROW_BYTES} "
                               "(trajarena.format.limits.MAX_ROW_BYTES): the file is damaged or hostile.")
    if row_bytes * chunk_steps > limits.MAX_CHUNK_BYTES:
        raise CorruptFileError(f"{where}: chunks of {chunk_steps} rows of {row_bytes} bytes exceed the limit of "
                               f"{limits.MAX_CHUNK_BYTES} bytes (trajarena.format.limits.MAX_CHUNK_BYTES).")
    return cols


def _spaces_of(meta: dict[str, Any], cols: list[fmt.Column], where: str) -> tuple[Any, Any]:
    """The file's spaces (their sizes were checked), which must declare exactly its leaf columns."""
    from trajarena.format.leaves import leaf_fields
    from trajarena.format.spaces import space_from_json

    try:
        obs, act = space_from_json(meta["observation_space"]), space_from_json(meta["action_space"])
    except (SpaceError, MemoryError, RecursionError) as exc:
        raise CorruptFileError(f"{where}: bad space declaration ({type(exc).__name__}: {exc}).") from exc
    leaves = [(f.name, f.dtype.name, f.shape) for f in leaf_fields(obs, "obs") + leaf_fields(act, "action")]
    columns = [(c.name, c.dtype, c.shape) for c in cols[: len(meta["columns"])]]
    if leaves != columns:
        raise CorruptFileError(f"{where}: the spaces declare other leaves than the file's columns.")
    for kind, key in (("settings", "env_settings"), ("settings", "wrappers_settings"), ("roles", "players")):
        if not isinstance(meta.get(key) or {}, dict):
            raise CorruptFileError(f"{where}: its {key} must be a JSON object of {kind}, got {type(meta[key]).__name__}.")
    return obs, act


def build_episodes(f: FileIndex) -> None:
    """Fill ``f.row_starts`` and ``f.episodes`` from its chunks' ``starts``/``ends`` records, checking their order."""
    where = str(f.path)
    f.row_starts = np.concatenate([[0], np.cumsum(f.rows, dtype=np.int64)])
    open_eps: dict[int, list] = {}  # id -> [first_row, rows_seen, seed]
    order: list[int] = []
    ends: dict[int, dict] = {}
    current = None
    big = 1 << 62

    def num(value: Any, what: str) -> int:
        return fmt.json_int(value, what, 0, big)

    try:
        for base, rows, chunk in zip(f.row_starts, f.rows, f.chunks, strict=False):
            starts = chunk.get("starts", [])
            if not isinstance(starts, list) or not isinstance(chunk.get("ends", []), list):
                raise TypeError("'starts' and 'ends' must be lists")
            if rows and (not starts or starts[0][0] != 0):
                raise CorruptFileError(f"{where}: a chunk does not say which episode its rows belong to.")
            bounds = [s[0] for s in starts] + [rows]
            for s, stop in zip(starts, bounds[1:], strict=True):
                row, ep, step0 = num(s[0], "a start row"), num(s[1], "an episode"), num(s[2], "a step")
                if not 0 <= row <= num(stop, "a start row") <= rows:
                    raise CorruptFileError(f"{where}: episode starts out of order in a chunk.")
                if step0 == 0:
                    if ep in open_eps:
                        raise CorruptFileError(f"{where}: episode {ep} starts twice.")
                    seed = s[3] if len(s) > 3 else None
                    open_eps[ep] = [int(base) + row, 0, None if seed is None else num(seed, "a seed")]
                    order.append(ep)
                elif ep != current or open_eps[ep][1] != step0:
                    raise CorruptFileError(f"{where}: episode {ep} continues at step {step0} out of order.")
                open_eps[ep][1] += stop - row
                current = ep
            for end in chunk.get("ends", []):
                ends[num(end["episode"], "an episode")] = end
        prefix = f.meta["recording"] if f.version >= 2 else f.path.name.split(".")[0]
        for ep in order:
            first, seen, seed = open_eps[ep]
            end = ends.pop(ep, None)
            if end is None:
                if not f.partial:
                    raise CorruptFileError(f"{where}: episode {ep} has no end record.")
                info = EpisodeInfo(0, f.path, ep, seen - 1, math.nan, seed, False, True, "unfinished", {}, first,
                                   True, uid=f"{prefix}/{ep}")
            else:
                if end.get("length") != seen - 1:
                    raise CorruptFileError(f"{where}: episode {ep} claims {end.get('length')} steps, holds {seen - 1}.")
                if end.get("end_reason") == "discarded":
                    continue  # dropped by the recorder: never replayed, sampled or counted
                final_info, notes = end.get("final_info") or {}, end.get("notes") or {}
                if not isinstance(final_info, dict) or not isinstance(notes, dict):
                    raise TypeError("'final_info' and 'notes' must be objects")
                info = EpisodeInfo(0, f.path, ep, seen - 1, float(end["return"]), end.get("seed"),
                                   bool(end["terminated"]), bool(end["truncated"]), str(end.get("end_reason", "env")),
                                   final_info, first, f.partial, notes, f"{prefix}/{ep}")
            f.episodes.append(info)
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise CorruptFileError(f"{where}: bad chunk metadata ({exc}).") from exc
    if ends:
        raise CorruptFileError(f"{where}: end records for unknown episodes {sorted(ends)}.")


def index_live_partial(path: Path) -> FileIndex | None:
    """Index a ``.partial`` file, or the finished file it became meanwhile; ``None`` if it is gone or still being made.

    A recording in progress is read up to its last complete chunk; one whose file is not readable
    yet while its writer holds the lock (a writer of an older version, before its schema is on disk)
    is treated as in progress, not as damaged.
    """
    try:
        return index_file(path, partial=True)
    except FileNotFoundError:
        final = finished_name(path)
        try:
            return index_file(final)
        except FileNotFoundError:
            return None  # removed meanwhile (e.g. it held only discarded episodes)
    except CorruptFileError:
        raise
    except FormatError:
        if is_locked(path):
            return None
        raise
