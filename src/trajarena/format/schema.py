"""The on-disk trajectory format: schema, metadata keys, version, checksums and safety checks.

A trajectory file is an `Apache Arrow IPC file <https://arrow.apache.org/docs/format/Columnar.html>`_
(``*.arrow``; ``*.arrow.partial`` while it is being written) that holds one or more episodes, one
row per *observation*: the reset row (``step == 0``) carries the initial observation, row ``t``
carries the action taken at ``t - 1`` and what it produced (``obs`` at ``t``, ``reward``,
``terminated``, ``truncated``, ``info``). An episode of ``T`` steps has ``T + 1`` rows, so the final
observation is stored and no frame is stored twice. Each record batch is one chunk; its buffers are
zstd-compressed by Arrow. ``docs/format.md`` is the full specification.

Column types (``FORMAT_VERSION`` 2; version 1 files are read too, see ``docs/format.md``):

* ``episode`` ``large_utf8``: the episode's id, ``"<recording>/<n>"``, unique across files and machines
  (``recording`` is the writer's id in the metadata, ``n`` its episode counter); ``step`` ``int32``;
* one column per leaf of the observation (``obs/...``) and action (``action/...``) spaces
  (see :mod:`trajarena.format.leaves`): a scalar leaf is a primitive column, a shaped leaf a
  ``fixed_size_list`` of its flattened elements (C order), ``Text`` a ``utf8`` column; action
  columns are null on reset rows (no action was taken);
* ``reward`` ``float64`` (null on reset rows), ``terminated`` and ``truncated`` ``bool``;
* ``info/<key>`` for numeric/bool info values (null where the step had no such key).

A leaf whose description in the metadata has ``"transform": "xor_prev"`` (uint8 image leaves by
default) is stored under the field name ``<leaf>@xor_prev`` as ``fixed_size_binary`` (so no reader
can take its bytes for pixel values): in each chunk the first row as is and each further row XOR-ed
with the row before it; decode with a cumulative XOR along the rows of the chunk. Each chunk's custom
metadata holds ``trajarena.chunk``: JSON with the CRC-32 of every column's stored values
(``crc32``), where episodes start in the chunk (``starts``: ``[row, episode, step]``) and the
metadata of the episodes that ended by the end of the chunk (``ends``: seed, length, return, ...).
"""

from __future__ import annotations

import contextvars
import functools
import math
import os
import socket
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from trajarena.errors import CorruptFileError
from trajarena.format import limits

try:  # ISA-L computes the same CRC-32 as zlib, ~9x faster on frames (66 vs 7 GB/s): pip install 'trajarena[fast]'
    from isal.isal_zlib import crc32 as _crc32
except ImportError:
    _crc32 = zlib.crc32

FORMAT_NAME = "trajarena"
FORMAT_VERSION = 2
METADATA_KEY = b"trajarena"
CHUNK_KEY = "trajarena.chunk"
SUFFIX = ".arrow"
PARTIAL_SUFFIX = ".arrow.partial"
ARROW_MAGIC = b"ARROW1"
XOR_PREV = "xor_prev"
#: Keys of the metadata document that the writer fills in; metadata given to it may not use them.
RESERVED_KEYS = frozenset({
    "format", "format_version", "library_version", "created_ns", "host", "pid", "observation_space",
    "action_space", "columns", "info_columns", "compression", "chunk_steps", "flush_seconds",
    "recording",
})

#: Columns present in every file, before the observation columns.
EPISODE, STEP, REWARD, TERMINATED, TRUNCATED = "episode", "step", "reward", "terminated", "truncated"


def library_version() -> str:
    """The installed trajarena version, or ``"0.2.0"`` when running from a source tree."""
    try:
        from importlib.metadata import version

        return version("trajarena")
    except Exception:  # noqa: BLE001 - not installed: running from src/
        return "0.2.0"


def new_file_stem(prefix: str = "") -> str:
    """A file name stem unique across processes and machines and sortable by creation time.

    >>> len(new_file_stem().split("_"))
    4
    """
    host = "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())[:32] or "host"
    stem = f"{time.time_ns():020d}_{host}_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    return f"{prefix}-{stem}" if prefix else stem


# ----------------------------------------------------------------------------- columns


@dataclass(frozen=True)
class Column:
    """How one flat value column is stored.

    ``packed`` (format 2): a transformed leaf is stored as ``fixed_size_binary`` under the field
    name ``<name>@<transform>``, so plain readers cannot mistake its bytes for values.

    >>> Column("obs", "float32", (4,)).arrow_type()
    FixedSizeListType(fixed_size_list<item: float>[4])
    >>> c = Column("obs/frame", "uint8", (2, 3, 1), XOR_PREV, packed=True)
    >>> c.field, c.arrow_type()
    ('obs/frame@xor_prev', FixedSizeBinaryType(fixed_size_binary[6]))
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    transform: str | None = None
    packed: bool = False

    @property
    def field(self) -> str:
        """The Arrow field that holds the column."""
        return f"{self.name}@{self.transform}" if self.packed else self.name

    @property
    def row_bytes(self) -> int:
        """Bytes of one row's value (strings count as 8: their size is checked per chunk)."""
        return (8 if self.dtype == "object" else np.dtype(self.dtype).itemsize) * math.prod(self.shape)

    def arrow_type(self) -> pa.DataType:
        if self.dtype == "object":  # episode ids: 64-bit offsets compress to half of utf8's 32-bit ones
            return pa.large_string() if self.name == EPISODE else pa.string()
        base = np.dtype(self.dtype)
        if self.packed:
            return pa.binary(base.itemsize * math.prod(self.shape))
        return pa.list_(pa.from_numpy_dtype(base), math.prod(self.shape)) if self.shape else pa.from_numpy_dtype(base)

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "transform": self.transform}
        if self.packed:
            out["field"] = self.field
        return out

    @classmethod
    def from_json(cls, data: Any) -> Column:
        try:
            if not isinstance(data, dict):
                raise TypeError(f"a column description must be an object, got {type(data).__name__}")
            shape = tuple(json_int(v, "a dimension", 0, limits.MAX_LEAF_VALUES) for v in data["shape"])
            if math.prod(shape) > limits.MAX_LEAF_VALUES:
                raise ValueError(f"shape {list(shape)} holds more than {limits.MAX_LEAF_VALUES} values")
            if data["dtype"] != "object":
                dtype = np.dtype(data["dtype"])
                if dtype.kind not in "biuf" or dtype.itemsize > 16:
                    raise ValueError(f"dtype {data['dtype']!r} is not a numeric type")
            transform = data.get("transform")
            if transform not in (None, XOR_PREV) or (transform and data["dtype"] != "uint8"):
                raise ValueError(f"unknown transform {transform!r} for dtype {data['dtype']!r}")
            col = cls(str(data["name"]), str(data["dtype"]), shape, transform, packed="field" in data)
            if "field" in data and (not transform or data["field"] != col.field):
                raise ValueError(f"field {data['field']!r} does not match the transform {transform!r}")
            return col
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise CorruptFileError(f"Bad column description {str(data)[:200]}: {exc}") from exc


def json_int(value: Any, what: str, lo: int, hi: int) -> int:
    """An integer read from JSON metadata, in ``[lo, hi]``: no float, bool, infinity or string passes.

    >>> json_int(3, "a row", 0, 10)
    3
    >>> json_int(float("inf"), "chunk_steps", 1, 10)
    Traceback (most recent call last):
    ...
    ValueError: chunk_steps must be an integer in [1, 10], got inf
    """
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{what} must be an integer in [{lo}, {hi}], got {str(value)[:40]}")
    return value


def base_columns(version: int) -> dict[str, Column]:
    """The columns every file of ``version`` has besides its leaves: episode, step, reward, flags."""
    episode = Column(EPISODE, "object" if version >= 2 else "int32", ())
    return {c.name: c for c in (episode, Column(STEP, "int32", ()), Column(REWARD, "float64", ()),
                                Column(TERMINATED, "bool", ()), Column(TRUNCATED, "bool", ()))}


def episode_runs(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split per-row episode counters into runs: ``(counter of each run, rows in it)``.

    >>> [a.tolist() for a in episode_runs(np.array([3, 3, 4]))]
    [[3, 4], [2, 1]]
    """
    n = len(numbers)
    first = np.concatenate([[0], np.flatnonzero(np.diff(numbers)) + 1]) if n else np.zeros(0, np.int64)
    return np.asarray(numbers)[first], np.diff(np.concatenate([first, [n]]))


def episode_ids(recording: str, episodes: Sequence[int], counts: Sequence[int]) -> pa.Array:
    """The ``episode`` column of format 2: ``counts[i]`` rows of episode counter ``episodes[i]``.

    >>> episode_ids("rec", [3, 4], [2, 1]).to_pylist()
    ['rec/3', 'rec/3', 'rec/4']
    """
    names = [f"{recording}/{int(e)}".encode() for e in episodes]
    counts = np.asarray(counts, np.int64)
    n = int(counts.sum())
    if not n:
        return pa.array([], pa.large_string())
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.repeat(np.fromiter(map(len, names), np.int64, len(names)), counts), out=offsets[1:])
    data = b"".join(map(bytes.__mul__, names, counts.tolist()))
    return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


@functools.cache
def warm_pyarrow() -> None:
    """Let pyarrow do its lazy one-time imports now, in a context of its own (once per process).

    pyarrow imports pandas (when installed) on its first conversion (``pa.array()``,
    ``Array.to_numpy()``), and importing pandas sets the ``decimal`` module's context variable in the
    calling thread. Once a thread has a context variable set, every numpy allocation and ufunc in it
    looks numpy's own (unset) variables up in that context instead of returning at once: the game
    loop or the training loop that recorded or read a file would run slower from then on (``duel``
    under callgrind: ~10,000 more instructions a step). Importing it here, in a new context, leaves
    the caller's thread as it was. The writer also needs the import done in the game loop's thread
    before its own thread's first array (see :class:`~trajarena.format.writer.TrajectoryWriter`).
    """
    contextvars.Context().run(pa.array, np.zeros(1))


def to_arrow(col: Column, values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Convert ``values`` (rows first) to the Arrow array of ``col``; ``mask`` marks nulls."""
    warm_pyarrow()
    if col.dtype == "object":
        return pa.array(list(values), type=pa.string(), mask=mask)
    if col.packed:
        data = pa.py_buffer(np.ascontiguousarray(values))
        valid = None if mask is None or not mask.any() else pa.array(~mask).buffers()[1]
        return pa.Array.from_buffers(col.arrow_type(), len(values), [valid, data])
    if not col.shape:
        return pa.array(values, mask=mask)
    flat = pa.array(np.ascontiguousarray(values).reshape(-1))
    arr = pa.FixedSizeListArray.from_arrays(flat, math.prod(col.shape))
    if mask is not None and mask.any():  # from_arrays(mask=) would import pyarrow.compute (~45 ms, once)
        arr = pa.Array.from_buffers(arr.type, len(values), [pa.array(~mask).buffers()[1]], children=[flat])
    return arr


def from_arrow(col: Column, arr: pa.Array) -> np.ndarray:
    """Convert an Arrow column back to a numpy array of shape ``(rows, *col.shape)`` (stored form)."""
    warm_pyarrow()
    if col.dtype == "object":
        return np.array(arr.to_pylist(), dtype=object)
    if col.packed:
        n, size = len(arr), math.prod(col.shape)
        values = np.frombuffer(arr.buffers()[1], np.dtype(col.dtype), count=n * size, offset=arr.offset * col.row_bytes)
        return values.reshape((n, *col.shape))
    if not col.shape:
        if arr.null_count:
            arr = arr.fill_null(False if pa.types.is_boolean(arr.type) else 0)
        return arr.to_numpy(zero_copy_only=False)
    size = math.prod(col.shape)
    values = arr.values.slice(arr.offset * size, len(arr) * size)
    return values.to_numpy(zero_copy_only=False).reshape((len(arr), *col.shape))


def xor_encode(rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Keep row 0, XOR each further row with the one before it (a keyframe per chunk); into ``out`` if given."""
    out = np.empty_like(rows) if out is None else out
    if len(rows):
        out[0] = rows[0]
        np.bitwise_xor(rows[1:], rows[:-1], out=out[1:])
    return out


def xor_decode(rows: np.ndarray) -> np.ndarray:
    """Invert :func:`xor_encode` with a cumulative XOR along the rows."""
    if len(rows) < 2:
        return rows
    out = np.empty_like(rows)
    flat_in, flat_out = rows.reshape(len(rows), -1), out.reshape(len(rows), -1)
    if flat_in.shape[1] % 8 == 0 and flat_in.flags.c_contiguous:  # XOR 8 bytes at a time
        flat_in, flat_out = flat_in.view(np.uint64), flat_out.view(np.uint64)
    flat_out[0] = flat_in[0]
    for i in range(1, len(rows)):  # a row loop: numpy's accumulate along axis 0 is ~30x slower
        np.bitwise_xor(flat_out[i - 1], flat_in[i], out=flat_out[i])
    return out


def running_sum(start: float, rewards: np.ndarray) -> float:
    """``start`` plus ``rewards`` added one by one in float64 (the episode return, reproducibly)."""
    if not len(rewards):
        return float(start)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, as in the env's own sum
        return float(np.cumsum(np.concatenate([[start], np.asarray(rewards, np.float64)]))[-1])


def running_sums(starts: Sequence[float], rewards: np.ndarray, first: Sequence[int],
                 lengths: Sequence[int]) -> list[float]:
    """:func:`running_sum` of ``rewards[first[i] : first[i] + lengths[i]]`` from ``starts[i]``, for every i.

    One numpy pass over a matrix padded with -0.0 (sequential sums along its rows, so every value
    equals :func:`running_sum`'s bit for bit) when the padding stays small; else one call per segment.

    >>> running_sums([0.0, 1.0], np.array([0.5, 0.25, 2.0]), [0, 2], [2, 1])
    [0.75, 3.0]
    """
    first, lengths = np.asarray(first, np.int64), np.asarray(lengths, np.int64)
    k = len(first)
    width = int(lengths.max()) if k else 0
    if k * (width + 1) > 4 * len(rewards) + 4096:  # one long segment among short ones
        return [running_sum(s, rewards[a : a + n]) for s, a, n in zip(starts, first.tolist(), lengths.tolist(),
                                                                       strict=True)]
    table = np.full((k, width + 1), -0.0)  # x + -0.0 is x for every float, -0.0 and NaN included
    table[:, 0] = starts
    cols = np.arange(width)
    inside = cols < lengths[:, None]
    table[:, 1:][inside] = np.asarray(rewards, np.float64)[(first[:, None] + cols)[inside]]
    with np.errstate(invalid="ignore", over="ignore"):
        return np.cumsum(table, axis=1)[:, -1].tolist()


def crc_of_strings(arr: pa.Array) -> int:
    """CRC-32 of a format-2 ``episode`` column: its values' lengths (int64, little-endian), then their bytes.

    Computed from the Arrow buffers (no Python string is made; no pyarrow compute call, which would
    hand the GIL to the game loop in the middle of the writer thread's work). Null values are skipped.

    >>> import zlib
    >>> crc_of_strings(pa.array(["ab", None, "c"], pa.large_string())) == zlib.crc32(
    ...     b"abc", zlib.crc32(np.array([2, 1], "<i8").tobytes()))
    True
    """
    n = len(arr)
    validity, offsets_buf, data_buf = arr.buffers()
    if not n or offsets_buf is None:
        return zlib.crc32(b"")
    width = 8 if pa.types.is_large_string(arr.type) else 4
    offsets = np.frombuffer(offsets_buf, f"<i{width}", count=n + 1, offset=arr.offset * width).astype(np.int64)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    if arr.null_count:
        keep = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")[arr.offset : arr.offset + n]
        keep = keep.astype(bool)
        starts, lengths = offsets[:-1][keep], lengths[keep]
        first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        values = data[np.repeat(starts - first, lengths) + np.arange(int(lengths.sum()))]
    else:
        values = data[offsets[0] : offsets[-1]]
    return _crc32(values, zlib.crc32(lengths.astype("<i8").tobytes()))


def crc_of(values: np.ndarray, mask: np.ndarray | None = None) -> int:
    """CRC-32 of stored column values (only non-null rows when ``mask`` marks nulls)."""
    if mask is not None:
        values = values[~mask]
    if values.dtype == object:
        return zlib.crc32("\x00".join("\x01" if v is None else str(v) for v in values).encode())
    return _crc32(np.ascontiguousarray(values).view(np.uint8).reshape(-1))
