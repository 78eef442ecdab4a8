"""Reading trajectory files: cheap opening, episode index, chunked random access, records.

Opening a file reads only its headers: the schema (spaces and settings as JSON) and each chunk's
header and JSON metadata, all size-checked before Arrow allocates anything (see
:func:`trajarena.format.check_batch_message`); no frame is decompressed. Reads are memory-mapped;
a random access decodes only the chunk(s) that hold the rows asked for, and the last decoded
chunks are cached. Every decoded column is checked against the CRC-32 written with it. Episodes
the recorder discarded are skipped. :func:`trajarena.format.integrity.verify` checks whole folders and
:func:`trajarena.format.integrity.repair` salvages the ``.partial`` files a crashed recorder left. The
format itself is specified in ``docs/format.md``.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from trajarena.format import schema as fmt
from trajarena.errors import CorruptFileError, DataNotFoundError, FormatError, MismatchError, SpaceError
from trajarena.format.spaces import compile_getter, leaf_fields, space_from_json

__all__ = ["Episode", "EpisodeInfo", "FileIndex", "Step", "TrajectoryReader", "find_files", "index_file",
           "open_trajectories"]

_ARROW_ERRORS = (pa.ArrowException, OSError, ValueError, EOFError, MemoryError, IndexError, KeyError, TypeError)


_BASE = {n: fmt.Column(n, d, ()) for n, d in [(fmt.EPISODE, "int32"), (fmt.STEP, "int32"), (fmt.REWARD, "float64"),
                                             (fmt.TERMINATED, "bool"), (fmt.TRUNCATED, "bool")]}


def _summary(value: Any) -> Any:
    """Shapes and dtypes of a nested value, for ``repr`` of records."""
    if isinstance(value, dict):
        return {k: _summary(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_summary(v) for v in value)
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{list(value.shape)}"
    return value


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


def _map(path: Path) -> pa.Buffer:
    try:
        with pa.memory_map(str(path), "r") as source:
            return source.read_buffer()
    except FileNotFoundError:
        raise
    except _ARROW_ERRORS as exc:
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
    f, buf, reader = _index_header(path, partial)
    where, layout, max_rows = str(path), f.layout, min(int(f.meta["chunk_steps"]), fmt.MAX_CHUNK_ROWS)
    while True:
        pos = 8 + reader.tell()
        try:
            msg = pa.ipc.read_message(reader)
        except EOFError:
            break
        except _ARROW_ERRORS as exc:
            if partial:
                break
            raise CorruptFileError(f"{where}: damaged chunk at byte {pos} ({exc}).") from exc
        try:
            rows, chunk = fmt.check_batch_message(msg, layout, max_rows, f"{where} chunk {len(f.rows)}")
        except CorruptFileError:
            if partial and reader.tell() + 8 >= buf.size:
                break  # the last, half-written chunk of a crashed recording
            raise
        f.offsets.append(pos)
        f.rows.append(rows)
        f.chunks.append(chunk)
    if not partial:
        _check_footer(f, buf)
    _build_episodes(f)
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
        fb = fmt._Flat(buf.slice(buf.size - 10 - size, size).to_pybytes())
        count, at = fb.vector(fb.ref(0), 3)
        offsets = [fb.u("q", at + 24 * i) for i in range(count)]
    except (*_ARROW_ERRORS, struct.error) as exc:
        raise CorruptFileError(f"{where}: damaged footer ({exc}).") from exc
    if n != len(f.rows):
        raise CorruptFileError(f"{where}: the footer lists {n} chunks, the body holds {len(f.rows)}.")
    if not schema.equals(f.schema, check_metadata=True):
        raise CorruptFileError(f"{where}: the footer's copy of the schema or metadata differs from the file's.")
    if offsets != f.offsets:
        raise CorruptFileError(f"{where}: the footer's chunk offsets differ from the chunks in the file.")


def _index_header(path: Path, partial: bool) -> tuple[FileIndex, pa.Buffer, pa.BufferReader]:
    """Map a file and read its schema: an index with no chunk yet, the mapping, and a reader past the schema."""
    where = str(path)
    buf = _map(path)
    if buf.size < 8 or buf.slice(0, 6).to_pybytes() != fmt.ARROW_MAGIC:
        raise FormatError(f"{where} is not an Arrow IPC file (bad magic bytes).")
    if not partial and (buf.size < 20 or buf.slice(buf.size - 6).to_pybytes() != fmt.ARROW_MAGIC):
        raise CorruptFileError(f"{where} is truncated (no Arrow footer); if a recorder crashed, run repair().")
    reader = pa.BufferReader(buf.slice(8))
    try:
        msg = pa.ipc.read_message(reader)
        schema = pa.ipc.read_schema(msg)
    except _ARROW_ERRORS as exc:
        raise CorruptFileError(f"{where}: unreadable schema ({exc}).") from exc
    meta = fmt.decode_metadata(schema, where)
    try:
        cols = [fmt.Column.from_json(c) for c in meta["columns"] + meta["info_columns"]]
        layout = fmt.buffer_layout(schema)
        names = [c.name for c in cols]
        expected = [fmt.EPISODE, fmt.STEP, *names[: len(meta["columns"])], fmt.REWARD, fmt.TERMINATED,
                    fmt.TRUNCATED, *names[len(meta["columns"]) :]]
        if schema.names != expected or any(schema.field(c.name).type != c.arrow_type() for c in cols):
            raise CorruptFileError(f"{where}: the columns do not match the metadata's description.")
        int(meta["chunk_steps"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptFileError(f"{where}: bad metadata ({exc}).") from exc
    return FileIndex(path, partial, schema, meta, {c.name: c for c in cols}, layout=layout), buf, reader


def _build_episodes(f: FileIndex) -> None:
    where = str(f.path)
    f.row_starts = np.concatenate([[0], np.cumsum(f.rows, dtype=np.int64)])
    open_eps: dict[int, list] = {}  # id -> [first_row, rows_seen, seed]
    order: list[int] = []
    ends: dict[int, dict] = {}
    current = None
    try:
        for base, rows, chunk in zip(f.row_starts, f.rows, f.chunks, strict=False):
            starts = chunk.get("starts", [])
            if rows and (not starts or starts[0][0] != 0):
                raise CorruptFileError(f"{where}: a chunk does not say which episode its rows belong to.")
            bounds = [s[0] for s in starts] + [rows]
            for s, stop in zip(starts, bounds[1:], strict=True):
                row, ep, step0 = int(s[0]), int(s[1]), int(s[2])
                if not 0 <= row <= stop <= rows:
                    raise CorruptFileError(f"{where}: episode starts out of order in a chunk.")
                if step0 == 0:
                    if ep in open_eps:
                        raise CorruptFileError(f"{where}: episode {ep} starts twice.")
                    open_eps[ep] = [int(base) + row, 0, s[3] if len(s) > 3 else None]
                    order.append(ep)
                elif ep != current or open_eps[ep][1] != step0:
                    raise CorruptFileError(f"{where}: episode {ep} continues at step {step0} out of order.")
                open_eps[ep][1] += stop - row
                current = ep
            for end in chunk.get("ends", []):
                ends[int(end["episode"])] = end
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CorruptFileError(f"{where}: bad chunk metadata ({exc}).") from exc
    for ep in order:
        first, seen, seed = open_eps[ep]
        end = ends.pop(ep, None)
        if end is None:
            if not f.partial:
                raise CorruptFileError(f"{where}: episode {ep} has no end record.")
            info = EpisodeInfo(0, f.path, ep, seen - 1, math.nan, seed, False, True, "unfinished", {}, first, True)
        else:
            if end.get("length") != seen - 1:
                raise CorruptFileError(f"{where}: episode {ep} claims {end.get('length')} steps, holds {seen - 1}.")
            if end.get("end_reason") == "discarded":
                continue  # dropped by the recorder: never replayed, sampled or counted
            info = EpisodeInfo(0, f.path, ep, seen - 1, float(end["return"]), end.get("seed"),
                               bool(end["terminated"]), bool(end["truncated"]), str(end.get("end_reason", "env")),
                               end.get("final_info") or {}, first, f.partial, end.get("notes") or {})
        f.episodes.append(info)
    if ends:
        raise CorruptFileError(f"{where}: end records for unknown episodes {sorted(ends)}.")


def _index_live_partial(path: Path) -> FileIndex | None:
    """Index a ``.partial`` file, or the finished file it became meanwhile (``None`` if gone)."""
    try:
        return index_file(path, partial=True)
    except FileNotFoundError:
        final = path.with_name(path.name[: -len(fmt.PARTIAL_SUFFIX)] + fmt.SUFFIX)
        return index_file(final) if final.exists() else None


def find_files(paths: str | os.PathLike | Sequence[str | os.PathLike],
               include_partial: bool = False) -> tuple[list[Path], list[Path]]:
    """Expand files and folders (recursively) to ``(files, partial_files)``.

    Each list is sorted by resolved path and names each file once, whatever the order of
    ``paths`` and however often a file is named.

    Raises:
        DataNotFoundError: a path does not exist (a ``FileNotFoundError``).
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    found: dict[Path, Path] = {}  # resolved -> the spelling first given
    for p in map(Path, paths):
        if p.is_dir():
            names = [f for f in (*p.rglob("*" + fmt.SUFFIX), *p.rglob("*" + fmt.PARTIAL_SUFFIX)) if f.is_file()]
        elif p.is_file():
            names = [p]
        else:
            raise DataNotFoundError(f"No trajectory file or folder at {p}.")
        for f in names:
            found.setdefault(f.resolve(), f)
    order = sorted(found, key=str)
    files = [found[r] for r in order if not r.name.endswith(fmt.PARTIAL_SUFFIX)]
    partial = [found[r] for r in order if r.name.endswith(fmt.PARTIAL_SUFFIX)]
    return files, partial


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
        self._files = [index_file(p) for p in files] + [f for f in map(_index_live_partial, partial) if f]
        if not self._files:
            hint = " (only .partial files: pass include_partial=True or run repair())" if skipped else ""
            raise DataNotFoundError(f"No trajectory files found in {paths!r}{hint}; "
                                    "record some first or check the path.")
        first = self._files[0]
        for f in self._files[1:]:
            for key in ("observation_space", "action_space"):
                if f.meta[key] != first.meta[key]:
                    raise MismatchError(f"{f.path} and {first.path} have different {key}s: "
                                        f"{f.meta[key]} vs {first.meta[key]}. Open them separately.")
        try:
            self.observation_space = space_from_json(first.meta["observation_space"])
            self.action_space = space_from_json(first.meta["action_space"])
        except SpaceError as exc:
            raise CorruptFileError(f"{first.path}: {exc}") from exc
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
            buf = _map(f.path)
            msg = pa.ipc.read_message(pa.BufferReader(buf.slice(f.offsets[ci])))
            fmt.check_batch_message(msg, f.layout or fmt.buffer_layout(f.schema), fmt.MAX_CHUNK_ROWS, where)
            batch = pa.ipc.read_record_batch(msg, f.schema)
            batch.validate()
        except CorruptFileError:
            raise
        except _ARROW_ERRORS as exc:
            raise CorruptFileError(f"{where}: cannot be decoded ({exc}).") from exc
        crcs = f.chunks[ci].get("crc32", {})
        out: dict[str, np.ndarray] = {}
        for name in batch.schema.names:
            col = f.columns.get(name) or _BASE[name]
            arr = batch.column(name)
            try:
                values = fmt.from_arrow(col, arr)
            except _ARROW_ERRORS as exc:
                raise CorruptFileError(f"{where}: column {name!r} cannot be decoded ({exc}).") from exc
            if self.verify_checksums:
                mask = np.asarray(arr.is_null()) if arr.null_count else None
                if name not in crcs or fmt.crc_of(values, mask) != crcs[name]:
                    raise CorruptFileError(f"{where}: column {name!r} fails its checksum (bit rot or tampering).")
            if col.transform == fmt.XOR_PREV:
                values = fmt.xor_decode(values)
            out[name] = values
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
