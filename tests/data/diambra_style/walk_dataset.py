"""DIAMBRA-style usage (2.2 API): go once through every step of a recorded dataset.

    python walk_dataset.py DATASET_DIR [--no-render]

Written for trajarena's tests, not taken from DIAMBRA: a DIAMBRA 2.2 user's calls to
``DiambraDataLoader`` (``reset()`` gives the loop count, ``step()`` the next recorded step), on trajarena.
"""

import argparse

import numpy as np

from trajarena.interop.diambra.compat import DiambraDataLoader


def frame_of(observation):
    return observation["frame"] if isinstance(observation, dict) else observation


def walk(dataset: str, render: bool) -> tuple[int, int]:
    loader = DiambraDataLoader(dataset)
    episodes = steps = 0
    passes = loader.reset()
    while passes == 0:  # stop when the loader starts over
        observation, action, reward, terminated, truncated, _info = loader.step()
        steps += 1
        frame = np.asarray(frame_of(observation))
        print(f"[{episodes}:{steps}] frame {frame.shape} action {np.asarray(action).tolist()} reward {reward} "
              f"end {'terminated' if terminated else 'truncated' if truncated else '-'}")
        if render:
            loader.render()
        if terminated or truncated:
            episodes += 1
            passes = loader.reset()
    return episodes, steps


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("dataset")
    cli.add_argument("--no-render", action="store_true")
    args = cli.parse_args()
    n_episodes, n_steps = walk(args.dataset, not args.no_render)
    print(f"total: {n_episodes} episode(s), {n_steps} step(s)")
