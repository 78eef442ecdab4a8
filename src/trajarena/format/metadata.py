"""The JSON documents of a trajectory file: its metadata and each chunk's record, written and read strictly.

A file's schema metadata holds one JSON document under :data:`~trajarena.format.schema.METADATA_KEY`
(format, version, spaces, columns, settings, ...) and each chunk's custom metadata one under
:data:`~trajarena.format.schema.CHUNK_KEY` (CRC-32 of every column, episode starts and ends), each
with its own CRC-32. JSON is written without ``NaN``/``Infinity`` and read with :func:`loads`, which
refuses them and any number that overflows to infinity; :func:`decode_metadata` checks the
checksum, the format name and the version before anything reads the document. User metadata may
not use the keys the format writes (:func:`check_user_metadata`), and info values stored in end
records go through :func:`json_safe`.
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

import numpy as np
import pyarrow as pa

from trajarena.errors import CorruptFileError, FormatError, SettingsError
from trajarena.format import limits
from trajarena.format.schema import (
    CHUNK_KEY,
    FORMAT_NAME,
    FORMAT_VERSION,
    METADATA_KEY,
    RESERVED_KEYS,
)

__all__ = ["check_user_metadata", "decode_metadata", "encode_chunk_meta", "encode_metadata", "json_safe", "loads"]


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is not finite")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number trajarena writes")


def loads(raw: str | bytes) -> Any:
    """Parse JSON read from a file: no ``NaN``/``Infinity`` and no number that overflows to infinity.

    >>> loads('{"chunk_steps": 16}')
    {'chunk_steps': 16}
    >>> loads('{"chunk_steps": 1e999}')
    Traceback (most recent call last):
    ...
    ValueError: the number 1e999 is not finite
    """
    return json.loads(raw, parse_float=_finite, parse_constant=_no_constant)


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False)


def check_user_metadata(metadata: dict[str, Any]) -> None:
    """Refuse metadata for a file's document that uses a key the format writes, or is not JSON data.

    Raises:
        SettingsError: a reserved key (see :data:`RESERVED_KEYS`), or a value JSON cannot hold.
    """
    clash = RESERVED_KEYS & set(metadata)
    if clash:
        raise SettingsError(f"Metadata keys {sorted(clash)} are reserved by the format; rename them.")
    lossy = metadata.get("lossy")
    if lossy is not None and not (isinstance(lossy, dict) and isinstance(lossy.get("codec"), str)):
        raise SettingsError("metadata 'lossy' must be None (lossless data) or an object naming the lossy 'codec' that "
                            f"touched the data, e.g. {{'codec': 'jpeg', 'quality': 80}}; got {str(lossy)[:80]}.")
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"Metadata must be JSON data (dicts, lists, str, numbers): {exc}") from exc


def encode_metadata(meta: dict[str, Any]) -> dict[bytes, bytes]:
    """Schema metadata for a file: the JSON document under :data:`METADATA_KEY`, and its CRC-32."""
    raw = _dumps(meta).encode()
    return {METADATA_KEY: raw, METADATA_KEY + b".crc32": str(zlib.crc32(raw)).encode()}


def encode_chunk_meta(doc: dict[str, Any]) -> dict[str, str]:
    """Custom metadata of one chunk: the JSON document under :data:`CHUNK_KEY`, and its CRC-32."""
    raw = _dumps(doc)
    return {CHUNK_KEY: raw, CHUNK_KEY + ".crc32": str(zlib.crc32(raw.encode()))}


def decode_metadata(schema: pa.Schema, where: str) -> dict[str, Any]:
    """Parse and check the JSON metadata of a file's schema.

    Raises:
        FormatError: not a trajarena file, or a newer format version.
        CorruptFileError: the metadata is damaged.
    """
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise FormatError(f"{where} is an Arrow file but not a trajarena trajectory (no {METADATA_KEY!r} metadata).")
    if len(raw) > limits.MAX_METADATA_BYTES:
        raise CorruptFileError(f"{where}: metadata of {len(raw)} bytes exceeds {limits.MAX_METADATA_BYTES}.")
    if (schema.metadata or {}).get(METADATA_KEY + b".crc32") != str(zlib.crc32(raw)).encode():
        raise CorruptFileError(f"{where}: the metadata checksum does not match (the file is damaged).")
    try:
        meta = loads(raw)
    except (ValueError, RecursionError) as exc:
        raise CorruptFileError(f"{where}: metadata is not valid JSON ({exc}).") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise FormatError(f"{where}: metadata does not declare format {FORMAT_NAME!r}.")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CorruptFileError(f"{where}: bad format_version {version!r}.")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{where} uses format version {version}, newer than this library's {FORMAT_VERSION}: "
            "upgrade trajarena (pip install -U trajarena)."
        )
    return meta


def json_safe(value: Any, max_items: int = 4096) -> Any:
    """Convert an info value to JSON data (numpy to lists); return ``None`` for what cannot be."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, np.ndarray):
        if value.size > max_items or value.dtype.kind not in "biuf":
            return None
        return json_safe(value.tolist())
    if isinstance(value, dict):
        out = {str(k): json_safe(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value[:max_items]]
    return None
