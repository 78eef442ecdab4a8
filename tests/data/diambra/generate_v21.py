#!/usr/bin/env python
"""Regenerate the DIAMBRA Arena 2.1 trajectory fixtures with DIAMBRA's own code.

This script is NOT part of trajarena's test suite: it runs inside throw-away venvs
with ``diambra-arena==2.1.3`` (gym 0.21) and writes real trajectory files made by
DIAMBRA's ``TrajectoryRecorder`` wrappers (diambra/arena/wrappers/traj_rec_wrapper.py
and traj_rec_wrapper_hardcore.py), driven through ``diambra.arena.make`` on top of the
engine mock that 2.1.3 itself ships (diambra.arena.utils.engine_mock.DiambraEngineMock),
patched over the six DiambraEngine methods it replaces.

Exact commands (from the repository root):

    python3.11 -m venv /work/scratch/diambra/v213
    /work/scratch/diambra/v213/bin/pip install pip==23.3.2 setuptools==65.5.0 wheel==0.38.4
    /work/scratch/diambra/v213/bin/pip install --no-build-isolation gym==0.21.0
    /work/scratch/diambra/v213/bin/pip install diambra-arena==2.1.3 numpy==1.24.4 opencv-python==4.7.0.72
    /work/scratch/diambra/v213/bin/python tests/data/diambra/generate_v21.py --variant np1

    # same venv recipe, but numpy 2 (numpy 2.4.6 / opencv 4.10.0.84 when made):
    python3.11 -m venv /work/scratch/diambra/v213np2   (+ the same three pip steps, then)
    /work/scratch/diambra/v213np2/bin/pip install diambra-arena==2.1.3 opencv-python==4.10.0.84
    /work/scratch/diambra/v213np2/bin/python tests/data/diambra/generate_v21.py --variant np2

What is DIAMBRA's code and what is ours:
  * make(), settings dataclasses, DiambraGym*/DiambraGymHardcore* envs, all wrappers,
    both TrajectoryRecorder variants, ParallelPickleWriter and DiambraEngineMock are
    DIAMBRA's, unmodified.
  * Episode length: DiambraEngineMock() with its default steps_per_round=20 and, after env
    init, mock.game_data["stages_per_game"] = 1 so that a 1P game is over after one stage
    (the mock's own "n_stages == stages_per_game" branch).
  * Seeding: the mock seeds `random` from the clock in __init__; we reseed `random`,
    numpy's global RNG and the action space right after make() so files are reproducible.
  * Frames: the stock mock frame is a constant image; we replace the mock's
    generate_frame with a deterministic textured one (gradients, checkerboard, moving
    block) so channel/ordering mistakes are visible. Everything downstream (env frame,
    wrappers, recorder) is DIAMBRA's.

File names are DIAMBRA's own (``mod_<ignore_p2>_<side>_diff<d>_rew<r>_<date>``,
``HC_mod<ignore_p2>_...`` for hardcore); each fixture lives in ``v21/<fixture>/``.
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

P = "diambra.arena.engine.interface.DiambraEngine."
HERE = os.path.dirname(os.path.abspath(__file__))
USERNAME = "trajarena-fixture"
STEPS_PER_ROUND = 20  # the mock's default
#: the DiambraEngine methods that 2.1.3's engine mock provides replacements for
ENGINE_METHODS = ("__init__", "_env_init", "_reset", "_step_1p", "_step_2p", "close")

FIXTURES = [
    # DIAMBRA docs' recording recipe: grey env frames, frame_stack 4, actions_stack, scale.
    dict(name="doapp_1p_md_grey_stack_scale", variant="np1", game="doapp", hardcore=False,
         settings=dict(player="P1", frame_shape=(32, 48, 1), action_space="multi_discrete", difficulty=3),
         wrappers=dict(reward_normalization=True, frame_stack=4, actions_stack=3, scale=True),
         ignore_p2=False, seed=101, actions="sample"),
    dict(name="sfiii3n_1p_disc_rgb_p2side", variant="np1", game="sfiii3n", hardcore=False,
         settings=dict(player="P2", frame_shape=(24, 32, 0), action_space="discrete", difficulty=5,
                       characters=("Ryu", "Ken")),
         wrappers=dict(), ignore_p2=False, seed=102, actions="sample"),
    dict(name="sfiii3n_2p_md_grey_stack", variant="np1", game="sfiii3n", hardcore=False,
         settings=dict(player="P1P2", frame_shape=(32, 48, 1),
                       action_space=("multi_discrete", "multi_discrete")),
         wrappers=dict(frame_stack=2, actions_stack=2), ignore_p2=False, seed=103, actions="python"),
    dict(name="doapp_2p_disc_grey_ignorep2", variant="np1", game="doapp", hardcore=False,
         settings=dict(player="P1P2", frame_shape=(32, 32, 1), action_space=("discrete", "discrete"),
                       attack_but_combination=(False, False)),
         wrappers=dict(), ignore_p2=True, seed=104, actions="python"),
    dict(name="hc_doapp_1p_md_grey_stack_scale", variant="np1", game="doapp", hardcore=True,
         settings=dict(player="P1", frame_shape=(32, 48, 1), action_space="multi_discrete", difficulty=4),
         wrappers=dict(frame_stack=4, scale=True), ignore_p2=False, seed=105, actions="sample"),
    dict(name="hc_sfiii3n_2p_md_rgb", variant="np1", game="sfiii3n", hardcore=True,
         settings=dict(player="P1P2", frame_shape=(24, 32, 0),
                       action_space=("multi_discrete", "multi_discrete")),
         wrappers=dict(), ignore_p2=False, seed=106, actions="python"),
    dict(name="np2_doapp_1p_md_grey_stack_scale", variant="np2", game="doapp", hardcore=False,
         settings=dict(player="P1", frame_shape=(32, 48, 1), action_space="multi_discrete", difficulty=3),
         wrappers=dict(reward_normalization=True, frame_stack=4, actions_stack=3, scale=True),
         ignore_p2=False, seed=107, actions="sample"),
    dict(name="np2_hc_sfiii3n_2p_disc_grey", variant="np2", game="sfiii3n", hardcore=True,
         settings=dict(player="P1P2", frame_shape=(24, 32, 1), action_space=("discrete", "discrete")),
         wrappers=dict(frame_stack=2), ignore_p2=False, seed=108, actions="python"),
]


def _pattern_frame(self):
    """Deterministic textured frame (replaces DiambraEngineMock.generate_frame)."""
    h, w, c = self.frame_shape
    t = getattr(self, "_fixture_t", -1) + 1
    self._fixture_t = t
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    r = (x * 255 // max(w - 1, 1) + 8 * t) % 256
    g = (y * 255 // max(h - 1, 1) + 5 * t) % 256
    b = ((x // 8 + y // 8 + t) % 2) * 150 + 40 + ((x + y) % 16) * 4
    frame = np.stack([r, g, b], axis=-1)
    bx = (3 * t) % max(w - 8, 1)
    frame[h // 3:h // 3 + 8, bx:bx + 5] = (230, 20, 20)
    frame = np.clip(frame, 0, 255).astype(np.uint8)
    if c == 1:
        frame = ((frame[..., 0].astype(np.uint16) * 77 + frame[..., 1].astype(np.uint16) * 150
                  + frame[..., 2].astype(np.uint16) * 29) >> 8).astype(np.uint8)[..., None]
    return frame.tobytes()


def _wait_writers():
    for th in threading.enumerate():
        if th is not threading.main_thread():
            th.join()


def _python_action(env, rng):
    """What a keyboard/gamepad controller would send: plain Python ints / lists.

    2P envs in 2.1 take a flat list: [m1, a1, m2, a2] (multi_discrete) or [d1, d2] (discrete).
    """
    import gym
    sp = env.action_space
    if isinstance(sp, gym.spaces.Dict):
        out = []
        for k in ("P1", "P2"):
            s = sp[k]
            if isinstance(s, gym.spaces.MultiDiscrete):
                out += [int(rng.integers(n)) for n in s.nvec]
            else:
                out.append(int(rng.integers(s.n)))
        return out
    if isinstance(sp, gym.spaces.MultiDiscrete):
        return [int(rng.integers(n)) for n in sp.nvec]
    return int(rng.integers(sp.n))


def record(spec, out_root):
    import diambra.arena
    from diambra.arena.utils.engine_mock import DiambraEngineMock

    folder = os.path.join(out_root, spec["name"])
    if os.path.isdir(folder):
        shutil.rmtree(folder)

    mock = DiambraEngineMock(steps_per_round=STEPS_PER_ROUND)
    # each engine method is replaced by the mock's method named "_mock" + "_" + the name without its first "_"
    patches = [unittest.mock.patch(P + method, getattr(mock, "_mock_" + method.removeprefix("_")))
               for method in ENGINE_METHODS]
    for p in patches:
        p.start()
    try:
        settings = dict(spec["settings"], hardcore=spec["hardcore"])
        traj_rec_settings = dict(username=USERNAME, file_path=folder, ignore_p2=spec["ignore_p2"])
        env = diambra.arena.make(spec["game"], settings, dict(spec["wrappers"]), traj_rec_settings)
        mock.game_data["stages_per_game"] = 1
        mock.generate_frame = types.MethodType(_pattern_frame, mock)
        random.seed(spec["seed"])
        np.random.seed(spec["seed"])
        env.action_space.seed(spec["seed"])
        rng = np.random.default_rng(spec["seed"])

        env.reset()
        n = 0
        while True:
            if spec["actions"] == "sample":
                action = env.action_space.sample()
            else:
                action = _python_action(env, rng)
            _, _, done, _ = env.step(action)
            n += 1
            if done:
                break
            if n > 300:
                raise RuntimeError("episode too long for a fixture: " + spec["name"])
        _wait_writers()
        env.close()
        print("[fixture] {}: {} steps".format(spec["name"], n), file=sys.stderr)
    finally:
        for p in reversed(patches):
            p.stop()
    _wait_writers()
    return sorted(os.listdir(folder))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", required=True, choices=["np1", "np2"])
    ap.add_argument("--out", default=os.path.join(HERE, "v21"))
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    if (args.variant == "np1") != np.__version__.startswith("1."):
        sys.exit("variant {} does not match numpy {}".format(args.variant, np.__version__))
    import importlib.metadata as md
    assert md.version("diambra-arena") == "2.1.3", md.version("diambra-arena")
    for spec in FIXTURES:
        if spec["variant"] != args.variant or (args.only and spec["name"] not in args.only):
            continue
        files = record(spec, args.out)
        print("[fixture] {} -> {}".format(spec["name"], files), file=sys.stderr)
        time.sleep(1.05)  # DIAMBRA names files by wall-clock second


if __name__ == "__main__":
    main()
