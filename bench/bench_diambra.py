"""Speed of the DIAMBRA importer on the DIAMBRA fixtures (``tests/data/diambra``), and what safety costs.

Per DIAMBRA version, over ``--passes`` passes of its fixture files (best of three interleaved runs):

* ``bz2 MB/s``: decompressing the files alone, the floor of any reader;
* ``safe load MB/s`` and ``/ bz2``: the restricted unpickler on the same files (bz2 included);
* ``read steps/s``: whole files read into trajarena's terms (unpickling, checks, frame decoding);
* ``import steps/s``: the whole import, trajarena files written (what ``trajarena import diambra`` does).

DIAMBRA's own loaders use ``pickle.load``, which this project never runs on these files, so the
baseline is decompression. 2.2 rows need Pillow and DIAMBRA's game table (the ``diambra`` extra,
or ``--games PATH`` to an ``integratedGames.json``); they read ``n/a (...)`` otherwise.

Run: ``PYTHONPATH=src python bench/bench_diambra.py [--passes 20] [--quick] [--results-dir DIR]``.
"""

from __future__ import annotations

import bz2
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import RESULTS_DIR, Table, parse_args  # noqa: E402

from trajarena.errors import MissingDependencyError  # noqa: E402
from trajarena.interop.diambra import import_diambra, read_diambra  # noqa: E402
from trajarena.interop.diambra.unpickle import load_bz2_pickle  # noqa: E402

FIXTURES = HERE.parent / "tests" / "data" / "diambra"


@dataclasses.dataclass
class Args:
    """Steps/s of the DIAMBRA importer on the fixtures, next to bz2 decompression of the same files."""

    passes: int = dataclasses.field(default=20, metadata={"help": "passes over the fixture files per run"})
    games: str | None = dataclasses.field(default=None, metadata={"help": "DIAMBRA's integratedGames.json"})
    quick: bool = dataclasses.field(default=False, metadata={"help": "one pass (smoke test)"})
    results_dir: str = str(RESULTS_DIR)


def _best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(files: list[Path], passes: int, games: str | None) -> dict[str, float]:
    blobs = [p.read_bytes() for p in files]
    megabytes = sum(len(bz2.decompress(b)) for b in blobs) * passes / 1e6
    steps = sum(read_diambra(p, games=games).n_steps for p in files) * passes

    def decompress() -> None:
        for _ in range(passes):
            for b in blobs:
                bz2.decompress(b)

    def safe_load() -> None:
        for _ in range(passes):
            for p in files:
                with open(p, "rb") as fh:
                    load_bz2_pickle(fh, p.name)

    def read() -> None:
        for _ in range(passes):
            for p in files:
                rec = read_diambra(p, games=games)
                for _step in rec.steps():
                    pass

    def convert() -> None:
        for _ in range(passes):
            with tempfile.TemporaryDirectory() as out:
                import_diambra(files, out, games=games, skip_existing=False)

    t_bz2, t_safe, t_read, t_import = (_best(f) for f in (decompress, safe_load, read, convert))
    return {"files": len(files), "steps": steps // passes, "bz2 MB/s": megabytes / t_bz2,
            "safe load MB/s": megabytes / t_safe, "safe load / bz2": t_bz2 / t_safe,
            "read steps/s": steps / t_read, "import steps/s": steps / t_import}


def main(args: Args) -> Table:
    columns = ["version", "files", "steps", "bz2 MB/s", "safe load MB/s", "safe load / bz2", "read steps/s",
               "import steps/s"]
    table = Table("diambra_import", columns, title="DIAMBRA importer on the fixtures (per pass)")
    passes = 1 if args.quick else args.passes
    for version, files in (("2.2 (.diambra, JPEG frames)", sorted((FIXTURES / "v22").glob("*/*.diambra"))),
                           ("2.1 (trajectory files)", sorted(p for p in (FIXTURES / "v21").glob("*/*") if p.is_file()))):
        try:
            table.add_row(version=version, **measure(files, passes, args.games))
        except (MissingDependencyError, ImportError) as exc:
            table.add_row(version=version, files=len(files), **{c: f"n/a ({str(exc)[:60]}...)" for c in columns[2:]})
    table.notes.append("safe load / bz2 < 1: the share of the restricted unpickler's time that is decompression.")
    table.notes.append("Fixtures are short episodes (11-36 steps, 24x32 to 64x48 frames); import steps/s includes "
                       "starting one writer per file.")
    table.print()
    table.save(args.results_dir)
    return table


if __name__ == "__main__":
    main(parse_args(Args))
