"""What the writer process's listener thread costs the game loop: waiting in C against polling in Python.

A recorder with ``writer="process"`` keeps a listener thread in the game process (the writer
process's answers, flushes of a paused game). It used to wake into Python every 25 ms; an env that
releases the GIL more often than the switch interval (CartPole: numpy's draw at each reset) then
starved it, and every release woke it for nothing. It now waits in C (``_capture.watch``) and asks
for the GIL only with work to do. This script runs, in turns, separate processes that step the raw
env, record it with the listener as it is ("watch") and record it with the Python polling that a
build without the C module uses ("poll"), and with a writer thread for reference ("thread"), and
prints per variant the medians of: steps/s, the ratio
to the raw runs beside it, CPU per step (game process and writer process), and context switches per
second of the whole game process and of its background thread (the listener, or the writer thread).

Run: ``.venv-bench/bin/python bench/listener_study.py [--env CartPole-v1] [--rounds 6] [--steps 300000]``
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, Table, parse_args  # noqa: E402
from _envs import CARTPOLE, env_factory, random_policy  # noqa: E402

VARIANTS = ("raw", "watch", "poll", "thread")


@dataclasses.dataclass
class Args:
    """The listener's cost: C watch against Python polling, in separate processes taking turns with the raw env."""

    env: str = CARTPOLE
    rounds: int = dataclasses.field(default=6, metadata={"help": "turns of the variants, order rotating"})
    steps: int = dataclasses.field(default=300_000, metadata={"help": "steps per process"})
    seed: int = 0
    quick: bool = dataclasses.field(default=False, metadata={"help": "tiny budgets (smoke test)"})
    results_dir: str = str(RESULTS_DIR)
    worker: str = dataclasses.field(default="", metadata={"help": "(internal) run one variant and print JSON"})

    def __post_init__(self) -> None:
        if self.quick:
            self.rounds, self.steps = 1, 2_000


def _switches(tid: int | str) -> int:
    status = Path(f"/proc/self/task/{tid}/status").read_text()
    return sum(int(status.split(k)[1].split()[0]) for k in ("\nvoluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"))


def worker(args: Args) -> dict:
    """One process: step ``args.steps`` of the env, raw or recorded; its figures."""
    factory, why = env_factory(args.env)
    if factory is None:
        raise SystemExit(why)
    env = factory()
    folder = tempfile.mkdtemp()
    if args.worker != "raw":
        from trajarena.format import writer_process
        from trajarena.recording.recorder import TrajectoryRecorder

        if args.worker == "poll":
            writer_process._capture = None  # what a build without the C module does
        env = TrajectoryRecorder(env, folder, writer="thread" if args.worker == "thread" else "process")
    policy = random_policy(env, args.seed)
    actions = [policy(None) for _ in range(4096)]
    listener = next((t for t in os.listdir("/proc/self/task") if int(t) != os.getpid()
                     and args.worker != "raw" and int(t) == env.writer._thread.native_id), None)
    env.reset(seed=args.seed)
    start_usage, start, before = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), {}
    before = {t: _switches(t) for t in os.listdir("/proc/self/task")}
    for i in range(args.steps):
        _, _, terminated, truncated, _ = env.step(actions[i & 4095])
        if terminated or truncated:
            env.reset()
    seconds = time.perf_counter() - start
    after = {t: _switches(t) for t in os.listdir("/proc/self/task")}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    env.close()
    if getattr(env, "writer", None) is not None and env.writer._link is not None:
        env.writer._link.proc.wait()
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime - start_usage.ru_utime - start_usage.ru_stime
    return {"steps_s": args.steps / seconds, "cpu_us": cpu / args.steps * 1e6,
            "writer_cpu_us": (child.ru_utime + child.ru_stime) / args.steps * 1e6,
            "switches_s": sum(after[t] - before.get(t, 0) for t in after) / seconds,
            "listener_s": (after[listener] - before[listener]) / seconds if listener else 0.0}


def main(argv: list[str] | None = None) -> Table | None:
    args = parse_args(Args, argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return None
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        order = VARIANTS[r % len(VARIANTS):] + VARIANTS[: r % len(VARIANTS)]  # each variant first as often
        for variant in order:
            out = subprocess.run([sys.executable, __file__, "--env", args.env, "--steps", str(args.steps),
                                  "--seed", str(args.seed), "--worker", variant],
                                 capture_output=True, text=True, check=True).stdout
            runs[variant].append(json.loads(out.strip().splitlines()[-1]))
            print(f"[{args.env}] round {r} {variant}: {runs[variant][-1]['steps_s']:,.0f} steps/s", flush=True)
    table = Table("listener_study", ["variant", "runs", "steps/s", "ratio to raw", "game process CPU us/step",
                                     "writer process CPU us/step", "context switches/s", "background thread switches/s"],
                  title=f"The writer process's listener: C watch against Python polling ({args.env})")
    for variant in VARIANTS:
        rs = runs[variant]
        ratios = [x["steps_s"] / raw["steps_s"] for x, raw in zip(rs, runs["raw"], strict=True)]
        table.add_row(**{"variant": variant, "runs": len(rs), "steps/s": statistics.median(x["steps_s"] for x in rs),
                         "ratio to raw": statistics.median(ratios),
                         "game process CPU us/step": statistics.median(x["cpu_us"] for x in rs),
                         "writer process CPU us/step": statistics.median(x["writer_cpu_us"] for x in rs),
                         "context switches/s": statistics.median(x["switches_s"] for x in rs),
                         "background thread switches/s": statistics.median(x["listener_s"] for x in rs)})
    table.notes = ["medians over the rounds; 'ratio to raw': each run against the raw run of its round; "
                   "'poll' is what a build without the C module does (the listener wakes into Python every 25 ms); "
                   "'thread': writer='thread' (the writer thread's CPU is in the game process's)."]
    table.print()
    table.save(args.results_dir, extra={"args": dataclasses.asdict(args), "runs": runs})
    return table


if __name__ == "__main__":
    main()
