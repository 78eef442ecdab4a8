"""Benchmark the trajectory format: recording speed, bytes per step, episode-end pause.

Run: ``PYTHONPATH=src python bench/bench_format.py [--steps 200000] [--boxing-steps 3000]``.
Prints one table; ALE Boxing rows need ``pip install 'trajarena[atari]'`` (skipped otherwise).
The codec rows write the same stored stream of ``duel`` and Boxing steps with each zstd level
and lz4 (XOR'd frames, 4 MiB chunks): bytes per step and the CPU per step of the whole writer
(game-loop copy, XOR, CRC, compression). ``zstd=None`` is the default, the adaptive level.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from _common import cpu_seconds

from trajarena.recording.recorder import TrajectoryRecorder
from trajarena.format.writer import TrajectoryWriter


@dataclass
class Args:
    steps: int = 200_000
    boxing_steps: int = 3000
    duel_steps: int = 3000
    pause_episodes: int = 2000
    memory_steps: int = 1_000_000
    seed: int = 0


def steps_per_second(env: gym.Env, steps: int, seed: int) -> tuple[float, float, float]:
    """Steps/s (wall clock), and CPU µs/step of the game-loop thread and of the whole process."""
    actions = np.random.default_rng(seed).integers(0, env.action_space.n, steps).tolist()
    env.reset(seed=seed)
    start, cpu, thread = time.perf_counter(), cpu_seconds(), time.thread_time()
    for a in actions:
        _, _, te, tr, _ = env.step(a)
        if te or tr:
            env.reset()
    elapsed, thread = time.perf_counter() - start, time.thread_time() - thread
    env.close()  # includes the writer's last chunk: its CPU counts
    cpu = cpu_seconds() - cpu
    return steps / elapsed, thread / steps * 1e6, cpu / steps * 1e6


def compare(make_env, steps: int, seed: int, name: str, repeats: int = 3) -> list[tuple[str, str]]:
    """Raw vs recorded, alternating runs (best of ``repeats``), plus CPU accounting (load-proof)."""
    raw, rec = [], []
    for _ in range(repeats):
        raw.append(steps_per_second(make_env(), steps, seed))
        with tempfile.TemporaryDirectory() as d:
            rec.append(steps_per_second(TrajectoryRecorder(make_env(), d), steps, seed))
    (raw_sps, raw_cpu, _), (rec_sps, rec_main, rec_cpu) = max(raw), max(rec)
    raw_cpu, rec_main, rec_cpu = min(r[1] for r in raw), min(r[1] for r in rec), min(r[2] for r in rec)
    background = max(0.0, rec_cpu - rec_main)
    return [
        (f"{name} raw / recorded steps/s (wall, best of {repeats})", f"{raw_sps:,.0f} / {rec_sps:,.0f} = {rec_sps / raw_sps:.0%}"),
        (f"{name} CPU µs/step: env / recorder in game loop / writer",
         f"{raw_cpu:.2f} / {rec_main - raw_cpu:.2f} / {background:.2f}"),
        (f"{name} recorded/raw from CPU: with a free core / with none",
         f"{raw_cpu / rec_main:.0%} / {raw_cpu / (rec_main + background):.0%}"),
    ]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.arrow"))


def boxing_frames(steps: int, seed: int) -> tuple[list, list, gym.Space, gym.Space]:
    import ale_py

    gym.register_envs(ale_py)
    return env_stream(gym.make("ALE/Boxing-v5"), steps, seed)


def duel_frames(steps: int, seed: int) -> tuple[list, list, gym.Space, gym.Space]:
    from trajarena.envs.make import raw_env

    return env_stream(raw_env("duel", None)[0], steps, seed)


def env_stream(env: gym.Env, steps: int, seed: int) -> tuple[list, list, gym.Space, gym.Space]:
    """``steps`` steps of a seeded random policy, values copied (envs may reuse their buffers)."""
    import copy

    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    stream = [("reset", (copy.deepcopy(obs), dict(info)))]
    for _ in range(steps):
        a = env.action_space.sample()
        obs, r, te, tr, info = env.step(a)
        stream.append(("step", (a, copy.deepcopy(obs), r, te, tr, dict(info))))
        if te or tr:
            obs, info = env.reset()
            stream.append(("reset", (copy.deepcopy(obs), dict(info))))
    return stream, env.observation_space, env.action_space, env


def codec_rows(name: str, stream: list, obs_space: gym.Space, act_space: gym.Space) -> list[tuple[str, str]]:
    """Bytes/step and writer CPU µs/step for each codec on the same stored steps (best of 3 for CPU)."""
    n_steps = sum(k == "step" for k, _ in stream)
    rows = []
    for compression, level in (("zstd", None), ("zstd", 1), ("zstd", 3), ("zstd", 5), ("zstd", 9), ("lz4", None)):
        cpu, size = [], 0
        for _ in range(3):
            with tempfile.TemporaryDirectory() as d:
                cpu.append(write_stream(Path(d), stream, obs_space, act_space, compression=compression, level=level))
                size = folder_bytes(Path(d))
        rows.append((f"{name} {compression}={level} bytes/step, writer CPU µs/step",
                     f"{size / n_steps:,.0f}, {min(cpu) / n_steps * 1e6:,.1f}"))
    return rows


def write_stream(folder: Path, stream: list, obs_space: gym.Space, act_space: gym.Space, **options) -> float:
    """Write a stored stream; return the CPU seconds it took (writer thread or process included)."""
    start = cpu_seconds()
    with TrajectoryWriter(folder, obs_space, act_space, **options) as w:
        for kind, item in stream:
            if kind == "reset":
                w.reset(*item)
            else:
                w.step(*item)
    return cpu_seconds() - start


def main(args: Args) -> None:
    rows: list[tuple[str, str]] = compare(lambda: gym.make("CartPole-v1"), args.steps, args.seed, "CartPole")
    stream, obs_space, act_space, _ = duel_frames(args.duel_steps, args.seed)
    rows += codec_rows("duel", stream, obs_space, act_space)
    del stream

    try:
        stream, obs_space, act_space, env = boxing_frames(args.boxing_steps, args.seed)
    except ImportError:
        stream = None
    if stream is not None:
        n_steps = sum(k == "step" for k, _ in stream)
        frames = np.stack([item[0] if k == "reset" else item[1] for k, item in stream])
        buf = io.BytesIO()
        np.savez_compressed(buf, obs=frames, actions=np.array([i[0] for k, i in stream if k == "step"]),
                            rewards=np.array([i[2] for k, i in stream if k == "step"]))
        rows.append(("Boxing np.savez_compressed bytes/step", f"{buf.tell() / n_steps:,.0f}"))
        rows += codec_rows("Boxing", stream, obs_space, act_space)
        with tempfile.TemporaryDirectory() as d:
            write_stream(Path(d), stream, obs_space, act_space, frame_transform=None, level=5)
            rows.append(("Boxing zstd=5 without XOR bytes/step", f"{folder_bytes(Path(d)) / n_steps:,.0f}"))
        del stream, frames
        rows += compare(lambda: gym.make("ALE/Boxing-v5"), args.boxing_steps, args.seed, "Boxing")

    # episode-end pause: time of the terminal step() + reset() in the game loop, as the dataset grows
    box = gym.spaces.Box(0, 255, (84, 84, 3), np.uint8)
    frame = np.random.default_rng(args.seed).integers(0, 255, (84, 84, 3), dtype=np.uint8)
    pauses = []
    with tempfile.TemporaryDirectory() as d, TrajectoryWriter(d, box, gym.spaces.Discrete(4), segment_seconds=0.0) as w:
        for _ in range(args.pause_episodes):
            w.reset(frame)
            for _ in range(20):
                w.step(1, frame, 0.0, False, False)
            start = time.perf_counter()
            w.step(1, frame, 1.0, True, False)
            w.reset(frame)
            pauses.append(time.perf_counter() - start)
            w.step(1, frame, 1.0, True, False)
        files = len(list(Path(d).glob("*.arrow")))
    p = np.array(pauses) * 1e3
    half = len(p) // 2
    rows += [(f"episode-end pause p50/p99/max ms ({args.pause_episodes} eps, one file each)",
              f"{np.percentile(p, 50):.3f} / {np.percentile(p, 99):.3f} / {p.max():.2f}"),
             ("pause p99 first half vs second half ms",
              f"{np.percentile(p[:half], 99):.3f} vs {np.percentile(p[half:], 99):.3f} ({files} files)")]
    # memory: one CartPole-shaped episode of 1M steps streams through a constant set of buffers
    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    obs_space = gym.make("CartPole-v1").observation_space
    obs = obs_space.sample()
    with tempfile.TemporaryDirectory() as d, TrajectoryWriter(d, obs_space, gym.spaces.Discrete(2)) as w:
        w.reset(obs)
        for t in range(args.memory_steps):
            w.step(t & 1, obs, 1.0, False, False)
            if t == args.memory_steps // 10:
                early = rss_mb()
        late = rss_mb()
    rows.append((f"RSS after {args.memory_steps // 10:,} vs {args.memory_steps:,} steps of one episode (MB)",
                 f"{early:.1f} vs {late:.1f} ({late - early:+.1f})"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    for name, default in vars(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    main(Args(**vars(parser.parse_args())))
