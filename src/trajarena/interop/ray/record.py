"""Recording on a Ray cluster: :func:`record_ray` (``trajarena record ... --ray [ADDRESS]``).

The episodes are cut into *tasks* of consecutive episodes; episode ``i`` always uses seed
``seed + i``, so the data depends neither on the cut, nor on the number of workers, nor on the
nodes. Each task is a Ray task: on whichever node Ray runs it, it makes the recording env (as
``trajarena record`` does), plays its episodes into a staging folder of its own on that node's
disk, closes the recorder (every file finished: see ``docs/format.md``) and publishes the files
to the destination (:class:`~trajarena.interop.ray.destination.Destination`: a shared folder or a
``pyarrow.fs`` URI). A published file is named ``<run>.t<task>.a<attempt>-<stem>.arrow`` (``<stem>``
is the writer's usual unique name; a ``prefix`` recording setting comes first), so each file says
which run, task and attempt wrote it, and names sort in episode order within a run.

**Exactly the requested episodes, each once.** A task's files reach the destination only after
all its episodes are finished. When its worker dies (process killed, out of memory, node lost),
the driver deletes whatever that attempt had published (the names with its prefix), runs the task
again (``max_retries`` times at most), and at the end one clean-up task per node deletes what
dead attempts left in their staging folders: the run ends with ``episodes`` finished episodes in
the destination and no ``.partial`` file there (``trajarena verify`` is clean). An error raised
*by* a task (a bad setting, a full disk) is not retried: the run stops with a
:class:`~trajarena.errors.RecordingError`, in-flight tasks are cancelled and their files removed,
and the destination keeps the complete files of the tasks that had finished.

Progress (episodes and steps/s of all workers) and the :class:`RayRecordSummary` aggregate the
whole cluster. Needs the ``ray`` extra (``pip install 'trajarena[ray]'``), and trajarena installed
on every node.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from trajarena.errors import ClusterError, RecordingError, SettingsError, close_matches, require
from trajarena.interop.ray.cluster import connect, on_every_node
from trajarena.interop.ray.destination import Destination
from trajarena.learn.agents import AGENTS
from trajarena.learn.rollout import RecordSummary, play_episode
from trajarena.learn.rollout import _agents_for, _Job, _RecordBar, _recording_env  # the local recorder's parts
from trajarena.settings import RecordingSettings

__all__ = ["AgentFactory", "CPU_STAGES", "RayRecordSummary", "record_ray"]

#: the stages of a task whose CPU seconds :attr:`RayRecordSummary.task_cpu_seconds` sums over all tasks
CPU_STAGES = ("setup", "episodes", "close", "publish")

#: ``factory(env, player, seed) -> agent``: an agent from your code (pickled to the workers).
AgentFactory = Callable[[gym.Env, int, "int | None"], Any]


@dataclass(frozen=True)
class RayRecordSummary(RecordSummary):
    """What :func:`record_ray` produced: a :class:`~trajarena.learn.rollout.RecordSummary` plus the cluster's side.

    Attributes:
        tasks: the Ray tasks the episodes were cut into.
        retried: one line per attempt that died and was run again (task, attempt, why).
        removed: files deleted after dead attempts (published pieces, staging leftovers).
        hosts: the machines that ran tasks.
        nodes: the Ray nodes that ran tasks (their ids; a machine may hold several).
        destination: where the files went.
        connect_seconds: time to join (or start) the cluster, not in ``seconds``.
        task_cpu_seconds: CPU seconds of the workers, summed over tasks, per stage of a task
            (:data:`CPU_STAGES`: making the env and agents, playing and recording, closing the
            recorder, publishing and cleaning up); unlike wall times, other load does not change them.

    >>> s = RayRecordSummary(4, 400, 4096, ("a.arrow",), 0, 0, 1.0, 2.0, 2, "random", "duel", tasks=2)
    >>> s.steps_per_second, s.tasks
    (200.0, 2)
    """

    tasks: int = 0
    retried: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()
    destination: str = ""
    connect_seconds: float = 0.0
    task_cpu_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "tasks": self.tasks, "retried": list(self.retried),
                "removed": list(self.removed), "hosts": list(self.hosts), "nodes": list(self.nodes), "destination": self.destination,
                "connect_seconds": self.connect_seconds, "task_cpu_seconds": dict(self.task_cpu_seconds)}

    def format(self) -> str:
        """The local summary's lines, plus the cluster: tasks, machines, re-runs, where the files are."""
        lines = [super().format().replace("process(es)", "Ray worker(s)", 1),
                 f"  cluster    {self.tasks} tasks on {len(self.nodes)} node(s) of {len(self.hosts)} machine(s) "
                 f"({', '.join(self.hosts)}); "
                 f"{len(self.retried)} re-run after a worker died, {len(self.removed)} leftover file(s) removed",
                 f"  written to {self.destination}"]
        return "\n".join(lines)


@dataclass(frozen=True)
class _TaskSpec:
    """One attempt of one task: what the worker needs (pickled to it)."""

    task: int
    attempt: int
    prefix: str
    run: str
    episodes: tuple[int, ...]
    env_id: str
    settings: Any
    wrappers_settings: Any
    rec_settings: dict[str, Any]
    agent: Any
    agent_name: str | tuple[str, ...]
    seed: int
    destination: Destination
    staging_dir: str | None


def _staging_root(staging_dir: str | None) -> Path:
    return Path(staging_dir) if staging_dir else Path(tempfile.gettempdir()) / "trajarena-staging"


def _agents(env: gym.Env, spec: _TaskSpec) -> list[Any]:
    seed = spec.seed + spec.episodes[0]
    if callable(spec.agent):
        two = isinstance(env.action_space, gym.spaces.Dict) and "agent_1" in env.action_space.spaces
        return [spec.agent(env, i, seed + 7919 * i) for i in range(2 if two else 1)]
    return _agents_for(env, spec.agent, seed)


def _record_task(spec: _TaskSpec, progress: Any = None) -> dict[str, Any]:
    """In a Ray worker: record the task's episodes into staging, then publish the finished files."""
    cpu = [time.process_time()]  # this worker's CPU seconds at each stage's end (load does not change them)
    staging = _staging_root(spec.staging_dir) / spec.run / spec.prefix
    staging.mkdir(parents=True, exist_ok=False)
    rec = {**spec.rec_settings, "file_path": str(staging), "prefix": spec.prefix}
    env = _recording_env(_Job(spec.task, spec.episodes, spec.env_id, spec.settings, spec.wrappers_settings, rec,
                              spec.agent_name, spec.seed))
    results, pending = [], [0]

    def on_step(_: int) -> None:
        pending[0] += 1
        if progress is not None and pending[0] >= 512:
            progress.add.remote(pending[0])
            pending[0] = 0

    try:
        agents = _agents(env, spec)
        cpu.append(time.process_time())
        for i in spec.episodes:
            results.append({**play_episode(env, agents, seed=spec.seed + i, on_step=on_step), "episode": i})
        cpu.append(time.process_time())
    finally:
        env.close()
    cpu.append(time.process_time())
    if progress is not None and pending[0]:
        progress.add.remote(pending[0])
    fsync = bool(rec.get("fsync"))
    files = [spec.destination.publish(f, fsync=fsync) for f in sorted(staging.rglob("*.arrow"))]
    _remove_tree(staging)
    cpu.append(time.process_time())
    import ray

    return {"results": results, "files": files, "host": socket.gethostname(),
            "node": ray.get_runtime_context().get_node_id(), "cpu": dict(zip(CPU_STAGES, np.diff(cpu).tolist()))}


def _remove_tree(root: Path) -> list[str]:
    """Delete a folder and what it holds; the files it held."""
    found = sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []
    shutil.rmtree(root, ignore_errors=True)
    return found


def _sweep(staging_dir: str | None, run: str) -> list[str]:
    """On one node: delete this run's staging folders (what dead attempts left there)."""
    return _remove_tree(_staging_root(staging_dir) / run)


class _Progress:
    """A Ray actor that sums the steps workers report; the driver takes the sum to update its bar."""

    def __init__(self) -> None:
        self.steps = 0

    def add(self, steps: int) -> None:
        self.steps += steps

    def take(self) -> int:
        steps, self.steps = self.steps, 0
        return steps


def _count(name: str, value: Any, none_ok: bool = False, low: int = 1) -> int | None:
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise SettingsError(f"{name} must be an integer >= {low}{' or None' if none_ok else ''}, got {value!r}.")
    return int(value)


def _agent_name(agent: Any) -> str | tuple[str, ...]:
    if callable(agent):
        return getattr(agent, "__name__", type(agent).__name__)
    names = (agent,) if isinstance(agent, str) else tuple(agent)
    for name in names:
        if not isinstance(name, str) or not (name.endswith(".pt") or name in AGENTS):
            raise SettingsError(f"unknown agent {name!r}.{close_matches(str(name), AGENTS)} Valid agents: "
                                f"{', '.join(sorted(AGENTS))}, the path of a saved policy (.pt), or a callable "
                                "factory(env, player, seed) -> agent.")
    return names[0] if len(names) == 1 else names


def _task_failed(task: int, episodes: tuple[int, ...], exc: Exception) -> RecordingError:
    cause = getattr(exc, "cause", None) or exc
    hint = (" trajarena must be installed on every node of the cluster (or shipped with runtime_env)."
            if "No module named 'trajarena" in str(exc) else "")
    return RecordingError(f"recording task {task} (episodes {episodes[0]}-{episodes[-1]}) failed: "
                          f"{type(cause).__name__}: {cause}.{hint}")


def record_ray(env_id: str, agent: str | Sequence[str] | AgentFactory = "expert", episodes: int = 10,
               out: str | os.PathLike = "data", *, address: str | None = None, workers: int | None = None,
               episodes_per_task: int | None = None, settings: Any = None, wrappers_settings: Any = None,
               username: str = "trajarena", seed: int = 0, progress: bool = True,
               traj_rec_settings: Mapping[str, Any] | None = None, filesystem: Any = None,
               staging_dir: str | None = None, max_retries: int = 3, task_options: Mapping[str, Any] | None = None,
               init_options: Mapping[str, Any] | None = None) -> RayRecordSummary:
    """Record ``episodes`` episodes of ``agent`` playing ``env_id`` as Ray tasks; return the summary.

    Args:
        env_id, agent, episodes, settings, wrappers_settings, username, seed, progress, traj_rec_settings:
            as :func:`trajarena.learn.rollout.record`; ``agent`` may also be a callable
            ``factory(env, player, seed) -> agent`` from your code (pickled to the workers).
        out: where the files go: a folder (on a filesystem every node mounts at the same path), or a
            URI ``pyarrow.fs`` knows (``s3://bucket/prefix``, ``gs://...``, ``file:///...``); see
            :mod:`~trajarena.interop.ray.destination` for what a reader sees meanwhile.
        address: the cluster (:func:`~trajarena.interop.ray.cluster.connect`: ``None`` for Ray's
            default, ``"HOST:PORT"``, ``"local"``...). Ignored when Ray is already initialised here.
        workers: tasks running at once (default: the cluster's CPUs).
        episodes_per_task: consecutive episodes per task (default: about 4 tasks per worker).
        filesystem: a ``pyarrow.fs.FileSystem`` that ``out`` is a path on (instead of a URI).
        staging_dir: the folder each node stages files in (default: its temp dir /trajarena-staging).
        max_retries: how often a task whose worker died is run again.
        task_options: for each task's ``.options()`` (e.g. ``num_cpus``, ``resources``, ``runtime_env``).
        init_options: for ``ray.init`` when this call starts the connection (e.g. ``num_cpus``).

    Returns:
        A :class:`RayRecordSummary` (``print(summary.format())``).

    Raises:
        MissingDependencyError: Ray is not installed (``pip install 'trajarena[ray]'``).
        ClusterError: the cluster cannot be reached, or a task's workers died ``max_retries + 1`` times.
        RecordingError: a task failed (the message names it and the cause), or the destination cannot be used.
        SettingsError: bad episodes, workers, agent or recording settings.

    >>> summary = record_ray("duel", "random", episodes=8, out="s3://bucket/duel", workers=4)  # doctest: +SKIP
    >>> print(summary.format())  # doctest: +SKIP
    """
    ray = require("ray", "ray", "Recording on a Ray cluster")
    episodes = _count("episodes", episodes)
    workers = _count("workers", workers, none_ok=True)
    episodes_per_task = _count("episodes_per_task", episodes_per_task, none_ok=True)
    max_retries = _count("max_retries", max_retries, low=0)
    agent_name = _agent_name(agent)
    user = dict(traj_rec_settings or {})
    run = uuid.uuid4().hex[:8]

    def prefix_of(task: int, attempt: int) -> str:
        return ".".join(p for p in (user.get("prefix", ""), run, f"t{task:05d}", f"a{attempt}") if p)

    RecordingSettings.from_dict({"username": username, **user, "file_path": ".",  # checks every key, the prefix's length
                                 "prefix": prefix_of(episodes, max_retries)})
    rec = {"username": username, **user}
    settings = settings.to_dict(json=False) if hasattr(settings, "to_dict") else settings
    wrappers_settings = wrappers_settings.to_dict(json=False) if hasattr(wrappers_settings, "to_dict") else wrappers_settings
    dest = Destination.of(out, filesystem)
    dest.prepare()
    t0 = time.perf_counter()
    started = connect(address, init_options)
    try:
        connect_seconds = time.perf_counter() - t0
        slots = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        per = episodes_per_task or max(1, math.ceil(episodes / (4 * slots)))
        chunks = [tuple(range(i, min(i + per, episodes))) for i in range(0, episodes, per)]

        def spec(t: int, attempt: int) -> _TaskSpec:
            return _TaskSpec(t, attempt, prefix_of(t, attempt), run, chunks[t], env_id, settings, wrappers_settings,
                             rec, agent, agent_name, seed, dest, staging_dir)

        t1 = time.perf_counter()
        with _RecordBar(progress, episodes) as bar:
            results, retried, removed = _run(ray, spec, len(chunks), min(slots, len(chunks)), max_retries, dest,
                                             bar, dict(task_options or {}), staging_dir, run)
        seconds = time.perf_counter() - t1
    finally:
        if started:
            ray.shutdown()
    rows = sorted((r for out_ in results.values() for r in out_["results"]), key=lambda r: r["episode"])
    if [r["episode"] for r in rows] != list(range(episodes)):
        raise RecordingError(f"the cluster returned episodes {[r['episode'] for r in rows]}, not 0-{episodes - 1}.")
    files = [f for t in sorted(results) for f in results[t]["files"]]
    outcomes = [o for r in rows for o in r["outcomes"]]
    returns = tuple(float(r["return"]) for r in rows)
    return RayRecordSummary(
        episodes=len(rows), steps=sum(r["steps"] for r in rows), bytes=sum(size for _, size in files),
        files=tuple(loc for loc, _ in files), matches_won=outcomes.count(1), matches_lost=outcomes.count(-1),
        mean_return=float(np.mean(returns)), seconds=seconds, workers=min(slots, len(chunks)),
        agent=agent_name if isinstance(agent_name, str) else ",".join(agent_name), env_id=env_id, returns=returns,
        tasks=len(chunks), retried=tuple(retried), removed=tuple(removed),
        hosts=tuple(sorted({out_["host"] for out_ in results.values()})),
        nodes=tuple(sorted({out_["node"] for out_ in results.values()})), destination=dest.uri,
        connect_seconds=connect_seconds,
        task_cpu_seconds={k: float(sum(out_["cpu"][k] for out_ in results.values())) for k in CPU_STAGES})


def _run(ray: Any, spec: Callable[[int, int], _TaskSpec], n_tasks: int, slots: int, max_retries: int,
         dest: Destination, bar: _RecordBar, options: dict[str, Any], staging_dir: str | None,
         run: str) -> tuple[dict[int, dict[str, Any]], list[str], list[str]]:
    """Keep ``slots`` tasks in flight; re-run the attempts whose worker died; clean up. Results per task."""
    from ray.exceptions import RayError, RayTaskError

    remote = ray.remote(_record_task).options(**{"num_cpus": 1, **options, "max_retries": 0})
    meter = ray.remote(num_cpus=0)(_Progress).remote() if bar.progress is not None else None
    todo, attempts = deque(range(n_tasks)), [0] * n_tasks
    inflight: dict[Any, int] = {}
    results: dict[int, dict[str, Any]] = {}
    retried: list[str] = []
    removed: list[str] = []
    try:
        while todo or inflight:
            while todo and len(inflight) < slots:
                t = todo.popleft()
                inflight[remote.remote(spec(t, attempts[t]), meter)] = t
            done, _ = ray.wait(list(inflight), num_returns=1, timeout=0.25)
            if meter is not None:
                bar.put(("steps", 0, ray.get(meter.take.remote())))
            for ref in done:
                t = inflight.pop(ref)
                try:
                    results[t] = ray.get(ref)
                except RayTaskError as exc:
                    raise _task_failed(t, spec(t, 0).episodes, exc) from exc
                except RayError as exc:  # the worker died: nothing of this attempt may stay
                    retried.append(f"task {t} attempt {attempts[t]}: {type(exc).__name__}")
                    removed += dest.remove(spec(t, attempts[t]).prefix + "-")
                    if attempts[t] >= max_retries:
                        raise ClusterError(
                            f"recording task {t} lost its worker {attempts[t] + 1} times (last: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}); the destination keeps the complete "
                            "files of the tasks that finished. Raise max_retries or check the cluster's nodes.") from exc
                    attempts[t] += 1
                    todo.appendleft(t)
                else:
                    for _ in results[t]["results"]:
                        bar.put(("episode", t, 0))
        if meter is not None:  # the steps of the last tasks
            bar.put(("steps", 0, ray.get(meter.take.remote())))
    except BaseException:
        for ref in inflight:
            ray.cancel(ref, force=True)
        ray.wait(list(inflight), num_returns=len(inflight), timeout=30)
        for t in inflight.values():
            removed += dest.remove(spec(t, attempts[t]).prefix + "-")
        raise
    finally:
        removed += [f for found in on_every_node(_sweep, staging_dir, run) for f in found]
        if meter is not None:
            ray.kill(meter)
    return results, retried, removed
