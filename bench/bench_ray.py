"""Scaling on Ray: recording with 1 and 2 Ray workers vs the local ``--workers`` path; Ray Data vs one process.

Recording: the same ``--episodes`` expert episodes of ``duel`` (default settings, episode ``i`` on
seed ``i``, so every configuration records the same data) with

* ``record(workers=1)`` — one process, the baseline;
* ``record(workers=2)`` — ``trajarena record --workers 2`` (two spawned processes);
* ``record_ray(workers=1)`` and ``record_ray(workers=2)`` on a local Ray cluster (``ray.init`` once,
  timed apart; one untimed warm-up run starts the Ray worker processes), with one task per worker
  and with one episode per task, so that the cost of a task shows: scheduling, the env and
  recorder made per task, staging and publishing its files.

Configurations are interleaved ``--repeats`` times and the medians compared, so load from other
processes hits all of them alike. Ray's overhead per episode is ``(Ray, 1 worker, 1 episode per
task - local, 1 process) / episodes``; a no-op task's round trip is given for scale.

Reading: the recorded files decoded into transitions (observation, action, reward, next
observation) by one process (the read task's own code, no Ray), by ``read_trajectories`` with its
batches sent to the driver (``iter_batches``, 2 and 4 read tasks), and consumed in the read tasks
(``map_batches``: what Ray Train workers reading their shards get). The time to open the files'
headers (what the driver does before planning the reads) is given per file.

Run: ``PYTHONPATH=src python bench/bench_ray.py [--quick] [--results-dir DIR] [--workdir DIR]``
(tables printed and saved as ``DIR/ray_record.json`` and ``DIR/ray_read.json``).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, Table, parse_args, ratio  # noqa: E402


@dataclasses.dataclass
class Args:
    """Recording with Ray tasks vs local processes, and Ray Data reads vs one process."""

    episodes: int = dataclasses.field(default=48, metadata={"help": "duel episodes per recording run"})
    repeats: int = dataclasses.field(default=3, metadata={"help": "interleaved runs of each configuration"})
    cpus: int = dataclasses.field(default=2, metadata={"help": "CPUs of the local Ray cluster"})
    quick: bool = dataclasses.field(default=False, metadata={"help": "tiny budgets (smoke test)"})
    results_dir: str = str(RESULTS_DIR)
    workdir: str = dataclasses.field(default="", metadata={"help": "where temporary files go (default: system temp)"})


def _record_runs(args: Args, root: Path, settings: dict | None, episodes: int) -> tuple[Table, dict, Path]:
    import ray

    from trajarena.interop.ray import record_ray
    from trajarena.learn.rollout import record

    def local(workers: int, out: Path):
        return record("duel", "expert", episodes=episodes, workers=workers, out=out, settings=settings, progress=False)

    def on_ray(workers: int, per_task: int, out: Path):
        return record_ray("duel", "expert", episodes=episodes, workers=workers, episodes_per_task=per_task, out=out,
                          settings=settings, progress=False)

    configs = {
        "local, 1 process": lambda o: local(1, o),
        "local, 2 processes (--workers 2)": lambda o: local(2, o),
        "Ray, 1 worker, 1 task": lambda o: on_ray(1, episodes, o),
        "Ray, 1 worker, 1 episode per task": lambda o: on_ray(1, 1, o),
        "Ray, 2 workers, 2 tasks": lambda o: on_ray(2, -(-episodes // 2), o),
        "Ray, 2 workers, 1 episode per task": lambda o: on_ray(2, 1, o),
    }
    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t0
    on_ray(2, 1, root / "warmup-ray")  # starts the Ray workers (imports included): not timed
    local(1, root / "warmup-local")  # fills this process's caches (imports, the game's sprites): not timed

    @ray.remote
    def noop() -> None:
        return None

    ray.get([noop.remote() for _ in range(20)])
    t0 = time.perf_counter()
    for _ in range(50):
        ray.get(noop.remote())
    noop_ms = (time.perf_counter() - t0) / 50 * 1e3
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    summaries: dict[str, object] = {}
    for rep in range(args.repeats):
        for i, (name, run) in enumerate(configs.items()):
            summaries[name] = run(root / f"config{i}-run{rep}")
            seconds[name].append(summaries[name].seconds)
    med = {name: statistics.median(times) for name, times in seconds.items()}
    best = {name: min(times) for name, times in seconds.items()}
    table = Table("ray_record", ["recording", "tasks", "steps", "seconds", "best seconds", "steps/s",
                                 "x local 1 process", "x local 1 process, best"],
                  title=f"Recording {episodes} duel episodes: Ray tasks vs local processes (medians, and best runs)")
    base = med["local, 1 process"]
    for name in configs:
        summary = summaries[name]
        table.add_row(**{"recording": name, "tasks": getattr(summary, "tasks", None), "steps": summary.steps,
                         "seconds": med[name], "best seconds": best[name], "steps/s": summary.steps / med[name],
                         "x local 1 process": ratio(base, med[name]),
                         "x local 1 process, best": ratio(best["local, 1 process"], best[name])})
    per_episode = (med["Ray, 1 worker, 1 episode per task"] - base) / episodes * 1e3
    per_task = (med["Ray, 1 worker, 1 episode per task"] - med["Ray, 1 worker, 1 task"]) / max(episodes - 1, 1) * 1e3
    table.notes.append(f"Ray's overhead, 1 worker, 1 episode per task: {per_episode:.1f} ms per episode over one "
                       f"process; of which {per_task:.1f} ms per extra task (a task makes its env and recorder, "
                       f"stages and publishes its files); a no-op Ray task's round trip: {noop_ms:.2f} ms.")
    cpu = summaries["Ray, 1 worker, 1 episode per task"].task_cpu_seconds
    whole = summaries["Ray, 1 worker, 1 task"].task_cpu_seconds
    per_task_cpu = {k: v / episodes * 1e3 for k, v in cpu.items()}
    table.notes.append("Worker CPU per task, 1 episode per task (load-independent): "
                       + ", ".join(f"{k} {v:.1f} ms" for k, v in per_task_cpu.items())
                       + f"; recording an episode in one long task: {whole['episodes'] / episodes * 1e3:.1f} ms.")
    table.notes.append(f"ray.init of a local {args.cpus}-CPU cluster: {init_s:.1f} s (not in the figures). Local "
                       "runs include starting their spawned processes; Ray's workers were started by a warm-up run. "
                       "Every run records the same episodes (the same seeds).")
    extra = {"ray_overhead_ms_per_episode": per_episode, "ray_overhead_ms_per_task": per_task,
             "noop_task_ms": noop_ms, "ray_init_s": init_s, "worker_cpu_ms_per_task": per_task_cpu,
             "worker_cpu_ms_per_episode_one_task": whole["episodes"] / episodes * 1e3}
    return table, extra, root / "config0-run0"  # what the one-process recorder wrote


def _read_runs(args: Args, folder: Path) -> tuple[Table, dict]:
    from trajarena.interop.ray import read_trajectories
    from trajarena.interop.ray.data import _read, plan_read_tasks
    from trajarena.replay.dataset import TrajectoryDataset, list_trajectory_files

    files = list_trajectory_files(folder)
    data = TrajectoryDataset(files)
    lengths = [[e.length for e in data.episodes if e.file_index == f] for f in range(len(files))]
    data.close()

    def one_process() -> int:
        (plan,) = plan_read_tasks(files, lengths, 1)
        return sum(block.num_rows for block in _read(plan, True, 1024, True))

    def with_ray(tasks: int):
        def run() -> int:
            ds = read_trajectories(folder, override_num_blocks=tasks)
            return sum(len(b["step"]) for b in ds.iter_batches(batch_size=1024, batch_format="numpy"))
        return run

    def in_tasks(tasks: int):
        def run() -> int:  # consumed where it is read (as training workers would): nothing goes to the driver
            ds = read_trajectories(folder, override_num_blocks=tasks)
            return int(ds.map_batches(lambda b: {"n": [len(b["step"])]}, batch_size=None).sum("n"))
        return run

    configs = {"one process (no Ray)": one_process, "Ray Data, 2 read tasks, to the driver": with_ray(2),
               "Ray Data, 4 read tasks, to the driver": with_ray(4)}
    if not args.quick:  # its map workers take seconds to start: not in the smoke test
        configs["Ray Data, 2 read tasks, consumed in the tasks"] = in_tasks(2)
        in_tasks(2)()  # warm-up
    with_ray(2)()  # warm-up: Ray Data's first run starts its executor
    t0 = time.perf_counter()
    TrajectoryDataset(files).close()
    open_ms = (time.perf_counter() - t0) / len(files) * 1e3
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    rows: dict[str, int] = {}
    for _ in range(args.repeats):
        for name, run in configs.items():
            t0 = time.perf_counter()
            rows[name] = run()
            seconds[name].append(time.perf_counter() - t0)
    table = Table("ray_read", ["read", "transitions", "seconds", "transitions/s", "x one process"],
                  title="Decoding the recording into transitions: Ray Data vs one process (medians)")
    base = statistics.median(seconds["one process (no Ray)"])
    for name in configs:
        med = statistics.median(seconds[name])
        table.add_row(**{"read": name, "transitions": rows[name], "seconds": med, "transitions/s": rows[name] / med,
                         "x one process": ratio(base, med)})
    table.notes.append("Each transition: the observation (its frame included), action, reward and next observation. "
                       "Batches sent to the driver cross Ray's object store, and the driver needs a core too.")
    table.notes.append(f"Opening {len(files)} file(s) (headers, episode index: what read_trajectories does on "
                       f"the driver before it plans the reads): {open_ms:.2f} ms per file.")
    return table, {"open_ms_per_file": open_ms, "files": len(files)}


def main(args: Args) -> list[Table]:
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        table = Table("ray_record", ["recording", "steps/s"], title="Recording with Ray")
        table.add_row(recording="all", **{"steps/s": f"n/a ({exc}: pip install 'trajarena[ray]')"})
        table.print()
        return [table]
    import ray

    episodes = 4 if args.quick else args.episodes
    settings = {"step_ratio": 60, "frame_shape": (24, 32, 3)} if args.quick else None
    if args.quick:
        args = dataclasses.replace(args, repeats=1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="trajarena-ray-", dir=args.workdir or None) as tmp:
        try:
            record_table, record_extra, folder = _record_runs(args, Path(tmp), settings, episodes)
            read_table, read_extra = _read_runs(args, folder)
        finally:
            ray.shutdown()
    for table, extra in ((record_table, record_extra), (read_table, read_extra)):
        if args.quick:
            table.notes.append("--quick: budgets too small to judge.")
        table.print()
        table.save(args.results_dir, extra=extra)
    return [record_table, read_table]


if __name__ == "__main__":
    main(parse_args(Args))
