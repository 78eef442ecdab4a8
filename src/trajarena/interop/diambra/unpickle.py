"""Reading DIAMBRA's recordings, which are bz2-compressed pickles, without running anything in them.

DIAMBRA Arena 2.1 and 2.2 write one pickle (protocol 4, or 5 from Python 3.14) in one bz2 stream.
A pickle names functions that the loader calls; this module's :class:`RestrictedUnpickler` answers
every name with a stand-in of its own from :data:`ALLOWED_GLOBALS`, and refuses any other name with
a :class:`~trajarena.errors.FormatError` that names it, before anything is imported or called.

The stand-ins build data only:

* numpy arrays and scalars (``numpy.core``/``numpy._core`` ``multiarray._reconstruct`` and
  ``scalar``, ``numeric._frombuffer`` of protocol 5, ``numpy.ndarray``, ``numpy.dtype``): numeric and
  bool dtypes only, declared shape checked against the bytes before an array is made, never numpy's
  own ``__setstate__``;
* ``collections.OrderedDict`` (DIAMBRA 2.2 two-player actions);
* ``diambra.engine.interface_pb2.EnvSettings``: :class:`ProtobufBytes`, the message's wire bytes
  (decoded by :mod:`~trajarena.interop.diambra.protobuf`, never by protobuf);
* gym 0.21 spaces (``gym.spaces.box.Box`` ...): :class:`SpaceRecord`, the space's stored fields.

Sizes: the decompressed stream may not pass ``max_bytes`` and no single object read from it may pass
``max_object_bytes``; both are checked on the size a pickle *declares*, before decompressing or
allocating, so a bz2 bomb costs neither memory nor time.

>>> import bz2, io, pickle
>>> blob = bz2.compress(pickle.dumps({"ep_len": 2, "rewards": [1, -1]}, protocol=4))
>>> load_bz2_pickle(io.BytesIO(blob), "demo")
{'ep_len': 2, 'rewards': [1, -1]}
"""

from __future__ import annotations

import bz2
import collections
import io
import math
import pickle
import re
import struct
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from trajarena.errors import CorruptFileError, FormatError

__all__ = ["ALLOWED_GLOBALS", "MAX_BYTES", "MAX_OBJECT_BYTES", "ProtobufBytes", "RestrictedUnpickler",
           "SpaceRecord", "load_bz2_pickle"]

#: Largest decompressed pickle accepted by default (a DIAMBRA episode is a few MB to a few hundred).
MAX_BYTES = 1 << 30
#: Largest single object (a frame, a JPEG, a string) a pickle may declare; DIAMBRA's largest is ~2 MB.
MAX_OBJECT_BYTES = 64 << 20
#: Deepest nesting of containers accepted (DIAMBRA files nest 6 deep).
MAX_DEPTH = 64
_MAX_NDIM = 8
_DTYPE_SPEC = re.compile(r"^[<>|=]?(b1|[iu][1248]|f[248]|\?)$")
_CHUNK = 1 << 20


@dataclass
class ProtobufBytes:
    """Stands in for a pickled protobuf message: its wire bytes, never parsed by protobuf.

    >>> ProtobufBytes("EnvSettings", b"\\x20\\x01").serialized
    b' \\x01'
    """

    message: str
    serialized: bytes = b""

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, dict) and set(state) == {"serialized"} and isinstance(state["serialized"], bytes)):
            raise FormatError(f"the pickled {self.message} holds {type(state).__name__} {_short(state)}, "
                              "not its serialized bytes")
        self.serialized = state["serialized"]


@dataclass
class SpaceRecord:
    """Stands in for a pickled gym 0.21 space: its kind (``"Box"``...) and the fields it stored.

    >>> SpaceRecord("Discrete", {"n": 2}).fields["n"]
    2
    """

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, dict) and all(isinstance(k, str) for k in state)):
            raise FormatError(f"the pickled gym space {self.kind} holds {type(state).__name__}, not a dict of fields")
        self.fields = dict(state)


class _Dtype:
    """A dtype being unpickled: checked spec and byte order; becomes a numpy dtype when complete."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = True) -> None:
        if not isinstance(spec, str) or not _DTYPE_SPEC.match(spec):
            raise FormatError(f"the pickle asks for numpy dtype {_short(spec)}; only bool, integer and float dtypes "
                              "are accepted in DIAMBRA recordings")
        self.dtype = np.dtype(spec)

    def __setstate__(self, state: Any) -> None:
        ok = (isinstance(state, tuple) and len(state) == 8 and state[0] in (3, 4) and isinstance(state[1], str)
              and len(state[1]) == 1 and state[1] in "<>|=" and state[2:5] == (None, None, None)
              and state[5:] == (-1, -1, 0))
        if not ok:
            raise FormatError(f"the pickled dtype {self.dtype} has the state {_short(state)}; only plain numeric "
                              "dtypes are accepted")
        if state[1] in "<>":
            self.dtype = self.dtype.newbyteorder(state[1])


class _Array:
    """An ndarray being unpickled (``_reconstruct`` then ``BUILD``); becomes a numpy array when complete."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise FormatError(f"a pickled ndarray has the state {_short(state)}, not (1, shape, dtype, fortran, bytes)")
        _, shape, dtype, fortran, raw = state
        if not isinstance(fortran, bool):
            raise FormatError(f"a pickled ndarray has the order flag {_short(fortran)}")
        self.array = _array(raw, dtype, shape, "F" if fortran else "C")


def _array(raw: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """An array of ``shape`` over ``raw``, once the declared size is checked against the bytes."""
    if not isinstance(dtype, _Dtype):
        raise FormatError(f"a pickled ndarray has the dtype {_short(dtype)}, not a numpy dtype")
    if not (type(shape) is tuple and len(shape) <= _MAX_NDIM
            and all(type(n) is int and 0 <= n < 1 << 40 for n in shape)):
        raise FormatError(f"a pickled ndarray has the shape {_short(shape)}")
    if not isinstance(raw, bytes | bytearray) or order not in ("C", "F"):
        raise FormatError(f"a pickled ndarray holds {type(raw).__name__} data in order {_short(order)}, "
                          "not raw bytes in C or Fortran order")
    size = math.prod(shape) * dtype.dtype.itemsize
    if size != len(raw):
        raise FormatError(f"a pickled ndarray declares shape {shape} of {dtype.dtype} ({size} bytes) "
                          f"but holds {len(raw)} bytes")
    data = np.frombuffer(raw if type(raw) is bytes else bytes(raw), dtype=dtype.dtype)
    return data.reshape(shape, order=order)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any, axis_order: Any = None) -> np.ndarray:
    """numpy's protocol-5 array constructor (Python >= 3.14 pickles arrays this way), made safe."""
    if axis_order is not None:
        raise FormatError("a pickled ndarray with a non-contiguous axis order; DIAMBRA arrays are contiguous")
    return _array(buf, dtype, shape, order)


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _Array:
    if cls is not _NDARRAY or shape != (0,) or typecode != b"b":
        raise FormatError(f"numpy's _reconstruct is called with {_short((cls, shape, typecode))}; only plain "
                          "ndarrays are accepted")
    return _Array()


def _scalar(dtype: Any, data: Any = None) -> np.generic:
    if not isinstance(dtype, _Dtype) or not isinstance(data, bytes) or len(data) != dtype.dtype.itemsize:
        raise FormatError(f"a pickled numpy scalar has {_short((dtype, data))}, not a numeric dtype and its bytes")
    return np.frombuffer(data, dtype=dtype.dtype, count=1)[0]


def _ordered_dict(*args: Any) -> collections.OrderedDict:
    if args and not (len(args) == 1 and isinstance(args[0], list)):
        raise FormatError(f"a pickled OrderedDict is built from {_short(args)}")
    return collections.OrderedDict(*args)


def _message(name: str) -> Any:
    def make(*args: Any) -> ProtobufBytes:
        if args:
            raise FormatError(f"the pickled {name} is built from {_short(args)}, not from nothing")
        return ProtobufBytes(name)
    return make


def _space_class(kind: str) -> type:
    def new(cls: type, *args: Any, **kwargs: Any) -> SpaceRecord:
        if args or kwargs:
            raise FormatError(f"the pickled gym space {kind} is built from {_short(args)}")
        return SpaceRecord(kind)
    return type(f"gym_{kind}", (), {"__new__": new})


_NDARRAY = object()  # what ``numpy.ndarray`` resolves to: only a marker for _reconstruct

#: Every global a DIAMBRA recording may name, and what the unpickler gives for it.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Dtype,
    ("collections", "OrderedDict"): _ordered_dict,
    ("diambra.engine.interface_pb2", "EnvSettings"): _message("diambra.engine.interface_pb2.EnvSettings"),
}
for _core in ("numpy.core", "numpy._core"):
    ALLOWED_GLOBALS[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
    ALLOWED_GLOBALS[(f"{_core}.multiarray", "scalar")] = _scalar
    ALLOWED_GLOBALS[(f"{_core}.numeric", "_frombuffer")] = _frombuffer
for _module, _kind in (("box", "Box"), ("discrete", "Discrete"), ("multi_discrete", "MultiDiscrete"),
                       ("multi_binary", "MultiBinary"), ("dict", "Dict")):
    ALLOWED_GLOBALS[(f"gym.spaces.{_module}", _kind)] = _space_class(_kind)


class RestrictedUnpickler(pickle.Unpickler):
    """A pickle loader that knows only :data:`ALLOWED_GLOBALS` and calls nothing else.

    >>> import io, os, pickle
    >>> RestrictedUnpickler(io.BytesIO(pickle.dumps(os.system))).load()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    trajarena.errors.FormatError: the file's pickle names the global 'posix.system', ... refused without importing...
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise FormatError(f"the file's pickle names the global {f'{module}.{name}'[:200]!r}, which a DIAMBRA "
                              "recording never holds; refused without importing or calling it "
                              "(it may be a crafted file)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise FormatError("the file's pickle asks for a persistent object, which a DIAMBRA recording never holds")


class _CappedBz2(io.RawIOBase):
    """A readable stream of a bz2 file's decompressed bytes that refuses to pass its size caps."""

    def __init__(self, src: IO[bytes], name: str, max_bytes: int, max_object_bytes: int) -> None:
        self._src, self._name = src, name
        self._max, self._max_object = max_bytes, max_object_bytes
        self._dec = bz2.BZ2Decompressor()
        self._buf = bytearray()
        self.total = 0

    def readable(self) -> bool:
        return True

    def _fill(self, n: int) -> None:
        while len(self._buf) < n and not self._dec.eof:
            if self._dec.needs_input:
                data = self._src.read(_CHUNK)
                if not data:
                    raise CorruptFileError(f"{self._name}: the bz2 stream ends early (a truncated file: DIAMBRA's "
                                           "recorder writes it from a background thread and a crash cuts it short)")
            else:
                data = b""
            try:
                self._buf += self._dec.decompress(data, max_length=max(n - len(self._buf), _CHUNK))
            except OSError as exc:
                raise CorruptFileError(f"{self._name}: not a valid bz2 stream ({exc})") from exc

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise FormatError(f"{self._name}: the pickle asks to read the rest of the stream at once")
        if n > self._max_object:
            raise FormatError(f"{self._name}: the pickle declares an object of {n} bytes, more than the "
                              f"{self._max_object}-byte limit (a crafted file, or pass a larger max_object_bytes)")
        if self.total + n > self._max:
            raise FormatError(f"{self._name}: the pickle decompresses to more than {self._max} bytes (a bz2 bomb, "
                              "or a recording larger than the limit: pass a larger max_bytes if you trust it)")
        self._fill(n)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self.total += len(out)
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        out = bytearray()
        while not out.endswith(b"\n"):
            chunk = self.read(1)
            if not chunk:
                break
            out += chunk
            if len(out) > 4096:
                raise FormatError(f"{self._name}: the pickle holds a text line longer than 4096 bytes")
        return bytes(out)


def load_bz2_pickle(src: IO[bytes], name: str, max_bytes: int = MAX_BYTES,
                    max_object_bytes: int = MAX_OBJECT_BYTES) -> Any:
    """Load the one pickle of a DIAMBRA file's bz2 stream, restricted and size-capped.

    Args:
        src: the open file (binary).
        name: the file's name, for messages.
        max_bytes: the most decompressed bytes accepted.
        max_object_bytes: the largest single object accepted.

    Returns:
        The unpickled data: dicts, lists, tuples, numbers, strings, bytes, numpy arrays and scalars,
        :class:`ProtobufBytes` and :class:`SpaceRecord`.

    Raises:
        FormatError: a refused global, a size over a limit, or data that is not a pickle.
        CorruptFileError: a damaged or truncated bz2 stream.
    """
    stream = _CappedBz2(src, name, max_bytes, max_object_bytes)
    try:
        data = RestrictedUnpickler(stream).load()
    except FormatError:
        raise
    except MemoryError as exc:
        raise FormatError(f"{name}: the pickle declares an object larger than memory (a crafted file)") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            OverflowError, struct.error, RecursionError, UnicodeDecodeError) as exc:
        raise FormatError(f"{name}: not a DIAMBRA recording: its bz2 stream does not hold a valid pickle "
                          f"({type(exc).__name__}: {str(exc)[:200]})") from exc
    return _finish(data, name, 0)


def _finish(value: Any, name: str, depth: int) -> Any:
    """Replace the arrays and dtypes being built by numpy objects; check the nesting depth."""
    if depth > MAX_DEPTH:
        raise FormatError(f"{name}: the pickle nests containers more than {MAX_DEPTH} deep")
    if isinstance(value, _Array):
        if value.array is None:
            raise FormatError(f"{name}: a pickled ndarray has no data")
        return value.array
    if isinstance(value, _Dtype):
        return value.dtype
    if isinstance(value, dict):  # OrderedDict included: updated in place, order kept
        for k in list(value):
            value[k] = _finish(value[k], name, depth + 1)
        return value
    if isinstance(value, list):
        value[:] = [_finish(v, name, depth + 1) for v in value]
        return value
    if isinstance(value, tuple):
        return tuple(_finish(v, name, depth + 1) for v in value)
    if isinstance(value, SpaceRecord):
        value.fields = {k: _finish(v, name, depth + 1) for k, v in value.fields.items()}
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
