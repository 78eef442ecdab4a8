"""Checking and salvaging trajectory files: :func:`verify` and :func:`repair` (and their reports).

:func:`verify` decodes every chunk of every file under a folder, checks each column against its
CRC-32 and each episode's return against its rewards, and lists what is damaged instead of
raising. :func:`repair` turns the ``.partial`` files a crashed recorder left into finished files:
every complete chunk is kept and the unfinished episode is closed as truncated. Both are also
``trajarena.verify`` / ``trajarena.repair`` and the ``trajarena verify`` / ``repair`` commands.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from trajarena import format as fmt
from trajarena.errors import CorruptFileError, FormatError, SpaceError
from trajarena.reader import (
    _ARROW_ERRORS,
    FileIndex,
    TrajectoryReader,
    _build_episodes,
    _map,
    find_files,
    index_file,
)

__all__ = ["RepairReport", "VerifyReport", "repair", "verify"]


def _reader_of(f: FileIndex) -> TrajectoryReader:
    """A reader over one indexed file that decodes and checks chunks (no episode-level set-up)."""
    r = TrajectoryReader.__new__(TrajectoryReader)
    r._files, r.verify_checksums, r._cache, r._cache_size, r._cached = [f], True, OrderedDict(), 0, 0
    return r


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found.

    Attributes:
        ok: the files that are complete and intact.
        damaged: each damaged file and why.
        partial: ``.partial`` files (a running or crashed recording; see :func:`repair`).
        episodes: finished episodes in the intact files.
        steps: their steps.

    >>> VerifyReport((), {}, (), 0, 0).clean
    True
    """

    ok: tuple[Path, ...]
    damaged: dict[Path, str]
    partial: tuple[Path, ...]
    episodes: int
    steps: int

    @property
    def clean(self) -> bool:
        """True when nothing is damaged or partial."""
        return not self.damaged and not self.partial


def _check_file(path: Path, partial: bool) -> FileIndex:
    """Index a file and decode every chunk, checking checksums and episode returns."""
    f = index_file(path, partial=partial)
    r = _reader_of(f)
    for ci in range(len(f.rows)):
        if f.rows[ci]:
            cols = r._chunk(0, ci)
            for name, c in f.columns.items():
                if name in cols and c.dtype != "object" and cols[name].shape[1:] != c.shape:
                    raise CorruptFileError(f"{path} chunk {ci}: column {name!r} has the wrong shape.")
    for e in f.episodes:
        if e.partial and e.end_reason == "unfinished":
            continue
        rewards = r._rows(0, e.first_row + 1, e.first_row + e.length + 1)[fmt.REWARD] if e.length else np.zeros(0)
        total = fmt.running_sum(0.0, rewards)
        if total != e.total_return and not (math.isnan(total) and math.isnan(e.total_return)):
            raise CorruptFileError(f"{path}: episode {e.episode} return {e.total_return} != sum of its rewards.")
    return f


def verify(paths: str | Path | Sequence[str | Path]) -> VerifyReport:
    """Check every file under ``paths``: headers, sizes, checksums of every chunk, episode records.

    Never raises for a damaged file: it is listed in the report with the reason.
    """
    files, partial = find_files(paths, include_partial=True)
    ok, damaged, episodes, steps = [], {}, 0, 0
    for path in files:
        try:
            f = _check_file(path, partial=False)
        except (FormatError, SpaceError) as exc:
            damaged[path] = str(exc)
            continue
        ok.append(path)
        episodes += len(f.episodes)
        steps += sum(e.length for e in f.episodes)
    for path in partial:
        try:
            _check_file(path, partial=True)
        except (FormatError, SpaceError) as exc:
            damaged[path] = str(exc)
    return VerifyReport(tuple(ok), damaged, tuple(partial), episodes, steps)


@dataclass(frozen=True)
class RepairReport:
    """What :func:`repair` did.

    Attributes:
        repaired: each salvaged ``.partial`` file and the complete file that replaces it.
        removed: ``.partial`` files that held no complete chunk (nothing to salvage), deleted.
        skipped: files left alone and why (a live recording, or unreadable headers).
        episodes: episodes in the repaired files (the unfinished one marked truncated).
        steps: their steps.

    >>> RepairReport({}, (), {}, 0, 0).repaired
    {}
    """

    repaired: dict[Path, Path]
    removed: tuple[Path, ...]
    skipped: dict[Path, str]
    episodes: int
    steps: int


def _live(meta: dict[str, Any]) -> bool:
    if meta.get("host") != os.uname().nodename or not isinstance(meta.get("pid"), int):
        return False
    try:
        os.kill(meta["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def repair(paths: str | Path | Sequence[str | Path], *, force: bool = False) -> RepairReport:
    """Salvage the ``.partial`` files a crashed recorder left under ``paths``.

    Every chunk up to the first damaged one is kept; the unfinished episode is closed as
    ``truncated`` with ``end_reason="crash"``; the result is written to a temporary name and
    atomically renamed to ``<stem>.arrow``, then the ``.partial`` file is removed. Files of a
    recording still running on this machine are skipped unless ``force``.
    """
    import os

    _, partial = find_files(paths, include_partial=True)
    repaired, removed, skipped, episodes, steps = {}, [], {}, 0, 0
    for path in partial:
        try:
            f = index_file(path, partial=True, keep_chunk_meta=True)
        except (FormatError, SpaceError) as exc:
            skipped[path] = f"unreadable: {exc}"
            continue
        if not force and _live(f.meta):
            skipped[path] = f"the recording process {f.meta['pid']} is still running (pass force=True)"
            continue
        r = _reader_of(f)
        good: list[tuple[pa.RecordBatch, dict]] = []
        for ci in range(len(f.rows)):
            try:
                if f.rows[ci]:
                    r._chunk(0, ci)
                buf = _map(path)
                msg = pa.ipc.read_message(pa.BufferReader(buf.slice(f.offsets[ci])))
                good.append((pa.ipc.read_record_batch(msg, f.schema), f.chunks[ci]))
            except (CorruptFileError, *_ARROW_ERRORS):
                break
        if not any(b.num_rows for b, _ in good):
            os.remove(path)
            removed.append(path)
            continue
        f.offsets, f.rows, f.chunks = f.offsets[: len(good)], f.rows[: len(good)], [c for _, c in good]
        f.episodes = []
        _build_episodes(f)
        last = dict(good[-1][1])
        last["ends"] = list(last.get("ends", []))
        for e in f.episodes:
            if e.end_reason == "unfinished":
                rewards = r._rows(0, e.first_row + 1, e.first_row + e.length + 1)[fmt.REWARD] if e.length else []
                last["ends"].append({
                    "episode": e.episode, "seed": e.seed, "length": e.length,
                    "return": fmt.json_safe(fmt.running_sum(0.0, rewards)), "terminated": False, "truncated": True,
                    "end_reason": "crash", "final_info": {},
                })
        good[-1] = (good[-1][0], last)
        final = path.with_name(path.name[: -len(fmt.PARTIAL_SUFFIX)] + fmt.SUFFIX)
        tmp = path.with_name(path.name[: -len(fmt.PARTIAL_SUFFIX)] + ".arrow.repairing")
        codec = f.meta.get("compression", {}).get("codec")
        options = pa.ipc.IpcWriteOptions(compression=codec)
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, f.schema, options=options) as w:
            for batch, chunk in good:
                w.write_batch(batch, custom_metadata=fmt.encode_chunk_meta(chunk))
        os.replace(tmp, final)
        os.remove(path)
        repaired[path] = final
        episodes += len(f.episodes)
        steps += sum(e.length for e in f.episodes)
    return RepairReport(repaired, tuple(removed), skipped, episodes, steps)
