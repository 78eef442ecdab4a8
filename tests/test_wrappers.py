"""Wrappers: their effect on spaces and values, on a generic env with duel's layout."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from trajarena.errors import SettingsError
from trajarena.wrappers import apply_wrappers


def run(env, steps, action=None, seed=0):
    obs, info = env.reset(seed=seed)
    out = [(obs, None, info)]
    for _ in range(steps):
        a = env.action_space.sample() if action is None else action
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, info))
        if terminated or truncated:
            break
    return out


def test_identity_settings_return_the_env(minifight):
    env = minifight()
    assert apply_wrappers(env, None) is env
    assert apply_wrappers(env, {}) is env


def test_frame_resize_and_greyscale(minifight):
    env = apply_wrappers(minifight(shape=(12, 16, 3)), {"frame_shape": (6, 8, 1)})
    assert env.observation_space["frame"].shape == (6, 8, 1)
    obs, _ = env.reset()
    assert obs["frame"].shape == (6, 8, 1) and obs["frame"].dtype == np.uint8
    # a flat grey frame stays the same grey
    obs, *_ = env.step(env.action_space.sample())
    assert obs["frame"][2, 3, 0] == 1
    keep = apply_wrappers(minifight(shape=(12, 16, 3)), {"frame_shape": (0, 0, 1)})
    assert keep.observation_space["frame"].shape == (12, 16, 1)


def test_greyscale_weights_match_luma():
    box = gym.spaces.Box(0, 255, (2, 2, 3), np.uint8)

    class Img(gym.Env):
        observation_space = box
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            img = np.zeros((2, 2, 3), np.uint8)
            img[0, 0] = (255, 0, 0)
            img[0, 1] = (0, 255, 0)
            img[1, 0] = (0, 0, 255)
            img[1, 1] = (255, 255, 255)
            return img, {}

    env = apply_wrappers(Img(), {"frame_shape": (0, 0, 1)})
    grey = env.reset()[0][..., 0]
    assert grey.tolist() == [[76, 149], [28, 255]]


def test_frame_stack_with_dilation_and_refill(minifight):
    env = apply_wrappers(minifight(shape=(4, 4, 1)), {"stack_frames": 3, "dilation": 2})
    assert env.observation_space["frame"].shape == (4, 4, 3)
    steps = run(env, 9, action=np.array([0, 0]))
    # reset: the stack is the first frame three times
    assert steps[0][0]["frame"][1, 1].tolist() == [0, 0, 0]
    # step 4: frames t=0, 2, 4 (oldest first)
    assert steps[4][0]["frame"][1, 1].tolist() == [0, 2, 4]
    # step 5 ends a round: refilled with the new frame
    assert steps[5][2]["round_done"]
    assert steps[5][0]["frame"][1, 1].tolist() == [5, 5, 5]
    assert steps[7][0]["frame"][1, 1].tolist() == [5, 5, 7]
    assert steps[9][0]["frame"][1, 1].tolist() == [5, 7, 9]


def test_last_action_stack(minifight):
    env = apply_wrappers(minifight(), {"add_last_action": True, "stack_actions": 3})
    assert env.observation_space["action"].shape == (3, 2)
    obs, _ = env.reset()
    assert obs["action"].tolist() == [[0, 0]] * 3
    obs, *_ = env.step(np.array([3, 1]))
    obs, *_ = env.step(np.array([5, 2]))
    assert obs["action"].tolist() == [[0, 0], [3, 1], [5, 2]]
    assert env.observation_space.contains(obs)
    for _ in range(3):
        obs, _, _, _, info = env.step(np.array([1, 1]))
    assert info["round_done"] and obs["action"].tolist() == [[0, 0]] * 3


def test_last_action_prefers_the_recorded_action(minifight):
    class Replay(gym.Wrapper):
        def step(self, action):
            obs, r, te, tr, info = self.env.step(action)
            return obs, r, te, tr, {**info, "action": np.array([8, 7])}

    env = apply_wrappers(Replay(minifight()), {"add_last_action": True})
    env.reset()
    obs, *_ = env.step(np.array([0, 0]))
    assert obs["action"].tolist() == [[8, 7]]


def test_two_player_action_stack_is_per_agent(minifight):
    env = apply_wrappers(minifight(n_players=2), {"add_last_action": True})
    env.reset()
    obs, *_ = env.step({"agent_0": np.array([1, 2]), "agent_1": np.array([3, 4])})
    assert obs["action"]["agent_0"].tolist() == [[1, 2]]
    assert obs["action"]["agent_1"].tolist() == [[3, 4]]


def test_scale_values(minifight):
    env = apply_wrappers(minifight(), {"scale": True, "add_last_action": True})
    obs, _ = env.reset()
    assert env.observation_space.contains(obs)
    assert obs["frame"].dtype == np.float32 and obs["frame"].max() <= 1.0
    assert obs["P1"]["health"].tolist() == [1.0]
    assert obs["P1"]["character"].tolist() == [0, 1, 0, 0]  # one-hot
    assert obs["P2"]["side"].tolist() == [1.0]  # binary kept as a number
    assert obs["action"].shape == (17,) and obs["action"][[0, 9]].tolist() == [1, 1]
    env2 = apply_wrappers(minifight(), {"scale": True, "exclude_image_scaling": True, "process_discrete_binary": True})
    obs2, _ = env2.reset()
    assert obs2["frame"].dtype == np.uint8 and obs2["P2"]["side"].tolist() == [0, 1]


def test_role_relative_one_and_two_players(minifight):
    env = apply_wrappers(minifight(), {"role_relative": True})
    obs, _ = env.reset()
    assert "P1" not in obs and obs["own"]["side"] == 1  # MiniFight's agent plays P2
    env2 = apply_wrappers(minifight(n_players=2), {"role_relative": True, "add_last_action": True})
    obs2, _ = env2.reset()
    assert set(obs2) == {"frame", "stage", "timer", "agent_0", "agent_1"}
    assert obs2["agent_0"]["own"]["side"] == 0 and obs2["agent_1"]["own"]["side"] == 1
    assert env2.observation_space.contains(obs2)


def test_flatten_and_filter(minifight):
    env = apply_wrappers(minifight(), {"flatten": True, "filter_keys": ["frame", "P1_health"], "role_relative": False})
    obs, _ = env.reset()
    assert list(obs) == ["frame", "P1_health"]
    with pytest.raises(SettingsError, match="Did you mean 'P1_health'"):
        apply_wrappers(minifight(), {"flatten": True, "filter_keys": ["P1_helth"]})


def test_rewards(minifight):
    norm = apply_wrappers(minifight(), {"normalize_reward": True, "normalization_factor": 0.5})
    norm.reset()
    assert norm.step(np.array([0, 0]))[1] == pytest.approx(1.5 / 50)
    clip = apply_wrappers(minifight(), {"clip_reward": True})
    clip.reset()
    assert clip.step(np.array([0, 0]))[1] == 1.0


def test_repeat_action_sums_rewards_and_ors_flags(minifight):
    env = apply_wrappers(minifight(), {"repeat_action": 3})
    env.reset()
    _, reward, _, _, info = env.step(np.array([0, 0]))
    assert reward == pytest.approx(4.5) and not info["round_done"]
    _, _, _, _, info = env.step(np.array([0, 0]))  # t = 4, 5, 6: round ended at 5
    assert info["round_done"]


def test_noop_reset_is_seeded(minifight):
    a = apply_wrappers(minifight(), {"no_op_max": 4})
    b = apply_wrappers(minifight(), {"no_op_max": 4})
    ta = [a.reset(seed=s)[0]["timer"][0] for s in range(6)]
    tb = [b.reset(seed=s)[0]["timer"][0] for s in range(6)]
    assert ta == tb and all(95 <= t <= 98 for t in ta) and len(set(ta)) > 1


def test_no_attack_combinations(minifight):
    env = apply_wrappers(minifight(), {"no_attack_buttons_combinations": True})
    assert env.action_space.nvec.tolist() == [9, 4]
    env_d = apply_wrappers(minifight(action_space="discrete"), {"no_attack_buttons_combinations": True})
    assert env_d.action_space.n == 12
    env.reset()
    with pytest.raises(SettingsError, match="outside"):
        env.step(np.array([0, 6]))
    with pytest.raises(SettingsError, match="MultiDiscrete"):
        apply_wrappers(gym.make("CartPole-v1"), {"no_attack_buttons_combinations": True})


def test_frame_wrappers_reject_non_image_envs():
    with pytest.raises(SettingsError, match="image observation"):
        apply_wrappers(gym.make("CartPole-v1"), {"stack_frames": 4})


def test_user_wrappers_are_applied_last(minifight):
    env = apply_wrappers(minifight(), {"wrappers": [[gym.wrappers.TransformReward, {"func": lambda r: r * 2}]]})
    env.reset()
    assert env.step(np.array([0, 0]))[1] == 3.0


@pytest.mark.parametrize("n_players", [1, 2])
def test_check_env_with_all_observation_wrappers(minifight, n_players):
    env = apply_wrappers(
        minifight(n_players=n_players),
        {"frame_shape": (6, 6, 1), "stack_frames": 2, "add_last_action": True, "stack_actions": 2,
         "scale": True, "role_relative": True, "flatten": True},
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version.*")
        check_env(env, skip_render_check=True)


def test_scale_keeps_unbounded_dimensions_inside_the_space():
    env = apply_wrappers(gym.make("CartPole-v1"), {"scale": True})
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(200):
        assert env.observation_space.contains(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    assert env.observation_space.low.tolist()[:2] == [0.0, -np.inf]
