"""Evaluate a saved policy (or a named agent) next to the expert and a random agent, on the same seeds.

Every contender plays the same episodes (episode ``i`` uses seed ``seed + i``) in an env made with the
same env settings and wrappers settings; for a BC policy those are the ones stored in the policy file,
so it sees exactly the observations it was trained on. In ``duel`` a match is won or lost against the
CPU (``info["outcome"]``); the win rate is matches won / matches finished, with a Wilson 95 % interval,
and the mean episode return comes with a Student-t 95 % interval.

>>> result = evaluate("expert", "CartPole-v1", episodes=2, baselines=("random",), progress=False)
>>> [r.name for r in result.results], result.results[0].mean_return
(['expert', 'random'], 500.0)
"""

from __future__ import annotations

import math
import multiprocessing as mp
import queue as queue_mod
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trajarena.errors import SettingsError
from trajarena.learn.rollout import MatchTally
from trajarena.learn.progress import CountBar

__all__ = ["AgentEval", "EvalResult", "evaluate", "t_critical", "versus_cpu_settings", "wilson_interval"]

# two-sided 95 % Student-t critical values for 1..30 degrees of freedom
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def t_critical(df: int) -> float:
    """The two-sided 95 % Student-t critical value (1.96 beyond 30 degrees of freedom, nan for none).

    >>> t_critical(9), t_critical(1000)
    (2.262, 1.96)
    """
    if df < 1:
        return math.nan
    return _T95[df - 1] if df <= len(_T95) else 1.96


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (stays inside [0, 1], sensible at 0 and n).

    >>> tuple(round(v, 3) for v in wilson_interval(9, 10))
    (0.596, 0.982)
    """
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class AgentEval(MatchTally):
    """Results of one contender over the evaluation episodes.

    >>> e = AgentEval("bc", (1.0, 3.0), (10, 12), 3, 1)
    >>> e.mean_return, e.win_rate, e.matches
    (2.0, 0.75, 4)
    """

    name: str
    returns: tuple[float, ...]
    steps: tuple[int, ...]
    matches_won: int
    matches_lost: int
    seconds: float = 0.0

    @property
    def episodes(self) -> int:
        return len(self.returns)

    @property
    def win_rate_ci(self) -> tuple[float, float]:
        return wilson_interval(self.matches_won, self.matches)

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else math.nan

    @property
    def return_ci(self) -> tuple[float, float]:
        """Student-t 95 % interval of the mean return (nan with one episode)."""
        n = len(self.returns)
        if n < 2:
            return (math.nan, math.nan)
        half = t_critical(n - 1) * float(np.std(self.returns, ddof=1)) / math.sqrt(n)
        return (self.mean_return - half, self.mean_return + half)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "episodes": self.episodes, "returns": list(self.returns), "steps": list(self.steps),
                "matches_won": self.matches_won, "matches_lost": self.matches_lost, "win_rate": self.win_rate,
                "win_rate_ci": list(self.win_rate_ci), "mean_return": self.mean_return,
                "return_ci": list(self.return_ci), "seconds": self.seconds}


@dataclass(frozen=True)
class EvalResult:
    """All contenders' results on the same seeds, with a comparison table (:meth:`table`)."""

    env_id: str
    difficulty: int | None
    seed: int
    results: tuple[AgentEval, ...]

    def __getitem__(self, name: str) -> AgentEval:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no contender {name!r}; have {[r.name for r in self.results]}")

    def relative_win_rate(self, name: str | None = None, reference: str = "expert") -> float | None:
        """``name``'s win rate divided by the reference's (the first contender against the expert by default)."""
        a = self.results[0] if name is None else self[name]
        b = self[reference]
        if a.win_rate is None or not b.win_rate:
            return None
        return a.win_rate / b.win_rate

    def table(self) -> str:
        """A plain-text comparison table (the numbers the report plots)."""
        head = f"{'agent':<12} {'episodes':>8} {'win rate':>9} {'95% CI':>15} {'mean return':>12} {'95% CI':>19} {'steps':>8}"
        lines = [f"{self.env_id}, difficulty {self.difficulty}, seeds {self.seed}..{self.seed + max(len(r.returns) for r in self.results) - 1}",
                 head, "-" * len(head)]
        for r in self.results:
            wr = "-" if r.win_rate is None else f"{r.win_rate:.1%}"
            wci = "-" if r.win_rate is None else f"[{r.win_rate_ci[0]:.2f}, {r.win_rate_ci[1]:.2f}]"
            lo, hi = r.return_ci
            rci = "-" if math.isnan(lo) else f"[{lo:.1f}, {hi:.1f}]"
            lines.append(f"{r.name:<12} {r.episodes:>8} {wr:>9} {wci:>15} {r.mean_return:>12.1f} {rci:>19} {sum(r.steps):>8}")
        rel = self.relative_win_rate() if any(r.name == "expert" for r in self.results[1:]) else None
        if rel is not None:
            lines.append(f"{self.results[0].name} reaches {rel:.1%} of the expert's win rate")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"env_id": self.env_id, "difficulty": self.difficulty, "seed": self.seed,
                "results": [r.to_dict() for r in self.results],
                "relative_win_rate": self.relative_win_rate() if len(self.results) > 1 and any(
                    r.name == "expert" for r in self.results[1:]) else None}


def _contender(spec: Any) -> tuple[str, Any]:
    """(display name, spec) for an agent name, a .pt path or a BCPolicy."""
    from trajarena.learn.policy import BCPolicy

    if isinstance(spec, BCPolicy):
        return "policy", spec
    if isinstance(spec, str | Path) and str(spec).endswith(".pt"):
        return Path(spec).stem, BCPolicy.load(spec)
    if isinstance(spec, str):
        return spec, spec
    if callable(getattr(spec, "act", None)):
        return str(getattr(spec, "name", type(spec).__name__)), spec
    raise SettingsError(f"a contender must be an agent name, a .pt policy path, a BCPolicy or an object with "
                        f"act(obs, info) and reset(seed), got {spec!r}.")


def versus_cpu_settings(env_settings: Mapping[str, Any]) -> dict[str, Any]:
    """Duel env settings for playing against the CPU: two-player settings become one-player ones.

    A policy trained on two-player files acts for one side: ``agent_0``'s (the loader shows ``agent_1``'s
    steps from that same side). Against the CPU it keeps that side (``role[0]``; P1 when both roles are
    None, as in the two-player env) and ``agent_0``'s character, outfit and action space.

    >>> versus_cpu_settings({"n_players": 2, "role": [None, None], "characters": ["Mira", "Brutus"]})
    {'n_players': 1, 'role': 'P1', 'characters': 'Mira'}
    >>> versus_cpu_settings({"n_players": 1, "role": None})
    {'n_players': 1, 'role': None}
    """
    out = dict(env_settings)
    if out.get("n_players") != 2:
        return out
    out["n_players"] = 1
    role = out.get("role")
    r0, r1 = role if isinstance(role, list | tuple) else (role, None)
    out["role"] = r0 if r0 is not None else ("P2" if r1 == "P1" else "P1")
    for key in ("characters", "outfits", "action_space"):
        if isinstance(out.get(key), list | tuple):
            out[key] = out[key][0]
    return out


def evaluate(policy_or_agent: Any, env_id: str | None = None, episodes: int = 10, difficulty: int | None = None,
             seed: int = 10_000, settings: Mapping[str, Any] | None = None, wrappers_settings: Any = None,
             baselines: Sequence[str] = ("expert", "random"), progress: bool = True,
             max_steps: int | None = None, workers: int = 1) -> EvalResult:
    """Play ``episodes`` episodes with the policy and each baseline on the same seeds.

    In ``duel`` every contender plays against the CPU, in one-player mode: two-player settings (from a
    policy trained on two-player files, or given in ``settings``) are reduced to the policy's side by
    :func:`versus_cpu_settings` (``n_players=1``, ``agent_0``'s role, character, outfit and action space).

    Args:
        policy_or_agent: a ``.pt`` path or :class:`~trajarena.learn.bc.BCPolicy`, an agent name, or any object with
            ``act(obs, info)`` and ``reset(seed)`` (e.g. a wrapped Stable-Baselines3 model).
        env_id: the env; None takes the policy's (or ``"duel"``).
        episodes: episodes per contender.
        difficulty: the CPU difficulty (duel); None keeps the policy's/settings' value.
        seed: episode ``i`` uses ``seed + i`` for every contender; the default, 10000, keeps clear of the
            seeds ``record`` plays by default (0, 1, ...), so a policy is measured on episodes it never saw.
        settings: env settings; None takes the policy's (duel: two-player ones are played against the CPU).
        wrappers_settings: wrappers; None takes the policy's (they must match what it was trained on).
        baselines: agent names played next to it, e.g. ``("expert", "random")``.
        progress: print one line per contender.
        max_steps: cap on steps per episode (None: none).
        workers: processes playing the episodes (``spawn``; call under ``if __name__ == "__main__":`` in a
            script). Every episode depends only on its seed, so the results equal ``workers=1``'s. An agent
            object that is not a policy is played in this process.

    Returns:
        An :class:`EvalResult` (``.table()`` prints the comparison).
    """
    from trajarena.learn.policy import BCPolicy

    if isinstance(episodes, bool) or int(episodes) != episodes or episodes < 1:
        raise SettingsError(f"episodes must be an integer >= 1, got {episodes!r}.")
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise SettingsError(f"workers must be an integer >= 1, got {workers!r}.")
    name, main = _contender(policy_or_agent)
    meta = main.meta if isinstance(main, BCPolicy) else {}
    env_id = env_id or meta.get("env_id") or "duel"
    env_settings = dict(settings if settings is not None else meta.get("env_settings") or {})
    if env_id == "duel":
        env_settings = versus_cpu_settings(env_settings)
        env_settings.pop("seed", None)
        if difficulty is not None:
            env_settings["difficulty"] = difficulty
    elif difficulty is not None:
        raise SettingsError(f"difficulty applies to 'duel' only, got difficulty={difficulty} for {env_id!r}.")
    if wrappers_settings is not None:
        wrappers = wrappers_settings
    else:
        from trajarena.settings import WrappersSettings

        wrappers = WrappersSettings.from_json(meta.get("wrappers_settings") or {})
    contenders = [(name, main)] + [(b, b) for b in baselines if b != name]
    plan = _Plan(env_id, env_settings or None, wrappers, seed, max_steps)
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="trajarena-eval-") as tmp, \
            _EvalBar(progress, episodes * len(contenders)) as bar:
        specs = [_portable(spec, Path(tmp) / f"contender-{i}.pt") for i, (_, spec) in enumerate(contenders)] \
            if workers > 1 else []
        if specs and all(s is not None for s in specs):
            played = _play_parallel(plan, specs, episodes, min(int(workers), episodes * len(specs)), bar)
        else:
            played = [_play_many(plan, spec, range(episodes), bar.put) for _, spec in contenders]
    results = []
    for (cname, _), eps in zip(contenders, played, strict=True):
        outcomes = [o for e in eps for o in e["outcomes"]]
        seconds = sum(e["seconds"] for e in eps)
        res = AgentEval(cname, tuple(e["return"] for e in eps), tuple(e["steps"] for e in eps),
                        outcomes.count(1), outcomes.count(-1), seconds)
        results.append(res)
        if progress:
            wr = "" if res.win_rate is None else f", win rate {res.win_rate:.1%} ({res.matches} matches)"
            print(f"evaluated {cname}: mean return {res.mean_return:.1f}{wr} ({res.seconds:.1f} s of play)")
    if progress:
        n = episodes * len(contenders)
        print(f"{n} episodes in {time.perf_counter() - t_all:.1f} s "
              f"({n / max(time.perf_counter() - t_all, 1e-9):.2f} episodes/s, {workers} worker(s))")
    level = env_settings.get("difficulty") if env_id == "duel" else None
    return EvalResult(env_id, level, seed, tuple(results))


# ----------------------------------------------------------------------------- playing, in workers or here


@dataclass(frozen=True)
class _Plan:
    """What every contender plays: the env, its settings and wrappers, the seeds."""

    env_id: str
    settings: Any
    wrappers: Any
    seed: int
    max_steps: int | None


def _portable(spec: Any, path: Path) -> Any:
    """A form of the contender a worker process can rebuild: an agent name or a ``.pt`` path (None: cannot)."""
    from trajarena.learn.policy import BCPolicy

    if isinstance(spec, BCPolicy):
        return str(spec.save(path))
    return spec if isinstance(spec, str) else None


def _play_many(plan: _Plan, spec: Any, indices: Sequence[int], report: Any = None) -> list[dict[str, Any]]:
    """Play episodes ``indices`` (seed ``plan.seed + i``) with one contender in one env."""
    from trajarena.envs.make import make
    from trajarena.learn.agents import make_agent
    from trajarena.learn.policy import BCPolicy, PolicyAgent
    from trajarena.learn.rollout import play_episode

    env = make(plan.env_id, plan.settings, plan.wrappers)
    try:
        if isinstance(spec, BCPolicy):
            agent = PolicyAgent(spec, env)
        elif isinstance(spec, str):
            agent = make_agent(spec, env, seed=plan.seed)
        else:
            agent = spec
        out = []
        for i in indices:
            t0 = time.perf_counter()
            e = play_episode(env, [agent], seed=plan.seed + i, max_steps=plan.max_steps)
            out.append({**e, "index": i, "seconds": time.perf_counter() - t0})
            if report is not None:
                report(1)
        return out
    finally:
        env.close()


_QUEUE: Any = None


def _init_worker(q: Any) -> None:
    global _QUEUE
    _QUEUE = q
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _worker(plan: _Plan, spec: Any, indices: tuple[int, ...]) -> list[dict[str, Any]]:
    return _play_many(plan, spec, indices, None if _QUEUE is None else _QUEUE.put)


def _play_parallel(plan: _Plan, specs: list[Any], episodes: int, workers: int, bar: _EvalBar) -> list[list[dict]]:
    """Every contender's episodes split over ``workers`` spawned processes; results in episode order."""
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    per = min(workers, episodes)  # each contender's episodes in `per` interleaved parts: balanced workers
    tasks = [(c, tuple(range(w, episodes, per))) for c in range(len(specs)) for w in range(per)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(q,)) as pool:
        futures = [(c, pool.submit(_worker, plan, specs[c], idx)) for c, idx in tasks]
        while not all(f.done() for _, f in futures):
            try:
                bar.put(q.get(timeout=0.1))
            except queue_mod.Empty:
                pass
        while True:
            try:
                bar.put(q.get(timeout=0.05))
            except queue_mod.Empty:
                break
        played: list[list[dict]] = [[] for _ in specs]
        for c, f in futures:
            exc = f.exception()
            if exc is not None:
                raise SettingsError(f"an evaluation worker failed: {type(exc).__name__}: {exc}") from exc
            played[c].extend(f.result())
    q.close()
    return [sorted(p, key=lambda e: e["index"]) for p in played]


class _EvalBar(CountBar):
    """Progress of the evaluation: episodes done of all contenders', episodes/s and ETA."""

    def __init__(self, enabled: bool, total: int) -> None:
        super().__init__("evaluate", "episodes", total, enabled)

    def put(self, n: int) -> None:
        self.advance(int(n))
