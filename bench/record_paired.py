"""Recording overhead on a noisy host: raw env and recorder alternate in short blocks, in one process.

``bench_record.py`` alternates whole runs (10k steps, about half a second each on ``duel``); when the
host's speed drifts by tens of percent from one second to the next (a shared VM), its per-round ratios
swing from 0.5 to 1.4 and a median of five tells little. Here two copies of the env, one bare and one
wrapped in a ``TrajectoryRecorder``, take the same fixed-seed actions in alternating blocks of
``--block-steps`` steps (tens of milliseconds), in both orders; each pair of blocks gives a ratio
(raw seconds / recording seconds for the same steps, the same states: the env is deterministic), and
their median and quartiles are printed with the ratio of the totals.

Before each raw block the recorder's writer *process* is left to finish the chunks it was handed, so
that the raw block runs alone; a recording block then starts with an idle writer (the first chunk
of a block, ~113 steps of ``duel``, is filled without the writer's encoding beside it: with blocks of
1,000 steps most of a block runs as in a long recording). ``close()`` is not in the blocks: its time is
printed, and what it adds per step to a recording of ``--close-over`` steps. With a writer thread
(CartPole) no wait is possible: its backlog runs in the raw block after it.

Run: ``.venv-bench/bin/python bench/record_paired.py [--envs duel] [--pairs 60] [--block-steps 1000]``
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _trajarena  # noqa: E402
from _common import RESULTS_DIR, Table, parse_args  # noqa: E402
from _envs import DUEL, env_factory, random_policy  # noqa: E402


@dataclasses.dataclass
class Args:
    """Recording / raw wall ratio from short alternating blocks in one process (robust to a drifting host)."""

    envs: tuple = (DUEL,)
    pairs: int = dataclasses.field(default=60, metadata={"help": "pairs of blocks (raw, recording) measured"})
    block_steps: int = dataclasses.field(default=1_000, metadata={"help": "steps in one block"})
    warmup_pairs: int = dataclasses.field(default=3, metadata={"help": "pairs run first and not counted"})
    close_over: int = dataclasses.field(
        default=10_000, metadata={"help": "the recording length over which close() is spread in the last column"})
    writer: str = dataclasses.field(default="auto", metadata={"help": "the recorder's writer: auto, process or thread"})
    seed: int = 0
    quick: bool = dataclasses.field(default=False, metadata={"help": "tiny budgets (smoke test)"})
    results_dir: str = str(RESULTS_DIR)

    def __post_init__(self) -> None:
        self.envs = tuple(self.envs)
        if self.quick:
            self.pairs, self.block_steps, self.warmup_pairs = 4, 50, 1


class _Stepper:
    """One env under a fixed action sequence, stepped in blocks; episodes restart unseeded, as in a run."""

    def __init__(self, env, actions: list) -> None:
        self.env, self.actions, self.i = env, actions, 0
        env.reset(seed=0)

    def block(self, n: int) -> float:
        env, actions, size = self.env, self.actions, len(self.actions)
        start = time.perf_counter()
        for _ in range(n):
            _, _, terminated, truncated, _ = env.step(actions[self.i % size])
            self.i += 1
            if terminated or truncated:
                env.reset()
        return time.perf_counter() - start


def _idle_writer(recorder, timeout: float = 30.0) -> None:
    """Wait until the writer process has written every chunk handed to it (no wait with a writer thread)."""
    writer = recorder.writer
    link = getattr(writer, "_link", None)  # bench-only look inside: the writer has no public "idle" query
    if link is None:
        return
    deadline = time.monotonic() + timeout
    while int(link.shared.done[0]) < writer._reclaimed + len(writer._inflight):
        if time.monotonic() > deadline:
            raise RuntimeError("the writer process did not finish its chunks in 30 s")
        time.sleep(0.0002)


def measure(name: str, args: Args) -> dict:
    """The pairs of blocks for one env: per-pair ratios and the close() time."""
    factory, why = env_factory(name)
    if factory is None:
        return {"env": name, "why": why}
    raw, inner = factory(), factory()
    policy = random_policy(raw, args.seed)
    actions = [policy(None) for _ in range(max(args.block_steps * 4, 4096))]
    with tempfile.TemporaryDirectory() as folder:
        recorder = _trajarena.wrap_recorder(inner, folder, writer=args.writer)
        a, b = _Stepper(raw, actions), _Stepper(recorder, actions)
        ratios, raw_s, rec_s = [], 0.0, 0.0
        for pair in range(args.warmup_pairs + args.pairs):
            if pair % 2 == 0:  # both orders, so that a drift within a pair cancels out over the pairs
                _idle_writer(recorder)
                t_raw = a.block(args.block_steps)
                t_rec = b.block(args.block_steps)
            else:
                t_rec = b.block(args.block_steps)
                _idle_writer(recorder)
                t_raw = a.block(args.block_steps)
            if pair >= args.warmup_pairs:
                ratios.append(t_raw / t_rec)
                raw_s += t_raw
                rec_s += t_rec
        start = time.perf_counter()
        recorder.close()
        close_s = time.perf_counter() - start
    raw.close()
    steps = args.pairs * args.block_steps
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    with_close = (raw_s / steps) / (rec_s / steps + close_s / args.close_over)
    return {"env": name, "why": "", "ratios": ratios, "raw_steps_s": steps / raw_s, "rec_steps_s": steps / rec_s,
            "median": statistics.median(ratios), "q1": quartiles[0], "q3": quartiles[2], "total": raw_s / rec_s,
            "close_ms": close_s * 1e3, "with_close": with_close}


def main(argv: list[str] | None = None) -> Table:
    args = parse_args(Args, argv)
    table = Table(
        "record_paired",
        ["env", "pairs x steps", "raw steps/s", "recording steps/s", "ratio median", "ratio q1 - q3",
         "ratio of totals", "close() ms", f"ratio with close() over {args.close_over:,} steps"],
        title="Recording / raw wall ratio, alternating blocks in one process")
    for name in args.envs:
        r = measure(name, args)
        if r["why"]:
            table.add_row(env=name, **{"pairs x steps": r["why"]})
            continue
        print(f"[{name}] pair ratios: " + " ".join(f"{x:.2f}" for x in r["ratios"]), flush=True)
        table.add_row(**{"env": name, "pairs x steps": f"{args.pairs} x {args.block_steps:,}",
                         "raw steps/s": r["raw_steps_s"], "recording steps/s": r["rec_steps_s"],
                         "ratio median": r["median"], "ratio q1 - q3": f"{r['q1']:.3f} - {r['q3']:.3f}",
                         "ratio of totals": r["total"], "close() ms": r["close_ms"],
                         f"ratio with close() over {args.close_over:,} steps": r["with_close"]})
    table.notes = [
        "ratio: raw seconds / recording seconds for the same block of steps (the same actions and states); "
        "1.0 = no overhead. The writer process finishes its chunks before each raw block (see the module doc).",
        f"trajarena {_trajarena.version()}; recorder: TrajectoryRecorder with default settings"
        + ("." if args.writer == "auto" else f", writer={args.writer!r}."),
    ]
    table.print()
    table.save(args.results_dir, extra={"args": dataclasses.asdict(args)})
    return table


if __name__ == "__main__":
    main()
