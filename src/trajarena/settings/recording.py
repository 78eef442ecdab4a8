"""Recording settings: who played and where the files go (DIAMBRA's ``RecordingSettings``), and how files are written.

:class:`WriterSettings` are the writer's options (chunks, flushes, file segments, compression,
durability); :class:`RecordingSettings` adds who played and the folder. Every entry point — the
``traj_rec_settings`` of ``make()``, ``TrajectoryRecorder(...)`` keywords, ``TrajectoryWriter(...)``
keywords — goes through these classes, so a bad value is a :class:`~trajarena.errors.SettingsError`
naming the key, never a dead writer thread.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from trajarena.errors import SettingsError
from trajarena.settings.base import ROLES, Settings, as_choice, as_int, fail, is_number

__all__ = ["FSYNC_MODES", "RecordingSettings", "WriterSettings"]

#: ``fsync`` values: never (a process kill loses nothing written; power loss may), finished files, every episode end.
FSYNC_MODES = (False, "file", "episode")


def _seconds(owner: str, key: str, value: Any, hi: float, zero: bool = False) -> float:
    if not is_number(value) or not math.isfinite(value) or not (0 <= value if zero else 0 < value) or value > hi:
        raise fail(owner, key, value, f"a number of seconds in {'[' if zero else '('}0, {hi:g}]")
    return float(value)


@dataclass(frozen=True)
class WriterSettings(Settings):
    """How the writer turns steps into files.

    Args:
        chunk_steps: rows per chunk (an Arrow record batch); ``None``: about ``chunk_bytes`` of raw values.
        chunk_bytes: target raw size of a chunk when ``chunk_steps`` is not given (1 KiB to 512 MiB; 8 MiB:
            about 110 native ``duel`` frames, so the writer's per-chunk work and each chunk's key frame are
            spread over many steps, while a chunk and its encoded copy still fit the CPU's cache).
        flush_seconds: steps of an episode in progress reach the file at least this often.
        segment_seconds: a file is finished at the first episode end after it is this old (0: a file per episode).
        segment_steps: a file is finished at the first episode end after it holds this many rows.
        compression: ``"zstd"``, ``"lz4"`` or ``None`` (``"none"``).
        level: the codec level; ``None``: adaptive (zstd 5, or 3 when the writer cannot keep up).
        frame_transform: ``"auto"`` (XOR-code uint8 leaves of 2+ dimensions), ``"xor_prev"`` (every
            uint8 leaf) or ``None``.
        fsync: ``False``; ``"file"`` (or ``True``): ``fsync`` each finished file; ``"episode"``:
            also ``fsync`` the file in progress after each episode end (survives power loss, slower).
        max_pending: chunks queued for the writer before the game loop waits for it (1-1024).
        writer: where chunks are encoded: ``"thread"`` (a background thread), ``"process"`` (a child
            process fed through shared memory: the encoding never holds the game loop's GIL; Linux) or
            ``"auto"``: the process while a core is free for it (fewer than cores - 1 writer processes
            in this process), else the thread.
        prefix: prefix of the file names (letters, digits, ``._-``; at most 64 characters).

    >>> WriterSettings(compression="none", fsync=True).fsync
    'file'
    >>> WriterSettings(flush_seconds="2")
    Traceback (most recent call last):
    ...
    trajarena.errors.SettingsError: WriterSettings.flush_seconds must be a number of seconds in (0, 3600], got '2'.
    """

    chunk_steps: int | None = None
    chunk_bytes: int = 8 << 20
    flush_seconds: float = 2.0
    segment_seconds: float = 2.0
    segment_steps: int = 1 << 20
    compression: str | None = "zstd"
    level: int | None = None
    frame_transform: str | None = "auto"
    fsync: bool | str = False
    max_pending: int = 8
    prefix: str = ""
    writer: str = "auto"

    _aliases: ClassVar[dict[str, str]] = {"compression_level": "level"}

    def __post_init__(self) -> None:
        o = type(self).__name__
        if self.chunk_steps is not None:
            self._set("chunk_steps", as_int(o, "chunk_steps", self.chunk_steps, 1, 1 << 20))
        self._set("chunk_bytes", as_int(o, "chunk_bytes", self.chunk_bytes, 1 << 10, 1 << 29))
        self._set("flush_seconds", _seconds(o, "flush_seconds", self.flush_seconds, 3600))
        self._set("segment_seconds", _seconds(o, "segment_seconds", self.segment_seconds, 1e12, zero=True))
        self._set("segment_steps", as_int(o, "segment_steps", self.segment_steps, 1))
        codec = None if self.compression == "none" else self.compression
        self._set("compression", as_choice(o, "compression", codec, ("zstd", "lz4", None)))
        if self.level is not None:
            if self.compression != "zstd":
                raise fail(o, "level", self.level, f"None with compression={self.compression!r} (only zstd has levels)")
            self._set("level", as_int(o, "level", self.level, -7, 22))
        self._set("frame_transform", as_choice(o, "frame_transform", self.frame_transform, ("auto", "xor_prev", None)))
        fsync = {True: "file"}.get(self.fsync, self.fsync) if isinstance(self.fsync, bool | str) else self.fsync
        self._set("fsync", as_choice(o, "fsync", fsync, FSYNC_MODES))
        self._set("max_pending", as_int(o, "max_pending", self.max_pending, 1, 1024))
        self._set("writer", as_choice(o, "writer", self.writer, ("auto", "thread", "process")))
        if not isinstance(self.prefix, str) or not re.fullmatch(r"[A-Za-z0-9._-]{0,64}", self.prefix) \
                or self.prefix.startswith("."):
            raise fail(o, "prefix", self.prefix, "at most 64 letters, digits, '.', '_' or '-' (not starting with '.')")

    def writer_options(self) -> dict[str, Any]:
        """The options as ``TrajectoryWriter`` keywords."""
        return {f.name: getattr(self, f.name) for f in fields(WriterSettings)}


@dataclass(frozen=True)
class RecordingSettings(WriterSettings):
    """Trajectory recording settings (DIAMBRA's ``RecordingSettings``, plus the writer's options).

    Args:
        username: who played; stored in every file.
        file_path: the folder the trajectory files go to (created if missing).
        ignore_p2: 1 marks P2's side of a 2-player recording as not a demonstration (e.g. an agent
            playing against a human P1); the loader then replays only P1's side.
        ignore_p1: 1 marks P1's side of a 2-player recording as not a demonstration (e.g. an agent
            playing against a human P2); the loader then replays only P2's side. At most one of
            ``ignore_p1`` and ``ignore_p2`` may be 1.
        players: who controls each side, e.g. ``{"P1": "human", "P2": "cpu"}``; stored in the metadata.
        **writer options: every :class:`WriterSettings` field (``flush_seconds``, ``compression``,
            ``level`` — also as ``compression_level`` —, ``fsync``, ``segment_seconds``, ...).

    >>> RecordingSettings(username="alex", file_path="data/duel").ignore_p2
    0
    >>> RecordingSettings.from_dict({"file_path": "data/duel", "compression_level": 3}).level
    3
    """

    _dialect: ClassVar[str] = "recording"

    username: str = ""
    file_path: str = ""
    ignore_p2: int = 0
    ignore_p1: int = 0
    players: dict[str, str] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        o = type(self).__name__
        if not isinstance(self.username, str):
            raise fail(o, "username", self.username, "a string")
        if not isinstance(self.file_path, str) or not self.file_path:
            if isinstance(self.file_path, os.PathLike):
                self._set("file_path", os.fspath(self.file_path))
            else:
                raise fail(o, "file_path", self.file_path, "a non-empty folder path where files are written")
        for name in ("ignore_p2", "ignore_p1"):
            value = getattr(self, name)
            if value not in (0, 1) or isinstance(value, float):
                raise fail(o, name, value, "0 or 1")
            self._set(name, int(value))
        if self.ignore_p1 and self.ignore_p2:
            raise SettingsError(f"{o}: ignore_p1 and ignore_p2 are both 1, so no side would be a demonstration; "
                                "set at most one of them.")
        if self.players is not None:
            if not isinstance(self.players, Mapping) or not all(
                k in ROLES and isinstance(v, str) for k, v in self.players.items()
            ):
                raise fail(o, "players", self.players, "a dict like {'P1': 'human', 'P2': 'cpu'}")
            self._set("players", dict(self.players))
