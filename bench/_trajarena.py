"""Adapters from the bench scripts to trajarena: record, replay, sample, make ``duel``.

The bench scripts only talk to trajarena through these few functions, so a change of the
library's API is absorbed here. When a part of trajarena is missing (not written yet, or an
import fails), the adapter raises :class:`NotAvailable` with a short reason and the scripts
report that column as ``n/a (...)`` instead of failing.

Recording uses ``trajarena.recording.recorder.TrajectoryRecorder(env, file_path=folder)`` on the raw env
(the same env factory as the raw and Minari runs); reading uses both read APIs,
``trajarena.format.reader.TrajectoryReader`` and ``trajarena.replay.dataset.TrajectoryDataset``.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from _common import RecordResult, RssSampler, cpu_seconds, dir_size, pause_stats
from _envs import EnvFactory, random_policy, run_loop


class NotAvailable(Exception):
    """This part of trajarena cannot be benchmarked here; ``str(exc)`` is the table cell."""


def _import(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = f" - {exc.name} missing" if exc.name and not module.startswith(exc.name) else ""
        raise NotAvailable(f"n/a (not available: {module}{missing})") from exc
    except ImportError as exc:
        raise NotAvailable(f"n/a (not available: {module} - {exc})") from exc
    except Exception as exc:  # noqa: BLE001 - a half-written module must not break the bench
        raise NotAvailable(f"n/a ({module} failed to import: {type(exc).__name__}: {exc})") from exc


def available() -> tuple[bool, str]:
    """Return ``(True, "")`` when trajarena's recorder, reader and dataset import, else ``(False, why)``."""
    try:
        _import("trajarena.recording.recorder")
        _import("trajarena.format.reader")
        _import("trajarena.replay.dataset")
    except NotAvailable as exc:
        return False, str(exc)
    return True, ""


def version() -> str:
    try:
        return _import("trajarena").__version__
    except (NotAvailable, AttributeError):
        return "?"


# --------------------------------------------------------------------------------------------
# the built-in game
# --------------------------------------------------------------------------------------------


def duel_factory(settings: dict | None = None) -> tuple[EnvFactory | None, str]:
    """Return ``(factory, "")`` building the raw ``duel`` env (no wrappers), or ``(None, why)``."""
    try:
        envs = _import("trajarena.envs")
        env, _ = envs.raw_env("duel", settings)
        env.close()
    except NotAvailable as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001
        return None, f"n/a (duel failed: {type(exc).__name__}: {exc})"
    return (lambda: envs.raw_env("duel", settings)[0]), ""


# --------------------------------------------------------------------------------------------
# recording
# --------------------------------------------------------------------------------------------


def wrap_recorder(env, folder: str | os.PathLike, username: str = "bench", **options):
    """Wrap ``env`` in ``trajarena.recording.recorder.TrajectoryRecorder`` writing into ``folder`` (``options``: writer options)."""
    recorder = _import("trajarena.recording.recorder")
    env_id = env.spec.id if env.spec is not None else None
    try:
        return recorder.TrajectoryRecorder(env, file_path=str(folder), username=username, env_id=env_id, **options)
    except Exception as exc:  # noqa: BLE001
        raise NotAvailable(f"n/a (TrajectoryRecorder failed: {type(exc).__name__}: {exc})") from exc


def record(
    factory: EnvFactory,
    n_steps: int,
    folder: str | os.PathLike,
    seed: int = 0,
    sample_memory_every: int = 0,
    policy_factory: Callable | None = None,
) -> RecordResult:
    """Record ``n_steps`` of ``factory()`` into ``folder`` with the shared timed loop.

    ``sample_memory_every > 0`` samples the RSS that often, from a baseline taken after the
    first tenth of the run (at most 1,000 steps), to measure growth while recording.
    """
    Path(folder).mkdir(parents=True, exist_ok=True)
    raw = factory()
    env = wrap_recorder(raw, folder)
    policy = (policy_factory or random_policy)(raw, seed)
    sampler = RssSampler()
    on_step = None
    if sample_memory_every > 0:
        warm = min(1000, n_steps // 10)

        def on_step(i: int) -> None:
            if i == warm:
                sampler.baseline()
            elif i > warm and i % sample_memory_every == 0:
                sampler.sample()

    try:
        stats = run_loop(env, n_steps, policy, seed, on_step=on_step)
    except NotAvailable:
        raise
    except Exception as exc:  # noqa: BLE001
        env.close()
        raise NotAvailable(f"n/a (recording failed: {type(exc).__name__}: {exc})") from exc
    start, cpu = time.perf_counter(), cpu_seconds()
    env.close()
    finalize_s = time.perf_counter() - start
    # close() returns once the files are finished; the writer process then exits on its own: its CPU
    # counts once it is reaped, so wait for that here (not in a later raw run's CPU)
    link = getattr(env.writer, "_link", None)
    if link is not None:
        link.proc.wait()
    close_cpu_s = cpu_seconds() - cpu
    if sample_memory_every > 0:
        sampler.sample()
    has_samples = len(sampler.samples) > 1
    return RecordResult(
        steps=stats.steps,
        episodes=stats.episodes,
        loop_s=stats.seconds,
        finalize_s=finalize_s,
        bytes_on_disk=dir_size(folder),
        pauses=pause_stats(stats.pauses_s),
        data_path=str(folder),
        memory_growth_mb=sampler.growth_mb() if has_samples else None,
        memory_final_growth_mb=sampler.final_growth_mb() if has_samples else None,
        thread_cpu_s=stats.thread_cpu_s,
        process_cpu_s=stats.process_cpu_s + close_cpu_s,
    )


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def open_folder(folder: str | os.PathLike, api: str = "reader"):
    """Open every trajectory file in ``folder``: ``api="reader"`` gives
    ``trajarena.format.reader.TrajectoryReader`` (chunked reads, small cache), ``api="dataset"`` gives
    ``trajarena.replay.dataset.TrajectoryDataset`` (training API: decoded columns, vectorised gathers)."""
    if api == "dataset":
        opener = _import("trajarena.replay.dataset").TrajectoryDataset
    elif api == "reader":
        opener = _import("trajarena.format.reader").TrajectoryReader
    else:
        raise ValueError(f"api must be 'reader' or 'dataset', got {api!r}")
    try:
        return opener(str(folder))
    except Exception as exc:  # noqa: BLE001
        raise NotAvailable(f"n/a ({opener.__name__} failed: {type(exc).__name__}: {exc})") from exc


def _episodes(data) -> Any:
    """Episodes in order: ``TrajectoryReader.iter_episodes`` / ``TrajectoryDataset.iterate_episodes``."""
    iterate = getattr(data, "iter_episodes", None) or data.iterate_episodes
    return iterate()


def _length(episode) -> int:
    return len(episode.rewards)


def _touch(tree: Any, t: int) -> Any:
    if isinstance(tree, dict):
        return {k: _touch(v, t) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(_touch(v, t) for v in tree)
    return tree[t]


def replay_sequential(folder: str | os.PathLike, api: str = "reader") -> tuple[int, float]:
    """Read every episode in order and touch every step's observation; ``(steps, seconds)``.

    Opening the files is timed too (it only reads headers and the episode index).
    """
    start = time.perf_counter()
    data = open_folder(folder, api)
    steps = 0
    try:
        for episode in _episodes(data):
            n = _length(episode)
            obs = episode.observations
            for t in range(n):
                _touch(obs, t)
            steps += n
    except NotAvailable:
        raise
    except Exception as exc:  # noqa: BLE001
        raise NotAvailable(f"n/a (sequential read failed: {type(exc).__name__}: {exc})") from exc
    return steps, time.perf_counter() - start


def replay_imitation(folder: str | os.PathLike, max_steps: int = 50_000_000) -> tuple[int, float]:
    """Replay every episode through DIAMBRA-style ``ImitationLearning`` (raw: no wrappers stored
    in these files) until it is exhausted; ``(steps, seconds)``, opening included."""
    module = _import("trajarena.replay.imitation")
    start = time.perf_counter()
    try:
        env = module.ImitationLearning(traj_files_list=str(folder), total_cpus=1, rank=0)
        action = env.action_space.sample()  # ignored by the loader
        steps = 0
        _, info = env.reset()
        while not info.get("exhausted", False) and steps < max_steps:
            done = False
            while not done:
                _, _, terminated, truncated, info = env.step(action)
                steps += 1
                done = terminated or truncated
            _, info = env.reset()
        env.close()
    except Exception as exc:  # noqa: BLE001
        raise NotAvailable(f"n/a (ImitationLearning replay failed: {type(exc).__name__}: {exc})") from exc
    return steps, time.perf_counter() - start


def sample_random(folder: str | os.PathLike, n: int, seed: int = 0, batch_size: int = 1,
                  max_seconds: float = float("inf"), api: str = "reader") -> tuple[int, float]:
    """Fetch ``n`` random transitions, one by one or in batches; ``(transitions, seconds)``.

    ``api="reader"``: ``TrajectoryReader.step(i)`` for uniformly drawn global indices (a batch is
    a loop). ``api="dataset"``: ``TrajectoryDataset.transition(i)`` one by one, or
    ``sample_transitions(batch_size, rng)``; one warm-up call (which decodes the columns once)
    is not timed. Seeded ``np.random.Generator``; stops early after ``max_seconds``.
    """
    data = open_folder(folder, api)
    rng = np.random.default_rng(seed)
    total = len(data)
    try:
        if api == "dataset":
            data.sample_transitions(1, rng=np.random.default_rng(seed + 1))  # decode columns once
            one, batch = data.transition, data.sample_transitions
        else:
            one, batch = data.step, None
    except Exception as exc:  # noqa: BLE001
        raise NotAvailable(f"n/a ({api} warm-up failed: {type(exc).__name__}: {exc})") from exc
    start = time.perf_counter()
    done = 0
    try:
        while done < n and (done == 0 or time.perf_counter() - start < max_seconds):
            if batch is not None and batch_size > 1:
                batch(batch_size, rng=rng)
            else:
                for i in rng.integers(total, size=batch_size):
                    one(int(i))
            done += batch_size
    except Exception as exc:  # noqa: BLE001
        raise NotAvailable(f"n/a (random access failed: {type(exc).__name__}: {exc})") from exc
    return done, time.perf_counter() - start
