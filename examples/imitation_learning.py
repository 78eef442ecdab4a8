"""Replay recorded experience with ``ImitationLearning``, as DIAMBRA Arena's imitation-learning example does.

Our own script (not DIAMBRA's code). Records a few episodes of the built-in game first when the
dataset folder is empty, then replays rank 0 of 2 until its part of the data is exhausted, printing
the recorded action, reward and info.

    python examples/imitation_learning.py --dataset dataset --max-episodes 10
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import numpy as np

import trajarena as arena


@dataclasses.dataclass
class Args:
    dataset: str = "dataset"  # folder of trajectory files (recorded here first when empty)
    record_episodes: int = 4  # episodes to record when the folder holds none
    max_episodes: int = 10  # stop after this many replayed episodes
    render: bool = False  # show the recorded frames in a window
    quiet: bool = False  # print a line per episode instead of per step


def record_some(args: Args) -> None:
    """Play random actions in ``duel`` with the trajectory recorder on."""
    settings = {"n_players": 1, "difficulty": 3, "step_ratio": 30, "frame_shape": (64, 96, 3)}
    wrappers_settings = {"stack_frames": 4, "add_last_action": True, "stack_actions": 4, "scale": True}
    traj_rec_settings = {"username": "example", "file_path": args.dataset, "ignore_p2": 0}
    env = arena.make("duel", settings, wrappers_settings, traj_rec_settings)
    env.action_space.seed(0)
    for episode in range(args.record_episodes):
        env.reset(seed=episode)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    env.close()


def main(args: Args) -> int:
    os.makedirs(args.dataset, exist_ok=True)
    files = [os.path.join(args.dataset, f) for f in sorted(os.listdir(args.dataset)) if f.endswith(".arrow")]
    if not files:
        record_some(args)
        files = [os.path.join(args.dataset, f) for f in sorted(os.listdir(args.dataset)) if f.endswith(".arrow")]
    for file in files:
        print(file)

    # Imitation learning settings: the list of recorded files, this env's rank among total_cpus envs
    settings = {"traj_files_list": files, "total_cpus": 2, "rank": 0}
    if args.render:
        settings["render_mode"] = "human"
    env = arena.ImitationLearning(**settings)

    obs, info = env.reset()
    env.render()
    env.traj_summary()  # what the files hold

    episodes, cumulative_reward = 0, 0.0
    while episodes < args.max_episodes:
        dummy_action = 0  # ignored: the replay returns the recorded action in info["action"]
        obs, reward, terminated, truncated, info = env.step(dummy_action)
        env.render()
        cumulative_reward += reward
        if not args.quiet:
            print("action:", info["action"], " reward:", reward, " terminated:", terminated, " truncated:", truncated)
            for key, value in info.items():
                print(f'  info["{key}"] = {value}')
        if np.any([info.get(k, False) for k in ("round_done", "stage_done", "game_done")]):
            print("--")
            print("round done" if info.get("round_done") else "", "stage done" if info.get("stage_done") else "",
                  "game done" if info.get("game_done") else "")
            print("--")
        if terminated or truncated:
            episodes += 1
            print(f"episode {episodes}: reward {cumulative_reward:.1f}")
            cumulative_reward = 0.0
            obs, info = env.reset()
            if info["exhausted"]:  # also env.exhausted
                print("the data of this rank is exhausted")
                break
    env.close()
    return episodes


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in dataclasses.fields(Args):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default)
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    main(parse_args())
