"""Pre-train a Stable-Baselines3 PPO policy by behavioural cloning from trajarena files, then evaluate it.

1. Record expert episodes headless in parallel (``trajarena.learn.rollout.record``), with the wrappers settings
   SB3 needs (a flat dict of observations: ``flatten``, ``scale`` without image scaling) stored in the files.
2. Replay the files with ``ImitationLearning`` (which re-applies those wrappers) and fit the PPO policy's
   action distribution to the recorded actions (maximum likelihood = behavioural cloning).
3. Optionally fine-tune with PPO on the live env (``--ppo-steps``).
4. Evaluate the SB3 policy against the CPU next to the expert and a random agent, on the same seeds,
   with ``trajarena.learn.evaluate.evaluate``.

Needs ``pip install 'trajarena[sb3]'`` (install ``torch==2.13.0`` first to keep the CPU build).

    python examples/sb3_pretrain.py                      # duel, a few minutes on 2 cores
    python examples/sb3_pretrain.py --env-id CartPole-v1 --episodes 10
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

import trajarena as arena
from trajarena.learn.bc import stack_obs
from trajarena.learn.evaluate import evaluate
from trajarena.learn.rollout import record


@dataclass
class Args:
    env_id: str = "duel"
    """the env to record and evaluate ("duel" or a Gymnasium id such as "CartPole-v1")"""
    episodes: int = 20
    """expert episodes to record"""
    workers: int = 2
    """recording processes"""
    epochs: int = 6
    """behavioural-cloning epochs"""
    batch_size: int = 128
    lr: float = 3e-4
    ppo_steps: int = 0
    """PPO fine-tuning steps after BC (0: none)"""
    eval_episodes: int = 10
    difficulty: int = 5
    """CPU difficulty (duel only)"""
    seed: int = 0
    out: str = "sb3_out"


def env_settings(args: Args) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Env and wrappers settings: SB3 needs a flat dict observation with a channel-last uint8 frame."""
    if args.env_id != "duel":
        return None, None
    settings = {"difficulty": args.difficulty, "role": "P1", "frame_shape": (48, 96, 1)}
    wrappers = {"stack_frames": 2, "scale": True, "exclude_image_scaling": True, "flatten": True}
    return settings, wrappers


def load_replay(files: list[str]) -> tuple[Any, np.ndarray]:
    """Every step of the files through ImitationLearning: the (wrapped) observations and recorded actions."""
    il = arena.ImitationLearning(traj_files_list=files)
    observations, actions = [], []
    obs, info = il.reset()
    while not il.exhausted:
        done = False
        while not done:
            next_obs, _, terminated, truncated, info = il.step(il.action_space.sample())
            observations.append(obs)
            actions.append(np.asarray(info["action"]))
            obs, done = next_obs, terminated or truncated
        obs, info = il.reset()
    il.close()
    return stack_obs(observations), np.stack(actions)


def take(obs: Any, idx: np.ndarray) -> Any:
    return {k: v[idx] for k, v in obs.items()} if isinstance(obs, dict) else obs[idx]


def behaviour_clone(model: Any, obs: Any, actions: np.ndarray, args: Args) -> list[float]:
    """Maximise the log-likelihood of the recorded actions under the SB3 policy; returns the loss per epoch."""
    policy = model.policy
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    n = len(actions)
    losses = []
    policy.set_training_mode(True)
    for epoch in range(args.epochs):
        order, total = rng.permutation(n), 0.0
        for i in range(0, n, args.batch_size):
            b = order[i:i + args.batch_size]
            obs_t, _ = policy.obs_to_tensor(take(obs, b))
            dist = policy.get_distribution(obs_t)
            loss = -dist.log_prob(torch.as_tensor(actions[b], device=policy.device)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(b)
        losses.append(total / n)
        print(f"bc epoch {epoch + 1}: negative log-likelihood {losses[-1]:.3f}")
    policy.set_training_mode(False)
    return losses


class SB3Agent:
    """An SB3 model behind trajarena's agent protocol (``act(obs, info)``, ``reset(seed)``)."""

    name = "sb3-bc"

    def __init__(self, model: Any, discrete: bool) -> None:
        self.model, self.discrete = model, discrete

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, obs: Any, info: dict) -> Any:
        action, _ = self.model.predict(obs, deterministic=True)
        return int(action) if self.discrete else np.asarray(action)


def main(args: Args) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)  # small networks on a 2-core machine: extra threads only spin
    out = Path(args.out)
    settings, wrappers = env_settings(args)
    t0 = time.perf_counter()
    summary = record(args.env_id, "expert", args.episodes, args.workers, out / "data", settings=settings,
                     wrappers_settings=wrappers, seed=args.seed, progress=False)
    print(summary.format())
    obs, actions = load_replay(list(summary.files))
    print(f"replayed {len(actions):,} steps in {time.perf_counter() - t0:.1f} s (recording included)")

    venv = DummyVecEnv([lambda: arena.make(args.env_id, settings, wrappers)])
    space = venv.observation_space
    kind = "MultiInputPolicy" if isinstance(space, spaces.Dict) else "CnnPolicy" if len(space.shape) == 3 else "MlpPolicy"
    model = PPO(kind, venv, seed=args.seed, n_steps=256, batch_size=64, verbose=0, device="cpu")
    t1 = time.perf_counter()
    behaviour_clone(model, obs, actions, args)
    print(f"behavioural cloning took {time.perf_counter() - t1:.1f} s")
    if args.ppo_steps > 0:
        model.learn(total_timesteps=args.ppo_steps)
    model.save(out / "sb3_bc_policy.zip")

    agent = SB3Agent(model, isinstance(venv.action_space, spaces.Discrete))
    result = evaluate(agent, args.env_id, episodes=args.eval_episodes, seed=10_000, settings=settings,
                      wrappers_settings=wrappers, progress=True)
    print(result.table())
    venv.close()


def parse_args() -> Args:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for f in fields(Args):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    return Args(**vars(p.parse_args()))


if __name__ == "__main__":
    main(parse_args())
