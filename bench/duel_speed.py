"""Raw speed of the built-in game ``duel`` (steps/s, headless, one core), next to ALE Boxing.

Each configuration runs a fixed-seed random policy for ``--seconds`` in all (best of three
interleaved runs, as other processes may share the CPU) and prints env steps per second;
``ALE/Boxing-v5`` (raw, frameskip 4, full RGB frames) is measured in the same run when ale-py is
installed, so the ratio column compares both on this machine.

Run: ``PYTHONPATH=src python bench/duel_speed.py [--seconds 6] [--quick] [--results-dir DIR]``
(the table is printed and saved as ``DIR/duel_speed.json``, ``bench/results`` by default).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import gymnasium as gym

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, Table, parse_args  # noqa: E402

from trajarena.envs.duel import DuelEnv  # noqa: E402


@dataclasses.dataclass
class Args:
    """Raw steps/s of duel (several settings) and of ALE Boxing, measured in the same run."""

    seconds: float = dataclasses.field(default=6.0, metadata={"help": "measuring time per env, in all"})
    seed: int = 0
    quick: bool = dataclasses.field(default=False, metadata={"help": "tiny budgets (smoke test)"})
    results_dir: str = str(RESULTS_DIR)


def _rate(env: gym.Env, actions: list, seconds: float) -> float:
    """Steps/s of ``env`` over ``seconds`` under the pre-sampled ``actions``, resets included."""
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(256):
            _, _, terminated, truncated, _ = env.step(actions[n % len(actions)])
            n += 1
            if terminated or truncated:
                env.reset()
        if time.perf_counter() >= deadline:
            break
    return n / (time.perf_counter() - start)


def measure(envs: dict[str, gym.Env], seconds: float, seed: int, repeats: int = 3) -> dict[str, float]:
    """Best-of-``repeats`` steps/s per env; the repeats are interleaved so load spikes hit all alike."""
    actions = {}
    for name, env in envs.items():
        env.action_space.seed(seed)
        actions[name] = [env.action_space.sample() for _ in range(4096)]
        env.reset(seed=seed)
        for i in range(200):  # warm-up: sprite caches, first allocations
            if env.step(actions[name][i])[2]:
                env.reset()
    best = dict.fromkeys(envs, 0.0)
    for _ in range(repeats):
        for name, env in envs.items():
            best[name] = max(best[name], _rate(env, actions[name], seconds / repeats))
    for env in envs.values():
        env.close()
    return best


BOXING = "ALE/Boxing-v5 (raw, frameskip 4)"


def boxing() -> gym.Env | None:
    """Raw ALE Boxing, or None when ale-py is not installed."""
    try:
        import ale_py
    except ImportError:
        return None
    gym.register_envs(ale_py)
    return gym.make("ALE/Boxing-v5")


def main(args: Args) -> Table:
    configs = {
        "duel default (1P, step_ratio=6, 128x192x3)": {},
        "duel step_ratio=1": {"step_ratio": 1},
        "duel frame_shape=(84, 84, 1)": {"frame_shape": (84, 84, 1)},
        "duel 2P (random vs random)": {"n_players": 2},
    }
    envs: dict[str, gym.Env] = {name: DuelEnv(s) for name, s in configs.items()}
    ale = boxing()
    if ale is not None:
        envs[BOXING] = ale
    rates = measure(envs, 0.3 if args.quick else args.seconds, args.seed)
    ref = rates.pop(BOXING, None)
    table = Table("duel_speed", ["env", "steps/s", "vs ALE Boxing"], title="duel raw speed (headless, one process)")
    for name, rate in rates.items():
        table.add_row(**{"env": name, "steps/s": rate, "vs ALE Boxing": rate / ref if ref else "n/a (ale-py not installed)"})
    table.add_row(**{"env": BOXING, "steps/s": ref if ref else "n/a (pip install ale-py)", "vs ALE Boxing": 1.0 if ref else None})
    default = next(iter(rates.values()))
    table.notes.append(f"target >= 5,000 steps/s at default settings: {'met' if default >= 5000 else 'NOT met'} "
                       f"({default:,.0f}); best of 3 interleaved runs" + ("; --quick: too short to judge" if args.quick else ""))
    table.print()
    table.save(args.results_dir)
    return table


if __name__ == "__main__":
    main(parse_args(Args))
