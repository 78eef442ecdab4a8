"""Gymnasium conformance: registered ids with keyword settings, specs on make() envs, check_env, seeded replay."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import trajarena as arena
from trajarena.errors import SettingsError
from trajarena.replay.imitation import ImitationLearning, blank_value

FAST = {"step_ratio": 60, "frame_shape": (24, 32, 3), "difficulty": 3}
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _record(folder, episodes=3, **settings_):
    env = arena.make("duel", {**FAST, **settings_}, None, {"file_path": str(folder)})
    env.action_space.seed(0)
    for ep in range(episodes):
        env.reset(seed=ep)
        done = False
        while not done:
            *_, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    env.close()
    return folder


def _check(env) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "different from the unwrapped version", render checks
        check_env(env, skip_render_check=True)


def test_namespaced_id_takes_keyword_settings():
    env = gym.make("trajarena/Duel-v0", difficulty=3, n_players=2, frame_shape=(32, 32, 1))
    assert env.observation_space["frame"].shape == (32, 32, 1)
    assert set(env.action_space.spaces) == {"agent_0", "agent_1"}
    assert env.unwrapped.settings.difficulty == 3 and env.spec.id == "trajarena/Duel-v0"
    alias = gym.make("duel", difficulty=5)  # the 0.1 id takes keywords too
    assert alias.unwrapped.settings.difficulty == 5
    with pytest.raises(SettingsError, match="difficulty"):
        gym.make("trajarena/Duel-v0", dificulty=3)


def test_module_prefix_form_works_in_a_fresh_interpreter(tmp_path):
    code = ("import gymnasium as gym\n"
            "env = gym.make('trajarena:trajarena/Duel-v0', difficulty=2, frame_shape=(16, 16, 1))\n"
            "obs, _ = env.reset(seed=0)\n"
            "print(env.spec.id, obs['frame'].shape, env.unwrapped.settings.difficulty)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": SRC, "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["trajarena/Duel-v0", "(16,", "16,", "1)", "2"]


def test_make_envs_carry_a_spec_that_rebuilds_them():
    env = arena.make("duel", {"difficulty": 4, "frame_shape": (32, 32, 1)}, {"stack_frames": 2})
    spec = env.unwrapped.spec
    assert spec.id == "trajarena/Duel-v0" and spec.kwargs["difficulty"] == 4
    assert env.spec is not None and env.spec.id == "trajarena/Duel-v0"  # the wrapped env's, with its wrappers
    rebuilt = gym.make(spec)
    a, _ = env.unwrapped.reset(seed=7)
    b, _ = rebuilt.reset(seed=7)
    assert np.array_equal(a["frame"], b["frame"])
    assert arena.make("trajarena/Duel-v0").unwrapped.spec.kwargs == arena.make("duel").unwrapped.spec.kwargs
    assert arena.make("CartPole-v1").spec.id == "CartPole-v1"


def test_files_store_duel_whichever_id_made_it(tmp_path):
    env = arena.make("trajarena/Duel-v0", FAST, None, {"file_path": str(tmp_path)})
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.close()
    assert arena.open_trajectories(tmp_path).metadata["env_id"] == "duel"


@pytest.mark.parametrize("n_players", [1, 2])
def test_check_env_passes_on_duel(n_players):
    _check(arena.make("duel", {"n_players": n_players, "frame_shape": (32, 32, 1)}).unwrapped)
    _check(gym.make("trajarena/Duel-v0", n_players=n_players, frame_shape=(32, 32, 1)))


@pytest.mark.parametrize("n_players", [1, 2])
def test_check_env_passes_on_the_looping_replay(tmp_path, n_players):
    folder = _record(tmp_path, n_players=n_players)
    _check(ImitationLearning(folder, loop=True))
    _check(ImitationLearning(folder, loop=True, shuffle=True, wrappers_settings={"stack_frames": 2, "scale": True}))


def test_seeded_reset_starts_the_data_over(tmp_path):
    folder = _record(tmp_path, episodes=4)
    il = ImitationLearning(folder, shuffle=True, seed=1)
    first = [il.reset(seed=5)[1]["episode"]] + [il.reset()[1]["episode"] for _ in range(3)]
    assert sorted(first) == [0, 1, 2, 3]
    assert il.reset()[1]["exhausted"] and il.exhausted
    again = [il.reset(seed=5)[1]["episode"]] + [il.reset()[1]["episode"] for _ in range(3)]
    assert again == first and not il.exhausted  # same seed, same order; exhaustion cleared
    others = {tuple([il.reset(seed=s)[1]["episode"]] + [il.reset()[1]["episode"] for _ in range(3)])
              for s in range(6)}
    assert len(others) > 1  # the seed draws the order
    plain = ImitationLearning(folder)
    assert [plain.reset(seed=s)[1]["episode"] for s in range(3)] == [0, 0, 0]  # no shuffle: always the first


def test_seeded_resets_hand_out_fresh_arrays(tmp_path):
    il = ImitationLearning(_record(tmp_path, episodes=1), raw=True)
    a, _ = il.reset(seed=0)
    b, _ = il.reset(seed=0)
    assert np.array_equal(a["frame"], b["frame"]) and not np.shares_memory(a["frame"], b["frame"])


def test_blank_observation_after_exhaustion_is_in_the_space(tmp_path):
    il = ImitationLearning(_record(tmp_path, episodes=1), raw=True)
    il.reset()
    obs, info = il.reset()
    assert info["exhausted"] and obs in il.observation_space and obs["stage"][0] == 1


@settings(max_examples=60, deadline=None)
@given(low=st.integers(-50, 50), width=st.integers(0, 50), dtype=st.sampled_from([np.int8, np.int16, np.float32]),
       start=st.integers(-5, 5), n=st.integers(1, 9))
def test_blank_value_is_always_inside_its_space(low, width, dtype, start, n):
    space = spaces.Dict(box=spaces.Box(low, low + width, (2, 3), dtype), d=spaces.Discrete(n, start=start),
                        md=spaces.MultiDiscrete([n, n + 1], start=[start, -start]),
                        t=spaces.Tuple((spaces.MultiBinary(3), spaces.Text(4, min_length=min(n, 4)))))
    assert blank_value(space) in space
