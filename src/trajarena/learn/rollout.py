"""Headless recording of scripted or saved agents, in parallel worker processes.

``record()`` splits the episodes over ``workers`` real processes (``spawn``); each is a rank that makes
its own recording env (``trajarena.make(..., traj_rec_settings)``) and writes its own files into ``out``.
Episode ``i`` is always played with seed ``seed + i``, so the recorded data does not depend on the
number of workers. The parent shows a progress bar (episodes, steps/s, ETA) and returns a
:class:`RecordSummary` (episodes, steps, bytes, outcome rates).

Before any worker starts, the parent makes the first rank's env and agents once, so a bad setting,
env id or agent fails at once, with no progress bar. Ctrl-C (SIGINT to the parent, or to the whole
process group from a terminal) stops every worker at its next step: finished episodes are kept,
each worker's unfinished episode is dropped, and the summary says ``interrupted``; workers ignore
SIGINT themselves, so they never die in the middle of a write.

Agents are named as in :func:`trajarena.learn.agents.make_agent` (``"expert"``, ``"random"``), or a path to a
saved BC policy (``.pt``); ``"expert"`` on CartPole is :class:`CartPoleExpert`, a PD controller.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as out:
...     summary = record("CartPole-v1", "expert", episodes=2, workers=1, out=out, progress=False)
>>> summary.episodes, summary.steps, summary.mean_return
(2, 1000, 500.0)
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from trajarena.learn.agents import ExpertLabels, make_agent
from trajarena.learn.progress import CountBar
from trajarena.errors import RecordingError, SettingsError

__all__ = ["Job", "RecordBar", "RecordSummary", "agents_for", "play_episode", "record", "recording_env"]


def agents_for(env: gym.Env, agent: str | Sequence[str], seed: int | None) -> list[Any]:
    two = isinstance(env.action_space, gym.spaces.Dict) and "agent_1" in env.action_space.spaces
    names = [agent] if isinstance(agent, str) else list(agent)
    if two and len(names) == 1:
        names = names * 2
    if len(names) != (2 if two else 1):
        raise SettingsError(f"agent must name {'two agents (P1, P2)' if two else 'one agent'} for this env, got {agent!r}.")
    return [make_agent(n, env, player=i, seed=None if seed is None else seed + 7919 * i) for i, n in enumerate(names)]


def play_episode(env: gym.Env, agents: Sequence[Any], seed: int | None = None, on_step: Any = None,
                 max_steps: int | None = None) -> dict[str, Any]:
    """Play one episode with one agent (or two, in a two-player env); return its return, steps, outcomes.

    ``outcomes`` lists the ``info["outcome"]`` of every finished match (+1 won, -1 lost) from agent 0's side.
    """
    obs, info = env.reset(seed=seed)
    for a in agents:
        a.reset(seed)
    ret, steps, outcomes, done = 0.0, 0, [], False
    while not done:
        if len(agents) == 1:
            action = agents[0].act(obs, info)
        else:
            action = {f"agent_{i}": a.act(obs, info) for i, a in enumerate(agents)}
        obs, reward, terminated, truncated, info = env.step(action)
        ret += float(np.sum(reward))
        steps += 1
        if int(info.get("outcome", 0) or 0) != 0:
            outcomes.append(int(info["outcome"]))
        done = terminated or truncated or (max_steps is not None and steps >= max_steps)
        if on_step is not None:
            on_step(steps)
    return {"return": ret, "steps": steps, "outcomes": outcomes}


@dataclass(frozen=True)
class Job:
    rank: int
    episodes: tuple[int, ...]
    env_id: str
    settings: Any
    wrappers_settings: Any
    rec_settings: dict[str, Any]
    agent: Any
    seed: int
    label_with: str | None = None


def recording_env(job: Job) -> tuple[gym.Env, Any]:
    """What ``make(env_id, settings, wrappers, traj_rec_settings)`` builds, with the agent and rank in the
    metadata; returned with its recorder."""
    from trajarena.envs.make import raw_env
    from trajarena.recording.recorder import TrajectoryRecorder
    from trajarena.settings import RecordingSettings, WrappersSettings
    from trajarena.wrappers import apply_wrappers

    wrappers = WrappersSettings.from_dict(job.wrappers_settings)
    rec = RecordingSettings.from_dict(job.rec_settings)
    env, settings_dict = raw_env(job.env_id, job.settings)
    if job.label_with is not None:
        env = ExpertLabels(env, job.label_with)
    agents = [job.agent] if isinstance(job.agent, str) else list(job.agent)
    recorder = TrajectoryRecorder.from_settings(
        env, rec, env_id=job.env_id, env_settings=settings_dict, wrappers_settings=wrappers.to_dict(),
        extra_metadata={"rank": job.rank, "agent": ",".join(map(str, agents))},
    )
    return apply_wrappers(recorder, wrappers), recorder


def _check(job: Job) -> None:
    """Make a rank's env (unrecorded) and agents once: bad settings, env ids and agents fail here, early."""
    from trajarena.envs.make import raw_env
    from trajarena.settings import RecordingSettings, WrappersSettings
    from trajarena.wrappers import apply_wrappers

    wrappers = WrappersSettings.from_dict(job.wrappers_settings)
    RecordingSettings.from_dict(job.rec_settings)
    env, _ = raw_env(job.env_id, job.settings)
    try:
        agents_for(apply_wrappers(env, wrappers), job.agent, job.seed)
    finally:
        env.close()


class _Stop(Exception):
    """Internal: the parent asked the workers to stop (Ctrl-C)."""


class _Interrupted(Exception):
    """Internal: Ctrl-C in the recording process itself; carries the episodes finished so far."""

    def __init__(self, results: list[dict[str, Any]]) -> None:
        super().__init__("interrupted")
        self.results = results


def _run_job(job: Job, progress_queue: Any = None, stop: Any = None) -> list[dict[str, Any]]:
    """One rank: make a recording env, play its episodes, report progress; returns per-episode stats.

    When ``stop`` (an event) is set, or on Ctrl-C in this process (:class:`_Interrupted`), the
    unfinished episode is dropped and the finished ones are returned.
    """
    env, recorder = recording_env(job)
    results: list[dict[str, Any]] = []
    try:
        agents = agents_for(env, job.agent, job.seed + job.episodes[0] if job.episodes else job.seed)
        pending = [0]

        def on_step(n: int) -> None:
            if stop is not None and stop.is_set():
                raise _Stop
            pending[0] += 1
            if progress_queue is not None and pending[0] >= 256:
                progress_queue.put(("steps", job.rank, pending[0]))
                pending[0] = 0

        for i in job.episodes:
            try:
                stats = play_episode(env, agents, seed=job.seed + i, on_step=on_step)
            except (_Stop, KeyboardInterrupt) as exc:
                recorder.discard_episode()
                if isinstance(exc, KeyboardInterrupt):
                    raise _Interrupted(results) from None
                break
            stats["episode"] = i
            results.append(stats)
            if progress_queue is not None:
                progress_queue.put(("episode", job.rank, pending[0]))
                pending[0] = 0
    finally:
        env.close()
    return results


class MatchTally:
    """Shared by result records with ``matches_won``/``matches_lost``: ``matches`` and ``win_rate``."""

    matches_won: int
    matches_lost: int

    @property
    def matches(self) -> int:
        return self.matches_won + self.matches_lost

    @property
    def win_rate(self) -> float | None:
        """Matches won / matches finished; None for envs without matches (e.g. CartPole)."""
        return self.matches_won / self.matches if self.matches else None


@dataclass(frozen=True)
class RecordSummary(MatchTally):
    """What a :func:`record` run produced.

    >>> s = RecordSummary(2, 100, 2048, ("a.arrow",), 1, 1, 10.0, 2.0, 1, "expert", "duel")
    >>> s.win_rate, s.steps_per_second
    (0.5, 50.0)
    """

    episodes: int
    steps: int
    bytes: int
    files: tuple[str, ...]
    matches_won: int
    matches_lost: int
    mean_return: float
    seconds: float
    workers: int
    agent: str
    env_id: str
    returns: tuple[float, ...] = field(default=(), repr=False)
    interrupted: bool = False
    planned: int = 0

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {"episodes": self.episodes, "steps": self.steps, "bytes": self.bytes, "files": list(self.files),
                "matches_won": self.matches_won, "matches_lost": self.matches_lost, "win_rate": self.win_rate,
                "mean_return": self.mean_return, "seconds": self.seconds, "steps_per_second": self.steps_per_second,
                "workers": self.workers, "agent": self.agent, "env_id": self.env_id, "returns": list(self.returns),
                "interrupted": self.interrupted}

    def format(self) -> str:
        """A short human-readable summary."""
        lines = [
            f"recorded {self.episodes} episodes of {self.env_id} with {self.agent!r} in {self.workers} process(es)",
            f"  steps      {self.steps:,} ({self.steps_per_second:,.0f} steps/s over {self.seconds:.1f} s)",
            f"  files      {len(self.files)} ({self.bytes / 1e6:.2f} MB, {self.bytes / max(self.steps, 1):.0f} bytes/step)",
            f"  return     {self.mean_return:.1f} mean per episode",
        ]
        if self.matches:
            lines.append(f"  matches    {self.matches_won} won, {self.matches_lost} lost (win rate {self.win_rate:.1%})")
        if self.interrupted:
            lines.append(f"  interrupted after {self.episodes} of {self.planned or '?'} episodes: the finished ones are "
                         "saved, the unfinished ones were dropped")
        return "\n".join(lines)


def _files_in(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in out.rglob("*") if p.is_file() and not p.name.endswith((".tmp", ".part"))}


def record(env_id: str, agent: str | Sequence[str] = "expert", episodes: int = 10, workers: int = 1,
           out: str | Path = "data", settings: Any = None, wrappers_settings: Any = None,
           username: str = "trajarena", seed: int = 0, progress: bool = True,
           traj_rec_settings: Mapping[str, Any] | None = None, label_with: str | None = None) -> RecordSummary:
    """Record ``episodes`` episodes of ``agent`` playing ``env_id`` in ``workers`` parallel processes.

    Args:
        env_id: ``"duel"`` or a Gymnasium id.
        agent: an agent name (``"expert"``, ``"random"``), a ``.pt`` policy path, or a (P1, P2) pair in 2-player mode.
        episodes: how many episodes in total.
        workers: worker processes (each a rank writing its own files); 1 records in this process.
        out: the folder the trajectory files go to.
        settings: env settings (dict or dataclass).
        wrappers_settings: wrappers the agent sees; stored in the files so the loader re-applies them.
        username: stored in every file.
        seed: episode ``i`` uses seed ``seed + i``.
        progress: show a rich progress bar.
        traj_rec_settings: extra recording settings (``ignore_p2``, ``compression``...).
        label_with: an agent name (``"expert"``) whose choice in each visited state is recorded as
            ``info["expert_action"]`` next to the action played (DAgger's labels).

    Worker processes are started with ``spawn`` (safe with threads, same on every OS), so a script that
    calls ``record(workers=2)`` must do so under ``if __name__ == "__main__":``.

    Returns:
        A :class:`RecordSummary` (``print(summary.format())`` shows it; ``record`` itself prints nothing
        but its progress bar).

    Raises:
        SettingsError: bad episodes/workers or an unknown agent.
        RecordingError: a worker failed (the message names its rank and the cause).
    """
    if isinstance(episodes, bool) or int(episodes) != episodes or episodes < 1:
        raise SettingsError(f"episodes must be an integer >= 1, got {episodes!r}.")
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise SettingsError(f"workers must be an integer >= 1, got {workers!r}.")
    workers = min(int(workers), int(episodes))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rec = {"username": username, **dict(traj_rec_settings or {}), "file_path": str(out)}
    settings = settings.to_dict(json=False) if hasattr(settings, "to_dict") else settings
    wrappers_settings = wrappers_settings.to_dict(json=False) if hasattr(wrappers_settings, "to_dict") else wrappers_settings
    jobs = [Job(r, tuple(range(r, episodes, workers)), env_id, settings, wrappers_settings, rec, agent, seed,
                label_with) for r in range(workers)]
    _check(jobs[0])
    before = _files_in(out)
    t0 = time.perf_counter()
    interrupted = False
    with RecordBar(progress, episodes) as bar:
        if workers == 1:
            try:
                results = _run_job(jobs[0], bar)
            except _Interrupted as exc:
                results, interrupted = exc.results, True
        else:
            results, interrupted = _run_parallel(jobs, bar)
    seconds = time.perf_counter() - t0
    after = _files_in(out)
    new = sorted(p for p in after if p not in before or after[p] != before[p])
    results.sort(key=lambda r: r["episode"])
    outcomes = [o for r in results for o in r["outcomes"]]
    returns = tuple(float(r["return"]) for r in results)
    summary = RecordSummary(
        episodes=len(results), steps=sum(r["steps"] for r in results), bytes=sum(after[p] for p in new),
        files=tuple(str(p) for p in new), matches_won=outcomes.count(1), matches_lost=outcomes.count(-1),
        mean_return=float(np.mean(returns)) if returns else float("nan"), seconds=seconds, workers=workers,
        agent=agent if isinstance(agent, str) else ",".join(agent), env_id=env_id, returns=returns,
        interrupted=interrupted, planned=int(episodes))
    return summary


_WORKER_QUEUE: Any = None
_WORKER_STOP: Any = None


def _init_worker(q: Any, stop: Any) -> None:
    global _WORKER_QUEUE, _WORKER_STOP
    _WORKER_QUEUE, _WORKER_STOP = q, stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it sets `stop`
    # a saved-policy agent imports torch later: one thread per worker, the workers already fill the cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _run_job_in_worker(job: Job) -> list[dict[str, Any]]:
    return _run_job(job, _WORKER_QUEUE, _WORKER_STOP)


def _run_parallel(jobs: list[Job], bar: RecordBar) -> tuple[list[dict[str, Any]], bool]:
    """Run the ranks in ``spawn`` worker processes; progress comes back through a queue.

    Returns the per-episode results and whether Ctrl-C stopped the workers early.
    """
    ctx = mp.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    interrupted = False
    with ProcessPoolExecutor(max_workers=len(jobs), mp_context=ctx, initializer=_init_worker,
                             initargs=(q, stop)) as pool:
        futures = {pool.submit(_run_job_in_worker, job): job.rank for job in jobs}
        while not all(f.done() for f in futures):
            try:
                bar.put(q.get(timeout=0.1))
            except queue_mod.Empty:
                pass
            except KeyboardInterrupt:  # the workers finish their step, drop their unfinished episode and return
                stop.set()
                interrupted = True
        while True:
            try:
                bar.put(q.get(timeout=0.05))
            except queue_mod.Empty:
                break
        results = []
        for future, rank in futures.items():
            exc = future.exception()
            if isinstance(exc, BrokenProcessPool):
                raise RecordingError(
                    f"recording worker rank {rank} died ({exc}). Worker processes are started with 'spawn' and "
                    "re-import your main module: call record() under `if __name__ == '__main__':` in a script, "
                    "or use workers=1.") from exc
            if exc is not None:
                raise RecordingError(f"recording worker rank {rank} failed: {type(exc).__name__}: {exc}") from exc
            results.extend(future.result())
    q.close()
    return results, interrupted


class RecordBar(CountBar):
    """Progress (episodes, steps/s, ETA); also the queue-like sink of the in-process worker."""

    def __init__(self, enabled: bool, episodes: int) -> None:
        super().__init__("record", "episodes", episodes, enabled)
        self.steps = 0

    def put(self, item: tuple[str, int, int]) -> None:
        kind, _rank, steps = item
        self.steps += steps
        self.advance(1 if kind == "episode" else 0, f"{self.steps:,} steps, {self.per_second(self.steps):,.0f} steps/s")
