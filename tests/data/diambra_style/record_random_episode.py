"""DIAMBRA-style usage (2.2 API): record one episode of random actions.

    python record_random_episode.py OUT_DIR [--game doapp] [--user NAME] [--seed N]

Written for trajarena's tests, not taken from DIAMBRA: a DIAMBRA 2.2 user's calls (``diambra.arena.make``
with an ``EnvironmentSettings``, a ``SpaceTypes`` value and ``RecordingSettings``), made on trajarena.
"""

import argparse

from trajarena.interop.diambra.compat import (
    EnvironmentSettings,
    RecordingSettings,
    SpaceTypes,
    diambra,
)


def record_random_episode(out_dir: str, game: str, user: str, seed: int) -> int:
    env_settings = EnvironmentSettings(step_ratio=1, frame_shape=(128, 128, 1))
    env_settings.action_space = SpaceTypes.MULTI_DISCRETE
    recording = RecordingSettings(dataset_path=out_dir, username=user)
    env = diambra.arena.make(game, env_settings, episode_recording_settings=recording)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    n_steps, over = 0, False
    while not over:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        n_steps += 1
        over = terminated or truncated
    env.close()
    return n_steps


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("out_dir")
    cli.add_argument("--game", default="doapp")
    cli.add_argument("--user", default="tester")
    cli.add_argument("--seed", type=int, default=0)
    args = cli.parse_args()
    print(f"recorded {record_random_episode(args.out_dir, args.game, args.user, args.seed)} steps of {args.game}")
