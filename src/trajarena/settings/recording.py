"""Recording settings: who played and where the files go (DIAMBRA's ``RecordingSettings``), and the writer's options."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from trajarena.errors import SettingsError
from trajarena.settings.base import ROLES, Settings, as_choice, as_int, fail

__all__ = ["RecordingSettings"]


@dataclass(frozen=True)
class RecordingSettings(Settings):
    """Trajectory recording settings (DIAMBRA's ``RecordingSettings``, plus a few extras).

    Args:
        username: who played; stored in every file.
        file_path: the folder the trajectory files go to (created if missing).
        ignore_p2: 1 marks P2's side of a 2-player recording as not a demonstration (e.g. an agent
            playing against a human P1); the loader then replays only P1's side.
        ignore_p1: 1 marks P1's side of a 2-player recording as not a demonstration (e.g. an agent
            playing against a human P2); the loader then replays only P2's side. At most one of
            ``ignore_p1`` and ``ignore_p2`` may be 1.
        players: who controls each side, e.g. ``{"P1": "human", "P2": "cpu"}``; stored in the metadata.
        flush_seconds: the longest time steps stay in memory before reaching the disk.
        compression: "zstd" (default), "lz4" or "none".
        compression_level: codec level, None for the library's measured default.

    >>> RecordingSettings(username="alex", file_path="data/duel").ignore_p2
    0
    >>> RecordingSettings(file_path="data/duel", ignore_p1=1).ignore_p1
    1
    """

    username: str = ""
    file_path: str = ""
    ignore_p2: int = 0
    ignore_p1: int = 0
    players: dict[str, str] | None = None
    flush_seconds: float = 2.0
    compression: str = "zstd"
    compression_level: int | None = None

    def __post_init__(self) -> None:
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
        fs = self.flush_seconds
        if isinstance(fs, bool) or not isinstance(fs, int | float) or not 0 < fs <= 3600:
            raise fail(o, "flush_seconds", fs, "a number of seconds in (0, 3600]")
        self._set("compression", as_choice(o, "compression", self.compression, ("zstd", "lz4", "none")))
        if self.compression_level is not None:
            self._set("compression_level", as_int(o, "compression_level", self.compression_level, -7, 22))
