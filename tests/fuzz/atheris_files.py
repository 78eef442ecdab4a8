"""Coverage-guided fuzzing of trajectory files with atheris (libFuzzer): the long half of ``make fuzz``.

The first byte of an input picks what the rest is:

* ``0``: a whole file (the seed is a real file made by the real writer);
* ``1``: the file metadata JSON text, put into a real file with a valid CRC (a hostile writer);
* ``2``: chunk 0's metadata JSON text, likewise.

The oracle: opening and reading everything raises a typed trajarena error or succeeds; ``verify``
never raises; a file ``verify`` calls intact reads without error. libFuzzer's ``-timeout`` catches
hangs and ``-rss_limit_mb`` memory bombs. Usage (``make fuzz`` passes these)::

    python tests/fuzz/atheris_files.py CORPUS_DIR -max_total_time=600 -timeout=10 -rss_limit_mb=2048

CORPUS_DIR is created and seeded on first use; crashes are written to the current folder.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1] / "src"), str(HERE.parent)]
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import atheris  # noqa: E402

with atheris.instrument_imports(include=["trajarena"]):
    import trajarena  # noqa: F401
    from trajarena.errors import TrajArenaError
    from trajarena.format.integrity import verify

import pyarrow as pa  # noqa: E402

from _helpers_format import HOSTILE, rewrite_file  # noqa: E402
from test_fuzz import make_base, snapshot  # noqa: E402

WORK = Path(tempfile.mkdtemp(prefix="trajarena-atheris-"))
BASE = make_base(WORK / "base")
TARGET = WORK / "x.arrow"


def seeds() -> list[bytes]:
    reader = pa.ipc.open_file(str(BASE))
    meta = reader.schema.metadata[b"trajarena"]
    chunk = reader.get_batch_with_custom_metadata(0)[1][b"trajarena.chunk"]
    return [b"\x00" + BASE.read_bytes(), b"\x01" + meta, b"\x02" + chunk]


def build(data: bytes) -> Path | None:
    if not data:
        return None
    mode, rest = data[0] % 3, data[1:]
    if TARGET.exists():
        TARGET.unlink()
    if mode == 0:
        TARGET.write_bytes(rest)
    elif mode == 1:
        rewrite_file(BASE, TARGET, lambda meta: HOSTILE, match_schema=False, literal=rest)
    else:
        rewrite_file(BASE, TARGET, change_chunk=lambda i, doc: HOSTILE if i == 0 else doc, literal=rest)
    return TARGET


def test_one_input(data: bytes) -> None:
    path = build(data)
    if path is None:
        return
    try:
        snapshot(path)
        read = True
    except TrajArenaError:
        read = False
    report = verify(path)  # must never raise
    if path in report.ok and not read:
        raise AssertionError("verify called the file intact but reading it raised")


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    if args:
        corpus = Path(args[0])
        corpus.mkdir(parents=True, exist_ok=True)
        if not any(corpus.iterdir()):
            for i, seed in enumerate(seeds()):
                (corpus / f"seed{i}").write_bytes(seed)
    warnings.simplefilter("ignore")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
