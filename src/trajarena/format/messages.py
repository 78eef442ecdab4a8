"""Checks of Arrow IPC message headers, made before Arrow allocates anything for a chunk.

A chunk (record batch) message declares its row count, one node per column and one buffer per
Arrow buffer with its (uncompressed) size. :func:`check_batch_message` reads those declarations
with a small bounds-checked FlatBuffers reader (:class:`Flat`) and refuses any that cannot hold for
the file's schema (:func:`buffer_layout`): too many rows, a buffer larger than its rows allow, a
chunk that would decode to more than :data:`~trajarena.format.schema.MAX_CHUNK_BYTES`, a damaged or
missing chunk metadata document. :mod:`~trajarena.format.index` and the readers call it on every
chunk of every file they open.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pyarrow as pa

from trajarena.errors import CorruptFileError, FormatError
from trajarena.format import limits
from trajarena.format import schema as fmt
from trajarena.format.metadata import loads

__all__ = ["Flat", "buffer_layout", "check_batch_message"]


class Flat:
    """Bounds-checked reading of the few FlatBuffers tables of an Arrow IPC message header."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf

    def u(self, fmt: str, pos: int) -> Any:
        return struct.unpack_from("<" + fmt, self.buf, pos)[0]

    def field(self, table: int, index: int) -> int | None:
        vtable = table - self.u("i", table)
        size = self.u("H", vtable)
        if 4 + 2 * index >= size:
            return None
        off = self.u("H", vtable + 4 + 2 * index)
        return table + off if off else None

    def ref(self, pos: int) -> int:
        return pos + self.u("I", pos)

    def vector(self, table: int, index: int) -> tuple[int, int]:
        pos = self.field(table, index)
        if pos is None:
            return 0, 0
        start = self.ref(pos)
        return self.u("I", start), start + 4

    def string(self, pos: int) -> bytes:
        n = self.u("I", pos)
        if pos + 4 + n > len(self.buf):
            raise struct.error("string out of bounds")
        return bytes(self.buf[pos + 4 : pos + 4 + n])


def buffer_layout(schema: pa.Schema) -> tuple[list[tuple[str, int, int]], list[int]]:
    """The buffers (kind, row multiplier, byte width) and node multipliers of a batch of ``schema``."""
    buffers: list[tuple[str, int, int]] = []
    nodes: list[int] = []

    def walk(t: pa.DataType, mult: int) -> None:
        nodes.append(mult)
        buffers.append(("bits", mult, 0))  # validity
        if pa.types.is_fixed_size_list(t):
            walk(t.value_type, mult * t.list_size)
        elif pa.types.is_boolean(t):
            buffers.append(("bits", mult, 0))
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            buffers.append(("fixed", mult, 8 if pa.types.is_large_string(t) else 4))  # offsets: n + 1 entries
            buffers.append(("string", mult, 0))
        elif t.byte_width:
            buffers.append(("fixed", mult, t.byte_width))
        else:
            raise FormatError(f"Unsupported Arrow type {t} in a trajarena file.")

    for f in schema:
        walk(f.type, 1)
    return buffers, nodes


def check_batch_message(msg: pa.ipc.Message, layout: tuple[list, list], max_rows: int, where: str) -> tuple[int, dict]:
    """Check a record batch message's declared sizes before Arrow allocates anything.

    Returns:
        ``(rows, chunk)``: the row count and the chunk's JSON metadata (``{}`` when absent).

    Raises:
        CorruptFileError: an impossible row count, buffer size, layout or header.
    """
    try:
        fb = Flat(msg.metadata.to_pybytes())
        root = fb.ref(0)
        htype = fb.field(root, 1)
        if htype is None or fb.u("B", htype) != 3:
            raise CorruptFileError(f"{where}: expected a record batch message.")
        batch = fb.ref(fb.field(root, 2))
        pos = fb.field(batch, 0)
        rows = fb.u("q", pos) if pos is not None else 0
        if not 0 <= rows <= max_rows:
            raise CorruptFileError(f"{where}: a chunk declares {rows} rows; at most {max_rows} are allowed.")
        buf_kinds, node_mults = layout
        n_nodes, nodes_at = fb.vector(batch, 1)
        n_bufs, bufs_at = fb.vector(batch, 2)
        if n_nodes != len(node_mults) or n_bufs != len(buf_kinds):
            raise CorruptFileError(
                f"{where}: a chunk has {n_nodes} nodes/{n_bufs} buffers; the schema needs "
                f"{len(node_mults)}/{len(buf_kinds)}."
            )
        for i, mult in enumerate(node_mults):
            if not 0 <= fb.u("q", nodes_at + 16 * i) <= rows * mult:
                raise CorruptFileError(f"{where}: a column declares more values than the chunk has rows.")
        compressed = fb.field(batch, 3) is not None
        body = msg.body
        body_size = body.size
        head = body.to_pybytes() if compressed and body_size < (1 << 16) else None
        total = 0
        for i, (kind, mult, width) in enumerate(buf_kinds):
            off, length = fb.u("q", bufs_at + 16 * i), fb.u("q", bufs_at + 16 * i + 8)
            if off < 0 or length < 0 or off + length > body_size:
                raise CorruptFileError(f"{where}: a buffer lies outside the chunk body.")
            size = length
            if compressed and length >= 8:
                raw = head[off : off + 8] if head is not None else body.slice(off, 8).to_pybytes()
                declared = struct.unpack("<q", raw)[0]
                size = length - 8 if declared == -1 else declared
            n = rows * mult
            bound = {"bits": (n + 7) // 8, "fixed": (n + 1) * width, "string": limits.MAX_STRING_BYTES}[kind] + 64
            if not 0 <= size <= bound:
                raise CorruptFileError(
                    f"{where}: a buffer declares {size} bytes where at most {bound} fit {rows} rows "
                    "(a damaged or hostile file)."
                )
            total += size
            if total > limits.MAX_CHUNK_BYTES:
                raise CorruptFileError(
                    f"{where}: the chunk declares more than {limits.MAX_CHUNK_BYTES} decoded bytes "
                    "(a damaged or hostile file: no writer makes chunks that large)."
                )
        kvs: dict[bytes, bytes] = {}
        count, at = fb.vector(root, 4)
        for i in range(min(count, 16)):
            kv = fb.ref(at + 4 * i)
            k, v = fb.field(kv, 0), fb.field(kv, 1)
            if k is not None and v is not None:
                kvs[fb.string(fb.ref(k))] = fb.string(fb.ref(v))
        raw = kvs.get(fmt.CHUNK_KEY.encode())
        if raw is None:
            raise CorruptFileError(f"{where}: a chunk lacks its {fmt.CHUNK_KEY!r} metadata.")
        if len(raw) > limits.MAX_METADATA_BYTES or kvs.get(fmt.CHUNK_KEY.encode() + b".crc32") != str(zlib.crc32(raw)).encode():
            raise CorruptFileError(f"{where}: a chunk's metadata is damaged (checksum or size).")
        chunk = loads(raw)
        if not isinstance(chunk, dict) or not isinstance(chunk.get("crc32", {}), dict):
            raise CorruptFileError(f"{where}: chunk metadata is not a JSON object with a 'crc32' object.")
        return rows, chunk
    except (struct.error, TypeError, ValueError, RecursionError) as exc:
        raise CorruptFileError(f"{where}: damaged chunk header ({exc}).") from exc
