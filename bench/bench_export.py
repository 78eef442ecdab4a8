"""Export speed: trajectory files to Parquet, Minari (HDF5, lossless) and MP4, in steps/s.

Records the same fixed-seed random episodes as the other benchmarks (``duel`` at its default
128x192x3 frames, ``CartPole-v1``), then times each exporter of :mod:`trajarena.interop` on them
(best of ``--repeats`` runs, output written to a temporary folder and deleted) and prints
steps/s and output bytes/step. Minari and imageio-ffmpeg are optional: without them those rows
read ``n/a (...)``. Parquet stores decoded frames as nested fixed-size lists (no statistics on
them); Minari gets ``jpeg=False`` (lossless, comparable to the source).

Run: ``PYTHONPATH=src python bench/bench_export.py [--quick] [--results-dir DIR] [--workdir DIR]``
(the table is printed and saved as ``DIR/export.json``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, Table, dir_size, parse_args  # noqa: E402

import trajarena as arena  # noqa: E402
from trajarena.interop.parquet import export_parquet  # noqa: E402


@dataclasses.dataclass
class Args:
    """Steps/s of the Parquet, Minari and MP4 exporters on duel and CartPole recordings."""

    duel_steps: int = dataclasses.field(default=3000, metadata={"help": "duel steps recorded"})
    cartpole_steps: int = dataclasses.field(default=50_000, metadata={"help": "CartPole steps recorded"})
    repeats: int = dataclasses.field(default=3, metadata={"help": "timed runs per exporter (best kept)"})
    seed: int = 0
    quick: bool = dataclasses.field(default=False, metadata={"help": "tiny budgets (smoke test)"})
    results_dir: str = str(RESULTS_DIR)
    workdir: str = dataclasses.field(default="", metadata={"help": "where temporary files go (default: system temp)"})


def record(env_id: str, folder: Path, steps: int, seed: int) -> int:
    """Record ``steps`` steps of a seeded random policy; return the steps recorded."""
    env = arena.make(env_id, None, None, {"file_path": str(folder), "username": "bench"})
    env.action_space.seed(seed)
    env.reset(seed=seed)
    for _ in range(steps):
        *_, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    env.close()
    return arena.TrajectoryDataset(folder).total_steps


def best_of(repeats: int, run) -> tuple[float, int]:
    """Best wall time of ``run(i) -> bytes written`` over ``repeats`` runs, and its output bytes."""
    best, size = float("inf"), 0
    for i in range(repeats):
        start = time.perf_counter()
        size = run(i)
        best = min(best, time.perf_counter() - start)
    return best, size


def main(args: Args) -> Table:
    duel_steps, cartpole_steps = (200, 2000) if args.quick else (args.duel_steps, args.cartpole_steps)
    repeats = 1 if args.quick else args.repeats
    table = Table("export", ["export", "env", "steps", "steps/s", "B/step out", "B/step trajarena"],
                  title="Export speed (best of runs, one process)")
    with tempfile.TemporaryDirectory(prefix="trajarena-export-", dir=args.workdir or None) as tmp:
        root = Path(tmp)
        os.environ.setdefault("MINARI_DATASETS_PATH", str(root / "minari"))
        for env_id, steps in (("duel", duel_steps), ("CartPole-v1", cartpole_steps)):
            src = root / env_id
            n = record(env_id, src, steps, args.seed)
            src_bytes = dir_size(src) / n

            def parquet(i: int) -> int:
                return export_parquet(src, root / f"pq-{env_id}-{i}").bytes

            seconds, size = best_of(repeats, parquet)
            table.add_row(**{"export": "Parquet (zstd)", "env": env_id, "steps": n, "steps/s": n / seconds,
                             "B/step out": size / n, "B/step trajarena": src_bytes})
            try:
                from trajarena.interop.minari import export_minari

                def minari(i: int) -> int:
                    return export_minari(src, f"bench/{env_id.lower().split('-')[0]}/run{i}-v0").bytes

                seconds, size = best_of(repeats, minari)
                rate, per_step = n / seconds, size / n
            except ImportError as exc:  # MissingDependencyError is an ImportError
                rate = per_step = f"n/a ({type(exc).__name__}: pip install 'trajarena[minari]')"
            table.add_row(**{"export": "Minari (HDF5, lossless)", "env": env_id, "steps": n, "steps/s": rate,
                             "B/step out": per_step, "B/step trajarena": src_bytes})
            if env_id == "duel":
                try:
                    from trajarena.interop.video import export_video

                    first = arena.TrajectoryDataset(src).episodes[0].length

                    def mp4(i: int) -> int:
                        return export_video(src, root / f"ep{i}.mp4", 0).bytes

                    seconds, size = best_of(repeats, mp4)
                    rate, per_step = first / seconds, size / first
                except ImportError as exc:
                    first, rate, per_step = None, f"n/a ({type(exc).__name__}: pip install 'trajarena[video]')", None
                table.add_row(**{"export": "MP4 (H.264, one episode)", "env": env_id, "steps": first,
                                 "steps/s": rate, "B/step out": per_step, "B/step trajarena": src_bytes})
    table.notes.append("steps/s include reading and decoding the source files. Parquet: every value decoded, "
                       "zstd; Minari: jpeg=False, so frames are stored raw (HDF5 without compression); MP4: lossy.")
    if args.quick:
        table.notes.append("--quick: budgets too small to judge.")
    table.print()
    table.save(args.results_dir)
    return table


if __name__ == "__main__":
    main(parse_args(Args))
