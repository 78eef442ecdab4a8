"""The count-style progress bar of the long learning stages: record, evaluate, load.

``<label> [bar] done/total <unit> <rate> ETA``, drawn with rich; silent when progress is off or
rich is not installed (the ``cli`` extra).
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["CountBar"]


class CountBar:
    """A rich progress bar of a count (episodes, steps) with a rate and an ETA.

    Use it as a context manager, or call :meth:`start` and :meth:`close`.
    """

    def __init__(self, label: str, unit: str, total: int | None, enabled: bool) -> None:
        self.progress = None
        self.unit, self.done, self.t0 = unit, 0, time.perf_counter()
        if enabled:
            try:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            except ImportError:
                return
            self.progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                                     TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
            self.task = self.progress.add_task(label, total=total, rate="")

    def start(self) -> Any:
        if self.progress is not None:
            self.progress.start()
        return self

    __enter__ = start

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()

    def per_second(self, count: float) -> float:
        """``count`` divided by the seconds since the bar was made."""
        return count / max(time.perf_counter() - self.t0, 1e-9)

    def advance(self, n: int, rate: str | None = None) -> None:
        """Add ``n`` to the count; show ``rate``, by default the count per second."""
        self.done += n
        if self.progress is not None:
            if rate is None:
                per_s = self.per_second(self.done)
                rate = f"{per_s:,.2f} {self.unit}/s" if per_s < 100 else f"{per_s:,.0f} {self.unit}/s"
            self.progress.update(self.task, advance=n, rate=rate)
