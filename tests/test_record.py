"""Parallel headless recording: files per rank, summaries, determinism across worker counts, errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from trajarena.errors import RecordingError, SettingsError
from trajarena.replay.imitation import ImitationLearning
from trajarena.learn.agents import CartPoleExpert, make_agent
from trajarena.learn.rollout import RecordSummary, record


def _replayed_actions(files) -> list[list[int]]:
    il = ImitationLearning(traj_files_list=[str(f) for f in files])
    episodes = []
    obs, info = il.reset()
    while not il.exhausted:
        actions, done = [], False
        while not done:
            obs, _, terminated, truncated, info = il.step(il.action_space.sample())
            actions.append(int(info["action"]))
            done = terminated or truncated
        episodes.append(actions)
        obs, info = il.reset()
    il.close()
    return episodes


def test_cartpole_expert_scores_the_maximum():
    env = gym.make("CartPole-v1")
    agent = CartPoleExpert(env)
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs, info))
            total += reward
            done = terminated or truncated
        assert total == 500.0


def test_record_in_process_writes_loadable_files(data_root):
    summary = record("CartPole-v1", "expert", episodes=2, workers=1, out=data_root, progress=False, seed=5)
    assert isinstance(summary, RecordSummary)
    assert (summary.episodes, summary.steps, summary.workers) == (2, 1000, 1)
    assert summary.returns == (500.0, 500.0)
    assert summary.files and summary.bytes == sum(p.stat().st_size for p in data_root.rglob("*.arrow"))
    assert summary.win_rate is None  # CartPole has no matches
    episodes = _replayed_actions(summary.files)
    assert [len(e) for e in episodes] == [500, 500]
    assert "1,000" in summary.format()


def test_parallel_ranks_write_their_own_files_and_match_a_single_process(tmp_path):
    one = record("CartPole-v1", "random", episodes=4, workers=1, out=tmp_path / "one", progress=False, seed=3)
    two = record("CartPole-v1", "random", episodes=4, workers=2, out=tmp_path / "two", progress=False, seed=3)
    assert two.workers == 2 and two.episodes == 4
    assert one.returns == two.returns  # episode i always uses seed + i
    from trajarena.replay.dataset import TrajectoryDataset

    ds = TrajectoryDataset([str(f) for f in two.files])
    ranks = {ds.file_metadata(i).get("rank") for i in range(len(ds.files))}
    assert ranks == {0, 1}
    assert sorted(map(tuple, _replayed_actions(one.files))) == sorted(map(tuple, _replayed_actions(two.files)))


def test_record_duel_counts_matches(data_root):
    summary = record("duel", "expert", episodes=1, workers=1, out=data_root, progress=False,
                     settings={"difficulty": 1, "role": "P1", "frame_shape": (24, 32, 1)})
    assert summary.matches >= 1 and summary.matches_won >= 1
    assert 0 < summary.win_rate <= 1
    il = ImitationLearning(traj_files_list=[str(f) for f in summary.files])
    assert il.env_id == "duel" and il.env_settings["difficulty"] == 1
    assert il.file_metadata[0]["agent"] == "expert" and il.file_metadata[0]["rank"] == 0
    il.close()


@pytest.mark.parametrize("kwargs", [{"episodes": 0}, {"workers": 0}, {"episodes": 1.5}])
def test_bad_counts_raise_settings_error(data_root, kwargs):
    args = {"episodes": 1, "workers": 1, **kwargs}
    with pytest.raises(SettingsError, match="must be an integer"):
        record("CartPole-v1", "expert", out=data_root, progress=False, **args)


def test_unknown_agent_lists_valid_names():
    with pytest.raises(SettingsError, match="Did you mean .expert.. Valid agents: cartpole-expert, expert, random"):
        make_agent("expret", gym.make("CartPole-v1"))


def test_failing_worker_raises_recording_error_with_rank(data_root):
    # an env registered only in this process: the parent's early check makes it, the spawned workers cannot;
    # the parent names the rank and the cause
    gym.register("OnlyHere-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv")
    try:
        with pytest.raises(RecordingError, match="rank [01] failed: UnknownEnvError: unknown env id 'OnlyHere-v0'"):
            record("OnlyHere-v0", "random", episodes=2, workers=2, out=data_root, progress=False)
    finally:
        del gym.registry["OnlyHere-v0"]


def test_a_bad_agent_or_setting_fails_before_any_worker_or_progress_bar(data_root, monkeypatch):
    from trajarena.errors import NotSupportedError, SettingsError
    from trajarena.learn import rollout

    bars = []
    monkeypatch.setattr(rollout, "RecordBar", lambda *a: bars.append(a))
    with pytest.raises(NotSupportedError, match="'expert' agent plays the built-in 'duel'"):
        record("MountainCar-v0", "expert", episodes=2, workers=2, out=data_root)
    with pytest.raises(SettingsError, match="dificulty"):
        record("duel", "expert", episodes=2, workers=2, out=data_root, settings={"dificulty": 3})
    assert bars == [] and list(data_root.iterdir()) == []


def test_expert_name_resolves_to_cartpole_expert_on_cartpole():
    assert isinstance(make_agent("expert", gym.make("CartPole-v1")), CartPoleExpert)
    assert make_agent("cartpole-expert", gym.make("CartPole-v1")).act(np.zeros(4), {}) in (0, 1)


def test_two_player_recording_with_a_pair_of_agents(data_root):
    summary = record("duel", ("expert", "random"), episodes=1, workers=1, out=data_root, progress=False,
                     settings={"n_players": 2, "frame_shape": (24, 32, 1)})
    assert summary.agent == "expert,random" and summary.matches == 1 and summary.matches_won == 1
    il = ImitationLearning(traj_files_list=[str(f) for f in summary.files], perspective="joint")
    assert set(il.action_space.spaces) == {"agent_0", "agent_1"}
    il.close()
    with pytest.raises(SettingsError, match="one agent"):
        record("CartPole-v1", ("expert", "random"), episodes=1, workers=1, out=data_root, progress=False)


@pytest.mark.parametrize(("rec", "codec", "level"), [({"compression_level": 3}, "zstd", 3), ({"compression": "none"}, None, None)])
def test_recording_settings_reach_the_writer(tmp_path, rec, codec, level):
    from trajarena import open_trajectories
    from trajarena.learn.rollout import record

    record("CartPole-v1", "expert", episodes=1, workers=1, out=tmp_path, progress=False, traj_rec_settings=rec)
    meta = open_trajectories(tmp_path).metadata
    assert meta["rank"] == 0 and meta["agent"] == "expert"
    compression = meta["compression"]
    assert (compression or {}).get("codec") == codec
    if level is not None:
        assert compression["level"] == level
