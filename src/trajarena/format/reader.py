"""Reading trajectory files: chunked random access to episodes and steps, and their records.

:class:`TrajectoryReader` opens files through their index (:func:`~trajarena.format.index.index_file`:
headers only, every size checked, no frame decompressed) and decodes on demand: reads are
memory-mapped, a random access decodes only the chunk(s) that hold the rows asked for, and the last
decoded chunks are cached. Every decoded column is checked against the CRC-32 written with it.
Episodes the recorder discarded are skipped. The records it returns are :class:`Episode` and
:class:`Step` (and the index's :class:`~trajarena.format.index.EpisodeInfo`).
:func:`trajarena.format.integrity.verify` checks whole folders and
:func:`trajarena.format.integrity.repair` salvages the ``.partial`` files a crashed recorder left. The
format itself is specified in ``docs/format.md``.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from trajarena.errors import CorruptFileError, MismatchError
from trajarena.format import limits
from trajarena.format import schema as fmt
from trajarena.format.discover import find_files, no_trajectories
from trajarena.format.index import (
    ARROW_ERRORS,
    EpisodeInfo,
    FileIndex,
    index_file,
    index_live_partial,
    map_file,
)
from trajarena.format.leaves import compile_getter, leaf_fields
from trajarena.format.messages import buffer_layout, check_batch_message

__all__ = ["Episode", "EpisodeInfo", "Step", "TrajectoryReader", "decode_batch", "open_trajectories"]


def decode_batch(f: FileIndex, batch: pa.RecordBatch, crcs: dict[str, int], where: str,
                 verify: bool = True) -> dict[str, np.ndarray]:
    """Every column of one chunk, by leaf name, checked against its CRC-32 and decoded (XOR undone).

    The ``episode`` ids of a version-2 file are checked, not decoded (the index knows them).

    Raises:
        CorruptFileError: a column fails its checksum or cannot be decoded.
    """
    out: dict[str, np.ndarray] = {}
    for col, arr in zip(f.schema_columns(), batch.columns, strict=True):
        if verify and (col.name not in crcs or not isinstance(crcs[col.name], int)):
            raise CorruptFileError(f"{where}: column {col.name!r} has no checksum.")
        if col.name == fmt.EPISODE and col.dtype == "object":
            if verify and fmt.crc_of_strings(arr) != crcs[col.name]:
                raise CorruptFileError(f"{where}: column {col.name!r} fails its checksum (bit rot or tampering).")
            continue
        try:
            values = fmt.from_arrow(col, arr)
        except ARROW_ERRORS as exc:
            raise CorruptFileError(f"{where}: column {col.name!r} cannot be decoded ({exc}).") from exc
        if verify:
            mask = np.asarray(arr.is_null()) if arr.null_count else None
            if fmt.crc_of(values, mask) != crcs[col.name]:
                raise CorruptFileError(f"{where}: column {col.name!r} fails its checksum (bit rot or tampering).")
        out[col.name] = fmt.xor_decode(values) if col.transform == fmt.XOR_PREV else values
    return out


def _summary(value: Any) -> Any:
    """Shapes and dtypes of a nested value, for ``repr`` of records."""
    if isinstance(value, dict):
        return {k: _summary(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_summary(v) for v in value)
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{list(value.shape)}"
    return value


@dataclass(frozen=True, repr=False)
class Episode:
    """A decoded episode: ``length + 1`` observations and ``length`` of everything else.

    ``infos`` maps each stored info key to ``length + 1`` rows (row 0 is the reset info); a step
    without that key holds zeros. ``repr`` prints shapes, not arrays.

    >>> Episode(None, np.zeros((2, 3)), np.zeros(1), np.zeros(1), np.zeros(1, bool), np.zeros(1, bool), {})
    Episode(observations='float64[2, 3]', actions='float64[1]', rewards=1, infos={})
    """

    info: EpisodeInfo | None
    observations: Any
    actions: Any
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    infos: dict[str, np.ndarray]

    def __repr__(self) -> str:
        return (f"Episode(observations={_summary(self.observations)!r}, actions={_summary(self.actions)!r}, "
                f"rewards={len(self.rewards)}, infos={_summary(self.infos)!r})")


@dataclass(frozen=True, repr=False)
class Step:
    """One transition: ``obs --action--> next_obs`` with its reward, flags and info.

    >>> Step(np.zeros(4), 1, 1.0, False, False, np.ones(4), {}, 0, 0)
    Step(episode=0, t=0, obs='float64[4]', action=1, reward=1.0, terminated=False, truncated=False)
    """

    obs: Any
    action: Any
    reward: float
    terminated: bool
    truncated: bool
    next_obs: Any
    info: dict[str, Any]
    episode: int
    t: int

    def __repr__(self) -> str:
        return (f"Step(episode={self.episode}, t={self.t}, obs={_summary(self.obs)!r}, "
                f"action={_summary(self.action)!r}, reward={self.reward}, terminated={self.terminated}, "
                f"truncated={self.truncated})")


class TrajectoryReader:
    """Episodes and steps of one or more trajectory files (all with the same spaces).

    Args:
        paths: a file, a folder (searched recursively) or a list of them.
        include_partial: also read ``.partial`` files (a running or crashed recording) up to their
            last complete chunk; their unfinished episode is reported ``truncated``. When False they
            are skipped with a warning that says how to salvage them.
        verify_checksums: check each decoded column against its CRC-32.
        cache_bytes: decoded chunks are kept (least recently used first out) up to this many bytes;
            at least the last decoded chunk is always kept.

    The reader pickles as the list of files it opened and its options, and reopens them in the
    unpickling process (so a worker sees the same episodes even if the folder has grown).

    >>> import tempfile, numpy as np
    >>> from gymnasium.spaces import Box, Discrete
    >>> from trajarena.format.writer import TrajectoryWriter
    >>> folder = tempfile.mkdtemp()
    >>> with TrajectoryWriter(folder, Box(0, 1, (2,)), Discrete(2)) as w:
    ...     w.reset(np.zeros(2, np.float32), seed=1)
    ...     w.step(1, np.ones(2, np.float32), 0.5, True, False)
    >>> ds = TrajectoryReader(folder)
    >>> ds.num_episodes, ds.num_steps, ds.episodes[0].seed
    (1, 1, 1)
    >>> ds.step(0)
    Step(episode=0, t=0, obs='float32[2]', action=np.int64(1), reward=0.5, terminated=True, truncated=False)
    """

    def __init__(self, paths: str | Path | Sequence[str | Path], *, include_partial: bool = False,
                 verify_checksums: bool = True, cache_bytes: int = 256 << 20) -> None:
        self._args = (paths, include_partial, verify_checksums, cache_bytes)
        files, partial = find_files(paths, include_partial)
        skipped = bool(partial and not include_partial)
        if skipped:
            warnings.warn(
                f"Skipped {len(partial)} .partial file(s) (a running or crashed recording), e.g. {partial[0]}. "
                "Pass include_partial=True to read them, or run trajarena.repair(folder).",
                stacklevel=2,
            )
            partial = []
        self.verify_checksums, self._cache_size, self._cached = verify_checksums, cache_bytes, 0
        self._files: list[FileIndex] = [index_file(p) for p in files]
        self._files += [f for f in map(index_live_partial, partial) if f]
        if not self._files:
            hint = " (only .partial files: pass include_partial=True or run repair())" if skipped else ""
            raise no_trajectories(paths, hint)
        first = self._files[0]
        for f in self._files[1:]:
            for key in ("observation_space", "action_space"):
                if f.meta[key] != first.meta[key]:
                    raise MismatchError(f"{f.path} and {first.path} have different {key}s: "
                                        f"{f.meta[key]} vs {first.meta[key]}. Open them separately.")
        self.observation_space, self.action_space = first.observation_space, first.action_space
        self.metadata: dict[str, Any] = first.meta
        self._obs_names = [f.name for f in leaf_fields(self.observation_space, "obs")]
        self._act_names = [f.name for f in leaf_fields(self.action_space, "action")]
        for f in self._files:
            missing = set(self._obs_names + self._act_names) - set(f.columns)
            if missing:
                raise CorruptFileError(f"{f.path}: the columns {sorted(missing)} of its spaces are missing.")
        self.info_keys = sorted({c.name[5:] for f in self._files for c in f.columns.values()
                                 if c.name.startswith("info/")})
        self._obs_get, self._act_get = compile_getter(self.observation_space), compile_getter(self.action_space)
        self.episodes: list[EpisodeInfo] = []
        self._ep_file: list[int] = []
        for i, f in enumerate(self._files):
            for e in f.episodes:
                self.episodes.append(_replace_index(e, len(self.episodes)))
                self._ep_file.append(i)
        lengths = np.array([e.length for e in self.episodes], dtype=np.int64)
        self._cum = np.concatenate([[0], np.cumsum(lengths)])
        self._cache: OrderedDict = OrderedDict()

    # ------------------------------------------------------------------ pickling

    @classmethod
    def of_index(cls, f: FileIndex) -> TrajectoryReader:
        """A reader over one indexed file that decodes and checks chunks (no episode-level set-up)."""
        r = cls.__new__(cls)
        r._files, r.verify_checksums, r._cache, r._cache_size, r._cached = [f], True, OrderedDict(), 0, 0
        return r

    def __getstate__(self) -> dict[str, Any]:
        return {"args": ([str(p) for p in self.files], *self._args[1:])}

    def __setstate__(self, state: dict[str, Any]) -> None:
        paths, include_partial, verify, cache = state["args"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.__init__(paths, include_partial=include_partial, verify_checksums=verify, cache_bytes=cache)

    # ------------------------------------------------------------------ index

    @property
    def files(self) -> list[Path]:
        """The files read, in order."""
        return [f.path for f in self._files]

    def file_metadata(self, episode: int) -> dict[str, Any]:
        """The metadata (settings, username, ignore_p2, players, ...) of an episode's file."""
        return self._files[self._ep_file[episode]].meta

    @property
    def nbytes(self) -> int:
        """Bytes of the files, as they were when opened (a recording in progress may have grown since)."""
        return sum(f.size for f in self._files)

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_steps(self) -> int:
        """Transitions in all episodes (an episode of length T has T)."""
        return int(self._cum[-1])

    def __len__(self) -> int:
        return self.num_steps

    def __repr__(self) -> str:
        return (f"TrajectoryReader(files={len(self._files)}, episodes={self.num_episodes}, "
                f"steps={self.num_steps}, observation_space={self.observation_space}, "
                f"action_space={self.action_space})")

    def locate(self, index: int) -> tuple[int, int]:
        """Map a global step index to ``(episode, t)``."""
        if not -self.num_steps <= index < self.num_steps:
            raise IndexError(f"Step index {index} out of range for {self.num_steps} steps.")
        index %= max(1, self.num_steps)
        ep = int(np.searchsorted(self._cum, index, side="right")) - 1
        return ep, int(index - self._cum[ep])

    # ------------------------------------------------------------------ decoding

    def _chunk(self, fi: int, ci: int) -> dict[str, np.ndarray]:
        key = (fi, ci)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        f = self._files[fi]
        where = f"{f.path} chunk {ci}"
        try:
            buf = map_file(f.path)
            msg = pa.ipc.read_message(pa.BufferReader(buf.slice(f.offsets[ci])))
            check_batch_message(msg, f.layout or buffer_layout(f.schema), limits.MAX_CHUNK_ROWS, where)
            batch = pa.ipc.read_record_batch(msg, f.schema)
            batch.validate()
        except CorruptFileError:
            raise
        except ARROW_ERRORS as exc:
            raise CorruptFileError(f"{where}: cannot be decoded ({exc}).") from exc
        out = decode_batch(f, batch, f.chunks[ci].get("crc32", {}), where, self.verify_checksums)
        self._cache[key] = out
        self._cached += sum(v.nbytes for v in out.values())
        while self._cached > self._cache_size and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached -= sum(v.nbytes for v in old.values())
        return out

    def _rows(self, fi: int, start: int, stop: int) -> dict[str, np.ndarray]:
        """Columns for file rows ``[start, stop)``, decoding only the chunks that hold them."""
        f = self._files[fi]
        c0 = int(np.searchsorted(f.row_starts, start, side="right")) - 1
        parts: list[dict[str, np.ndarray]] = []
        ci = c0
        while ci < len(f.rows) and f.row_starts[ci] < stop:
            if f.rows[ci]:
                base = int(f.row_starts[ci])
                chunk = self._chunk(fi, ci)
                lo, hi = max(start, base) - base, min(stop, base + f.rows[ci]) - base
                parts.append({k: v[lo:hi] for k, v in chunk.items()})
            ci += 1
        if len(parts) == 1:
            return parts[0]
        if not parts:
            raise IndexError(f"{f.path}: no rows in [{start}, {stop}).")
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _value(self, cols: dict[str, np.ndarray], names: list[str], getter: Any, i: Any) -> Any:
        return getter(iter([cols[n][i] for n in names]))

    # ------------------------------------------------------------------ public reads

    def read_episode(self, episode: int) -> Episode:
        """Decode one whole episode."""
        info = self.episodes[episode]
        fi = self._ep_file[episode]
        cols = self._rows(fi, info.first_row, info.first_row + info.length + 1)
        infos = {k: cols[f"info/{k}"] for k in self.info_keys if f"info/{k}" in cols}
        return Episode(
            info,
            self._value(cols, self._obs_names, self._obs_get, slice(None)),
            self._value(cols, self._act_names, self._act_get, slice(1, None)),
            cols[fmt.REWARD][1:], cols[fmt.TERMINATED][1:], cols[fmt.TRUNCATED][1:], infos,
        )

    def read_column(self, episode: int, name: str) -> np.ndarray:
        """One flat column (e.g. ``"obs/P1/health"``, ``"reward"``) of an episode, all its rows.

        Rows are observations: row 0 is the reset row (its action/reward are zeros).
        """
        info = self.episodes[episode]
        cols = self._rows(self._ep_file[episode], info.first_row, info.first_row + info.length + 1)
        if name not in cols:
            raise KeyError(f"No column {name!r}; columns: {sorted(cols)}.")
        return cols[name]

    def step(self, index: int, t: int | None = None) -> Step:
        """A transition by global step index, or by ``(episode, t)`` when ``t`` is given."""
        ep, t = self.locate(index) if t is None else (index, t)
        info = self.episodes[ep]
        if not 0 <= t < info.length:
            raise IndexError(f"Step {t} out of range for episode {ep} of length {info.length}.")
        row = info.first_row + t
        cols = self._rows(self._ep_file[ep], row, row + 2)
        return Step(
            self._value(cols, self._obs_names, self._obs_get, 0),
            self._value(cols, self._act_names, self._act_get, 1),
            float(cols[fmt.REWARD][1]), bool(cols[fmt.TERMINATED][1]), bool(cols[fmt.TRUNCATED][1]),
            self._value(cols, self._obs_names, self._obs_get, 1),
            {k: cols[f"info/{k}"][1] for k in self.info_keys if f"info/{k}" in cols},
            ep, t,
        )

    def __getitem__(self, index: int) -> Step:
        return self.step(index)

    def iter_episodes(self) -> Iterator[Episode]:
        """Decode the episodes one after the other."""
        for i in range(self.num_episodes):
            yield self.read_episode(i)

    def iter_steps(self) -> Iterator[Step]:
        """All transitions in order (chunks are decoded once thanks to the cache)."""
        for ep in range(self.num_episodes):
            for t in range(self.episodes[ep].length):
                yield self.step(ep, t)


def _replace_index(e: EpisodeInfo, index: int) -> EpisodeInfo:
    from dataclasses import replace

    return replace(e, index=index)


def open_trajectories(paths: str | Path | Sequence[str | Path], **options: Any) -> TrajectoryReader:
    """Open files/folders as a :class:`TrajectoryReader` (see its arguments)."""
    return TrajectoryReader(paths, **options)
