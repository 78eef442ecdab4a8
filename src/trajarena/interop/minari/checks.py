"""What the Minari importer checks before Minari (or numpy) allocates anything a dataset declares.

A Minari dataset is a folder of JSON metadata and HDF5 or Arrow files. Read naively, a hostile or
broken one can exhaust memory (a ``Box`` of shape ``(10**9, 10**9)`` is allocated by Minari's own
space decoder; an HDF5 dataset declared with ``10**12`` rows is allocated on read) or run code
(Minari makes the env named in ``env_spec`` when the spaces are missing). So the importer first:

* reads ``metadata.json`` (at most :data:`MAX_METADATA_BYTES`) as plain JSON, and requires both
  spaces in it — trajarena never makes an env a dataset names;
* walks the declared spaces itself (:func:`check_space`): known types only, at most
  :data:`~trajarena.format.limits.MAX_LEAF_VALUES` elements per leaf, nesting at most
  :data:`~trajarena.format.limits.MAX_SPACE_DEPTH` deep, bounds that match the shapes;
* reads the storage's headers only (HDF5 dataset shapes, Arrow row counts) and refuses an episode
  larger than ``max_episode_bytes`` once decoded (:func:`check_storage`);
* after Minari decodes an episode, checks every array against the spaces (:func:`check_episode`):
  lengths, shapes, dtypes, and the ranges of discrete values.

Every refusal is a :class:`~trajarena.errors.FormatError` that names the dataset and what is wrong.

>>> check_space({"type": "Box", "dtype": "uint8", "shape": [84, 84, 3], "low": 0, "high": 255})
21168
>>> check_space({"type": "Box", "dtype": "uint8", "shape": [10**5, 10**5], "low": 0, "high": 255})
Traceback (most recent call last):
...
trajarena.errors.FormatError: the space declares 10000000000 elements in one leaf (at most 67108864 are accepted).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.errors import FormatError, SettingsError
from trajarena.format import limits

__all__ = ["MAX_METADATA_BYTES", "check_episode", "check_minari_home", "check_space", "check_storage", "read_metadata"]

#: The largest ``metadata.json`` read.
MAX_METADATA_BYTES = 16 << 20
_DTYPES = frozenset("bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64".split())
_MAX_KEYS = 4096
_MAX_TEXT = 1 << 20


def _int(value: Any, what: str, lo: int = 0, hi: int = 2**62) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise FormatError(f"{what} must be an integer in [{lo}, {hi}], got {value!r}.")
    return value


def _elements(shape: Any, what: str) -> int:
    if not isinstance(shape, list) or len(shape) > 32:
        raise FormatError(f"{what} must be a list of at most 32 sizes, got {shape!r}.")
    dims = [_int(n, f"{what} entry", 0, limits.MAX_LEAF_VALUES) for n in shape]
    n = math.prod(dims)
    if n > limits.MAX_LEAF_VALUES:
        raise FormatError(f"the space declares {n} elements in one leaf (at most {limits.MAX_LEAF_VALUES} are accepted).")
    return n


def _bound(value: Any, n: int, what: str) -> None:
    """A bound is a number or nested lists of ``n`` numbers (checked without building arrays)."""
    count, stack = 0, [value]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(v)
            if len(stack) > n + 1:
                break
        elif isinstance(v, int | float) and not isinstance(v, bool) or v is None or isinstance(v, str):
            count += 1  # None/str: JSON's inf and nan spellings are Minari's business
        else:
            raise FormatError(f"{what} holds {type(v).__name__}, not numbers.")
    if not isinstance(value, list):
        return
    if count != n:
        raise FormatError(f"{what} holds {count} numbers for a shape of {n} elements.")


def check_space(data: Any, depth: int = 0) -> int:
    """Check a space as Minari serialises it (a dict, or its JSON string); return its elements per step.

    Raises:
        FormatError: an unknown type, an absurd size, a bad dtype or bound, or too deep nesting.
    """
    if isinstance(data, str):
        if len(data) > MAX_METADATA_BYTES:
            raise FormatError("a serialised space is larger than the metadata limit.")
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise FormatError(f"a serialised space is not JSON of a sane depth ({type(exc).__name__}).") from exc
    if depth > limits.MAX_SPACE_DEPTH:
        raise FormatError(f"the space is nested more than {limits.MAX_SPACE_DEPTH} levels deep.")
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise FormatError(f"a space must be a JSON object with a 'type', got {type(data).__name__}.")
    kind = data["type"]
    if kind in ("Dict", "Tuple"):
        subs = data.get("subspaces")
        items = subs.values() if kind == "Dict" and isinstance(subs, dict) else subs if kind == "Tuple" else None
        if not isinstance(items, list) and not (kind == "Dict" and isinstance(subs, dict)):
            raise FormatError(f"a {kind} space needs its 'subspaces' as a {'dict' if kind == 'Dict' else 'list'}.")
        items = list(items)
        if len(items) > _MAX_KEYS:
            raise FormatError(f"a {kind} space declares {len(items)} subspaces (at most {_MAX_KEYS}).")
        total = sum(check_space(s, depth + 1) for s in items)
        if total > limits.MAX_ROW_BYTES:
            raise FormatError(f"the space declares {total} elements per step in all (at most {limits.MAX_ROW_BYTES}).")
        return total
    if kind == "Box":
        if not isinstance(data.get("dtype"), str) or data["dtype"] not in _DTYPES:
            raise FormatError(f"a Box space has dtype {data.get('dtype')!r}; accepted: {', '.join(sorted(_DTYPES))}.")
        n = _elements(data.get("shape"), "a Box shape")
        _bound(data.get("low"), n, "a Box's low bound")
        _bound(data.get("high"), n, "a Box's high bound")
        return n
    if kind == "Discrete":
        _int(data.get("n"), "a Discrete space's n", 1)
        _int(data.get("start", 0), "a Discrete space's start", -(2**62))
        return 1
    if kind == "MultiDiscrete":
        if not isinstance(data.get("dtype"), str) or data["dtype"] not in _DTYPES:
            raise FormatError(f"a MultiDiscrete space has dtype {data.get('dtype')!r}.")
        nvec = data.get("nvec")
        try:
            shape = list(np.shape(nvec)) if isinstance(nvec, list) else None
        except ValueError:  # ragged
            shape = None
        n = _elements(shape, "a MultiDiscrete nvec")
        _bound(nvec, n, "a MultiDiscrete nvec")
        return n
    if kind == "MultiBinary":
        n = data.get("n")
        return _elements(n if isinstance(n, list) else [n], "a MultiBinary n")
    if kind == "Text":
        _int(data.get("max_length"), "a Text space's max_length", 0, _MAX_TEXT)
        if not isinstance(data.get("charset", ""), str) or len(data.get("charset", "")) > _MAX_TEXT:
            raise FormatError("a Text space's charset must be a string of at most 1 MiB.")
        return 1
    raise FormatError(f"unknown space type {kind!r}; trajarena imports Box, Discrete, MultiDiscrete, MultiBinary, "
                      "Text, Dict and Tuple.")


def check_minari_home() -> None:
    """Refuse a relative ``MINARI_DATASETS_PATH``: Minari 0.5 joins it twice and fails deep inside."""
    home = os.environ.get("MINARI_DATASETS_PATH")
    if home is not None and not os.path.isabs(home):
        raise SettingsError(f"MINARI_DATASETS_PATH must be an absolute path, got {home!r} "
                            f"(e.g. {os.path.abspath(home)!r}).")


def read_metadata(data_path: Path) -> dict[str, Any]:
    """``metadata.json`` of a Minari dataset, checked: size, JSON object, both spaces, counts, format."""
    path = data_path / "metadata.json"
    if not path.is_file():
        raise FormatError(f"{data_path} is not a Minari dataset: it has no metadata.json.")
    if path.stat().st_size > MAX_METADATA_BYTES:
        raise FormatError(f"{path} is {path.stat().st_size} bytes; a Minari metadata file is at most {MAX_METADATA_BYTES}.")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise FormatError(f"{path} is not valid JSON of a sane depth ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(meta, dict):
        raise FormatError(f"{path} must hold a JSON object, got {type(meta).__name__}.")
    for key in ("observation_space", "action_space"):
        if key not in meta:
            raise FormatError(f"{path} has no {key}; Minari would make the env its env_spec names to learn it, and "
                              "trajarena never runs code a dataset names. Add the space to the dataset first.")
        check_space(meta[key])
    _int(meta.get("total_episodes", 0), f"{path}: total_episodes", 0, 10**9)
    _int(meta.get("total_steps", 0), f"{path}: total_steps", 0, 10**15)
    if meta.get("data_format", "hdf5") not in ("hdf5", "arrow", "parquet"):
        raise FormatError(f"{path}: unknown data_format {meta.get('data_format')!r} (hdf5, arrow or parquet).")
    return meta


def check_storage(data_path: Path, meta: dict[str, Any], max_episode_bytes: int, row_bytes: int) -> None:
    """Refuse an episode whose stored arrays would decode to more than ``max_episode_bytes``.

    Only headers are read: HDF5 dataset shapes, or the Arrow/Parquet row counts of each episode.
    """
    n_episodes = meta.get("total_episodes", 0)
    if meta.get("data_format", "hdf5") == "hdf5":
        import h5py

        try:
            with h5py.File(data_path / "main_data.hdf5", "r") as f:
                if len(f.keys()) != n_episodes:
                    raise FormatError(f"{data_path}: metadata says {n_episodes} episodes, the HDF5 file holds {len(f.keys())}.")

                def visit(name: str, obj: Any) -> None:
                    if isinstance(obj, h5py.Dataset):
                        size = math.prod(obj.shape) * (obj.dtype.itemsize or 1)
                        if size > max_episode_bytes:
                            raise FormatError(f"{data_path}: {name} declares {obj.shape} {obj.dtype} ({size} bytes), more "
                                              f"than max_episode_bytes={max_episode_bytes}.")

                f.visititems(visit)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise FormatError(f"{data_path}: its HDF5 file cannot be read ({exc}).") from exc
        return
    import pyarrow.dataset as pds

    for i in range(n_episodes):
        folder = data_path / str(i)
        try:
            rows = pds.dataset(folder, format=meta["data_format"], ignore_prefixes=["_", ".", "metadata.json"]).count_rows()
        except (OSError, ValueError) as exc:
            raise FormatError(f"{data_path}: episode {i} cannot be read ({exc}).") from exc
        if rows * max(row_bytes, 1) > max_episode_bytes:
            raise FormatError(f"{data_path}: episode {i} holds {rows} rows of {row_bytes} bytes, more than "
                              f"max_episode_bytes={max_episode_bytes}.")


def _check_leaf(space: spaces.Space, value: Any, rows: int, where: str) -> None:
    if isinstance(space, spaces.Text):
        if len(value) != rows or not all(isinstance(v, str | bytes) for v in value):
            raise FormatError(f"{where}: expected {rows} strings.")
        return
    arr = np.asarray(value)
    shape = (rows, *space.shape)
    if arr.shape != shape:
        raise FormatError(f"{where}: expected shape {shape}, got {arr.shape}.")
    want = np.dtype(np.int64) if isinstance(space, spaces.Discrete) else space.dtype
    if arr.dtype.kind not in ("b" if want.kind == "b" else "biu" if want.kind in "iu" else "biuf"):
        raise FormatError(f"{where}: expected {want} values, got {arr.dtype}.")
    if isinstance(space, spaces.Discrete | spaces.MultiDiscrete) and arr.size:
        lo, hi = space.start, space.start + (space.n if isinstance(space, spaces.Discrete) else space.nvec)
        if np.any(arr < lo) or np.any(arr >= hi):
            raise FormatError(f"{where}: values outside the space {space}.")


def _check_nested(space: spaces.Space, value: Any, rows: int, where: str) -> None:
    if isinstance(space, spaces.Dict):
        if not isinstance(value, dict) or set(value) != set(space.spaces):
            raise FormatError(f"{where}: expected a dict with keys {sorted(space.spaces)}, got "
                              f"{sorted(value) if isinstance(value, dict) else type(value).__name__}.")
        for k, s in space.spaces.items():
            _check_nested(s, value[k], rows, f"{where}[{k!r}]")
    elif isinstance(space, spaces.Tuple):
        if not isinstance(value, tuple | list) or len(value) != len(space.spaces):
            raise FormatError(f"{where}: expected a tuple of {len(space.spaces)} items.")
        for i, (s, v) in enumerate(zip(space.spaces, value, strict=True)):
            _check_nested(s, v, rows, f"{where}[{i}]")
    else:
        _check_leaf(space, value, rows, where)


def check_episode(ep: Any, observation_space: spaces.Space, action_space: spaces.Space, where: str) -> int:
    """Check a decoded Minari episode against the spaces; return its number of steps.

    Raises:
        FormatError: a length, shape, dtype or discrete value that does not fit.
    """
    rewards = np.asarray(ep.rewards)
    if rewards.ndim != 1 or rewards.dtype.kind not in "biuf":
        raise FormatError(f"{where}: rewards must be a 1-D array of numbers, got {rewards.dtype}{list(rewards.shape)}.")
    steps = len(rewards)
    for name in ("terminations", "truncations"):
        flags = np.asarray(getattr(ep, name))
        if flags.shape != (steps,) or flags.dtype.kind not in "bi":
            raise FormatError(f"{where}: {name} must be {steps} booleans, got {flags.dtype}{list(flags.shape)}.")
    _check_nested(observation_space, ep.observations, steps + 1, f"{where} observations")
    _check_nested(action_space, ep.actions, steps, f"{where} actions")
    return steps
