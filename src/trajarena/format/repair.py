"""Salvaging what a crashed recorder left: :func:`repair` and its :class:`RepairReport`.

:func:`repair` turns the ``.partial`` files of a crashed recording into finished files: every
intact chunk is kept (also after a damaged one), cut episodes are closed as truncated, rows of
discarded episodes are dropped, and what a kill left half-made is cleaned up: temporary files
(``*.opening``, ``*.widening``, ``*.dropping``, ``*.repairing``) and empty ``.partial`` files are
removed; a ``.partial`` file that holds nothing readable is moved aside to ``*.arrow.damaged``,
never deleted. A recording still running (its writer holds an exclusive ``flock``) is never touched.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from trajarena.errors import CorruptFileError, FormatError, SpaceError
from trajarena.format import limits
from trajarena.format import schema as fmt
from trajarena.format.discover import find_files, is_locked
from trajarena.format.index import (
    ARROW_ERRORS,
    FileIndex,
    build_episodes,
    index_file,
    index_header,
)
from trajarena.format.messages import check_batch_message
from trajarena.format.metadata import encode_chunk_meta, json_safe
from trajarena.format.reader import TrajectoryReader
from trajarena.format.rewrite import discarded_episodes, drop_episodes
from trajarena.format.segment import TEMP_SUFFIXES

__all__ = ["RepairReport", "repair"]


@dataclass(frozen=True)
class RepairReport:
    """What :func:`repair` did.

    Attributes:
        repaired: each salvaged ``.partial`` file and the complete file that replaces it.
        removed: what held nothing to keep, deleted: ``.partial`` files with no row and no damage (an
            empty recording, or only discarded episodes), and temporary files a kill left.
        skipped: files left alone and why (a live recording, unreadable headers, or damaged with
            nothing to salvage: then renamed to ``*.arrow.damaged``, never deleted).
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


@dataclass
class _Piece:
    """A chunk kept by :func:`_salvage`: its batch, its metadata, and whether chunks were lost before it."""

    batch: pa.RecordBatch
    meta: dict[str, Any]
    gap: bool
    rewards: np.ndarray


def _scan(f: FileIndex, buf: pa.Buffer, start: int) -> tuple[list[tuple[int, int, dict, bool]], bool]:
    """Every chunk message whose header reads, skipping damaged bytes: ``(offset, rows, meta, gap)``.

    A message that does not parse is skipped by looking for the next 8-byte aligned IPC
    continuation marker. Returns the chunks and whether damage was skipped (a half-written
    last chunk, after which nothing parses, is the normal end of a crashed recording).
    """
    where, out, pos, gap, damaged = str(f.path), [], start, False, False
    max_rows = min(int(f.meta["chunk_steps"]), limits.MAX_CHUNK_ROWS)
    markers: np.ndarray | None = None  # byte offsets of 8-aligned continuation markers (found lazily)
    while pos + 8 <= buf.size:
        try:
            reader = pa.BufferReader(buf.slice(pos))
            msg = pa.ipc.read_message(reader)
            rows, chunk = check_batch_message(msg, f.layout, max_rows, f"{where} chunk {len(out)}")
        except EOFError:
            break
        except (CorruptFileError, *ARROW_ERRORS):
            if markers is None:  # a zero-copy view of the mapped file
                words = np.frombuffer(buf, np.uint32, count=buf.size // 8 * 2)[::2]
                markers = np.flatnonzero(words == 0xFFFFFFFF) * 8
            i = int(np.searchsorted(markers, pos + 8))
            if i == len(markers):
                break
            pos, gap = int(markers[i]), True
            continue
        damaged |= gap
        out.append((pos, rows, chunk, gap))
        pos, gap = pos + reader.tell(), False
    return out, damaged


def _salvage(path: Path) -> tuple[FileIndex, list[_Piece], bool]:
    """The intact chunks of a ``.partial`` file, each marked when damaged chunks were dropped before it."""
    f, buf, reader = index_header(path, partial=True)
    found, damaged = _scan(f, buf, 8 + reader.tell())
    f.offsets, f.rows, f.chunks = [c[0] for c in found], [c[1] for c in found], [c[2] for c in found]
    r = TrajectoryReader.of_index(f)
    pieces: list[_Piece] = []
    gap = False
    for ci, (offset, rows, chunk, gap_before) in enumerate(found):
        gap |= gap_before
        try:
            rewards = r._chunk(0, ci)[fmt.REWARD] if rows else np.zeros(0)
            msg = pa.ipc.read_message(pa.BufferReader(buf.slice(offset)))
            batch = pa.ipc.read_record_batch(msg, f.schema)
        except (CorruptFileError, *ARROW_ERRORS):
            gap = damaged = True
            continue
        r._cache.clear()
        pieces.append(_Piece(batch, chunk, gap, rewards))
        gap = False
    return f, pieces, damaged


def _crash_end(ep: int, seed: Any, length: int, total: float) -> dict[str, Any]:
    """The end record of a cut episode; one with no step (a lone reset row) is marked discarded (never read)."""
    return {"episode": ep, "seed": seed, "length": length, "return": json_safe(total), "terminated": False,
            "truncated": True, "end_reason": "crash" if length else "discarded", "final_info": {}}


def _renumber(pieces: list[_Piece], f: FileIndex) -> int:
    """Make the kept chunks one consistent recording; return the number of episode pieces cut by damage.

    An episode open when chunks were lost is ended there (truncated, ``end_reason="crash"``);
    its rows after the lost chunks become a new episode (a fresh id, steps from 0), so no
    episode is glued across a gap. Every episode still open at the end is ended the same way.
    The ``episode``/``step`` columns and their CRCs are rewritten to match.
    """
    used = {int(s[1]) for p in pieces for s in p.meta.get("starts", [])}
    fresh = max(used, default=-1) + 1
    assigned: set[int] = set()
    open_eps: dict[int, list] = {}  # old id -> [new id, rows kept, return, seed, original step of row 0]
    cut = 0

    def end_of(state: list) -> dict[str, Any]:
        return _crash_end(state[0], state[3], state[1] - 1, state[2])

    last: _Piece | None = None
    for p in pieces:
        if p.gap and open_eps and last is not None:
            cut += len(open_eps)
            last.meta["ends"] = [*last.meta["ends"], *map(end_of, open_eps.values())]
            open_eps.clear()
        n = p.batch.num_rows
        starts = p.meta.get("starts", [])
        bounds = [int(s[0]) for s in starts] + [n]
        episode, step, new_starts, extra = np.empty(n, np.int32), np.empty(n, np.int32), [], []
        for s, stop in zip(starts, bounds[1:], strict=True):
            row, ep, step0 = int(s[0]), int(s[1]), int(s[2])
            state = open_eps.get(ep)
            if state is not None and state[4] + state[1] == step0:  # the episode goes on
                new_starts.append([row, state[0], state[1]])
            else:
                if state is not None:  # rows out of order: end what came before
                    extra.append(end_of(state))
                    cut += 1
                if step0 == 0 and ep not in assigned:
                    new = ep
                else:
                    new, fresh = fresh, fresh + 1
                    cut += step0 != 0
                assigned.add(new)
                seed = s[3] if step0 == 0 and len(s) > 3 else None
                state = open_eps[ep] = [new, 0, 0.0, seed, step0]
                new_starts.append([row, new, 0, seed])
            first = state[1]
            episode[row:stop] = state[0]
            step[row:stop] = np.arange(first, first + stop - row)
            state[2] = fmt.running_sum(state[2], p.rewards[row + (first == 0) : stop])
            state[1] += stop - row
        ends = []
        for end in p.meta.get("ends", []):
            state = open_eps.pop(int(end["episode"]), None)
            if state is not None:  # else its rows were lost with a damaged chunk
                end = {**end, "episode": state[0], "length": state[1] - 1, "return": json_safe(state[2])}
                if state[4]:  # a piece that began after a gap, not at a reset
                    end.update(truncated=True, end_reason="crash" if state[1] > 1 else "discarded")
                ends.append(end)
        crc = dict(p.meta.get("crc32", {}))
        if n:
            if f.version >= 2:
                ids = fmt.episode_ids(f.meta["recording"], *fmt.episode_runs(episode))
                crc[fmt.EPISODE] = fmt.crc_of_strings(ids)
            else:
                ids = pa.array(episode)
                crc[fmt.EPISODE] = fmt.crc_of(episode)
            crc[fmt.STEP] = fmt.crc_of(step)
            p.batch = pa.record_batch([ids, pa.array(step), *p.batch.columns[2:]], schema=p.batch.schema)
        p.meta = {**p.meta, "crc32": crc, "starts": new_starts, "ends": extra + ends}
        last = p
    if open_eps and last is not None:
        last.meta["ends"] = [*last.meta["ends"], *map(end_of, open_eps.values())]
    return cut


def repair(paths: str | Path | Sequence[str | Path], *, force: bool = False) -> RepairReport:
    """Salvage the ``.partial`` files a crashed recorder left under ``paths``.

    Every intact chunk is kept, also those after a damaged one (damaged bytes are skipped up to
    the next readable chunk). An episode cut by a damaged chunk, and the unfinished episode at
    the end, are closed as ``truncated`` with ``end_reason="crash"``; rows of an episode after
    a damaged chunk become an episode of their own (no episode is glued across the gap). The
    result is written to a temporary name and atomically renamed to ``<stem>.arrow``, then the
    ``.partial`` file is removed. A file with no intact row is deleted only when nothing in it
    was damaged (an empty recording); otherwise it is renamed to ``<stem>.arrow.damaged`` and
    listed in ``skipped``.

    A recording still running is never touched: its writer holds an exclusive ``flock`` on the
    ``.partial`` file for its whole life (this works across processes and containers sharing a
    kernel, and on file systems that forward locks), and such files are always skipped. Unless
    ``force``, files of a live process on this machine and files modified within the last few
    flush intervals (a writer on another machine whose lock is not visible here) are skipped too.
    """
    _, partial = find_files(paths, include_partial=True)
    repaired, removed, skipped, episodes, steps = {}, [], {}, 0, 0
    for tmp in _leftovers(paths):
        why = _remove_leftover(tmp, force)
        if why:
            skipped[tmp] = why
        else:
            removed.append(tmp)
    for path in partial:
        try:
            lock = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # finished meanwhile
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            skipped[path] = "a recorder holds its lock: the recording is still running"
            continue
        except OSError:
            pass  # a file system without locks: the checks below still apply
        try:
            why = _repair_one(path, force)
        finally:
            os.close(lock)
        if isinstance(why, str):
            skipped[path] = why
        elif why is None:
            removed.append(path)
        else:
            repaired[path], n_episodes, n_steps = why
            episodes, steps = episodes + n_episodes, steps + n_steps
    return RepairReport(repaired, tuple(removed), skipped, episodes, steps)


def _leftovers(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Temporary files under ``paths`` that a killed writer or repair left behind."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    found: set[Path] = set()
    for p in map(Path, items):
        names = [f for s in TEMP_SUFFIXES for f in p.rglob(f"*{fmt.SUFFIX}*{s}")] if p.is_dir() else [p]
        found.update(f for f in names if f.is_file() and f.name.endswith(TEMP_SUFFIXES) and fmt.SUFFIX in f.name)
    return sorted(found)


def _recent(path: Path, flush_seconds: object = None) -> str | None:
    """Why ``path`` may belong to a running recording on a machine whose locks are not visible, or ``None``."""
    window = max(1.0, _RECENT_FLUSHES * (flush_seconds if isinstance(flush_seconds, int | float) else 2.0))
    age = time.time() - path.stat().st_mtime
    if age < window:  # a time ahead of this clock: the writer's clock runs ahead, so it may still be writing
        when = f"{age:.1f} s ago" if age >= 0 else f"{-age:.1f} s ahead of this machine's clock"
        return (f"modified {when}: a recording on another machine may still be writing it; "
                f"repair it later or pass force=True")
    return None


def _remove_leftover(tmp: Path, force: bool) -> str | None:
    """Delete a temporary file (its data is in its ``.partial`` or finished file); why not, or ``None``."""
    base = tmp.with_name(tmp.name[: tmp.name.rindex(".")])
    if is_locked(tmp) or (base.exists() and is_locked(base)):
        return "a recorder holds its lock: the recording is still running"
    try:
        if not force and (why := _recent(tmp)):
            return why
        tmp.unlink()
    except FileNotFoundError:
        pass  # gone meanwhile
    return None


def _repair_one(path: Path, force: bool) -> str | None | tuple[Path, int, int]:
    """Repair one locked ``.partial`` file: why it was skipped, ``None`` if removed, or ``(file, episodes, steps)``."""
    stem = path.name[: -len(fmt.PARTIAL_SUFFIX)]
    try:
        f = index_file(path, partial=True, keep_chunk_meta=True)
    except CorruptFileError:
        f = None  # a damaged chunk in the middle: salvage below
    except (FormatError, SpaceError) as exc:  # not even a readable header: nothing to salvage
        if not force and (why := _recent(path)):
            return why
        if path.stat().st_size < 8:
            os.remove(path)  # created but never written (a kill at the first moment): nothing lost
            return None
        aside = path.with_name(stem + _DAMAGED_SUFFIX)
        os.replace(path, aside)
        return f"unreadable ({exc}): moved to {aside.name}"
    if not force:
        if f is not None and _live(f.meta):
            return f"the recording process {f.meta['pid']} is still running (pass force=True)"
        if why := _recent(path, f.meta.get("flush_seconds") if f is not None else None):
            return why
    try:
        f, pieces, damaged = _salvage(path)
    except (FormatError, SpaceError) as exc:
        return f"unreadable: {exc}"
    if not any(p.batch.num_rows for p in pieces):
        if not damaged:
            os.remove(path)  # an empty recording: nothing lost
            return None
        aside = path.with_name(stem + _DAMAGED_SUFFIX)
        os.replace(path, aside)
        return f"damaged, no intact chunk to salvage: moved to {aside.name}"
    _renumber(pieces, f)
    drop = discarded_episodes(p.meta for p in pieces)  # a finished file holds no row of a discarded episode
    kept = []
    for p in pieces:
        if (rest := drop_episodes(f, p.batch, p.meta, drop)) is not None:
            p.batch, p.meta = rest
            kept.append(p)
    pieces = kept
    if not pieces:  # it held only discarded episodes
        os.remove(path)
        return None
    f.offsets, f.rows, f.chunks = [0] * len(pieces), [p.batch.num_rows for p in pieces], [p.meta for p in pieces]
    f.episodes = []
    build_episodes(f)
    final, tmp = path.with_name(stem + fmt.SUFFIX), path.with_name(stem + ".arrow.repairing")
    codec = f.meta.get("compression", {}).get("codec")
    options = pa.ipc.IpcWriteOptions(compression=codec)
    with pa.OSFile(os.fsencode(tmp), "wb") as sink, pa.ipc.new_file(sink, f.schema, options=options) as w:
        for p in pieces:
            w.write_batch(p.batch, custom_metadata=encode_chunk_meta(p.meta))
    os.replace(tmp, final)
    os.remove(path)
    return final, len(f.episodes), sum(e.length for e in f.episodes)


#: a ``.partial`` file modified within this many flush intervals may belong to a running recording.
_RECENT_FLUSHES = 4
_DAMAGED_SUFFIX = ".arrow.damaged"
