"""Viewer export speed: trajectory files into a Rerun ``.rrd`` recording (``trajarena view --save``), in steps/s.

Records the same fixed-seed random episodes as the other benchmarks (``duel`` at its default
128x192x3 frames, ``duel`` with 84x84 grey frames, ``CartPole-v1``), then times
:func:`trajarena.interop.rerun.save_rrd` on them (best of ``--repeats`` runs; reading and
decoding the source files included), next to the Parquet export of the same files in the same
run as a reference. Prints steps/s, the ratio to Parquet and the ``.rrd`` bytes/step (Rerun
stores frames as raw pixels in LZ4-compressed chunks). Without rerun-sdk (the ``view`` extra) the
rrd rows read ``n/a (...)``.

Run: ``PYTHONPATH=src python bench/bench_view.py [--quick] [--results-dir DIR] [--workdir DIR]``
(the table is printed and saved as ``DIR/view.json``).
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, Table, dir_size, parse_args  # noqa: E402
from bench_export import best_of  # noqa: E402

import trajarena as arena  # noqa: E402
from trajarena.interop.parquet import export_parquet  # noqa: E402


@dataclasses.dataclass
class Args:
    """Steps/s of writing trajectory files as a Rerun recording (the dataset viewer's export)."""

    duel_steps: int = dataclasses.field(default=3000, metadata={"help": "duel steps recorded (each frame size)"})
    cartpole_steps: int = dataclasses.field(default=50_000, metadata={"help": "CartPole steps recorded"})
    repeats: int = dataclasses.field(default=3, metadata={"help": "timed runs per export (best kept)"})
    seed: int = 0
    quick: bool = dataclasses.field(default=False, metadata={"help": "tiny budgets (smoke test)"})
    results_dir: str = str(RESULTS_DIR)
    workdir: str = dataclasses.field(default="", metadata={"help": "where temporary files go (default: system temp)"})


def record(env_id: str, settings: dict | None, folder: Path, steps: int, seed: int) -> int:
    """Record ``steps`` steps of a seeded random policy; return the steps recorded."""
    env = arena.make(env_id, settings, None, {"file_path": str(folder), "username": "bench"})
    env.action_space.seed(seed)
    env.reset(seed=seed)
    for _ in range(steps):
        *_, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    env.close()
    return arena.TrajectoryDataset(folder).total_steps


def main(args: Args) -> Table:
    duel_steps, cartpole_steps = (200, 2000) if args.quick else (args.duel_steps, args.cartpole_steps)
    repeats = 1 if args.quick else args.repeats
    table = Table("view", ["data", "steps", "rrd steps/s", "Parquet steps/s", "rrd / Parquet", "rrd B/step",
                           "B/step trajarena"], title="Viewer export: trajarena view --save (best of runs, one process)")
    cases = (("duel, 128x192x3", "duel", None, duel_steps), ("duel, 84x84 grey", "duel", {"frame_shape": (84, 84, 1)},
             duel_steps), ("CartPole-v1", "CartPole-v1", None, cartpole_steps))
    with tempfile.TemporaryDirectory(prefix="trajarena-view-", dir=args.workdir or None) as tmp:
        root = Path(tmp)
        for k, (name, env_id, settings, steps) in enumerate(cases):
            src = root / f"src{k}"
            n = record(env_id, settings, src, steps, args.seed)
            parquet_s, _ = best_of(repeats, lambda i, src=src, k=k: export_parquet(src, root / f"pq{k}-{i}").bytes)
            try:
                from trajarena.interop.rerun import save_rrd

                seconds, size = best_of(repeats, lambda i, src=src, k=k: save_rrd(src, root / f"v{k}-{i}.rrd").bytes)
                rate, ratio, per_step = n / seconds, parquet_s / seconds, size / n
            except ImportError as exc:  # MissingDependencyError is an ImportError
                rate = ratio = per_step = f"n/a ({type(exc).__name__}: pip install 'trajarena[view]')"
            table.add_row(**{"data": name, "steps": n, "rrd steps/s": rate, "Parquet steps/s": n / parquet_s,
                             "rrd / Parquet": ratio, "rrd B/step": per_step, "B/step trajarena": dir_size(src) / n})
    table.notes.append("steps/s include reading and decoding the source files and the first import of rerun "
                       "(best of runs hides it); Parquet is trajarena's Parquet export of the same files.")
    if args.quick:
        table.notes.append("--quick: budgets too small to judge.")
    table.print()
    table.save(args.results_dir)
    return table


if __name__ == "__main__":
    main(parse_args(Args))
