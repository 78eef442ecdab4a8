"""What every exporter and importer shares: the summary it returns, progress reports, output checks.

Each conversion (:func:`~trajarena.interop.parquet.export_parquet`,
:func:`~trajarena.interop.minari.export_minari`, :func:`~trajarena.interop.minari.import_minari`,
:func:`~trajarena.interop.video.export_video`) returns a :class:`ConversionSummary` and accepts
``progress=callable(done, total)``, called after each episode, so a command line can draw a
progress bar without the library knowing about terminals.

>>> s = ConversionSummary("parquet", "out", ("out/a.parquet",), episodes=2, steps=300, bytes=4096, seconds=0.5)
>>> print(s)
parquet: 2 episodes, 300 steps -> out (1 file, 4.1 kB) in 0.50 s (600 steps/s)
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trajarena.errors import OutputExistsError, SettingsError

__all__ = ["ConversionSummary", "Progress", "Timer", "human_bytes", "prepare_folder", "report", "total_bytes"]

#: ``progress(done, total)``: called after each converted episode.
Progress = Callable[[int, int], None]


def human_bytes(n: float) -> str:
    """A byte count for people.

    >>> human_bytes(512), human_bytes(2_500_000)
    ('512 B', '2.5 MB')
    """
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover - the loop returns at GB


@dataclass(frozen=True)
class ConversionSummary:
    """What a conversion wrote.

    Attributes:
        kind: ``"parquet"``, ``"minari"``, ``"video"``, ``"import minari"``...
        target: where it went (a folder, a file or a dataset id).
        files: the files written.
        episodes: episodes converted.
        steps: steps (transitions) converted.
        bytes: bytes written.
        seconds: wall-clock time of the conversion.
        extra: conversion-specific facts (e.g. the Minari dataset ids), JSON-ready.

    >>> ConversionSummary("video", "ep.mp4", ("ep.mp4",), 1, 99, 50_000, 0.25).steps_per_second
    396.0
    """

    kind: str
    target: str
    files: tuple[str, ...]
    episodes: int
    steps: int
    bytes: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def steps_per_second(self) -> float:
        """Converted steps per second of wall-clock time."""
        return self.steps / self.seconds if self.seconds > 0 else float("inf")

    def __str__(self) -> str:
        n = len(self.files)
        return (f"{self.kind}: {self.episodes} episodes, {self.steps} steps -> {self.target} "
                f"({n} file{'s' if n != 1 else ''}, {human_bytes(self.bytes)}) in {self.seconds:.2f} s "
                f"({self.steps_per_second:,.0f} steps/s)")


class Timer:
    """Wall-clock time since creation, for the summaries."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def report(progress: Progress | None, done: int, total: int) -> None:
    """Call ``progress(done, total)`` when a callback was given."""
    if progress is not None:
        progress(done, total)


def prepare_folder(out: str | os.PathLike, overwrite: bool, suffix: str) -> Path:
    """Create the output folder ``out``, or check that it holds no ``*suffix`` file from an earlier run.

    Raises:
        OutputExistsError: ``out`` holds ``*suffix`` files and ``overwrite`` is False (with
            ``overwrite`` they are removed first, nothing else is).
        SettingsError: ``out`` is an existing file, not a folder.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SettingsError(f"the output {path} is a file; give a folder (it is created if missing).")
    old = sorted(path.glob(f"*{suffix}")) if path.exists() else []
    if old and not overwrite:
        raise OutputExistsError(f"{path} already holds {len(old)} '*{suffix}' file(s) (e.g. {old[0].name}); "
                                "choose another folder or pass overwrite=True (--overwrite) to replace them.")
    for p in old:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return path


def total_bytes(files: Sequence[str | os.PathLike]) -> int:
    """The summed size of files and folders (recursively)."""
    n = 0
    for f in map(Path, files):
        if f.is_dir():
            n += sum(p.stat().st_size for p in f.rglob("*") if p.is_file())
        elif f.exists():
            n += f.stat().st_size
    return n
