"""Behavioural cloning with a plain PyTorch training loop over ``TransitionIterableDataset``.

Records a few episodes of the built-in game when the dataset folder is empty (a scripted expert if
available, else random actions), then trains a small conv net to predict the recorded
(move, attack) action from the frame and the players' health, with two DataLoader workers that
each read their own shard of the files.

    python examples/torch_training_loop.py --dataset dataset_bc --epochs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import torch
from torch import nn

import trajarena as arena
from trajarena.replay.dataset import TrajectoryDataset
from trajarena.replay.torch_data import TransitionIterableDataset


@dataclasses.dataclass
class Args:
    dataset: str = "dataset_bc"  # folder of trajectory files (recorded here first when empty)
    record_episodes: int = 4  # episodes to record when the folder holds none
    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    num_workers: int = 2
    seed: int = 0
    cache_dir: str = ""  # memory-mapped decoded-frame cache ("" keeps decoded columns in memory)


def record_some(args: Args) -> None:
    settings = {"n_players": 1, "difficulty": 2, "step_ratio": 12, "frame_shape": (48, 72, 1)}
    env = arena.make("duel", settings, None, {"username": "example", "file_path": args.dataset})
    try:
        agent = arena.make_agent("expert", env, seed=args.seed)
    except Exception:  # noqa: BLE001 - no scripted expert: random demonstrations still exercise the loop
        agent = None
    env.action_space.seed(args.seed)
    for episode in range(args.record_episodes):
        obs, info = env.reset(seed=episode)
        if agent is not None:
            agent.reset(seed=episode)
        done = False
        while not done:
            action = agent.act(obs, info) if agent is not None else env.action_space.sample()
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
    env.close()


class Policy(nn.Module):
    """Frame (H, W, C uint8) + both players' health -> logits of the moves and of the attacks."""

    def __init__(self, channels: int, n_moves: int, n_attacks: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 16, 8, stride=4), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2), nn.ReLU(),
            nn.AdaptiveAvgPool2d((3, 3)), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(32 * 9 + 2, 128), nn.ReLU(), nn.Linear(128, n_moves + n_attacks))
        self.n_moves = n_moves

    def forward(self, frame: torch.Tensor, health: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(frame.permute(0, 3, 1, 2).float() / 255.0)
        logits = self.head(torch.cat([x, health.float() / 100.0], dim=1))
        return logits[:, : self.n_moves], logits[:, self.n_moves :]


def main(args: Args) -> float:
    torch.manual_seed(args.seed)
    os.makedirs(args.dataset, exist_ok=True)
    if not any(f.endswith(".arrow") for f in os.listdir(args.dataset)):
        record_some(args)
    data = TrajectoryDataset(args.dataset, cache_dir=args.cache_dir or None)
    print(data)
    nvec = data.action_space.nvec.tolist()
    stream = TransitionIterableDataset(data, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=args.num_workers)
    policy = Policy(data.observation_space["frame"].shape[-1], *nvec)
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    loss_value = float("nan")
    for epoch in range(args.epochs):
        stream.set_epoch(epoch)
        start, total, correct, seen = time.perf_counter(), 0.0, 0, 0
        for batch in loader:
            obs, action = batch["obs"], batch["action"].long()
            health = torch.cat([obs["P1"]["health"], obs["P2"]["health"]], dim=1)
            moves, attacks = policy(obs["frame"], health)
            loss = loss_fn(moves, action[:, 0]) + loss_fn(attacks, action[:, 1])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n = len(action)
            total += float(loss.detach()) * n
            seen += n
            correct += int(((moves.argmax(1) == action[:, 0]) & (attacks.argmax(1) == action[:, 1])).sum())
        loss_value = total / max(1, seen)
        print(f"epoch {epoch}: loss {loss_value:.3f}  accuracy {correct / max(1, seen):.3f}  "
              f"{seen} transitions in {time.perf_counter() - start:.1f} s")
    return loss_value


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in dataclasses.fields(Args):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    main(parse_args())
