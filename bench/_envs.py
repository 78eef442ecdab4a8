"""The environments of the benchmarks, their policies, the timed step loop and the npz baseline.

Every recorder (none, trajarena, Minari) is driven by the same :func:`run_loop` over the same
env factory, the same fixed-seed policy and the same first reset seed, so they all see the same
episodes and their figures can be divided by each other.

>>> import gymnasium as gym
>>> env = gym.make("CartPole-v1")
>>> stats = run_loop(env, 50, random_policy(env, seed=0), seed=0)
>>> stats.steps, stats.episodes == len(stats.pauses_s)
(50, True)
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from _common import cpu_seconds

Policy = Callable[[Any], Any]
EnvFactory = Callable[[], gym.Env]

CARTPOLE = "CartPole-v1"
BOXING = "ALE/Boxing-v5"
DUEL = "duel"
# Untimed steps before measuring: duel fills its sprite caches over the first few thousand
# steps (about 2x slower while cold), so a short warm-up would understate its raw speed.
WARMUP_STEPS = 5_000


def env_factory(name: str) -> tuple[EnvFactory | None, str]:
    """Return ``(factory, "")`` for a bench env name, or ``(None, why)`` when it cannot be made.

    ``duel`` comes from trajarena (see ``_trajarena.make_duel``); ``ALE/...`` needs ale-py.
    """
    if name == DUEL:
        from _trajarena import duel_factory

        return duel_factory()
    if name.startswith("ALE/"):
        try:
            import ale_py
        except ImportError:
            return None, "n/a (ale-py not installed)"
        gym.register_envs(ale_py)
    try:
        gym.make(name).close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available here"
        return None, f"n/a ({type(exc).__name__}: {exc})"
    return (lambda: gym.make(name)), ""


def random_policy(env: gym.Env, seed: int) -> Policy:
    """A uniformly random policy whose action sequence is fixed by ``seed``."""
    space = env.action_space
    space.seed(seed)
    return lambda _obs: space.sample()


def balancing_policy(_env: gym.Env | None = None, seed: int = 0) -> Policy:
    """A linear controller that keeps CartPole's pole up (and the cart near the centre)."""

    def act(obs: np.ndarray) -> int:
        x, x_dot, theta, theta_dot = (float(v) for v in obs)
        return int(0.05 * x + 0.2 * x_dot + 1.0 * theta + 0.4 * theta_dot > 0)

    return act


class EndlessEpisode(gym.Wrapper):
    """Turns an env into one never-ending episode: a terminal step silently restarts the env.

    Used to record a million-step episode of CartPole (its ``TimeLimit`` removed) and check
    that the recorder's memory stays flat.

    >>> env = EndlessEpisode(gym.make("CartPole-v1", max_episode_steps=None))
    >>> _ = env.reset(seed=0)
    >>> any(env.step(0)[2] for _ in range(100))
    False
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.restarts = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            self.restarts += 1
            obs, info = self.env.reset()
        return obs, reward, False, False, info


def endless_cartpole() -> gym.Env:
    """CartPole-v1 with no time limit, as one endless episode."""
    return EndlessEpisode(gym.make(CARTPOLE, max_episode_steps=None))


@dataclasses.dataclass
class LoopStats:
    """What one timed run of :func:`run_loop` measured."""

    steps: int
    seconds: float
    episodes: int
    pauses_s: list[float]
    thread_cpu_s: float = 0.0  # CPU time of the calling thread (the game loop)
    process_cpu_s: float = 0.0  # CPU time of the whole process (writer thread too) and its exited children

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else float("nan")


def run_loop(
    env: gym.Env,
    n_steps: int,
    policy: Policy,
    seed: int,
    on_step: Callable[[int], None] | None = None,
    reset_options: dict | None = None,
) -> LoopStats:
    """Step ``env`` for exactly ``n_steps`` steps with ``policy``, timed with ``time.perf_counter``.

    Only the first reset is seeded (``seed``): later episodes follow from the env's RNG, so the
    run is deterministic without paying for a re-seed at every episode end (``ALE`` reloads the
    game when seeded: about 100 ms). ``reset_options`` go to the later resets (Minari's
    collector needs ``{"minari_autoseed": False}`` not to re-seed).

    The pause of an episode end is the time of the ``step()`` that ended it plus the time of
    the following ``reset()`` - what a player would feel as a stall. ``on_step(i)`` is called
    after each step (memory sampling). CPU times are measured too: unlike wall time, they
    hardly change when other processes load the machine.
    """
    perf = time.perf_counter
    pauses: list[float] = []
    episodes = 0
    cpu_thread, cpu_process = time.thread_time(), cpu_seconds()
    start = perf()
    obs, _ = env.reset(seed=seed)
    for i in range(n_steps):
        t0 = perf()
        obs, _reward, terminated, truncated, _info = env.step(policy(obs))
        if terminated or truncated:
            episodes += 1
            if i == n_steps - 1:
                break  # no trailing reset: it would leave an empty episode in the recording
            obs, _ = env.reset(options=reset_options)
            pauses.append(perf() - t0)
        if on_step is not None:
            on_step(i)
    seconds = perf() - start
    return LoopStats(n_steps, seconds, episodes, pauses, time.thread_time() - cpu_thread,
                     cpu_seconds() - cpu_process)


def raw_run(env: gym.Env, n_steps: int, seed: int = 0) -> LoopStats:
    """One timed run of the bare env under the fixed-seed random policy."""
    return run_loop(env, n_steps, random_policy(env, seed), seed)


# --------------------------------------------------------------------------------------------
# np.savez_compressed baseline
# --------------------------------------------------------------------------------------------


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts / tuples into ``{"a/b": leaf}``.

    >>> sorted(flatten({"frame": 1, "P1": {"health": 2}, "t": (3, 4)}))
    ['P1/health', 'frame', 't/0', 't/1']
    """
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}/"))
        return out
    if isinstance(tree, tuple):
        out = {}
        for idx, value in enumerate(tree):
            out.update(flatten(value, f"{prefix}{idx}/"))
        return out
    return {prefix.rstrip("/") or "value": tree}


def npz_bytes_per_step(factory: EnvFactory, n_steps: int, seed: int = 0,
                       folder: str | os.PathLike | None = None) -> float:
    """Record the same episodes as :func:`run_loop` into one ``np.savez_compressed`` file per episode.

    Each file holds the observations (``T + 1``, final one included), actions, rewards,
    terminations and truncations of one episode. Returns total bytes on disk / steps.
    """
    env = factory()
    policy = random_policy(env, seed)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        total = 0
        episodes = 0
        obs, _ = env.reset(seed=seed)
        buf = _EpisodeBuffer(obs)
        for i in range(n_steps):
            action = policy(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            buf.add(obs, action, reward, terminated, truncated)
            if terminated or truncated or i == n_steps - 1:
                path = Path(tmp) / f"ep{episodes:06d}.npz"
                buf.save(path)
                total += path.stat().st_size
                path.unlink()
                episodes += 1
                if terminated or truncated:
                    obs, _ = env.reset()
                    buf = _EpisodeBuffer(obs)
        env.close()
    return total / n_steps


class _EpisodeBuffer:
    def __init__(self, first_obs: Any) -> None:
        self.columns: dict[str, list] = {f"observations/{k}": [np.asarray(v)]
                                         for k, v in flatten(first_obs).items()}
        self.other: dict[str, list] = {"rewards": [], "terminations": [], "truncations": []}

    def add(self, obs, action, reward, terminated, truncated) -> None:
        for key, value in flatten(obs).items():
            self.columns[f"observations/{key}"].append(np.asarray(value))
        for key, value in flatten(action).items():
            self.other.setdefault(f"actions/{key}", []).append(np.asarray(value))
        self.other["rewards"].append(reward)
        self.other["terminations"].append(terminated)
        self.other["truncations"].append(truncated)

    def save(self, path: Path) -> None:
        arrays = {k: np.stack(v) for k, v in self.columns.items()}
        arrays.update({k: np.asarray(v) for k, v in self.other.items()})
        np.savez_compressed(path, **arrays)
