"""Where a recording's overhead goes: the recorder and variants of it, interleaved in one process.

``record_paired.py`` says *how much* recording costs; this says *where*. A bare env and several
recorded copies of it take the same fixed-seed actions in blocks of ``--block-steps`` steps (one
``duel`` chunk by default, so that every block holds one chunk handoff), in a random order each
round; every writer process is idle before each block, unless ``--busy-writer``: then blocks run
back to back and each writer process encodes its previous chunks beside the game loop, as in a long
recording (use blocks of many chunks, e.g. ``--block-steps 2000``: what the writer process's work
costs the game loop shows only there). Each variant leaves one thing out or changes it, so its
paired difference to the plain recorder (the same round, the same steps) is what that thing costs
the game loop:

* ``recorder``: the defaults, with a writer process;
* ``no frame copy``: the C setter's plan without the frame leaf (its column is left stale: a
  measurement only, the files are not valid recordings);
* ``no compression``: ``compression=None`` (the writer still XOR-codes, checksums and writes);
* ``zstd level 1`` / ``3`` / ``5``: a fixed level instead of the adaptive one (with its bytes/step):
  the writer process runs on the other core, and what it does there slows the game loop through the
  caches it shares (level 5's tables are ~1.3 MB).

The last row is the chunk handoff itself: the plain recorder's ``_handoff`` (closing a chunk,
handing it to the writer process, binding the next one), timed in the game loop (a bench-only look
inside), in microseconds per chunk.

Run: ``.venv-bench/bin/python bench/record_study.py [--rounds 600] [--block-steps 113]``
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _trajarena  # noqa: E402
from _common import RESULTS_DIR, Table, dir_size, parse_args  # noqa: E402
from _envs import DUEL, env_factory, random_policy  # noqa: E402
from record_paired import _idle_writer, _Stepper  # noqa: E402

#: variant -> the writer options it changes
VARIANTS = {
    "recorder": {},
    "no frame copy": {},
    "no compression": {"compression": None},
    "zstd level 1": {"level": 1},
    "zstd level 3": {"level": 3},
    "zstd level 5": {"level": 5},
}


@dataclasses.dataclass
class Args:
    """Where a recording's overhead goes: variants of the recorder interleaved with the raw env."""

    env: str = DUEL
    rounds: int = dataclasses.field(default=600, metadata={"help": "rounds of one block per variant"})
    block_steps: int = dataclasses.field(default=113, metadata={"help": "steps in one block (duel: one chunk)"})
    warmup_rounds: int = 3
    busy_writer: bool = dataclasses.field(
        default=False, metadata={"help": "do not wait for the writer processes between blocks (a long recording)"})
    seed: int = 0
    quick: bool = dataclasses.field(default=False, metadata={"help": "tiny budgets (smoke test)"})
    results_dir: str = str(RESULTS_DIR)

    def __post_init__(self) -> None:
        if self.quick:
            self.rounds, self.block_steps, self.warmup_rounds = 3, 120, 1  # a duel chunk (113 rows) a block


def _without_frame(leaf_plan):
    """``leaf_plan`` whose observation plans leave out the largest leaf (the frame)."""

    def plan(space, buffers):
        out = leaf_plan(space, buffers)
        if out is None or len(buffers) < 2:
            return out
        big = max(range(len(buffers)), key=lambda i: buffers[i][0].nbytes)
        if buffers[big][0].nbytes < 4096 or (big + 1 < len(out) and out[big + 1][0] != 0):
            return out  # no frame, or a leaf after it reuses its path: left as it is
        return out[:big] + out[big + 1 :]

    return plan


def measure(args: Args) -> dict:
    chunks = _trajarena._import("trajarena.format.chunks")  # bench-only: the variant swaps the C setter's plan
    recorder_mod = _trajarena._import("trajarena.recording.recorder")
    reader_mod = _trajarena._import("trajarena.format.reader")
    factory, why = env_factory(args.env)
    if factory is None:
        return {"why": why}
    raw = factory()
    policy = random_policy(raw, args.seed)
    actions = [policy(None) for _ in range(4096)]
    real_plan, no_frame = chunks.leaf_plan, _without_frame(chunks.leaf_plan)
    with tempfile.TemporaryDirectory() as root:
        folders = {name: Path(root) / str(i) for i, name in enumerate(VARIANTS)}
        recs = {name: recorder_mod.TrajectoryRecorder(factory(), file_path=str(folders[name]), writer="process",
                                                      **options)
                for name, options in VARIANTS.items()}
        steppers = {"raw": _Stepper(raw, actions), **{k: _Stepper(r, actions) for k, r in recs.items()}}
        times = {k: [] for k in steppers}
        handoffs = _time_handoffs(recs["recorder"].writer)
        rng = np.random.default_rng(args.seed)
        try:
            for r in range(args.warmup_rounds + args.rounds):
                for name in rng.permutation(list(steppers)):
                    for rec in recs.values() if not args.busy_writer else ():
                        _idle_writer(rec)
                    chunks.leaf_plan = no_frame if name == "no frame copy" else real_plan
                    seconds = steppers[name].block(args.block_steps)
                    if r >= args.warmup_rounds:
                        times[name].append(seconds)
                    elif name == "recorder":
                        handoffs.clear()
        finally:
            chunks.leaf_plan = real_plan
        sizes = {}
        for name, rec in recs.items():
            rec.close()
            n = reader_mod.TrajectoryReader(folders[name]).num_steps
            sizes[name] = dir_size(folders[name]) / n if n else None
    raw.close()
    return {"why": "", "times": times, "bytes": sizes, "handoffs": handoffs}


def _time_handoffs(writer) -> list:
    """Time each of ``writer``'s chunk handoffs (seconds, appended to the list returned)."""
    seconds, handoff = [], writer._handoff  # bench-only look inside: the writer has no handoff timer

    def timed() -> None:
        start = time.perf_counter()
        handoff()
        seconds.append(time.perf_counter() - start)

    writer._handoff = timed
    return seconds


def main(argv: list[str] | None = None) -> Table:
    args = parse_args(Args, argv)
    table = Table("record_study", ["variant", "us/step over raw, median", "ratio of totals",
                                   "us/step saved vs recorder, median", "saved, mean +- s.e.", "bytes/step"],
                  title=f"Where the recording overhead goes ({args.env}, {args.rounds} rounds x {args.block_steps} steps"
                        f"{', busy writer' if args.busy_writer else ''})")
    r = measure(args)
    if r["why"]:
        table.add_row(variant=r["why"])
        table.print()
        return table
    per = 1e6 / args.block_steps
    raw = np.array(r["times"]["raw"])
    base = np.array(r["times"]["recorder"])
    table.add_row(variant="raw env", **{"us/step over raw, median": statistics.median(raw) * per})
    for name in VARIANTS:
        t = np.array(r["times"][name])
        saved = (base - t) * per
        row = {"variant": name, "us/step over raw, median": float(np.median((t - raw) * per)),
               "ratio of totals": float(raw.sum() / t.sum()), "bytes/step": r["bytes"][name]}
        if name != "recorder":
            row["us/step saved vs recorder, median"] = float(np.median(saved))
            row["saved, mean +- s.e."] = f"{saved.mean():.2f} +- {saved.std() / np.sqrt(len(saved)):.2f}"
        table.add_row(**row)
    if r["handoffs"]:
        h = np.array(r["handoffs"]) * 1e6
        table.add_row(variant="chunk handoff (recorder), us per chunk",
                      **{"us/step over raw, median": float(np.median(h)),
                         "saved, mean +- s.e.": f"p90 {np.percentile(h, 90):.0f}, {len(h)} chunks"})
    table.notes = [
        "raw env row: its median us/step. Other rows: the block's us/step minus the raw block's of the same round; "
        "'saved': the recorder's block minus the variant's (positive: the variant is faster).",
        "'no frame copy' is a measurement only (its files hold stale frames); its bytes/step mean nothing.",
        f"trajarena {_trajarena.version()}; every variant: TrajectoryRecorder(writer='process'), "
        + ("encoding beside the game loop (--busy-writer)." if args.busy_writer else "idle before each block."),
    ]
    table.print()
    table.save(args.results_dir, extra={"args": dataclasses.asdict(args)})
    return table


if __name__ == "__main__":
    main()
