#!/usr/bin/env python
"""Regenerate the DIAMBRA Arena 2.2 ``.diambra`` fixtures with DIAMBRA's own code.

This script is NOT part of trajarena's test suite: it runs inside throw-away venvs
that have ``diambra-arena==2.2.7`` installed, and writes real recordings made by
DIAMBRA's ``EpisodeRecorder`` wrapper (diambra/arena/wrappers/episode_recording.py)
on top of DIAMBRA's own engine mock (diambra.arena.utils.engine_mock.load_mocker),
so no Docker, ROM or engine is needed.

Exact commands (from the repository root), one per venv/variant:

    python3.11 -m venv /work/scratch/diambra/v227
    /work/scratch/diambra/v227/bin/pip install diambra-arena==2.2.7 gymnasium==0.29.1 opencv-python==4.10.0.84
    /work/scratch/diambra/v227/bin/python tests/data/diambra/generate_v22.py --variant np2

    python3.11 -m venv /work/scratch/diambra/v227np1
    /work/scratch/diambra/v227np1/bin/pip install diambra-arena==2.2.7 gymnasium==0.29.1 "numpy<2" opencv-python==4.9.0.80
    /work/scratch/diambra/v227np1/bin/python tests/data/diambra/generate_v22.py --variant np1

    python3.11 -m venv /work/scratch/diambra/v227cv5
    /work/scratch/diambra/v227cv5/bin/pip install diambra-arena==2.2.7 gymnasium==0.29.1   # opencv-python 5.0.0.93
    /work/scratch/diambra/v227cv5/bin/python tests/data/diambra/generate_v22.py --variant cv5

Then dump DIAMBRA's reference values with dump_expected.py (see its docstring).

What is DIAMBRA's code and what is ours:
  * env (DiambraGym1P/2P), settings, make(), wrappers, EpisodeRecorder, the pickle/bz2
    writer (ParallelPickleWriter) and the engine mock are DIAMBRA's, unmodified.
  * load_mocker() expects a pytest-mock ``mocker``; _Mocker below is a 10-line stand-in
    that does the same ``patch(target, new)`` with unittest.mock.
  * Episode length: the mock ends a round when its timer (starting at the game's max
    timer, e.g. 40 or 99, minus step_ratio/60 per step) reaches 0, i.e. ~400-990 steps.
    To keep fixtures a few KB we lower the mock's round-start timer value
    (mock.game_data["ram_states"]["common"]["timer"][2] = 1) after env init, so rounds
    time out after 11 steps, and set mock.game_data["stages_per_game"] = 2 so a 1P game
    is "completed" after winning stage 1. The episode still ends by DIAMBRA's own game
    logic (terminated=True from the env, not a forced truncation).
  * Frames: the stock mock frame is a constant image (one grey value everywhere).
    For fixtures marked pattern=True we replace the mock's _generate_frame with a
    deterministic textured image (gradients, checkerboard, a moving coloured block),
    so JPEG colour/ordering/upsampling issues are visible. Everything downstream
    (raw bytes -> DiambraGym frame -> cv2.imencode in EpisodeRecorder) is DIAMBRA's.

File names are DIAMBRA's own (``%Y-%m-%d_%H-%M-%S.diambra``); each fixture is one
dataset folder ``v22/<fixture>/`` because DiambraDataLoader takes a folder.
"""
import argparse
import os
import random
import shutil
import sys
import threading
import time
import types
import unittest.mock

import numpy as np

# diambra is imported inside functions only, so that importing this file (e.g. pytest's
# --doctest-modules) works without diambra installed.

HERE = os.path.dirname(os.path.abspath(__file__))
USERNAME = "trajarena-fixture"
STAGES_PER_GAME = 2

# diambra.engine enums (interface.proto): SpaceTypes DISCRETE=1, MULTI_DISCRETE=2;
# Roles = RamStatesCategories P1=2, P2=3. Checked against diambra in main().
MD, DI = 2, 1


class Roles:
    P1, P2 = 2, 3


# name, variant, game, n_players, action_space(s), frame_shape (env setting, C in {0,1}),
# wrappers settings, pattern frames, episodes, seed, action mode, round timer, difficulty, roles
FIXTURES = [
    dict(name="doapp_1p_md_rgb", variant="np2", game="doapp", n_players=1, action_space=MD,
         frame_shape=(48, 64, 0), wrappers={}, pattern=True, episodes=2, seed=11,
         actions="sample", timer=1, difficulty=4, role=Roles.P1),
    dict(name="doapp_1p_disc_grey_wrapped", variant="np2", game="doapp", n_players=1, action_space=DI,
         frame_shape=(64, 48, 1),
         wrappers=dict(normalize_reward=True, stack_frames=4, add_last_action=True, stack_actions=3,
                       scale=True, role_relative=True),
         pattern=True, episodes=1, seed=12, actions="sample", timer=1, difficulty=4, role=Roles.P2),
    dict(name="sfiii3n_2p_md_rgb_wrapped", variant="np2", game="sfiii3n", n_players=2, action_space=(MD, MD),
         frame_shape=(48, 64, 0),
         wrappers=dict(stack_frames=2, add_last_action=True, stack_actions=2, flatten=True),
         pattern=True, episodes=1, seed=13, actions="sample", timer=1, difficulty=6, role=(Roles.P1, Roles.P2)),
    dict(name="sfiii3n_2p_mixed_grey", variant="np2", game="sfiii3n", n_players=2, action_space=(DI, MD),
         frame_shape=(32, 48, 1), wrappers={}, pattern=True, episodes=1, seed=14,
         actions="python", timer=1, difficulty=6, role=(Roles.P2, Roles.P1)),
    dict(name="sfiii3n_1p_md_stockframe", variant="np2", game="sfiii3n", n_players=1, action_space=MD,
         frame_shape=(56, 96, 0), wrappers={}, pattern=False, episodes=1, seed=15,
         actions="python", timer=1, difficulty=8, role=Roles.P1),
    dict(name="np1_doapp_1p_md_rgb", variant="np1", game="doapp", n_players=1, action_space=MD,
         frame_shape=(48, 64, 0), wrappers=dict(stack_frames=4), pattern=True, episodes=1, seed=21,
         actions="sample", timer=1, difficulty=4, role=Roles.P1),
    dict(name="np1_sfiii3n_2p_disc_grey", variant="np1", game="sfiii3n", n_players=2, action_space=(DI, DI),
         frame_shape=(32, 48, 1), wrappers={}, pattern=True, episodes=1, seed=22,
         actions="sample", timer=1, difficulty=6, role=(Roles.P1, Roles.P2)),
    dict(name="cv5_doapp_1p_disc_rgb", variant="cv5", game="doapp", n_players=1, action_space=DI,
         frame_shape=(48, 64, 0), wrappers={}, pattern=True, episodes=1, seed=31,
         actions="sample", timer=1, difficulty=4, role=Roles.P1),
]

EXPECTED_VERSIONS = {
    "np2": dict(numpy="2.", cv2="4.10."),
    "np1": dict(numpy="1.26.", cv2="4.9."),
    "cv5": dict(numpy="2.", cv2="5."),
}


class _Mocker:
    """Minimal stand-in for pytest-mock's ``mocker`` as used by DIAMBRA's load_mocker()."""

    def __init__(self):
        self.patchers = []

    def patch(self, target, new):
        p = unittest.mock.patch(target, new)
        p.start()
        self.patchers.append(p)

    def stopall(self):
        for p in reversed(self.patchers):
            p.stop()
        self.patchers = []


def _pattern_frame(self):
    """Deterministic textured frame (replaces DiambraEngineMock._generate_frame)."""
    h, w, c = self.frame_shape
    t = getattr(self, "_fixture_t", -1) + 1
    self._fixture_t = t
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    r = (x * 255 // max(w - 1, 1) + 8 * t) % 256
    g = (y * 255 // max(h - 1, 1) + 5 * t) % 256
    b = ((x // 8 + y // 8 + t) % 2) * 150 + 40 + ((x + y) % 16) * 4
    frame = np.stack([r, g, b], axis=-1)
    # a moving "fighter" block, saturated red, and a static green block
    bx = (3 * t) % max(w - 8, 1)
    frame[h // 3:h // 3 + 12, bx:bx + 6] = (230, 20, 20)
    frame[h - 10:h - 4, 4:14] = (10, 220, 40)
    frame = np.clip(frame, 0, 255).astype(np.uint8)
    if c == 1:
        frame = ((frame[..., 0].astype(np.uint16) * 77 + frame[..., 1].astype(np.uint16) * 150
                  + frame[..., 2].astype(np.uint16) * 29) >> 8).astype(np.uint8)[..., None]
    return frame.tobytes()


def _wait_writers():
    for th in threading.enumerate():
        if th is not threading.main_thread():
            th.join()


def _next_second():
    # DIAMBRA names files by wall-clock second: never write two episodes in one second.
    now = time.time()
    time.sleep(int(now) + 1.05 - now)


def _python_action(space, rng):
    import gymnasium as gym
    if isinstance(space, gym.spaces.MultiDiscrete):
        return [int(rng.integers(n)) for n in space.nvec]
    return int(rng.integers(space.n))


def record(spec, out_root):
    import diambra.arena
    from diambra.arena import (EnvironmentSettings, EnvironmentSettingsMultiAgent, RecordingSettings,
                               WrappersSettings)
    from diambra.arena.utils.engine_mock import load_mocker

    folder = os.path.join(out_root, spec["name"])
    if os.path.isdir(folder):
        shutil.rmtree(folder)

    mocker = _Mocker()
    load_mocker(mocker)  # DIAMBRA's own patching of DiambraEngine with DiambraEngineMock
    mock = mocker.patchers[0].new.__self__
    try:
        if spec["n_players"] == 1:
            settings = EnvironmentSettings()
        else:
            settings = EnvironmentSettingsMultiAgent()
        # seed before make(): at env init the mock draws a random difficulty cluster (its
        # episode_settings are still empty), and DIAMBRA seeds `random` with time.time()
        # when no seed is set, which would make the fixtures non-reproducible.
        settings.seed = spec["seed"]
        settings.frame_shape = spec["frame_shape"]
        settings.action_space = spec["action_space"]
        settings.difficulty = spec["difficulty"]
        settings.role = spec["role"]
        settings.splash_screen = False
        wrappers = WrappersSettings(**spec["wrappers"])
        rec = RecordingSettings(dataset_path=folder, username=USERNAME)
        env = diambra.arena.make(spec["game"], settings, wrappers, rec)

        # Shorter rounds (see module docstring); value read by the mock at every round start.
        mock.game_data["ram_states"]["common"]["timer"][2] = spec["timer"]
        # 1P: end the game after stage 1 ("Game completed!" branch of the mock) instead of
        # after 8-10 stages; 2P episodes end at game_done anyway.
        mock.game_data["stages_per_game"] = STAGES_PER_GAME
        if spec["pattern"]:
            mock._generate_frame = types.MethodType(_pattern_frame, mock)

        rng = np.random.default_rng(spec["seed"])
        env.action_space.seed(spec["seed"])
        for ep in range(spec["episodes"]):
            _next_second()
            env.reset(seed=spec["seed"] + ep)
            n = 0
            while True:
                if spec["actions"] == "sample":
                    action = env.action_space.sample()
                elif spec["n_players"] == 1:
                    action = _python_action(env.action_space, rng)
                else:
                    action = {k: _python_action(env.action_space[k], rng) for k in ("agent_0", "agent_1")}
                _, _, terminated, truncated, _ = env.step(action)
                n += 1
                if terminated or truncated:
                    break
                if n > 400:
                    raise RuntimeError("episode too long for a fixture: " + spec["name"])
            _wait_writers()
            print("[fixture] {} episode {}: {} steps".format(spec["name"], ep, n), file=sys.stderr)
        env.close()
    finally:
        mocker.stopall()
    _wait_writers()
    return sorted(os.listdir(folder))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", required=True, choices=sorted(EXPECTED_VERSIONS))
    ap.add_argument("--out", default=os.path.join(HERE, "v22"))
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()

    import cv2
    from diambra.arena import SpaceTypes, Roles as DRoles
    assert (SpaceTypes.DISCRETE, SpaceTypes.MULTI_DISCRETE, DRoles.P1, DRoles.P2) == (DI, MD, Roles.P1, Roles.P2)
    want = EXPECTED_VERSIONS[args.variant]
    if not (np.__version__.startswith(want["numpy"]) and cv2.__version__.startswith(want["cv2"])):
        sys.exit("variant {} wants numpy {}* and opencv {}*, this venv has {} / {}".format(
            args.variant, want["numpy"], want["cv2"], np.__version__, cv2.__version__))
    import importlib.metadata as md
    assert md.version("diambra-arena") == "2.2.7", md.version("diambra-arena")

    random.seed(0)
    for spec in FIXTURES:
        if spec["variant"] != args.variant or (args.only and spec["name"] not in args.only):
            continue
        files = record(spec, args.out)
        print("[fixture] {} -> {}".format(spec["name"], files), file=sys.stderr)


if __name__ == "__main__":
    main()
