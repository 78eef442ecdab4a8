"""Export trajectory files to Parquet: decoded values, one row per step, for any Parquet reader.

:func:`export_parquet` reads recordings through the public decoded API
(:class:`~trajarena.replay.dataset.TrajectoryDataset`, one episode at a time) and writes one
``<name>.parquet`` file per trajectory file into a folder, so every tool reads the folder as it
is: DuckDB ``read_parquet('out/*.parquet')``, polars ``pl.read_parquet('out/*.parquet')``, Hugging
Face ``load_dataset("parquet", data_files=...)``, Ray Data ``read_parquet('out/')``, pandas.
Nothing is encoded: a frame is its pixels, in a column whose type has the frame's shape.

The rows. An episode of ``T`` steps has ``T + 1`` rows, as in the native files: row ``step = 0``
holds the reset observation, and row ``t`` the observation reached by step ``t`` with the
``action``, ``reward``, ``terminated`` and ``truncated`` of that step. On the reset row those four
are null, so ``SUM(reward)`` per episode is the return and ``COUNT(action)`` the length. Columns:

============  =========================================================================
column        type
============  =========================================================================
episode       string: the episode's id, as in the native files' ``episode`` column (unique everywhere)
file          string: the trajectory file it came from
file_episode  int64: the episode's id in that file
step          int32: 0 for the reset row, then 1..T
obs           the observation space's type (below)
action        the action space's type; null on the reset row
reward        float64; null on the reset row
terminated    bool; null on the reset row
truncated     bool; null on the reset row
info          struct of the info keys every file has; a field is null where a step lacks it
============  =========================================================================

Spaces map to Arrow types: ``Box``, ``MultiDiscrete`` and ``MultiBinary`` to their dtype (int8 for
MultiBinary), nested in one ``fixed_size_list`` per dimension (a ``(128, 192, 3)`` uint8 frame is
``fixed_size_list<fixed_size_list<fixed_size_list<uint8>[3]>[192]>[128]``, which polars reads as
``Array(UInt8, shape=(128, 192, 3))``); ``Discrete`` to int64; ``Text`` to string; ``Dict`` to a
struct of its keys and ``Tuple`` to a struct with fields ``"0"``, ``"1"``... Each file's schema
metadata holds, under ``trajarena``, the source file's JSON metadata (spaces, env id, settings).

>>> import tempfile, gymnasium as gym
>>> import pyarrow.parquet as pq
>>> from trajarena.recording.recorder import TrajectoryRecorder
>>> folder, out = tempfile.mkdtemp(), tempfile.mkdtemp()
>>> env = TrajectoryRecorder(gym.make("CartPole-v1"), folder)
>>> _ = env.reset(seed=0)
>>> for a in [0, 1, 0]:
...     _ = env.step(a)
>>> env.close()
>>> summary = export_parquet(folder, out)
>>> summary.episodes, summary.steps
(1, 3)
>>> table = pq.read_table(summary.files[0])
>>> table.column("step").to_pylist(), table.column("action").to_pylist(), table.column("reward").to_pylist()
([0, 1, 2, 3], [None, 0, 1, 0], [None, 1.0, 1.0, 1.0])
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from gymnasium import spaces

from trajarena.errors import MismatchError, NotSupportedError, SettingsError
from trajarena.interop.summary import ConversionSummary, Progress, Timer, prepare_folder, report, total_bytes
from trajarena.replay.dataset import TrajectoryDataset
from trajarena.replay.records import Episode

__all__ = ["arrow_type", "episode_table", "export_parquet", "to_arrow"]

#: Columns with statistics (min/max per row group) for predicate pushdown; frames get none (slow, useless).
_STATS_COLUMNS = ["episode", "file", "file_episode", "step", "reward", "terminated", "truncated"]
COMPRESSIONS = ("zstd", "snappy", "lz4", "gzip", "none")


def _leaf_type(dtype: np.dtype, shape: tuple[int, ...]) -> pa.DataType:
    t = pa.from_numpy_dtype(dtype)
    for n in reversed(shape):
        t = pa.list_(t, n)
    return t


def arrow_type(space: spaces.Space) -> pa.DataType:
    """The Arrow type of a column holding values of ``space``.

    >>> str(arrow_type(spaces.Dict(frame=spaces.Box(0, 255, (2, 3), np.uint8), n=spaces.Discrete(3))))
    'struct<frame: fixed_size_list<item: fixed_size_list<item: uint8>[3]>[2], n: int64>'

    Raises:
        NotSupportedError: a space without a column type (``Graph``, ``Sequence``, ``OneOf``).
    """
    if isinstance(space, spaces.Dict):
        return pa.struct([(str(k), arrow_type(s)) for k, s in space.spaces.items()])
    if isinstance(space, spaces.Tuple):
        return pa.struct([(str(i), arrow_type(s)) for i, s in enumerate(space.spaces)])
    if isinstance(space, spaces.Discrete):
        return pa.int64()
    if isinstance(space, spaces.MultiBinary):
        return _leaf_type(np.dtype(np.int8), space.shape)
    if isinstance(space, spaces.Box | spaces.MultiDiscrete):
        return _leaf_type(space.dtype, space.shape)
    if isinstance(space, spaces.Text):
        return pa.string()
    raise NotSupportedError(f"{type(space).__name__} spaces have no Parquet column type; supported: Box, "
                            "Discrete, MultiDiscrete, MultiBinary, Text and Dict/Tuple of them.")


def _array(values: Any, mask: np.ndarray | None) -> pa.Array:
    """A numpy array ``(N, *shape)`` as nested fixed-size lists (strings as strings)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "USO":
        return pa.array([None if mask is not None and m else str(v) for v, m in
                         zip(arr.reshape(len(arr)), mask if mask is not None else [False] * len(arr), strict=True)],
                        pa.string())
    if arr.ndim == 1:
        return pa.array(arr, mask=mask)
    flat: pa.Array = pa.array(np.ascontiguousarray(arr).reshape(-1))
    for i, n in enumerate(reversed(arr.shape[1:])):
        top = i == arr.ndim - 2
        flat = pa.FixedSizeListArray.from_arrays(flat, n, mask=pa.array(mask) if top and mask is not None else None)
    return flat


def to_arrow(space: spaces.Space, values: Any, mask: np.ndarray | None = None) -> pa.Array:
    """Stacked values of ``space`` (leaves with a first axis of ``N`` rows) as one Arrow array.

    ``mask`` marks rows that are null (True = null).

    >>> to_arrow(spaces.Dict(a=spaces.Discrete(4)), {"a": np.array([1, 2])}, np.array([True, False])).to_pylist()
    [None, {'a': 2}]
    """
    if isinstance(space, spaces.Dict | spaces.Tuple):
        items = space.spaces.items() if isinstance(space, spaces.Dict) else enumerate(space.spaces)
        children = [to_arrow(s, values[k]) for k, s in items]
        names = [str(k) for k in (space.spaces if isinstance(space, spaces.Dict) else range(len(space.spaces)))]
        return pa.StructArray.from_arrays(children, names, mask=None if mask is None else pa.array(mask))
    if isinstance(space, spaces.MultiBinary):
        values = np.asarray(values, np.int8)
    elif isinstance(space, spaces.Discrete):
        values = np.asarray(values, np.int64)
    return _array(values, mask).cast(arrow_type(space))


def _with_blank_first(value: Any) -> Any:
    """Prepend one zero row to every leaf (the reset row's placeholder action)."""
    if isinstance(value, dict):
        return {k: _with_blank_first(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_with_blank_first(v) for v in value)
    arr = np.asarray(value)
    blank = np.zeros((1, *arr.shape[1:]), arr.dtype) if arr.dtype.kind not in "USO" else np.array([""], arr.dtype)
    return np.concatenate([blank, arr])


def episode_table(ep: Episode, observation_space: spaces.Space, action_space: spaces.Space, *,
                  episode: str | None = None, file: str | None = None) -> pa.Table:
    """One decoded episode as a table of ``length + 1`` rows (the columns of the module docstring).

    Args:
        ep: an episode of :meth:`TrajectoryDataset.episode`.
        observation_space, action_space: the dataset's spaces.
        episode: the ``episode`` column's value (default: the episode's id, unique across files).
        file: the ``file`` column's value (default: the name of the episode's file).
    """
    n = ep.length + 1
    first = np.zeros(n, bool)
    first[0] = True

    def scalars(values: np.ndarray, dtype: Any) -> pa.Array:
        return pa.array(np.concatenate([np.zeros(1, dtype), np.asarray(values, dtype)]), mask=first)

    columns: dict[str, pa.Array] = {
        "episode": pa.array([ep.info.uid if episode is None else episode] * n, pa.string()),
        "file": pa.array([file if file is not None else Path(ep.info.file).name] * n, pa.string()),
        "file_episode": pa.array(np.full(n, ep.info.episode, np.int64)),
        "step": pa.array(np.arange(n, dtype=np.int32)),
        "obs": to_arrow(observation_space, ep.observations),
        "action": to_arrow(action_space, _with_blank_first(ep.actions), first),
        "reward": scalars(ep.rewards, np.float64),
        "terminated": scalars(ep.terminated, bool),
        "truncated": scalars(ep.truncated, bool),
    }
    if ep.infos:
        keys = sorted(ep.infos)
        columns["info"] = pa.StructArray.from_arrays(
            [_array(ep.infos[k][0], ~np.asarray(ep.infos[k][1], bool)) for k in keys], keys)
    return pa.table(columns)


def _out_name(source: str, taken: set[str]) -> str:
    name = Path(source).name
    for suffix in (".partial", ".arrow"):
        name = name.removesuffix(suffix)
    out, i = f"{name}.parquet", 1
    while out in taken:
        out, i = f"{name}-{i}.parquet", i + 1
    taken.add(out)
    return out


def export_parquet(paths: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike, *,
                   overwrite: bool = False, include_partial: bool = False, compression: str = "zstd",
                   row_group_rows: int = 4096, progress: Progress | None = None) -> ConversionSummary:
    """Write recordings as Parquet files of decoded steps, one per trajectory file, into ``out``.

    Args:
        paths: trajectory files and/or folders (searched recursively).
        out: the output folder (created if missing).
        overwrite: replace the ``*.parquet`` files ``out`` already holds (else an error).
        include_partial: also export ``.partial`` files (a running or crashed recording).
        compression: ``"zstd"`` (default), ``"snappy"``, ``"lz4"``, ``"gzip"`` or ``"none"``.
        row_group_rows: rows gathered per Parquet row group (whole episodes; 32 MB at most).
        progress: ``progress(done, total)`` after each episode.

    Returns:
        What was written (files, episodes, steps, bytes, time).

    Raises:
        OutputExistsError: ``out`` already holds ``*.parquet`` files and ``overwrite`` is False.
        DataNotFoundError: no trajectory file at ``paths``.
        MismatchError: two files disagree on spaces or on the type of an info key.
        NotSupportedError: a space without a Parquet column type.

    Each file is written as ``<name>.parquet.tmp`` and renamed when complete. Memory: one decoded
    episode (and one row group) at a time.
    """
    if compression not in COMPRESSIONS:
        raise SettingsError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}.")
    if isinstance(row_group_rows, bool) or not isinstance(row_group_rows, int) or row_group_rows < 1:
        raise SettingsError(f"row_group_rows must be an integer >= 1, got {row_group_rows!r}.")
    timer = Timer()
    data = TrajectoryDataset(paths, include_partial=include_partial)
    folder = prepare_folder(out, overwrite, ".parquet")
    written: list[str] = []
    schema: pa.Schema | None = None
    taken: set[str] = set()
    done = steps = 0
    try:
        for fi, source in enumerate(data.files):
            episodes = [e.index for e in data.episodes if e.file_index == fi]
            if not episodes:
                continue
            target = folder / _out_name(source, taken)
            meta = {b"trajarena": json.dumps({"format": "trajarena-parquet", "version": 1,
                                              "source": data.file_metadata(fi)}).encode()}
            tmp = target.with_name(target.name + ".tmp")
            writer: pq.ParquetWriter | None = None
            pending: list[pa.Table] = []
            pending_rows = pending_bytes = 0
            try:
                for i in episodes:
                    table = episode_table(data.episode(i), data.observation_space, data.action_space)
                    if schema is None:
                        schema = table.schema
                    table = _conform(table, schema, source, data.files[0])
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, schema.with_metadata(meta), compression=compression,
                                                  write_statistics=_STATS_COLUMNS)
                    pending.append(table)
                    pending_rows += len(table)
                    pending_bytes += table.get_total_buffer_size()
                    if pending_rows >= row_group_rows or pending_bytes > 32 << 20:
                        writer.write_table(pa.concat_tables(pending), row_group_size=1 << 30)
                        pending, pending_rows, pending_bytes = [], 0, 0
                    done, steps = done + 1, steps + data.episodes[i].length
                    report(progress, done, data.n_episodes)
                if pending and writer is not None:
                    writer.write_table(pa.concat_tables(pending), row_group_size=1 << 30)
            finally:
                if writer is not None:
                    writer.close()
            os.replace(tmp, target)
            written.append(str(target))
    finally:
        data.close()
        for stale in folder.glob("*.parquet.tmp"):
            stale.unlink()
    return ConversionSummary("parquet", str(folder), tuple(written), done, steps, total_bytes(written),
                             timer.seconds, {"rows": steps + done})


def _conform(table: pa.Table, schema: pa.Schema, source: str, first: str) -> pa.Table:
    """``table`` with the export's schema (an info key whose type differs from file to file is cast)."""
    if table.schema.equals(schema):
        return table
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError, ValueError) as exc:
        raise MismatchError(f"{source} and {first} store different columns or types ({exc}); "
                            "export them separately.") from exc
