"""Converting DIAMBRA recordings into ordinary trajarena files: find, read, write, summarise.

:func:`import_diambra` finds the DIAMBRA files among the paths given (folders are searched for
bz2 files), reads each safely (:mod:`~trajarena.interop.diambra.unpickle`; never ``pickle.load``),
recognises 2.2 ``.diambra`` and 2.1 trajectory files by their content, and writes each episode with
:class:`~trajarena.format.writer.TrajectoryWriter` into ``out``: one trajarena file per DIAMBRA
file, named after it, that ``ImitationLearning``, the datasets and every command use as any other.
Each file's metadata holds the env id (the DIAMBRA game), the settings in trajarena's names, the
username, ``ignore_p2``, and ``source``: the DIAMBRA file's name, size and SHA-256, its format, and
what the import changed or kept (lossy JPEG frames, the missing final observation, undone frame
stacks). A file already imported into ``out`` (same SHA-256) is skipped, so importing again is safe;
a file that fails leaves nothing behind.

>>> looks_like_diambra(__file__)
False
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trajarena.errors import DataNotFoundError, FormatError, SettingsError, SpaceError, TrajArenaError
from trajarena.format.discover import find_files
from trajarena.format.index import index_file
from trajarena.format.writer import TrajectoryWriter
from trajarena.interop.diambra.source import Recording
from trajarena.interop.diambra.unpickle import MAX_BYTES, MAX_OBJECT_BYTES, load_bz2_pickle
from trajarena.interop.diambra.v21 import read_v21
from trajarena.interop.diambra.v22 import read_v22

__all__ = ["ImportSummary", "ImportedFile", "find_sources", "import_diambra", "looks_like_diambra", "read_diambra"]

_BZ2_MAGIC = re.compile(rb"^BZh[1-9]1AY&SY")
_LOSSY_JPEG = {"codec": "jpeg", "quality": 80, "columns": ["frame"],
               "note": "frames were JPEG-compressed (OpenCV, quality 80) by DIAMBRA's recorder; they are stored "
                       "as DIAMBRA's loader decodes them"}


def looks_like_diambra(path: str | os.PathLike) -> bool:
    """Whether a file starts like a DIAMBRA recording (a bz2 stream), judged on its first bytes only."""
    try:
        with open(path, "rb") as fh:
            return bool(_BZ2_MAGIC.match(fh.read(10)))
    except OSError:
        return False


def find_sources(sources: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The DIAMBRA files among files and folders (searched recursively for bz2 files), sorted.

    Raises:
        DataNotFoundError: a path does not exist, or nothing DIAMBRA-like was found.
        FormatError: a file named explicitly is not a bz2 stream.
    """
    items = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and looks_like_diambra(p))
        elif path.is_file():
            if not looks_like_diambra(path):
                raise FormatError(f"{path} is not a DIAMBRA recording: DIAMBRA 2.1 and 2.2 write bz2 files, and this "
                                  "one does not start like one")
            found.append(path)
        else:
            raise DataNotFoundError(f"{path} does not exist.")
    if not found:
        raise DataNotFoundError(f"no DIAMBRA recording (bz2 files: 2.2 *.diambra, 2.1 mod_*/HC_mod*) in "
                                f"{', '.join(map(str, items)) or 'an empty list'}.")
    return list(dict.fromkeys(found))


def read_diambra(path: str | os.PathLike, *, game: str | None = None, games: Any = None,
                 max_bytes: int = MAX_BYTES, max_object_bytes: int = MAX_OBJECT_BYTES) -> Recording:
    """Read one DIAMBRA file (2.2 or 2.1, told apart by content) into a :class:`Recording`.

    Args:
        path: the file.
        game: the game id of 2.1 files (which do not store it); guessed when None.
        games: DIAMBRA's game table (``integratedGames.json``); None uses the installed diambra-arena's.
        max_bytes: the most decompressed bytes accepted.
        max_object_bytes: the largest single object accepted.

    Raises:
        FormatError: not a DIAMBRA recording, a refused pickle global, a size over a limit, or content
            laid out otherwise than DIAMBRA writes it. ``CorruptFileError`` for a damaged bz2 stream.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        data = load_bz2_pickle(fh, path.name, max_bytes, max_object_bytes)
    if isinstance(data, dict) and "episode_summary" in data:
        return read_v22(data, path.name, games)
    if isinstance(data, dict) and "frames" in data and "ep_len" in data:
        return read_v21(data, path.name, game, games)
    keys = sorted(map(str, data))[:12] if isinstance(data, dict) else type(data).__name__
    raise FormatError(f"{path.name}: a pickle, but not a DIAMBRA 2.1 or 2.2 recording (it holds {keys})")


@dataclass(frozen=True)
class ImportedFile:
    """One DIAMBRA file converted: where from, which version, the trajarena file(s) written, the steps.

    >>> ImportedFile(Path("ep.diambra"), "2.2", (Path("ep.arrow"),), 22, 1).steps
    22
    """

    source: Path
    version: str
    outputs: tuple[Path, ...]
    steps: int
    n_players: int


@dataclass
class ImportSummary:
    """What :func:`import_diambra` did; ``str()`` is a one-paragraph report.

    >>> print(ImportSummary(out=Path("data")))
    imported 0 DIAMBRA file(s) into data: 0 episode(s), 0 step(s) in 0.0 s
    """

    out: Path
    imported: list[ImportedFile] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        return sum(f.steps for f in self.imported)

    @property
    def files(self) -> list[Path]:
        """The trajarena files written."""
        return [p for f in self.imported for p in f.outputs]

    def __str__(self) -> str:
        versions: dict[str, int] = {}
        for f in self.imported:
            versions[f.version] = versions.get(f.version, 0) + 1
        detail = f" ({', '.join(f'{v}: {n}' for v, n in sorted(versions.items()))})" if versions else ""
        rate = f", {self.steps / self.seconds:,.0f} steps/s" if self.seconds > 0 and self.steps else ""
        lines = [f"imported {len(self.imported)} DIAMBRA file(s){detail} into {self.out}: {len(self.imported)} "
                 f"episode(s), {self.steps} step(s) in {self.seconds:.1f} s{rate}"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} already imported")
        for path, why in self.failed:
            lines.append(f"failed {path}: {why}")
        return "\n".join(lines)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _imported(out: Path) -> set[str]:
    """SHA-256 of the DIAMBRA files already imported into ``out``."""
    try:
        files = find_files(out)[0] if out.is_dir() else []
    except (DataNotFoundError, FormatError):
        return set()
    done = set()
    for path in files:
        try:
            source = index_file(path).meta.get("source") or {}
        except TrajArenaError:
            continue
        if isinstance(source, dict) and source.get("tool") == "diambra-arena" and isinstance(source.get("sha256"), str):
            done.add(source["sha256"])
    return done


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write_recording(rec: Recording, out: Path, sha256: str, size: int, ignore_p2: int | None = None) -> list[Path]:
    """Write one :class:`Recording` as a trajarena file in ``out``; nothing is left behind on failure."""
    from trajarena.format.schema import library_version

    ignore = rec.ignore_p2 if ignore_p2 is None else int(ignore_p2)
    if ignore and not rec.two_player:
        ignore = 0
    lossy = _LOSSY_JPEG if rec.version == "2.2" else None
    metadata = {
        "env_id": rec.env_id, "env_settings": _jsonable(rec.env_settings),
        "wrappers_settings": _jsonable(rec.wrappers_settings), "username": rec.username,
        "ignore_p1": 0, "ignore_p2": ignore, "players": {}, "lossy": lossy,
        "source": {"tool": "diambra-arena", "version": rec.version, "file": Path(str(rec.path)).name,
                   "size": size, "sha256": sha256, "imported_by": f"trajarena {library_version()}",
                   **_jsonable(rec.source)},
    }
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(rec.path)).name).lstrip(".")[:64]  # the writer's prefix rule
    writer = TrajectoryWriter(out, rec.observation_space, rec.action_space, metadata, prefix=stem,
                              segment_seconds=1e9, flush_seconds=60.0)
    try:
        writer.reset(rec.reset_obs, {}, seed=rec.seed)
        n = 0
        for step in rec.steps():
            writer.step(step.action, step.obs, step.reward, step.terminated, step.truncated, step.info)
            n += 1
        if n != rec.n_steps:
            raise FormatError(f"{rec.path}: {n} steps read, {rec.n_steps} expected")
    except BaseException:
        writer.discard()
        writer.close()
        raise
    writer.close()
    return list(writer.files)


def import_diambra(sources: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike, *,
                   ignore_p2: int | None = None, game: str | None = None, games: Any = None,
                   on_error: str = "raise", skip_existing: bool = True, max_bytes: int = MAX_BYTES,
                   max_object_bytes: int = MAX_OBJECT_BYTES,
                   progress: Callable[[Path, int, int], None] | None = None) -> ImportSummary:
    """Convert DIAMBRA Arena recordings (2.2 ``.diambra`` files, 2.1 trajectory files) into trajarena files.

    Args:
        sources: files and/or folders (searched recursively for bz2 files).
        out: the folder the trajarena files go to (created if missing).
        ignore_p2: for two-player recordings, 1 marks P2's side as no demonstration (the loader then
            replays P1's side only); None keeps what the file says (2.1 stores it, 2.2 does not: 0).
        game: the DIAMBRA game id of 2.1 files (they do not store it); None guesses it.
        games: DIAMBRA's game table (``integratedGames.json``); None uses the installed diambra-arena's.
        on_error: ``"raise"`` stops at the first bad file; ``"skip"`` records it in the summary's
            ``failed`` and goes on.
        skip_existing: skip files already imported into ``out`` (same SHA-256).
        max_bytes, max_object_bytes: size limits of the restricted unpickler (see :func:`read_diambra`).
        progress: called as ``progress(source, done, total)`` after each file.

    Returns:
        An :class:`ImportSummary`.

    Raises:
        DataNotFoundError: nothing DIAMBRA-like among ``sources``.
        FormatError: (``on_error="raise"``) a file that is not a valid DIAMBRA recording.
        MissingDependencyError: Pillow (2.2 frames) or DIAMBRA's game table (2.2 spaces) is missing.
    """
    if on_error not in ("raise", "skip"):
        raise SettingsError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
    if ignore_p2 not in (None, 0, 1):
        raise SettingsError(f"ignore_p2 must be None, 0 or 1, got {ignore_p2!r}.")
    start = time.perf_counter()
    out = Path(out)
    files = find_sources(sources)
    summary = ImportSummary(out=out)
    done = _imported(out) if skip_existing else set()
    for i, path in enumerate(files, 1):
        sha = _sha256(path)
        if sha in done:
            summary.skipped.append((path, "already imported"))
        else:
            try:
                rec = read_diambra(path, game=game, games=games, max_bytes=max_bytes, max_object_bytes=max_object_bytes)
                written = write_recording(rec, out, sha, path.stat().st_size, ignore_p2)
            except (FormatError, SpaceError) as exc:
                if on_error == "raise":
                    if isinstance(exc, SpaceError):
                        raise FormatError(f"{path}: its values do not fit the spaces of the recording: {exc}") from exc
                    raise
                summary.failed.append((path, str(exc)))
            else:
                done.add(sha)
                summary.imported.append(ImportedFile(path, rec.version, tuple(written), rec.n_steps,
                                                     2 if rec.two_player else 1))
        if progress is not None:
            progress(path, i, len(files))
    summary.seconds = time.perf_counter() - start
    return summary
