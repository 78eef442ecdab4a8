"""Checking trajectory files: :func:`verify` and its :class:`VerifyReport` (and :func:`repair`'s public home).

:func:`verify` decodes every chunk of every file under a folder, checks each column against its
CRC-32 and each episode's return against its rewards, flags non-finite rewards and actions, and
lists what is damaged instead of raising. It tells a recording in progress (its ``.partial``
file locked by a live writer) from the leftovers of a crashed one, and treats a file that
vanishes or is renamed while it looks as in progress. :func:`~trajarena.format.repair.repair`
(re-exported here) salvages crashed recordings. Both are also ``trajarena.verify`` /
``trajarena.repair`` and the ``trajarena verify`` / ``repair`` commands.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trajarena.errors import CorruptFileError, SpaceError, TrajArenaError
from trajarena.format import schema as fmt
from trajarena.format.discover import find_files, is_locked, no_trajectories
from trajarena.format.index import FileIndex, index_file
from trajarena.format.reader import TrajectoryReader
from trajarena.format.repair import RepairReport, repair

__all__ = ["RepairReport", "VerifyReport", "repair", "verify"]


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found.

    Attributes:
        ok: the files that are complete and intact.
        damaged: each damaged file and why.
        partial: ``.partial`` files a crashed recording left (see :func:`repair`).
        episodes: finished episodes in the intact files.
        steps: their steps.
        live: ``.partial`` files of recordings in progress (their writer holds the lock), or files
            that were renamed or removed while verify looked: not damaged.
        suspect: intact files whose values are suspicious, and why (non-finite rewards or actions).

    >>> VerifyReport((), {}, (), 0, 0).clean
    True
    """

    ok: tuple[Path, ...]
    damaged: dict[Path, str]
    partial: tuple[Path, ...]
    episodes: int
    steps: int
    live: tuple[Path, ...] = ()
    suspect: dict[Path, str] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """True when nothing is damaged, suspect or left by a crashed recording (live recordings are fine)."""
        return not self.damaged and not self.partial and not self.suspect


def _check_file(path: Path, partial: bool) -> tuple[FileIndex, str]:
    """Index a file and decode every chunk, checking checksums and episode returns; also what looks suspect."""
    f = index_file(path, partial=partial)
    r = TrajectoryReader.of_index(f)
    suspect: list[str] = []
    actions = [c.name for c in list(f.columns.values())[: len(f.meta["columns"])]
               if c.name.startswith("action") and c.dtype.startswith("float")]
    for ci in range(len(f.rows)):
        if f.rows[ci]:
            cols = r._chunk(0, ci)
            for name, c in f.columns.items():
                if name in cols and c.dtype != "object" and cols[name].shape[1:] != c.shape:
                    raise CorruptFileError(f"{path} chunk {ci}: column {name!r} has the wrong shape.")
            for name in (fmt.REWARD, *actions):
                bad = int((~np.isfinite(cols[name])).sum())
                if bad:
                    suspect.append(f"{bad} non-finite value(s) in {name!r} (chunk {ci})")
    for e in f.episodes:
        if e.partial and e.end_reason == "unfinished":
            continue
        rewards = r._rows(0, e.first_row + 1, e.first_row + e.length + 1)[fmt.REWARD] if e.length else np.zeros(0)
        total = fmt.running_sum(0.0, rewards)
        if total != e.total_return and not (math.isnan(total) and math.isnan(e.total_return)):
            raise CorruptFileError(f"{path}: episode {e.episode} return {e.total_return} != sum of its rewards.")
    return f, "; ".join(suspect[:5]) + (f" (and {len(suspect) - 5} more)" if len(suspect) > 5 else "")


def verify(paths: str | Path | Sequence[str | Path]) -> VerifyReport:
    """Check every file under ``paths``: headers, sizes, checksums of every chunk, episode records, values.

    Never raises for a damaged file: it is listed in the report with the reason, and the others are
    checked. A ``.partial`` file whose writer is alive is listed as ``live``, as is a file that
    vanishes or is renamed while it is checked (a recording finishing its file).

    Raises:
        DataNotFoundError: a path does not exist, or no trajectory file is under ``paths``
            (the message names DIAMBRA recordings found there instead, if any).
    """
    files, partial = find_files(paths, include_partial=True)
    if not files and not partial:
        raise no_trajectories(paths)
    ok, damaged, suspect, crashed, live, episodes, steps = [], {}, {}, [], [], 0, 0
    for path in [*files, *partial]:
        is_partial = path in partial
        if is_partial and is_locked(path):
            live.append(path)
            continue
        try:
            f, why = _check_file(path, partial=is_partial)
        except FileNotFoundError:
            live.append(path)  # renamed (finished) or removed while we looked
            continue
        except (TrajArenaError, SpaceError) as exc:
            damaged[path] = str(exc)
            continue
        except (OverflowError, MemoryError, RecursionError, ValueError, TypeError) as exc:  # a safety net
            damaged[path] = f"{path}: unreadable ({type(exc).__name__}: {exc})"
            continue
        if why:
            suspect[path] = why
        if is_partial:
            crashed.append(path)
            continue
        ok.append(path)
        episodes += len(f.episodes)
        steps += sum(e.length for e in f.episodes)
    return VerifyReport(tuple(ok), damaged, tuple(crashed), episodes, steps, tuple(live), suspect)
