"""Raw speed of the built-in game ``duel`` (steps/s, headless, one core), next to ALE Boxing.

Each configuration runs a fixed-seed random policy for ``--seconds`` (best of three runs, as
other processes share the CPU) and prints env steps per second; ``ALE/Boxing-v5`` (raw, frameskip 4, full RGB frames) is measured in the same run when
ale-py is installed, so the ratio column compares both on this machine.

Run: ``PYTHONPATH=src python bench/duel_speed.py [--seconds 3]``
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import gymnasium as gym

from trajarena.envs.duel import DuelEnv


@dataclass(frozen=True)
class Args:
    seconds: float = 3.0
    seed: int = 0


def steps_per_second(env: gym.Env, seconds: float, seed: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` steps/s of ``env`` under pre-sampled random actions, resets included."""
    rates = [_rate(env, seconds / repeats, seed) for _ in range(repeats)]
    env.close()
    return max(rates)


def _rate(env: gym.Env, seconds: float, seed: int) -> float:
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(4096)]
    env.reset(seed=seed)
    for i in range(200):  # warm-up: sprite caches, first allocations
        if env.step(actions[i])[2]:
            env.reset()
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(256):
            _, _, terminated, truncated, _ = env.step(actions[n % 4096])
            n += 1
            if terminated or truncated:
                env.reset()
        if time.perf_counter() >= deadline:
            break
    return n / (time.perf_counter() - start)


def boxing() -> gym.Env | None:
    try:
        import ale_py
    except ImportError:
        return None
    gym.register_envs(ale_py)
    return gym.make("ALE/Boxing-v5")


def main(args: Args) -> None:
    configs = {
        "duel default (1P, step_ratio=6, 128x192x3)": {},
        "duel step_ratio=1": {"step_ratio": 1},
        "duel frame_shape=(84, 84, 1)": {"frame_shape": (84, 84, 1)},
        "duel 2P (random vs random)": {"n_players": 2},
    }
    rows = [(name, steps_per_second(DuelEnv(s), args.seconds, args.seed)) for name, s in configs.items()]
    env = boxing()
    ref = steps_per_second(env, args.seconds, args.seed) if env is not None else None
    width = max(len(n) for n, _ in rows) + 2
    print(f"{'env':<{width}}{'steps/s':>10}  {'vs ALE Boxing':>14}")
    for name, rate in rows:
        ratio = f"{rate / ref:13.2f}x" if ref else "           n/a"
        print(f"{name:<{width}}{rate:>10,.0f}  {ratio}")
    print(f"{'ALE/Boxing-v5 (raw, frameskip 4)':<{width}}" + (f"{ref:>10,.0f}  {1:13.2f}x" if ref else "       n/a  (pip install ale-py)"))
    target = rows[0][1]
    print(f"\ntarget >= 5,000 steps/s at default settings: {'met' if target >= 5000 else 'NOT met'} ({target:,.0f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=Args.seconds)
    parser.add_argument("--seed", type=int, default=Args.seed)
    ns = parser.parse_args()
    main(Args(seconds=ns.seconds, seed=ns.seed))
