"""Shared helpers of the benchmark scripts: timing, memory, ratios, tables and argument parsing.

Every bench script measures trajarena *against a baseline in the same run* (a raw env, Minari,
``np.savez_compressed``), so what it reports are ratios as much as absolute figures. This module
holds the few pieces they all need and nothing specific to a library:

* :func:`median_seconds` times a callable several times with :func:`time.perf_counter`;
* :func:`pause_stats` turns a list of pauses into p50 / p99 / max milliseconds;
* :class:`RssSampler` follows the resident memory of this process while something runs;
* :func:`ratio` divides two figures that may be missing;
* :class:`RecordResult` holds the figures of one recording run, whichever library recorded;
* :class:`Table` prints a plain markdown table and dumps it to ``bench/results/<name>.json``;
* :func:`parse_args` builds an ``argparse`` parser from a dataclass of arguments (cleanrl style).

>>> ratio(50.0, 100.0)
0.5
>>> ratio(None, 100.0) is None
True
>>> table = Table("demo", ["env", "steps/s"])
>>> table.add_row(env="CartPole-v1", **{"steps/s": 1234.5})
>>> print(table.markdown())
| env | steps/s |
|---|---|
| CartPole-v1 | 1,234 |
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

NA = "n/a"
RESULTS_DIR = Path(__file__).resolve().parent / "results"


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------


def median_seconds(fn: Callable[[], object], repeats: int = 3, warmup: int = 0) -> float:
    """Run ``fn`` ``warmup + repeats`` times and return the median wall time of the timed runs.

    >>> median_seconds(lambda: None, repeats=3) >= 0.0
    True
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have exited (a writer process, once closed)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def rate(count: float, seconds: float) -> float | None:
    """Return ``count / seconds``, or None when nothing was timed.

    >>> rate(10, 2.0)
    5.0
    """
    if seconds is None or seconds <= 0 or count is None:
        return None
    return count / seconds


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """Return ``numerator / denominator``, or None when either is missing or the divisor is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the ``q``-th percentile (0-100, nearest-rank) of ``values``, None when empty.

    >>> percentile([1, 2, 3, 4], 50)
    2
    >>> percentile([], 99) is None
    True
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil, nearest-rank definition
    return ordered[int(rank) - 1]


def pause_stats(pauses_s: Sequence[float]) -> dict[str, float | None]:
    """Summarise episode-end pauses (seconds) as p50 / p99 / max in milliseconds.

    ``p99_first`` and ``p99_last`` are the p99 of the first and the last tenth of the pauses:
    when they differ a lot, the pause grows with the size of the dataset.

    >>> stats = pause_stats([0.001] * 99 + [0.010])
    >>> stats["p50_ms"], stats["max_ms"], stats["count"]
    (1.0, 10.0, 100)
    """
    ms = [p * 1000.0 for p in pauses_s]
    tenth = max(1, len(ms) // 10)
    return {
        "count": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else None,
        "p99_first_ms": percentile(ms[:tenth], 99),
        "p99_last_ms": percentile(ms[-tenth:], 99),
    }


# --------------------------------------------------------------------------------------------
# memory and disk
# --------------------------------------------------------------------------------------------


def rss_bytes() -> int:
    """Return the resident set size of this process, in bytes (psutil, else /proc)."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return psutil.Process().memory_info().rss


class RssSampler:
    """Samples the RSS of this process to measure how much it grows while something runs.

    ``growth_mb`` is the peak RSS after the baseline sample minus that baseline; take the
    baseline after a warm-up so imports and first allocations do not count.

    >>> sampler = RssSampler()
    >>> sampler.baseline()
    >>> sampler.sample()
    >>> sampler.growth_mb() >= -1024
    True
    """

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._base: int | None = None

    def baseline(self) -> None:
        """Record the reference RSS; growth is measured from here."""
        self._base = rss_bytes()
        self.samples = [self._base]

    def sample(self) -> None:
        """Record the current RSS."""
        self.samples.append(rss_bytes())

    def growth_mb(self) -> float:
        """Peak RSS since :meth:`baseline`, minus the baseline, in MB (10**6 bytes)."""
        if self._base is None:
            raise RuntimeError("call baseline() before growth_mb()")
        return (max(self.samples) - self._base) / 1e6

    def final_growth_mb(self) -> float:
        """Last RSS sample minus the baseline, in MB."""
        if self._base is None:
            raise RuntimeError("call baseline() before final_growth_mb()")
        return (self.samples[-1] - self._base) / 1e6


def dir_size(path: str | os.PathLike) -> int:
    """Return the total size in bytes of the regular files under ``path`` (or of the file)."""
    root = Path(path)
    if root.is_file():
        return root.stat().st_size
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------
# recording runs
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RecordResult:
    """Figures of one recording run, trajarena's or Minari's alike.

    ``finalize_s`` is the time from the last step to a usable dataset (trajarena's ``close()``,
    Minari's ``create_dataset``); ``data_path`` is where the data is (trajarena's folder of files,
    the Minari dataset's ``data`` folder). Figures a library's run does not measure stay at their
    defaults.

    >>> r = RecordResult(steps=100, episodes=2, loop_s=0.5, finalize_s=0.5, bytes_on_disk=2000, pauses={},
    ...                  data_path="/tmp/x")
    >>> r.steps_per_s, r.bytes_per_step
    (100.0, 20.0)
    """

    steps: int
    episodes: int
    loop_s: float
    finalize_s: float
    bytes_on_disk: int
    pauses: dict[str, Any]
    data_path: str
    memory_growth_mb: float | None = None
    memory_final_growth_mb: float | None = None
    thread_cpu_s: float = 0.0  # game-loop thread CPU, loop only
    process_cpu_s: float = 0.0  # whole process CPU (writer threads too), loop + finalize

    @property
    def steps_per_s(self) -> float:
        """Steps per second including ``finalize_s`` (the time to a dataset that is all readable)."""
        return self.steps / (self.loop_s + self.finalize_s)

    @property
    def bytes_per_step(self) -> float:
        return self.bytes_on_disk / self.steps


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    """Format a table cell: None as ``n/a``, big floats with separators, ratios with 2 decimals.

    >>> fmt(None), fmt(0.5), fmt(12345.6), fmt(3.14159), fmt("x")
    ('n/a', '0.50', '12,346', '3.14', 'x')
    """
    if value is None:
        return NA
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


@dataclasses.dataclass
class Table:
    """A table of results: printed as markdown, saved as JSON under ``bench/results``.

    Cells may be numbers, strings or None (printed ``n/a``); a string cell is the way to say
    why a figure is missing (``"n/a (trajarena not available)"``).
    """

    name: str
    columns: list[str]
    title: str = ""
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def add_row(self, **cells: Any) -> None:
        """Add a row; unknown column names raise ``KeyError`` naming the valid ones."""
        unknown = set(cells) - set(self.columns)
        if unknown:
            raise KeyError(f"unknown columns {sorted(unknown)}; valid: {self.columns}")
        self.rows.append({c: cells.get(c) for c in self.columns})

    def markdown(self) -> str:
        """Return the table as GitHub markdown (title and notes excluded)."""
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        for row in self.rows:
            lines.append("| " + " | ".join(fmt(row[c]) for c in self.columns) + " |")
        return "\n".join(lines)

    def print(self) -> None:
        """Print title, table and notes to stdout."""
        if self.title:
            print(f"\n### {self.title}\n")
        print(self.markdown())
        for note in self.notes:
            print(f"\n- {note}" if not note.startswith("-") else note)
        sys.stdout.flush()

    def save(self, results_dir: str | os.PathLike = RESULTS_DIR, extra: dict | None = None) -> Path:
        """Write ``<results_dir>/<name>.json`` with rows, notes and machine info; return the path."""
        out = Path(results_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{self.name}.json"
        payload = {
            "name": self.name,
            "title": self.title,
            "columns": self.columns,
            "rows": self.rows,
            "notes": self.notes,
            "machine": machine_info(),
            **(extra or {}),
        }
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        return path


def machine_info() -> dict[str, Any]:
    """Describe where the figures were measured (python, cpu count, package versions)."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": os.getloadavg(),  # other processes skew absolute figures
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for name in ("numpy", "gymnasium", "pyarrow", "minari", "ale_py", "h5py", "trajarena"):
        module = sys.modules.get(name)
        if module is not None:
            info[name] = getattr(module, "__version__", "?")
    return info


# --------------------------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------------------------


def parse_args(cls: type, argv: Sequence[str] | None = None, description: str = ""):
    """Build an argparse parser from a dataclass of arguments and return an instance of it.

    Booleans become ``--flag/--no-flag``; other fields take their type from the default value.
    Field docs come from ``metadata={"help": ...}``.

    >>> @dataclasses.dataclass
    ... class Args:
    ...     steps: int = 10
    ...     quick: bool = False
    >>> parse_args(Args, ["--steps", "5", "--quick"])
    Args(steps=5, quick=True)
    """
    parser = argparse.ArgumentParser(description=description or cls.__doc__)
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        helptext = field.metadata.get("help", "")
        default = field.default
        if isinstance(default, bool):
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction,
                                default=default, help=helptext)
        elif isinstance(default, (list, tuple)):
            parser.add_argument(flag, dest=field.name, nargs="+", default=list(default),
                                help=helptext + f" (default: {' '.join(map(str, default))})")
        elif default is None:
            parser.add_argument(flag, dest=field.name, default=None, help=helptext)
        else:
            parser.add_argument(flag, dest=field.name, type=type(default), default=default,
                                help=helptext + f" (default: {default})")
    return cls(**vars(parser.parse_args(argv)))
