"""Finding trajectory files: files and folders expanded, recordings in progress, DIAMBRA's own files.

:func:`find_files` expands files and folders (recursively) into finished and ``.partial`` files;
:func:`is_locked` tells a recording in progress (its writer holds an ``flock``); when a path holds no
trajectory file, :func:`no_trajectories` says so and names the DIAMBRA Arena recordings found there
(:func:`diambra_recordings`, told by name and first bytes: nothing is unpickled).
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trajarena.errors import DataNotFoundError
from trajarena.format import schema as fmt

__all__ = ["diambra_message", "diambra_recordings", "find_files", "finished_name", "is_locked", "no_trajectories"]


def finished_name(partial: Path) -> Path:
    """The ``.arrow`` name a ``.partial`` file gets when it is finished."""
    return partial.with_name(partial.name[: -len(fmt.PARTIAL_SUFFIX)] + fmt.SUFFIX)


def diambra_recordings(paths: str | os.PathLike | Sequence[str | os.PathLike], limit: int = 1000) -> list[Path]:
    """DIAMBRA Arena recordings under ``paths``, told by their names and first bytes (nothing is unpickled).

    2.2's ``EpisodeRecorder`` writes ``*.diambra`` files and 2.1's ``TrajectoryRecorder`` files named
    like ``mod_False_P1_diff3_rew19.288_<date>`` (``HC_mod...`` for its hardcore variant); both are
    bz2-compressed pickles, which begin with ``BZh``.
    """
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    found: list[Path] = []
    for p in map(Path, items):
        candidates = p.rglob("*") if p.is_dir() else [p] if p.is_file() else []
        for f in candidates:
            if len(found) >= limit:
                return found
            if (f.suffix == ".diambra" or _DIAMBRA_21_NAME.match(f.name)) and f.is_file() and _starts_bz2(f):
                found.append(f)
    return found


def no_trajectories(paths: Any, hint: str = "") -> DataNotFoundError:
    """The error for paths that hold no trajectory file (naming DIAMBRA recordings found there, if any)."""
    diambra = diambra_recordings(paths, limit=50)
    if diambra:
        return DataNotFoundError(diambra_message(diambra))
    return DataNotFoundError(f"No '*{fmt.SUFFIX}' trajectory file in {_show(paths)}{hint}; record some first "
                             "(trajarena.make(..., traj_rec_settings={'file_path': ...})) or check the path.")


_DIAMBRA_21_NAME = re.compile(r"^(HC_)?mod_?(True|False)_")


def _starts_bz2(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(3) == b"BZh"
    except OSError:
        return False


def _show(paths: Any) -> str:
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    return ", ".join(str(i) for i in items[:5]) + (f" (and {len(items) - 5} more)" if len(items) > 5 else "")


def diambra_message(found: Sequence[Path]) -> str:
    """What to say about DIAMBRA Arena recordings given where trajarena files were expected."""
    where = found[0].parent if len(found) > 1 else found[0]
    return (f"{found[0]}{f' and {len(found) - 1} more file(s)' if len(found) > 1 else ''}: a DIAMBRA Arena 2.x "
            f"recording (a bz2-compressed pickle), not a trajarena file; nothing in it was unpickled. Convert it "
            f"with `trajarena import diambra {where} --out DIR` (or trajarena.interop.diambra.import_diambra).")


def is_locked(path: Path) -> bool:
    """Whether a writer holds the exclusive lock of ``path`` (a recording in progress)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:  # a file system without locks
        return False
    finally:
        os.close(fd)


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
        elif p.name.endswith(fmt.PARTIAL_SUFFIX):  # a recording in progress named explicitly: finished or gone since
            names = [finished_name(p)] if finished_name(p).is_file() else []
        else:
            raise DataNotFoundError(f"No trajectory file or folder at {p}.")
        for f in names:
            found.setdefault(f.resolve(), f)
    order = sorted(found, key=str)
    files = [found[r] for r in order if not r.name.endswith(fmt.PARTIAL_SUFFIX)]
    partial = [found[r] for r in order if r.name.endswith(fmt.PARTIAL_SUFFIX)]
    return files, partial
