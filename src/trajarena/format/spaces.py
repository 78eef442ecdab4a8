"""Gymnasium spaces as JSON and back.

:func:`space_to_json` / :func:`space_from_json` turn every Gymnasium space (``Box`` of any dtype
and shape with infinite bounds, ``Discrete`` and ``MultiDiscrete`` with ``start``, ``MultiBinary``,
``Text``, and ``Dict``/``Tuple`` nested to any depth) into plain JSON data and back. Each space
type has one function registered with :func:`functools.singledispatch`; an unknown space
raises :class:`~trajarena.errors.NotSupportedError` (a ``NotImplementedError``) naming it.
Declared sizes are checked before anything is allocated (:func:`declared_bytes`), so a hostile file
cannot make :func:`space_from_json` exhaust memory. How a space's values become columns is
:mod:`trajarena.format.leaves`.
"""

from __future__ import annotations

import math
from functools import singledispatch
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.errors import NotSupportedError, SpaceError
from trajarena.format import limits

__all__ = ["declared_bytes", "space_from_json", "space_to_json"]


_ALLOWED_DTYPES = frozenset(
    "bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64".split()
)


# ----------------------------------------------------------------------------- space -> JSON


def _bound(values: np.ndarray) -> Any:
    """Encode Box bounds: one scalar when all equal, else nested lists; infinities as strings."""

    def enc(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
        return x

    flat = values.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return enc(flat[0].item())
    return [enc(v) for v in flat.tolist()]


@singledispatch
def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """Return a JSON-ready dict that describes ``space``.

    Args:
        space: any Gymnasium space listed in the module docstring.

    Raises:
        NotSupportedError: for a space type without a registered serializer (Sequence, Graph,
            OneOf, ...); it is also a ``NotImplementedError``.

    >>> from gymnasium.spaces import Discrete
    >>> space_to_json(Discrete(3, start=-1))
    {'type': 'Discrete', 'n': 3, 'start': -1}
    """
    raise NotSupportedError(
        f"trajarena cannot serialise the space {type(space).__name__} ({space}); supported spaces: "
        "Box, Discrete, MultiDiscrete, MultiBinary, Text, Dict, Tuple."
    )


@space_to_json.register
def _(space: spaces.Box) -> dict[str, Any]:
    return {
        "type": "Box",
        "dtype": space.dtype.name,
        "shape": list(space.shape),
        "low": _bound(space.low),
        "high": _bound(space.high),
    }


@space_to_json.register
def _(space: spaces.Discrete) -> dict[str, Any]:
    return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}


@space_to_json.register
def _(space: spaces.MultiDiscrete) -> dict[str, Any]:
    return {
        "type": "MultiDiscrete",
        "dtype": space.dtype.name,
        "nvec": space.nvec.tolist(),
        "start": space.start.tolist(),
    }


@space_to_json.register
def _(space: spaces.MultiBinary) -> dict[str, Any]:
    n = space.n
    return {"type": "MultiBinary", "n": int(n) if isinstance(n, int | np.integer) else np.asarray(n).tolist()}


@space_to_json.register
def _(space: spaces.Text) -> dict[str, Any]:
    return {
        "type": "Text",
        "min_length": int(space.min_length),
        "max_length": int(space.max_length),
        "charset": "".join(sorted(space.character_set)),
    }


@space_to_json.register
def _(space: spaces.Dict) -> dict[str, Any]:
    return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}


@space_to_json.register
def _(space: spaces.Tuple) -> dict[str, Any]:
    return {"type": "Tuple", "spaces": [space_to_json(s) for s in space.spaces]}


# ----------------------------------------------------------------------------- JSON -> space


def _need(data: dict, key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in data:
        raise SpaceError(f"Space JSON {data.get('type')!r} lacks the key {key!r}; found {sorted(data)}.")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise SpaceError(f"Space JSON key {key!r} must be {kind}, got {type(value).__name__}.")
    return value


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise SpaceError(f"A space shape must be a list of non-negative ints, got {value!r}.")
    if len(value) > 32 or math.prod(value) > limits.MAX_LEAF_VALUES:
        raise SpaceError(
            f"A space declares shape {value}, above the limit of {limits.MAX_LEAF_VALUES} elements: "
            "the file is damaged or hostile."
        )
    return tuple(value)


def _dtype(name: Any) -> np.dtype:
    if name not in _ALLOWED_DTYPES:
        raise SpaceError(f"Unsupported dtype {name!r}; expected one of {sorted(_ALLOWED_DTYPES)}.")
    return np.dtype(name)


def _decode_bound(value: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    def dec(x: Any) -> Any:
        if isinstance(x, str):
            if x not in ("inf", "-inf", "nan"):
                raise SpaceError(f"A Box bound string must be 'inf', '-inf' or 'nan', got {x!r}.")
            return float(x)
        if not isinstance(x, int | float):
            raise SpaceError(f"A Box bound must be a number, got {x!r}.")
        return x

    if isinstance(value, list):
        if len(value) != math.prod(shape):
            raise SpaceError(f"Box bounds hold {len(value)} values for shape {list(shape)}.")
        values = [dec(v) for v in value]
    else:
        values = [dec(value)]
    try:
        if dtype.kind == "f":
            arr = np.array(values, dtype=np.float64).astype(dtype)
        else:
            arr = np.array(values, dtype=dtype)
    except (OverflowError, ValueError, TypeError) as exc:
        raise SpaceError(f"Box bounds {str(value)[:80]} do not fit dtype {dtype}: {exc}") from exc
    if not isinstance(value, list):
        return np.full(shape, arr[0], dtype=dtype)
    return arr.reshape(shape)


def declared_bytes(data: Any, _depth: int = 0) -> int:
    """Bytes per step that a space JSON declares, summed over its leaves, without building anything.

    Raises:
        SpaceError: the JSON nests too deep or a leaf's shape or dtype is invalid.

    >>> declared_bytes({"type": "Dict", "spaces": {"a": {"type": "Box", "dtype": "float64", "shape": [2, 3]},
    ...                                           "b": {"type": "Discrete", "n": 4}}})
    56
    """
    if _depth > limits.MAX_SPACE_DEPTH:
        raise SpaceError(f"Space JSON is nested deeper than {limits.MAX_SPACE_DEPTH} levels.")
    if not isinstance(data, dict):
        raise SpaceError(f"A space JSON must be an object, got {type(data).__name__}.")
    kind = data.get("type")
    if kind in ("Dict", "Tuple"):
        subs = data.get("spaces")
        items = subs.values() if isinstance(subs, dict) else subs if isinstance(subs, list) else None
        if items is None:
            raise SpaceError(f"A {kind} space JSON needs its 'spaces', got {type(subs).__name__}.")
        return sum(declared_bytes(s, _depth + 1) for s in items)
    if kind in ("Box", "MultiDiscrete"):
        dtype = _dtype(data.get("dtype"))
        if kind == "MultiDiscrete":
            nvec = data.get("nvec")
            try:
                return dtype.itemsize * (int(np.asarray(nvec, dtype=object).size) if isinstance(nvec, list) else 1)
            except (ValueError, TypeError) as exc:
                raise SpaceError(f"Invalid MultiDiscrete nvec {str(nvec)[:80]}: {exc}") from exc
        return dtype.itemsize * math.prod(_shape(data.get("shape")))
    if kind == "MultiBinary":
        n = data.get("n")
        return math.prod(_shape([n] if isinstance(n, int) and not isinstance(n, bool) else n))
    return 8  # Discrete, Text (checked when built) or an unknown type (refused when built)


def space_from_json(data: Any, _depth: int = 0) -> spaces.Space:
    """Rebuild a Gymnasium space from :func:`space_to_json` output, checking every size first.

    Raises:
        SpaceError: the JSON is not a valid space description, or declares absurd sizes.

    >>> from gymnasium.spaces import Box
    >>> space_from_json(space_to_json(Box(-1.0, float("inf"), (2,))))
    Box(-1.0, inf, (2,), float32)
    """
    if _depth == 0 and (total := declared_bytes(data)) > limits.MAX_ROW_BYTES:
        raise SpaceError(f"A space declares {total} bytes per step, above the limit of {limits.MAX_ROW_BYTES} "
                         "(trajarena.format.limits.MAX_ROW_BYTES): the file is damaged or hostile.")
    if _depth > limits.MAX_SPACE_DEPTH:
        raise SpaceError(f"Space JSON is nested deeper than {limits.MAX_SPACE_DEPTH} levels.")
    if not isinstance(data, dict):
        raise SpaceError(f"A space JSON must be an object, got {type(data).__name__}.")
    kind = data.get("type")
    try:
        if kind == "Box":
            dtype, shape = _dtype(data.get("dtype")), _shape(data.get("shape"))
            low = _decode_bound(data.get("low"), shape, dtype)
            high = _decode_bound(data.get("high"), shape, dtype)
            return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
        if kind == "Discrete":
            return spaces.Discrete(_need(data, "n", int), start=_need(data, "start", int))
        if kind == "MultiDiscrete":
            nvec = np.asarray(_need(data, "nvec", list))
            _shape(list(nvec.shape))
            start = np.asarray(_need(data, "start", list))
            return spaces.MultiDiscrete(nvec, dtype=_dtype(data.get("dtype")), start=start)
        if kind == "MultiBinary":
            n = _need(data, "n", (int, list))
            shape = _shape([n] if isinstance(n, int) else n)
            return spaces.MultiBinary(shape[0] if isinstance(n, int) else list(shape))
        if kind == "Text":
            max_length = _need(data, "max_length", int)
            if max_length > limits.MAX_LEAF_VALUES:
                raise SpaceError(f"Text max_length {max_length} is above {limits.MAX_LEAF_VALUES}.")
            return spaces.Text(max_length, min_length=_need(data, "min_length", int),
                               charset=_need(data, "charset", str))
        if kind == "Dict":
            subs = _need(data, "spaces", dict)
            # pairs, not a dict: gymnasium sorts dict keys, and the stored order is the column order
            return spaces.Dict([(str(k), space_from_json(v, _depth + 1)) for k, v in subs.items()])
        if kind == "Tuple":
            return spaces.Tuple([space_from_json(v, _depth + 1) for v in _need(data, "spaces", list)])
    except SpaceError:
        raise
    except (TypeError, ValueError, OverflowError, AssertionError) as exc:
        raise SpaceError(f"Invalid {kind} space JSON {str(data)[:200]}: {exc}") from exc
    raise SpaceError(
        f"Unknown space type {kind!r}; expected Box, Discrete, MultiDiscrete, MultiBinary, Text, Dict or Tuple."
    )
