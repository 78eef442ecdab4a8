"""Record yourself playing the built-in fighting game, DIAMBRA Arena style.

Written for trajarena (not DIAMBRA's code), it does what DIAMBRA Arena's "human experience recorder"
does: environment settings, wrappers settings and recording settings go to ``arena.make``; a
controller turns the keyboard or a gamepad into actions; every episode is recorded (below the
wrappers) into ``--file-path``.

    python examples/human_experience_recorder.py --username alex --file-path data/duel

Keys: arrows move, Z punch, X kick, C guard; a gamepad works too (d-pad/stick, X/Y, A/B, LB/RB).
Esc or closing the window quits; finished episodes are already on disk. For pause, discarding an
episode, two humans or a human against an agent, use ``trajarena play`` (``trajarena.play.session.play``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import trajarena as arena
from trajarena.play.controls import HumanController


@dataclass
class Args:
    username: str = "alex"
    """who plays (stored in every file)"""
    file_path: str = "data/duel_human"
    """folder the trajectory files go to"""
    use_controller: bool = True
    """play with the keyboard/gamepad; False sends random actions (a quick test)"""
    max_steps: int | None = None
    """stop after this many steps (default: play until the window is closed)"""


def main(args: Args) -> None:
    # Environment settings: every frame (60 fps) so the game answers the controller at once
    settings = arena.EnvironmentSettings(
        step_ratio=1,
        frame_shape=(128, 128, 1),
        action_space="multi_discrete",
        difficulty=3,
        role="P1",
    )

    # Wrappers settings: stored in the files; the loader re-applies them by default
    wrappers_settings = arena.WrappersSettings(
        normalize_reward=True,
        stack_frames=4,
        dilation=1,
        add_last_action=True,
        stack_actions=12,
        scale=True,
        role_relative=True,
        flatten=True,
        filter_keys=("action", "own_health", "opp_health", "own_side", "opp_side", "opp_character", "stage", "timer"),
    )

    # Recording settings: who plays and where the files go
    traj_rec_settings = arena.RecordingSettings(
        username=args.username,
        file_path=args.file_path,
        ignore_p2=0,
        players={"P1": "human", "P2": "cpu"},
    )

    env = arena.make("duel", settings, wrappers_settings, traj_rec_settings, render_mode="human")
    controller = HumanController() if args.use_controller else None
    if controller is not None:
        print("\n".join(controller.keymap.describe()[:5]) + "\nEsc or closing the window quits.")

    observation, info = env.reset(seed=42)
    steps = 0
    while args.max_steps is None or steps < args.max_steps:
        if controller is not None:
            actions = controller.get_actions(env.action_space)
            if "quit" in controller.commands:
                break
        else:
            actions = env.action_space.sample()

        observation, reward, terminated, truncated, info = env.step(actions)
        steps += 1

        if terminated or truncated:
            observation, info = env.reset()

    env.close()  # saves everything (an unfinished episode as truncated)
    print(f"recorded {steps} steps into {args.file_path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--username", default=Args.username)
    parser.add_argument("--file-path", default=Args.file_path)
    parser.add_argument("--no-controller", dest="use_controller", action="store_false")
    parser.add_argument("--max-steps", type=int, default=None)
    main(Args(**vars(parser.parse_args())))
