"""ImitationLearning: replay equals recording (duel 1P/2P with wrappers, CartPole), ranks, views, end of data."""

from __future__ import annotations

import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trajarena as arena
from trajarena.errors import MismatchError, SettingsError
from trajarena.replay.imitation import ImitationLearning, blank_value, partition
from trajarena.settings import WrappersSettings

DUEL_FAST = {"step_ratio": 60, "frame_shape": (32, 48, 3), "difficulty": 3}
WRAPPERS = {"frame_shape": (16, 24, 1), "stack_frames": 3, "dilation": 2, "add_last_action": True,
            "stack_actions": 2, "scale": True, "flatten": True, "repeat_action": 2}


def recording_env(env_id, folder, settings=None, wrappers=None, **rec):
    """``arena.make`` with recording: the recorder sits below the wrappers."""
    return arena.make(env_id, settings, wrappers, {"username": "test", "file_path": str(folder), **rec})


def record(env_id, folder, episodes, settings=None, wrappers=None, seed=0, max_steps=None, **rec):
    """Play seeded random episodes while recording; return what the wrapped live env produced.

    Each episode is ``[(obs, reward, terminated, truncated, action), ...]``, the first entry holding the
    reset observation only.
    """
    env = recording_env(env_id, folder, settings, wrappers, **rec)
    env.action_space.seed(seed)
    out = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        steps = [(obs, None, None, None, None)]
        done = False
        while not done:
            action = env.action_space.sample()
            obs, reward, terminated, truncated, _ = env.step(action)
            steps.append((obs, reward, terminated, truncated, action))
            done = terminated or truncated or (max_steps is not None and len(steps) > max_steps)
        out.append(steps)
    env.close()
    return out


def same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return np.array_equal(np.asarray(a), np.asarray(b))


def assert_replay_equals(il, live):
    for n, steps in enumerate(live):
        obs, info = il.reset()
        assert not info["exhausted"]
        assert same(obs, steps[0][0]), f"reset obs of episode {n}"
        for t, (o, r, te, tr, a) in enumerate(steps[1:], 1):
            obs, reward, terminated, truncated, info = il.step(il.action_space.sample())
            assert same(obs, o), f"obs of episode {n} step {t}"
            assert (reward, terminated, truncated) == (r, te, tr), f"episode {n} step {t}"
            assert same(info["action"], a), f"action of episode {n} step {t}"
    obs, info = il.reset()
    assert info["exhausted"] and il.exhausted


@pytest.fixture(scope="module")
def duel_1p(tmp_path_factory):
    folder = tmp_path_factory.mktemp("duel1p")
    return folder, record("duel", folder, 3, DUEL_FAST, WRAPPERS)


@pytest.fixture(scope="module")
def duel_2p(tmp_path_factory):
    folder = tmp_path_factory.mktemp("duel2p")
    settings = {**DUEL_FAST, "n_players": 2}
    wrappers = {k: v for k, v in WRAPPERS.items() if k != "repeat_action"}
    live = record("duel", folder, 2, settings, wrappers)
    raw = record("duel", tmp_path_factory.mktemp("duel2p_raw"), 2, settings, None)
    return folder, live, raw


def test_duel_1p_replay_equals_live_with_wrappers(duel_1p):
    folder, live = duel_1p
    il = ImitationLearning(traj_files_list=[folder], total_cpus=1, rank=0)
    assert il.wrappers_settings == WrappersSettings.from_dict(WRAPPERS)
    assert il.observation_space["frame"].shape == (16, 24, 3)
    assert_replay_equals(il, live)


def test_cartpole_replay_equals_live(tmp_path):
    live = record("CartPole-v1", tmp_path, 4)
    il = ImitationLearning(tmp_path)
    assert il.n_episodes == 4
    assert_replay_equals(il, live)


def test_duel_2p_joint_replay_equals_live(duel_2p):
    folder, live, _ = duel_2p
    il = ImitationLearning(folder, perspective="joint")
    assert set(il.action_space.spaces) == {"agent_0", "agent_1"}
    assert_replay_equals(il, live)


def test_duel_2p_views_swap_players_negate_reward(duel_2p):
    _, _, live = duel_2p
    folder = Path(duel_2p[0]).parent / (Path(duel_2p[0]).name.replace("duel2p", "duel2p_raw"))
    il = ImitationLearning(folder)  # raw recording: no wrappers stored
    assert il.n_episodes == 2 * len(live)
    for steps in live:
        for view, agent in ((0, "agent_0"), (1, "agent_1")):
            obs, info = il.reset()
            assert info["perspective"] == ("P1", "P2")[view]
            expect = steps[0][0] if view == 0 else {**steps[0][0], "P1": steps[0][0]["P2"], "P2": steps[0][0]["P1"]}
            assert same(obs, expect)
            for o, r, te, tr, a in steps[1:]:
                obs, reward, terminated, truncated, info = il.step(None)
                expect = o if view == 0 else {**o, "P1": o["P2"], "P2": o["P1"]}
                assert same(obs, expect)
                assert reward == (r if view == 0 else -r)
                assert (terminated, truncated) == (te, tr)
                assert same(info["action"], a[agent])
    assert il.reset()[1]["exhausted"]


def test_perspective_option_and_ignore_p1_p2(tmp_path):
    settings = {**DUEL_FAST, "n_players": 2}
    live = record("duel", tmp_path / "a", 2, settings)
    record("duel", tmp_path / "b", 2, settings, ignore_p2=1)
    assert ImitationLearning(tmp_path / "a", perspective="P1").n_episodes == 2
    p2 = ImitationLearning(tmp_path / "a", perspective="P2")
    assert p2.n_episodes == 2
    obs, _ = p2.reset()
    assert same(obs["P1"], live[0][0][0]["P2"])
    assert ImitationLearning(tmp_path / "b").n_episodes == 2  # ignore_p2: P1's side only
    with pytest.warns(UserWarning, match="nothing to replay"):
        assert ImitationLearning(tmp_path / "b", perspective="P2").n_episodes == 0
    record("duel", tmp_path / "c", 2, settings, ignore_p1=1)  # an agent P1 against a human P2
    only_p2 = ImitationLearning(tmp_path / "c")
    with pytest.warns(UserWarning, match="nothing to replay"):
        assert only_p2.n_episodes == 2 and ImitationLearning(tmp_path / "c", perspective="P1").n_episodes == 0
    obs, info = only_p2.reset()
    assert info["perspective"] == "P2" and same(obs["P1"], live[0][0][0]["P2"])  # seen from P2's side
    assert ImitationLearning(tmp_path / "c", perspective="joint").n_episodes == 2
    with pytest.raises(SettingsError, match="perspective"):
        ImitationLearning(tmp_path / "a", perspective="P3")


def test_exhausted_blank_observation_and_step(duel_1p):
    folder, live = duel_1p
    il = ImitationLearning(folder)
    for _ in live:
        il.reset()
    obs, info = il.reset()
    assert info["exhausted"] and il.exhausted
    assert same(obs, blank_value(il.observation_space))
    assert il.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = il.step(None)
    assert (reward, terminated, truncated, info["exhausted"]) == (0.0, True, False, True)


def test_loop_counts_passes_and_shuffle_is_seeded(tmp_path):
    record("CartPole-v1", tmp_path, 5)

    def order(**kw):
        il = ImitationLearning(tmp_path, loop=True, raw=True, **kw)
        seen = [il.reset()[1]["episode"] for _ in range(10)]
        return il, seen

    il, seen = order()
    assert seen == [0, 1, 2, 3, 4] * 2 and il.passes == 1 and not il.exhausted
    _, a = order(shuffle=True, seed=3)
    _, b = order(shuffle=True, seed=3)
    assert a == b and sorted(a[:5]) == sorted(a[5:]) == [0, 1, 2, 3, 4]
    assert a != seen


def test_mismatched_files_name_both(tmp_path):
    record("CartPole-v1", tmp_path / "cp", 1)
    record("duel", tmp_path / "duel", 1, DUEL_FAST, max_steps=3)
    cp, duel = (next((tmp_path / d).glob("*.arrow")) for d in ("cp", "duel"))
    with pytest.raises(MismatchError) as err:
        ImitationLearning([cp, duel])
    assert cp.name in str(err.value) and duel.name in str(err.value)


def test_different_stored_wrappers_raise_unless_given(tmp_path):
    record("duel", tmp_path / "a", 1, DUEL_FAST, {"stack_frames": 2}, max_steps=3)
    record("duel", tmp_path / "b", 1, DUEL_FAST, {"stack_frames": 3}, max_steps=3)
    with pytest.raises(MismatchError, match="wrappers settings"):
        ImitationLearning(tmp_path)
    il = ImitationLearning(tmp_path, wrappers_settings={"stack_frames": 4})
    assert il.observation_space["frame"].shape == (32, 48, 12)
    assert ImitationLearning(tmp_path, raw=True).observation_space["frame"].shape == (32, 48, 3)


def test_no_op_reset_is_replayed_as_recorded_steps(tmp_path):
    live = record("duel", tmp_path, 1, DUEL_FAST, {"no_op_max": 4, "stack_frames": 2})
    il = ImitationLearning(tmp_path)
    assert il.wrappers_settings.no_op_max == 0 and il.wrappers_settings.stack_frames == 2
    il.reset()
    n, done, actions = 0, False, []
    while not done:
        _, _, te, tr, info = il.step(None)
        actions.append(info["action"])
        n, done = n + 1, te or tr
    noops = n - (len(live[0]) - 1)
    assert 1 <= noops <= 4
    assert all(same(a, [0, 0]) for a in actions[:noops])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=7), st.integers(1, 9))
def test_partition_disjoint_and_complete(episodes, total_cpus):
    parts = [partition(len(episodes), episodes, total_cpus, r) for r in range(total_cpus)]
    flat = [u for p in parts for u in p]
    assert len(flat) == len(set(flat))
    assert set(flat) == {(f, u) for f, n in enumerate(episodes) for u in range(n)}


@pytest.mark.parametrize("n_files,total_cpus", [(3, 2), (1, 3), (2, 2), (2, 5)])
def test_ranks_replay_disjoint_complete_parts(tmp_path, n_files, total_cpus):
    for f in range(n_files):
        record("CartPole-v1", tmp_path / f"f{f}", 3, seed=10 * f)
    files = sorted(str(p) for p in tmp_path.rglob("*.arrow"))
    seen = []
    for rank in range(total_cpus):
        il = ImitationLearning(files, total_cpus=total_cpus, rank=rank)
        while True:
            obs, info = il.reset()
            if info["exhausted"]:
                break
            seen.append((info["file"], float(obs[0])))
    assert len(seen) == len(set(seen)) == 3 * n_files
    with pytest.raises(SettingsError, match="rank"):
        ImitationLearning(files, total_cpus=2, rank=2)


def test_render_rgb_array_human_and_pickle(duel_1p, monkeypatch):
    folder, _ = duel_1p
    il = ImitationLearning(folder, raw=True, render_mode="rgb_array")
    obs, _ = il.reset()
    assert np.array_equal(il.render(), obs["frame"])
    il.step(None)
    clone = pickle.loads(pickle.dumps(il))
    assert same(clone.reset()[0], obs)
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    human = ImitationLearning(folder, raw=True, render_mode="human")
    human.reset()
    human.step(None)
    human.close()


def test_traj_summary_and_metadata(duel_1p, capsys):
    folder, live = duel_1p
    il = ImitationLearning(folder)
    text = il.traj_summary()
    assert "3 episode(s)" in text and "duel" in text and text in capsys.readouterr().out
    assert il.env_id == "duel" and il.file_metadata[0]["username"] == "test"


def test_agent_roles_follow_recorded_side(tmp_path):
    record("duel", tmp_path, 1, {**DUEL_FAST, "role": "P2"}, max_steps=2)
    il = ImitationLearning(tmp_path, raw=True)
    il.reset()
    assert il.unwrapped.agent_roles == ("P2",)


def test_reset_seed_rewinds_and_action_is_ignored(tmp_path):
    record("CartPole-v1", tmp_path, 2)
    il = ImitationLearning(tmp_path)
    assert isinstance(il, gym.Env) and il.observation_space.shape == (4,)
    assert il.reset(seed=1)[1]["episode"] == 0
    a = il.step(0)
    assert il.reset()[1]["episode"] == 1
    assert il.reset(seed=1)[1]["episode"] == 0  # a seeded reset starts the data over (check_env's determinism)
    il2 = ImitationLearning(tmp_path)
    il2.reset()
    b = il2.step(1)
    assert same(a[0], b[0]) and a[4]["action"] == b[4]["action"]


def test_example_script_runs(tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "SDL_VIDEODRIVER": "dummy"}
    out = subprocess.run(
        [sys.executable, str(root / "examples" / "imitation_learning.py"), "--dataset", str(tmp_path / "ds"),
         "--record-episodes", "2", "--max-episodes", "5", "--quiet"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    ).stdout
    assert "episode 1: reward" in out and "exhausted" in out


@pytest.mark.parametrize("n_players,role", [(1, "P2"), (1, None), (2, ("P2", "P1"))])
def test_role_relative_replay_equals_live(tmp_path, n_players, role):
    settings = {**DUEL_FAST, "n_players": n_players, "role": role}
    wrappers = {"role_relative": True, "add_last_action": True, "flatten": True}
    live = record("duel", tmp_path, 3, settings, wrappers)
    il = ImitationLearning(tmp_path, perspective="joint")
    assert assert_replay_equals(il, live) is None


def test_replay_from_memory_mapped_cache_equals_live(duel_1p, tmp_path):
    folder, live = duel_1p
    il = ImitationLearning(folder, cache_dir=tmp_path / "cache")
    assert_replay_equals(il, live)
    assert list((tmp_path / "cache").rglob("obs%2Fframe.npy"))


def test_any_action_is_accepted_even_by_action_wrappers(tmp_path):
    live = record("duel", tmp_path, 1, DUEL_FAST, {"no_attack_buttons_combinations": True, "add_last_action": True})
    il = ImitationLearning(tmp_path)
    assert il.action_space.nvec.tolist() == [9, 4]
    il.reset()
    for o, r, te, tr, a in live[0][1:]:
        obs, reward, *_, info = il.step(0)  # DIAMBRA's example passes a dummy 0
        assert same(obs, o) and same(info["action"], a)


def test_p2_perspective_of_a_one_player_file_is_a_settings_error(duel_1p):
    folder, _ = duel_1p
    with pytest.raises(SettingsError, match="two-player"):
        ImitationLearning(folder, perspective="P2")
    assert ImitationLearning(folder, perspective="P1").n_episodes == 3


def test_numpy_integers_are_accepted_as_ranks(duel_1p):
    folder, _ = duel_1p
    il = ImitationLearning(folder, total_cpus=np.int64(2), rank=np.int32(1))
    assert (il.unwrapped.total_cpus, il.unwrapped.rank) == (2, 1) and type(il.unwrapped.rank) is int
    for total, rank in ((2, 1.0), (True, 0), (np.float64(2), 0), (2, "1")):
        with pytest.raises(SettingsError, match="rank"):
            ImitationLearning(folder, total_cpus=total, rank=rank)
