"""DIAMBRA-style usage (2.1 API): replay the trajectory files of a folder with ``ImitationLearning``.

    python replay_trajectories_21.py FOLDER [--ranks N] [--rank R]

Written for trajarena's tests, not taken from DIAMBRA: a DIAMBRA 2.1 user's calls (gym 0.21 API:
``reset()`` returns the observation, ``step()`` ``(obs, reward, done, info)``; ``render``,
``show_obs``, ``traj_summary``, ``exhausted``), on trajarena.
"""

import argparse
from pathlib import Path

from trajarena.interop.diambra.compat import diambra21 as diambra


def replay(folder: str, ranks: int, rank: int) -> int:
    files = sorted(str(p) for p in Path(folder).iterdir() if p.is_file())
    env = diambra.arena.ImitationLearning(traj_files_list=files, total_cpus=ranks, rank=rank)
    env.traj_summary()
    episodes = 0
    observation = env.reset()
    env.render(mode="human")
    env.show_obs(observation)
    while not env.exhausted:
        observation, reward, done, info = env.step(0)  # the action is ignored: the recorded one is in info
        env.render(mode="human")
        print(f"reward={reward} done={done} info={info}")
        if done:
            episodes += 1
            observation = env.reset()
            if not env.exhausted:
                env.show_obs(observation)
    env.close()
    return episodes


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("folder")
    cli.add_argument("--ranks", type=int, default=2)
    cli.add_argument("--rank", type=int, default=0)
    args = cli.parse_args()
    print(f"replayed {replay(args.folder, args.ranks, args.rank)} episode(s) on rank {args.rank} of {args.ranks}")
