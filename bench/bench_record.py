"""Recording benchmark: trajarena's recorder against the raw env, Minari and np.savez_compressed.

For each env (``duel``, ``CartPole-v1``, ``ALE/Boxing-v5``) and in the same run, it measures

* raw env steps/s under a fixed-seed random policy;
* trajarena ``TrajectoryRecorder`` steps/s (close() included) and its ratio to raw (raw runs
  and recordings interleaved ``--repeats`` times, medians);
* Minari ``DataCollector(data_format="hdf5")`` + ``create_dataset`` steps/s and its ratio to raw;
* bytes per step on disk: trajarena, one ``np.savez_compressed`` file per episode, Minari
  (JPEG for images by default, which is lossy) and Minari with ``jpeg_encoding=False``;
* episode-end pauses (the step that ends an episode + the next reset), p50 / p99 / max,
  and the p99 of the first and the last tenth of the episodes (is it flat as data grows?),
  with the raw env's own pause as the baseline;
* RSS growth while recording one endless CartPole episode (1M steps by default).

Usage::

    .venv-bench/bin/python bench/bench_record.py            # full run, a few minutes
    .venv-bench/bin/python bench/bench_record.py --quick    # seconds, for smoke tests
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _minari  # noqa: E402
import _trajarena  # noqa: E402
from _common import RESULTS_DIR, Table, parse_args, pause_stats, ratio  # noqa: E402
from _envs import (  # noqa: E402
    BOXING, CARTPOLE, DUEL, WARMUP_STEPS, balancing_policy, endless_cartpole, env_factory, npz_bytes_per_step, raw_run,
)


@dataclasses.dataclass
class Args:
    """Recording benchmark: trajarena vs raw env vs Minari vs np.savez_compressed."""

    envs: tuple = (DUEL, CARTPOLE, BOXING)
    quick: bool = dataclasses.field(default=False, metadata={"help": "tiny budgets (smoke test)"})
    seed: int = 0
    cartpole_steps: int = dataclasses.field(
        default=50_000, metadata={"help": "steps recorded on CartPole (~2,000 random episodes)"})
    image_steps: int = dataclasses.field(default=10_000, metadata={"help": "steps recorded on image envs"})
    memory_steps: int = dataclasses.field(
        default=1_000_000, metadata={"help": "length of the endless CartPole episode (trajarena)"})
    minari_memory_steps: int = dataclasses.field(
        default=200_000, metadata={"help": "length of the endless CartPole episode (Minari)"})
    repeats: int = dataclasses.field(
        default=3, metadata={"help": "raw and trajarena runs, interleaved; rates are medians"})
    minari: bool = dataclasses.field(default=True, metadata={"help": "run the Minari baselines"})
    minari_lossless: bool = dataclasses.field(
        default=True, metadata={"help": "also record image envs with Minari jpeg_encoding=False"})
    results_dir: str = str(RESULTS_DIR)
    workdir: str = dataclasses.field(default="", metadata={"help": "where temporary recordings go"})

    def __post_init__(self) -> None:
        self.envs = tuple(self.envs)
        if self.quick:
            self.cartpole_steps = min(self.cartpole_steps, 2_000)
            self.image_steps = min(self.image_steps, 200)
            self.memory_steps = min(self.memory_steps, 20_000)
            self.minari_memory_steps = min(self.minari_memory_steps, 5_000)
            self.repeats = 1


def _try(fn, *args, **kwargs):
    """Run a trajarena adapter; return ``(result, "")`` or ``(None, "n/a (why)")``."""
    try:
        return fn(*args, **kwargs), ""
    except _trajarena.NotAvailable as exc:
        return None, str(exc)


def _round_range(raw_runs: list, ta_runs: list) -> tuple[float, float]:
    """The lowest and highest wall ratio of a round (a recording over the raw run just before it)."""
    rounds = [t.steps_per_s / r.steps_per_s for r, (t, _) in zip(raw_runs, ta_runs, strict=True)]
    return min(rounds), max(rounds)


def _raw_and_trajarena(factory, n: int, args: Args, folder: Path, ta_ok: bool, ta_why: str):
    """Interleave ``args.repeats`` raw runs and trajarena recordings (so that load from other
    processes hits both alike); return the raw ``LoopStats`` and ``(RecordResult | None, cell)``."""
    env = factory()
    raw_run(env, min(n, WARMUP_STEPS), args.seed)
    raw_runs, ta_runs = [], []
    for repeat in range(args.repeats):
        raw_runs.append(raw_run(env, n, args.seed))
        if ta_ok:
            target = folder.with_name(f"{folder.name}-{repeat}")
            ta_runs.append(_try(_trajarena.record, factory, n, target, args.seed))
            if repeat < args.repeats - 1:
                shutil.rmtree(target, ignore_errors=True)
        else:
            ta_runs.append((None, ta_why))
    env.close()
    failed = [(result, cell) for result, cell in ta_runs if result is None]
    return raw_runs, failed[:1] or ta_runs


def _is_image_env(factory) -> bool:
    """True when the observation holds a uint8 ``(H, W, C)`` leaf (a frame)."""
    env = factory()
    try:
        spaces = [env.observation_space]
        while spaces:
            space = spaces.pop()
            sub = getattr(space, "spaces", None)
            if sub is not None:
                spaces.extend(sub.values() if isinstance(sub, dict) else sub)
            elif space.dtype == np.uint8 and len(space.shape or ()) == 3:
                return True
        return False
    finally:
        env.close()


def main(args: Args) -> list[Table]:
    speed = Table("record_speed", ["env", "steps", "raw steps/s", "trajarena steps/s", "trajarena/raw",
                                   "trajarena/raw lowest round", "trajarena/raw highest round",
                                   "trajarena/raw CPU, free core", "trajarena/raw CPU, one core",
                                   "Minari steps/s", "Minari/raw", "trajarena/Minari",
                                   "trajarena loop-only steps/s", "Minari loop-only steps/s"],
                  title="Recording speed (steps/s; recorder close() / create_dataset included)")
    size = Table("record_bytes", ["env", "trajarena B/step", "npz B/step", "Minari B/step",
                                  "Minari lossless B/step", "trajarena/npz", "Minari/npz"],
                 title="Bytes per step on disk (same episodes)")
    pauses = Table("record_pauses", ["env", "recorder", "episode ends", "p50 ms", "p99 ms", "max ms",
                                     "p99 first 10% ms", "p99 last 10% ms"],
                   title="Episode-end pause (ending step() + reset())")
    memory = Table("record_memory", ["recorder", "steps", "RSS growth peak MB", "RSS growth final MB"],
                   title="Memory while recording one endless CartPole episode")
    minari_ok, minari_why = _minari.available() if args.minari else (False, "n/a (--no-minari)")
    ta_ok, ta_why = _trajarena.available()
    speed.notes.append("Loop-only: without close() / create_dataset.")
    speed.notes.append("trajarena/raw is the ratio of the medians; 'lowest/highest round': the ratio of a recording "
                       "to the raw run just before it, over the rounds (how much one round swings).")
    speed.notes.append("CPU ratios (robust to load from other processes): raw env CPU per step divided by "
                       "the recording run's game-loop thread CPU per step ('free core': the writer "
                       "runs on another core) or by its whole-process CPU per step (writer process included), close() "
                       "included ('one core').")
    speed.notes.append(f"Minari: DataCollector(data_format='hdf5', record_infos=False); "
                       f"trajarena {_trajarena.version()}: TrajectoryRecorder on the raw env.")
    size.notes.append("Minari's default stores image observations as JPEG (lossy); "
                      "'Minari lossless' is jpeg_encoding=False. npz: one np.savez_compressed file per episode.")

    with tempfile.TemporaryDirectory(prefix="trajarena-bench-", dir=args.workdir or None) as work:
        for index, name in enumerate(args.envs):
            factory, why = env_factory(name)
            if factory is None:
                speed.add_row(env=name, **{"raw steps/s": why})
                size.add_row(env=name, **{"trajarena B/step": why})
                continue
            n = args.cartpole_steps if name == CARTPOLE else args.image_steps
            image = _is_image_env(factory)
            raw_runs, ta_runs = _raw_and_trajarena(factory, n, args, Path(work) / f"ta-{index}", ta_ok, ta_why)
            raw = statistics.median(r.steps_per_s for r in raw_runs)
            print(f"[{name}] raw {raw:,.0f} steps/s", flush=True)
            ta, ta_cell = ta_runs[-1]
            ta_rate = None
            if ta is not None:
                ta_rate = statistics.median(r.steps_per_s for r, _ in ta_runs)
            mi = mi_lossless = None
            mi_cell = minari_why
            if minari_ok:
                with _minari.datasets_path(args.workdir or None):
                    mi = _minari.record(factory, n, args.seed, data_format="hdf5")
                    if image and args.minari_lossless:
                        mi_lossless = _minari.record(factory, n, args.seed, jpeg_encoding=False)
            npz = npz_bytes_per_step(factory, n, args.seed, folder=work)

            mi_rate = mi.steps_per_s if mi else None
            raw_cpu = statistics.median(r.process_cpu_s / r.steps for r in raw_runs)
            free_core = one_core = None
            if ta is not None:
                free_core = ratio(raw_cpu, statistics.median(r.thread_cpu_s / r.steps for r, _ in ta_runs))
                one_core = ratio(raw_cpu, statistics.median(r.process_cpu_s / r.steps for r, _ in ta_runs))
            speed.add_row(**{
                "env": name, "steps": n, "raw steps/s": raw,
                "trajarena steps/s": ta_rate if ta else ta_cell, "trajarena/raw": ratio(ta_rate, raw),
                **dict(zip(("trajarena/raw lowest round", "trajarena/raw highest round"),
                           _round_range(raw_runs, ta_runs) if ta else (None, None), strict=True)),
                "trajarena/raw CPU, free core": free_core, "trajarena/raw CPU, one core": one_core,
                "Minari steps/s": mi_rate if mi else mi_cell, "Minari/raw": ratio(mi_rate, raw),
                "trajarena/Minari": ratio(ta_rate, mi_rate),
                "trajarena loop-only steps/s": (statistics.median(r.steps / r.loop_s for r, _ in ta_runs)
                                                if ta else None),
                "Minari loop-only steps/s": mi.steps / mi.loop_s if mi else None,
            })
            size.add_row(**{
                "env": name, "trajarena B/step": ta.bytes_per_step if ta else ta_cell,
                "npz B/step": npz, "Minari B/step": mi.bytes_per_step if mi else mi_cell,
                "Minari lossless B/step": (mi_lossless.bytes_per_step if mi_lossless
                                           else ("n/a (not an image env)" if not image else mi_cell)),
                "trajarena/npz": ratio(ta.bytes_per_step if ta else None, npz),
                "Minari/npz": ratio(mi.bytes_per_step if mi else None, npz),
            })
            pause_rows = [("none (raw env)", pause_stats(raw_runs[-1].pauses_s), ""),
                          ("trajarena", ta.pauses if ta else None, ta_cell),
                          ("Minari hdf5", mi.pauses if mi else None, mi_cell)]
            for label, p, cell in pause_rows:
                if p is None:
                    pauses.add_row(env=name, recorder=label, **{"episode ends": cell})
                    continue
                pauses.add_row(**{"env": name, "recorder": label, "episode ends": p["count"],
                                  "p50 ms": p["p50_ms"], "p99 ms": p["p99_ms"], "max ms": p["max_ms"],
                                  "p99 first 10% ms": p["p99_first_ms"],
                                  "p99 last 10% ms": p["p99_last_ms"]})
            print(f"[{name}] done", flush=True)

        every = max(1, args.memory_steps // 100)
        ta_mem, cell = (None, ta_why) if not ta_ok else _try(
            _trajarena.record, endless_cartpole, args.memory_steps, Path(work) / "ta-memory", args.seed,
            sample_memory_every=every, policy_factory=balancing_policy)
        memory.add_row(**{"recorder": "trajarena", "steps": args.memory_steps,
                          "RSS growth peak MB": ta_mem.memory_growth_mb if ta_mem else cell,
                          "RSS growth final MB": ta_mem.memory_final_growth_mb if ta_mem else cell})
        if minari_ok:
            with _minari.datasets_path(args.workdir or None):
                mi_mem = _minari.record(endless_cartpole, args.minari_memory_steps, args.seed,
                                        sample_memory_every=max(1, args.minari_memory_steps // 100))
            memory.add_row(**{"recorder": "Minari hdf5", "steps": args.minari_memory_steps,
                              "RSS growth peak MB": mi_mem.memory_growth_mb})
        else:
            memory.add_row(recorder="Minari hdf5", steps=minari_why)
        memory.notes.append("Growth = RSS sampled every 1% of the run minus RSS after a warm-up "
                            "(first 10%, at most 1,000 steps). Target for trajarena: <= +50 MB.")

    tables = [speed, size, pauses, memory]
    for table in tables:
        table.print()
        table.save(args.results_dir, extra={"args": dataclasses.asdict(args)})
    return tables


if __name__ == "__main__":
    main(parse_args(Args))
