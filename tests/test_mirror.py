"""P2 mirroring: P2's side of a fighting game seen as P1 sees it, in the loader, the datasets and BC."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
from gymnasium import spaces

import trajarena as arena
from trajarena.envs.duel.game import MOVE_DOWN, MOVE_DX, MOVE_UP
from trajarena.errors import SettingsError
from trajarena.fighting import MIRROR_MOVES, describe_action, mirror_action, mirror_observation, split_action
from trajarena.learn.rollout import play_episode

MD = spaces.MultiDiscrete([9, 8])
TWO_P = {"n_players": 2, "frame_shape": (24, 36, 3), "step_ratio": 6}


class Idle:
    """A player that stands still (the opponent in the BC test)."""

    def reset(self, seed=None):
        pass

    def act(self, obs, info):
        return np.zeros(2, np.int64)


@pytest.fixture(scope="module")
def two_player(tmp_path_factory):
    """A two-player duel recording of two random players (varied moves in both directions)."""
    folder = tmp_path_factory.mktemp("two")
    env = arena.make("duel", TWO_P, None, {"file_path": str(folder)})
    env.action_space.seed(3)
    for seed in (0, 1):
        env.reset(seed=seed)
        for _ in range(60):
            *_, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                break
    env.close()
    return folder


def test_the_mirror_table_matches_the_game_and_is_its_own_inverse():
    for move, mirrored in enumerate(MIRROR_MOVES):
        assert MOVE_DX[mirrored] == -MOVE_DX[move]
        assert (MOVE_UP[mirrored], MOVE_DOWN[mirrored]) == (MOVE_UP[move], MOVE_DOWN[move])
    for space in (MD, spaces.MultiDiscrete([9, 4]), spaces.Discrete(16), spaces.Discrete(12)):
        n = [int(space.nvec[0]), int(space.nvec[1])] if hasattr(space, "nvec") else [int(space.n)]
        actions = np.array(list(itertools.product(*map(range, n)))).squeeze(-1 if len(n) == 1 else ())
        mirrored = mirror_action(actions, space)
        np.testing.assert_array_equal(mirror_action(mirrored, space), actions)
        np.testing.assert_array_equal(split_action(mirrored, space)[1], split_action(actions, space)[1])  # attacks kept
    assert mirror_action(1, spaces.Discrete(16)) == 5 and isinstance(mirror_action(1, spaces.Discrete(16)), int)
    assert describe_action(np.array([6, 3]), MD) == "down-right + G" and describe_action(11, spaces.Discrete(12)) == "G"
    assert describe_action(np.array([0, 0]), MD) == "no-move"


def test_a_mirrored_observation_flips_the_frame_and_the_sides():
    frame = np.arange(2 * 3 * 4 * 1, dtype=np.uint8).reshape(2, 3, 4, 1)  # a batch of two frames
    obs = {"frame": frame, "timer": np.array([5, 6]), "P1": {"side": np.array([0, 1]), "health": np.array([9, 8])}}
    m = mirror_observation(obs)
    np.testing.assert_array_equal(m["frame"], frame[:, :, ::-1])
    assert m["P1"]["side"].tolist() == [1, 0] and m["P1"]["health"] is obs["P1"]["health"] and m["timer"] is obs["timer"]
    assert obs["P1"]["side"].tolist() == [0, 1]  # the input is left as it was


def test_p2_mirrored_replay_has_p1_like_observations_and_remapped_actions(two_player):
    plain = arena.ImitationLearning(two_player, raw=True, perspective="P2")
    mirrored = arena.ImitationLearning(two_player, raw=True, perspective="P2", mirror=True)
    p1 = arena.ImitationLearning(two_player, raw=True, perspective="P1", mirror=True)
    for _ in range(plain.n_episodes):
        (o, i), (m, j), (q, k) = plain.reset(), mirrored.reset(), p1.reset()
        assert j["mirrored"] and not i["mirrored"] and not k["mirrored"]
        assert m["P1"]["side"] == 0 and o["P1"]["side"] == 1  # own fighter on the left, as P1 starts
        assert q["P1"]["side"] == 0  # P1's own view is left as recorded
        done = False
        while not done:
            np.testing.assert_array_equal(m["frame"], o["frame"][:, ::-1])
            assert m["P1"]["side"] == 1 - o["P1"]["side"] and m["P2"]["side"] == 1 - o["P2"]["side"]
            o, r, terminated, truncated, i = plain.step(0)
            m, s, *_, j = mirrored.step(0)
            assert s == r and MIRROR_MOVES[int(i["action"][0])] == int(j["action"][0])
            assert int(i["action"][1]) == int(j["action"][1])
            done = terminated or truncated
    both = arena.ImitationLearning(two_player, raw=True, perspective="both", mirror=True)
    flags = []
    for _ in range(both.n_episodes):
        flags.append(both.reset()[1]["mirrored"])
    assert flags.count(True) == flags.count(False) == 2  # P2's sides only


def test_datasets_give_the_loaders_mirrored_view(two_player):
    ds = arena.TrajectoryDataset(two_player, perspective="P2", mirror=True)
    assert ds.action_space == MD and len(ds) > 0
    loader = arena.ImitationLearning(two_player, raw=True, perspective="P2", mirror=True)
    frames, actions, rewards = [], [], []
    for _ in range(loader.n_episodes):
        obs, _ = loader.reset()
        done = False
        while not done:
            frames.append(obs["frame"])
            obs, reward, terminated, truncated, info = loader.step(0)
            actions.append(info["action"])
            rewards.append(reward)
            done = terminated or truncated
    t = ds.transitions(np.arange(len(ds)))
    np.testing.assert_array_equal(t.obs["frame"], np.stack(frames))
    np.testing.assert_array_equal(t.action, np.stack(actions))
    np.testing.assert_array_equal(t.reward, rewards)
    assert ds.transition(3).action.tolist() == actions[3].tolist()
    w = ds.windows([0], 4)
    np.testing.assert_array_equal(w.action[0], np.stack(actions[:4]))
    np.testing.assert_array_equal(ds.episode(0).actions, np.stack(actions[: ds.episodes[0].length]))
    again = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(again.transitions([5]).obs["frame"], t.obs["frame"][5:6])
    joint = arena.TrajectoryDataset(two_player)
    np.testing.assert_array_equal(t.obs["frame"], joint.transitions(np.arange(len(ds))).obs["frame"][:, :, ::-1])


def test_one_player_files_recorded_on_the_p2_side_are_mirrored(tmp_path):
    env = arena.make("duel", {"role": "P2", "frame_shape": (24, 36, 1), "difficulty": 1}, None,
                     {"file_path": str(tmp_path)})
    env.reset(seed=0)
    for _ in range(5):
        env.step(np.array([1, 0]))  # left: towards the CPU on the left
    env.close()
    il = arena.ImitationLearning(tmp_path, raw=True, mirror=True)
    obs, info = il.reset()
    assert info["mirrored"] and obs["P2"]["side"] == 0  # the agent (P2) now stands on the left
    assert il.step(0)[4]["action"].tolist() == [5, 0]  # and walked towards the right, where its foe is
    ds = arena.TrajectoryDataset(tmp_path, mirror=True)
    assert ds.transitions([0]).action.tolist() == [[5, 0]]


def test_mirror_is_refused_where_it_means_nothing(tmp_path, two_player):
    cart = arena.make("CartPole-v1", None, None, {"file_path": str(tmp_path)})
    cart.reset(seed=0)
    cart.step(0)
    cart.close()
    with pytest.raises(SettingsError, match="fighting games"):
        arena.ImitationLearning(tmp_path, mirror=True)
    with pytest.raises(SettingsError, match="fighting games"):
        arena.TrajectoryDataset(tmp_path, mirror=True)
    with pytest.raises(SettingsError, match="not 'joint'"):
        arena.ImitationLearning(two_player, perspective="joint", mirror=True)
    with pytest.raises(SettingsError, match="not 'joint'"):
        arena.TrajectoryDataset(two_player, mirror=True)
    with pytest.raises(SettingsError, match="two-player"):
        arena.TrajectoryDataset(tmp_path, perspective="P2")


def test_a_mirrored_policy_on_the_p2_side_sees_the_game_mirrored(monkeypatch):
    torch = pytest.importorskip("torch")  # noqa: F841
    from trajarena.learn.policy import BCPolicy, PolicyAgent

    obs_space = spaces.Dict(frame=spaces.Box(0, 255, (4, 4, 1), np.uint8),
                            P1=spaces.Dict(side=spaces.Discrete(2)), P2=spaces.Dict(side=spaces.Discrete(2)))
    policy = BCPolicy.create(obs_space, MD, seed=0, meta={"mirror": True})
    seen = []
    monkeypatch.setattr(policy, "predict", lambda obs: seen.append(obs) or np.array([1, 2]))
    obs = {"frame": np.arange(16, dtype=np.uint8).reshape(4, 4, 1), "P1": {"side": 0}, "P2": {"side": 1}}
    assert PolicyAgent(policy, player=1).act(obs, {"agent_side": 0}).tolist() == [5, 2]  # its left, the env's right
    assert seen[-1]["P1"]["side"] == 0 and seen[-1]["frame"][0, 0, 0] == 3  # own side first, then mirrored
    assert PolicyAgent(policy, player=0).act(obs, {"agent_side": 0}).tolist() == [1, 2]  # P1: as it is
    assert PolicyAgent(policy, player=0).act(obs, {"agent_side": 1}).tolist() == [5, 2]  # a one-player P2 role


@pytest.mark.slow
def test_bc_on_mirrored_p2_data_plays_as_p1_better_than_random(tmp_path):
    """The expert plays P2 against a player standing still; a policy cloned from P2's mirrored view plays P1."""
    pytest.importorskip("torch")
    from trajarena.learn.agents import make_agent
    from trajarena.learn.bc import load_policy_agent, train_bc

    settings = {"n_players": 2, "frame_shape": (16, 24, 1), "step_ratio": 6}
    env = arena.make("duel", settings, None, {"file_path": str(tmp_path / "data"), "ignore_p1": 1})
    for seed in range(16):
        play_episode(env, [Idle(), make_agent("expert", env, player=1)], seed=seed)
    env.close()
    returns = {}
    for mirror in (True, False):
        out = tmp_path / f"mirror_{mirror}.pt"
        train_bc(tmp_path / "data", out, epochs=8, lr=3e-3, batch_size=64, progress=False, seed=0,
                 loader_options={"perspective": "P2", "mirror": mirror})
        env = arena.make("duel", settings)
        agent = load_policy_agent(out, env, player=0)
        returns[mirror] = [play_episode(env, [agent, Idle()], seed=100 + i, max_steps=300)["return"] for i in range(4)]
    random = [play_episode(env, [make_agent("random", env, player=0, seed=i), Idle()], seed=100 + i,
                           max_steps=300)["return"] for i in range(4)]
    env.close()
    assert np.mean(returns[True]) > np.mean(random) + 50, (returns, random)
    assert np.mean(returns[True]) > np.mean(returns[False]) + 50  # without the mirror it walks the wrong way
