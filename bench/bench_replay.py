"""Replay benchmark: reading recordings back, trajarena against Minari on the same episodes.

For each env (``CartPole-v1``, ``duel``, ``ALE/Boxing-v5``) it records the same fixed-seed
random episodes with trajarena and with Minari (HDF5; images as JPEG, Minari's default), then
measures on each

* sequential replay: every episode in order, every step's observation touched (steps/s);
* random transitions, one at a time: a random episode, a random step (transitions/s);
* random transitions in batches of ``--batch-size`` (transitions/s).

trajarena is read through its read APIs: ``TrajectoryReader`` (chunked, low memory),
``TrajectoryDataset`` (the training API) and, for sequential replay, the DIAMBRA-style
``ImitationLearning`` env (reset/step until exhausted); Minari's figure is repeated on each row.

Each random-access measurement stops after ``--n-random`` transitions or ``--max-seconds``,
whichever comes first (Minari reads a whole episode per access, which is slow on images).

Usage::

    .venv-bench/bin/python bench/bench_replay.py            # full run
    .venv-bench/bin/python bench/bench_replay.py --quick    # seconds, for smoke tests
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _minari  # noqa: E402
import _trajarena  # noqa: E402
from _common import RESULTS_DIR, Table, parse_args, rate, ratio  # noqa: E402
from _envs import BOXING, CARTPOLE, DUEL, env_factory  # noqa: E402


@dataclasses.dataclass
class Args:
    """Replay benchmark: trajarena vs Minari reading the same recordings."""

    envs: tuple = (CARTPOLE, DUEL, BOXING)
    quick: bool = dataclasses.field(default=False, metadata={"help": "tiny budgets (smoke test)"})
    seed: int = 0
    cartpole_steps: int = dataclasses.field(default=50_000, metadata={"help": "steps recorded on CartPole"})
    image_steps: int = dataclasses.field(default=5_000, metadata={"help": "steps recorded on image envs"})
    n_random: int = dataclasses.field(default=200_000, metadata={"help": "max random transitions per measurement"})
    batch_size: int = 256
    max_seconds: float = dataclasses.field(default=3.0, metadata={"help": "time cap per random-access measurement"})
    minari: bool = dataclasses.field(default=True, metadata={"help": "run the Minari baselines"})
    results_dir: str = str(RESULTS_DIR)
    workdir: str = dataclasses.field(default="", metadata={"help": "where temporary recordings go"})

    def __post_init__(self) -> None:
        self.envs = tuple(self.envs)
        if self.quick:
            self.cartpole_steps = min(self.cartpole_steps, 2_000)
            self.image_steps = min(self.image_steps, 200)
            self.n_random = min(self.n_random, 512)
            self.batch_size = min(self.batch_size, 32)
            self.max_seconds = min(self.max_seconds, 0.3)


def _measure(fn, *args, **kwargs):
    """Run a read adapter; return ``(rate, "")`` or ``(None, "n/a (why)")``."""
    try:
        count, seconds = fn(*args, **kwargs)
    except _trajarena.NotAvailable as exc:
        return None, str(exc)
    return rate(count, seconds), ""


def _trajarena_measures(folder: Path, args: Args) -> list[tuple[str, str, Callable[[], tuple[int, float]]]]:
    """``(row label, key of the Minari figure it compares with, measurement)`` for a recording."""
    n, seed, b, cap = args.n_random, args.seed, args.batch_size, args.max_seconds
    sample = _trajarena.sample_random
    return [
        ("sequential steps (reader)", "seq", lambda: _trajarena.replay_sequential(folder, api="reader")),
        ("sequential steps (dataset)", "seq", lambda: _trajarena.replay_sequential(folder, api="dataset")),
        ("sequential steps (ImitationLearning env)", "seq", lambda: _trajarena.replay_imitation(folder)),
        ("random transitions (single, reader)", "one",
         lambda: sample(folder, n, seed, 1, max_seconds=cap, api="reader")),
        ("random transitions (single, dataset)", "one",
         lambda: sample(folder, n, seed, 1, max_seconds=cap, api="dataset")),
        (f"random transitions (batch {b}, dataset)", "batch",
         lambda: sample(folder, n, seed, b, max_seconds=cap, api="dataset")),
    ]


def _minari_results(factory, n_steps: int, args: Args) -> dict[str, tuple]:
    """Record with Minari and measure it: ``{"seq" | "one" | "batch": (rate, cell)}``."""
    n, seed, cap = args.n_random, args.seed, args.max_seconds
    with _minari.datasets_path(args.workdir or None):
        path = _minari.record(factory, n_steps, seed, data_format="hdf5").data_path
        return {
            "seq": _measure(_minari.replay_sequential, path),
            "one": _measure(_minari.sample_random, path, n, seed, 1, max_seconds=cap),
            "batch": _measure(_minari.sample_random, path, n, seed, args.batch_size, max_seconds=cap),
        }


def main(args: Args) -> list[Table]:
    columns = ["env", "measure", "trajarena /s", "Minari /s", "trajarena/Minari"]
    table = Table("replay", columns, title="Replay and random access (same recordings)")
    table.notes.append(
        f"Minari: hdf5 backend, images JPEG-encoded (its default). Random access: Minari loads the "
        f"whole episode (dataset[i]); batched Minari reads up to {args.batch_size} distinct episodes "
        f"per batch. Each random measurement stops at {args.n_random:,} transitions or {args.max_seconds} s.")
    table.notes.append("trajarena recordings made with TrajectoryRecorder. reader = "
                       "trajarena.format.reader.TrajectoryReader (iter_episodes, step(i)); dataset = "
                       "trajarena.replay.dataset.TrajectoryDataset (iterate_episodes, transition(i), "
                       "sample_transitions(B, rng); one untimed warm-up call decodes the columns); "
                       "ImitationLearning: reset/step until exhausted.")
    minari_ok, minari_why = _minari.available() if args.minari else (False, "n/a (--no-minari)")
    ta_ok, ta_why = _trajarena.available()

    with tempfile.TemporaryDirectory(prefix="trajarena-replay-", dir=args.workdir or None) as work:
        for index, name in enumerate(args.envs):
            factory, why = env_factory(name)
            if factory is None:
                table.add_row(env=name, measure="all", **{"trajarena /s": why, "Minari /s": why})
                continue
            n = args.cartpole_steps if name == CARTPOLE else args.image_steps
            folder = Path(work) / f"ta-{index}"
            recorded, ta_cell = False, ta_why
            if ta_ok:
                try:
                    _trajarena.record(factory, n, folder, args.seed)
                    recorded = True
                except _trajarena.NotAvailable as exc:
                    ta_cell = str(exc)
            mi = (_minari_results(factory, n, args) if minari_ok
                  else dict.fromkeys(("seq", "one", "batch"), (None, minari_why)))
            for label, key, run in _trajarena_measures(folder, args):
                ta_rate, ta_msg = _measure(run) if recorded else (None, ta_cell)
                mi_rate, mi_msg = mi[key]
                table.add_row(**{"env": name, "measure": label,
                                 "trajarena /s": ta_rate if ta_rate is not None else ta_msg,
                                 "Minari /s": mi_rate if mi_rate is not None else mi_msg,
                                 "trajarena/Minari": ratio(ta_rate, mi_rate)})
            print(f"[{name}] done", flush=True)

    table.print()
    table.save(args.results_dir, extra={"args": dataclasses.asdict(args)})
    return [table]


if __name__ == "__main__":
    main(parse_args(Args))
