"""Run every benchmark, save ``bench/results/*.json`` and print all tables plus a targets table.

The targets table checks the figures of this run against DESIGN.md §5 (ratios against the raw
env and Minari, measured in the same run). Other bench scripts in this folder that follow the
same conventions (``bench_*.py`` with a ``--quick`` flag, e.g. ``duel_speed.py``,
``bench_format.py``, ``bench_diambra.py``, ``bench_ray.py``) are run as subprocesses after the two core ones.

Usage::

    .venv-bench/bin/python bench/run_all.py            # full run (several minutes)
    .venv-bench/bin/python bench/run_all.py --quick    # seconds
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_record  # noqa: E402
import bench_replay  # noqa: E402
from _common import RESULTS_DIR, Table, parse_args  # noqa: E402
from _envs import BOXING, CARTPOLE, DUEL  # noqa: E402

OTHER_SCRIPTS = ("duel_speed.py", "record_paired.py", "listener_study.py", "bench_format.py", "bench_export.py",
                 "bench_view.py", "bench_diambra.py", "bench_ray.py")


@dataclasses.dataclass
class Args:
    """Run all benchmarks and compare with the targets of DESIGN.md §5."""

    quick: bool = dataclasses.field(default=False, metadata={"help": "tiny budgets (smoke test)"})
    minari: bool = dataclasses.field(default=True, metadata={"help": "run the Minari baselines"})
    others: bool = dataclasses.field(default=True, metadata={"help": f"also run {', '.join(OTHER_SCRIPTS)}"})
    results_dir: str = str(RESULTS_DIR)


def _cell(table: Table, column: str, **match) -> object:
    for row in table.rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row.get(column)
    return None


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def targets(record: list[Table], replay: list[Table]) -> Table:
    """Compare this run's figures with DESIGN.md §5; a missing figure reads ``n/a``."""
    speed, size, pauses, memory = record
    (rep,) = replay
    table = Table("targets", ["what", "target", "measured", "met"], title="Targets (DESIGN.md §5)")
    ta_pauses = [_num(r["p99 ms"]) for r in pauses.rows if r["recorder"] == "trajarena"]
    ta_pauses = [p for p in ta_pauses if p is not None]
    single = "random transitions (single, dataset)"
    batched = next((r["measure"] for r in rep.rows if r["measure"].startswith("random transitions (batch")),
                   "random transitions (batch")
    seq_rows = [r for r in rep.rows if r["env"] == BOXING and r["measure"].startswith("sequential")
                and _num(r["trajarena /s"]) is not None]
    best_seq = max(seq_rows, key=lambda r: r["trajarena /s"], default=None)
    checks = [
        ("duel raw steps/s", ">= 5,000", _cell(speed, "raw steps/s", env=DUEL), lambda v: v >= 5000),
        ("recording / raw, Boxing", ">= 0.90", _cell(speed, "trajarena/raw", env=BOXING), lambda v: v >= 0.9),
        ("recording / raw, Boxing, CPU with a free core", ">= 0.90",
         _cell(speed, "trajarena/raw CPU, free core", env=BOXING), lambda v: v >= 0.9),
        ("recording / raw, duel", ">= 0.90", _cell(speed, "trajarena/raw", env=DUEL), lambda v: v >= 0.9),
        ("recording / raw, duel, CPU with a free core", ">= 0.90",
         _cell(speed, "trajarena/raw CPU, free core", env=DUEL), lambda v: v >= 0.9),
        ("recording / raw, CartPole", ">= 0.50", _cell(speed, "trajarena/raw", env=CARTPOLE), lambda v: v >= 0.5),
        ("episode-end pause p99 (worst env), ms", "<= 50", max(ta_pauses) if ta_pauses else None,
         lambda v: v <= 50),
        ("bytes/step, Boxing, lossless", "<= 500", _cell(size, "trajarena B/step", env=BOXING), lambda v: v <= 500),
        ("bytes/step vs npz, Boxing", "< 1.0", _cell(size, "trajarena/npz", env=BOXING), lambda v: v < 1.0),
        ("sequential replay, Boxing, steps/s" + (f" ({best_seq['measure'][18:-1]}, best API)" if best_seq else ""),
         ">= 20,000", best_seq["trajarena /s"] if best_seq else None, lambda v: v >= 20_000),
        ("random transitions, Boxing, /s", ">= 20,000",
         _cell(rep, "trajarena /s", env=BOXING, measure=single), lambda v: v >= 20_000),
        ("random transitions, CartPole, batched, /s", ">= 5,000,000",
         _cell(rep, "trajarena /s", env=CARTPOLE, measure=batched), lambda v: v >= 5_000_000),
        ("RSS growth recording endless CartPole, MB", "<= 50",
         _cell(memory, "RSS growth peak MB", recorder="trajarena"), lambda v: v <= 50),
    ]
    for what, target, measured, ok in checks:
        value = _num(measured)
        table.add_row(what=what, target=target, measured=measured,
                      met=None if value is None else ("yes" if ok(value) else "NO"))
    table.notes.append("Figures from this run only; --quick budgets are too small to judge targets.")
    return table


def run_others(args: Args) -> list[str]:
    """Run the other bench scripts that exist; return one line per script."""
    lines = []
    for name in OTHER_SCRIPTS:
        path = HERE / name
        if not path.exists():
            continue
        helptext = subprocess.run([sys.executable, str(path), "--help"], text=True, capture_output=True).stdout
        cmd = [sys.executable, str(path)]
        if "--results-dir" in helptext:
            cmd += ["--results-dir", args.results_dir]
        if args.quick:
            if "--quick" not in helptext:
                lines.append(f"{name}: skipped (no --quick option)")
                continue
            cmd.append("--quick")
        start = time.perf_counter()
        proc = subprocess.run(cmd, text=True, capture_output=True)
        print(proc.stdout, end="")
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
        lines.append(f"{name}: exit {proc.returncode} in {time.perf_counter() - start:.0f} s")
    return lines


def main(args: Args) -> int:
    start = time.perf_counter()
    common = ["--results-dir", args.results_dir] + (["--quick"] if args.quick else []) + \
        ([] if args.minari else ["--no-minari"])
    record = bench_record.main(parse_args(bench_record.Args, common))
    replay = bench_replay.main(parse_args(bench_replay.Args, common))
    summary = targets(record, replay)
    summary.print()
    summary.save(args.results_dir)
    others = run_others(args) if args.others else []
    for line in others:
        print(line)
    print(f"\nbench/run_all.py finished in {time.perf_counter() - start:.0f} s; "
          f"results in {args.results_dir}")
    return 1 if any("exit " in line and "exit 0" not in line for line in others) else 0


if __name__ == "__main__":
    sys.exit(main(parse_args(Args)))
