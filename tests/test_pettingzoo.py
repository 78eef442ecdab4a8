"""PettingZoo: the duel's parallel API, recording any parallel env per agent, replaying each agent's stream."""

from __future__ import annotations

import os
import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trajarena as arena
from trajarena.errors import NotSupportedError, SettingsError, UnknownEnvError

pettingzoo = pytest.importorskip("pettingzoo")
from pettingzoo.test import parallel_api_test  # noqa: E402

from trajarena.envs.pettingzoo import DuelParallelEnv, parallel_env  # noqa: E402
from trajarena.recording.pettingzoo import ParallelTrajectoryRecorder  # noqa: E402

from _helpers_interop import DUEL_FAST  # noqa: E402


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PettingZoo's deprecation notes about its old module API
        return fn(*args, **kwargs)


def _rps(**kwargs):
    return _quiet(pettingzoo.make, "parallel", "classic/rps-v2", **kwargs)


def play(env, episodes: int, seed: int = 0) -> list[dict]:
    """Random play; per episode and agent, what the env gave: observations, actions, rewards, flags."""
    out = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        seen = {a: {"obs": [obs[a]], "actions": [], "rewards": [], "done": []} for a in env.agents}
        for a in env.agents:
            env.action_space(a).seed(seed + ep)
        while env.agents:
            actions = {a: env.action_space(a).sample() for a in env.agents}
            obs, rewards, terms, truncs, _ = env.step(actions)
            for a, act in actions.items():
                seen[a]["obs"].append(obs[a])
                seen[a]["actions"].append(act)
                seen[a]["rewards"].append(rewards[a])
                seen[a]["done"].append(terms[a] or truncs[a])
        out.append(seen)
    env.close()
    return out


def test_duel_passes_the_parallel_api_test():
    _quiet(parallel_api_test, DuelParallelEnv(DUEL_FAST, max_cycles=80), num_cycles=200)


def test_duel_agents_see_their_own_side_and_zero_sum_rewards():
    env = parallel_env(DUEL_FAST, characters=("Mira", "Brutus"))
    obs, infos = env.reset(seed=3)
    assert obs["agent_0"]["P1"]["character"] == 1 and obs["agent_1"]["P1"]["character"] == 2
    assert infos["agent_1"]["agent_side"] == 1 and env.observation_space("agent_0") is env.observation_space("agent_0")
    total = 0.0
    while env.agents:
        obs, rewards, terms, truncs, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
        assert rewards["agent_1"] == -rewards["agent_0"]
        assert infos["agent_1"]["outcome"] == -infos["agent_0"]["outcome"]
        total += rewards["agent_0"]
    assert terms["agent_0"] and terms["agent_1"]
    with pytest.raises(SettingsError, match="agent"):
        env.action_space("agent_7")


def test_duel_is_in_pettingzoo_s_registry():
    env = _quiet(pettingzoo.make, "parallel", "trajarena/duel-v0", frame_shape=(16, 16, 1))
    assert isinstance(env, DuelParallelEnv) and env.observation_space("agent_0")["frame"].shape == (16, 16, 1)


@pytest.mark.parametrize("factory", [lambda: _rps(max_cycles=25), lambda: DuelParallelEnv(DUEL_FAST, max_cycles=40)],
                         ids=["rps", "duel"])
def test_the_recorder_is_itself_a_conforming_parallel_env(tmp_path, factory):
    env = ParallelTrajectoryRecorder(factory(), tmp_path)
    _quiet(parallel_api_test, env, num_cycles=60)
    env.close()
    assert env.files


def test_rps_streams_replay_per_agent(tmp_path):
    live = play(arena.make(_rps(max_cycles=6), traj_rec_settings={"file_path": str(tmp_path), "username": "bots"}), 3)
    for agent in ("player_0", "player_1"):
        il = arena.ImitationLearning(tmp_path / agent)
        assert il.n_episodes == 3
        for ep in live:
            obs, _ = il.reset()
            assert obs == ep[agent]["obs"][0]
            for t, action in enumerate(ep[agent]["actions"]):
                obs, reward, terminated, truncated, info = il.step(None)
                assert (info["action"], reward, obs) == (action, ep[agent]["rewards"][t], ep[agent]["obs"][t + 1])
            assert terminated or truncated
    meta = arena.open_trajectories(tmp_path / "player_1").metadata
    assert meta["multi_agent"]["agent"] == "player_1" and meta["username"] == "bots"
    assert meta["multi_agent"]["agents"] == ["player_0", "player_1"]
    both = arena.TrajectoryDataset(tmp_path)  # the agents share spaces: one dataset of both streams
    assert both.n_episodes == 6


def test_make_with_a_pettingzoo_id_stores_it(tmp_path):
    env = arena.make("pettingzoo/classic/rps-v2", {"num_actions": 5, "max_cycles": 4}, None,
                     {"file_path": str(tmp_path)})
    play(env, 1)
    meta = arena.open_trajectories(tmp_path / "player_0").metadata
    assert meta["env_id"] == "pettingzoo/classic/rps-v2" and meta["env_settings"]["num_actions"] == 5
    with pytest.raises(UnknownEnvError, match="registry"):
        arena.make("pettingzoo/classic/nope-v1")


def test_pistonball_every_piston_replays(tmp_path):
    pistonball = _quiet(pettingzoo.make, "parallel", "butterfly/pistonball-v6", n_pistons=3, max_cycles=12)
    live = play(ParallelTrajectoryRecorder(pistonball, tmp_path, env_id="pistonball_v6"), 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["piston_0", "piston_1", "piston_2"]
    ds = arena.TrajectoryDataset(tmp_path / "piston_2")
    ep = ds.episode(0)
    assert np.array_equal(ep.observations, np.stack(live[0]["piston_2"]["obs"]))
    assert np.allclose(ep.rewards, live[0]["piston_2"]["rewards"])


def test_boxing_two_players_from_ale_roms(tmp_path):
    ale_py = pytest.importorskip("ale_py")
    pytest.importorskip("multi_agent_ale_py")
    import ale_py.roms

    boxing = _quiet(pettingzoo.make, "parallel", "atari/boxing-v2", max_cycles=30,
                    auto_rom_install_path=os.path.dirname(ale_py.roms.__file__))
    live = play(arena.make(boxing, traj_rec_settings={"file_path": str(tmp_path)}), 1)
    for agent in ("first_0", "second_0"):
        il = arena.ImitationLearning(tmp_path / agent)
        obs, _ = il.reset()
        assert np.array_equal(obs, live[0][agent]["obs"][0]) and obs.shape == (210, 160, 3)
        actions = [il.step(None)[4]["action"] for _ in live[0][agent]["actions"]]
        assert actions == [int(a) for a in live[0][agent]["actions"]]


class Staggered(pettingzoo.ParallelEnv):
    """Agents that leave at their own times, and one ("late") that joins after the first step."""

    metadata = {"name": "staggered_v0"}

    def __init__(self, lifetimes: dict[str, int]):
        self.lifetimes = lifetimes
        self.possible_agents = [*lifetimes, "late"]
        self._obs = gym.spaces.Box(0, 100, (2,), np.float32)
        self._act = gym.spaces.Discrete(3)

    def observation_space(self, agent):
        return self._obs

    def action_space(self, agent):
        return self._act

    def _o(self, agent):
        return np.array([self.t, len(agent)], np.float32)

    def reset(self, seed=None, options=None):
        self.t = 0
        self.agents = list(self.lifetimes)
        return {a: self._o(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        self.t += 1
        obs = {a: self._o(a) for a in actions}
        rewards = {a: float(self.t) for a in actions}
        terms = {a: self.t >= self.lifetimes.get(a, 3) for a in actions}
        truncs = dict.fromkeys(actions, False)
        self.agents = [a for a in actions if not terms[a]]
        if self.t == 1:
            self.agents.append("late")
            obs["late"] = self._o("late")
        return obs, rewards, terms, truncs, {a: {"t": self.t} for a in obs}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lifetimes=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(1, 6), min_size=1))
def test_each_agent_s_episode_lasts_its_own_lifetime(tmp_path_factory, lifetimes):
    folder = tmp_path_factory.mktemp("staggered")
    env = ParallelTrajectoryRecorder(Staggered(lifetimes), folder)
    env.reset(seed=0)
    while env.agents:
        env.step({a: 0 for a in env.agents})
    env.close()
    for agent, life in lifetimes.items():
        ep = arena.TrajectoryDataset(folder / agent).episode(0)
        assert ep.length == life and ep.terminated[-1] and ep.rewards.tolist() == [float(t) for t in range(1, life + 1)]
    late = arena.TrajectoryDataset(folder / "late").episode(0)
    assert late.length == 2 and late.observations[0][0] == 1  # joined after step 1, left at step 3


def test_wrong_uses_are_typed_errors(tmp_path):
    env = _rps()
    with pytest.raises(NotSupportedError, match="single-agent"):
        arena.make(env, None, {"stack_frames": 2}, {"file_path": str(tmp_path)})
    with pytest.raises(NotSupportedError, match="own constructor"):
        arena.make(env, {"num_actions": 5})
    assert arena.make(env) is env
    with pytest.raises(NotSupportedError, match="ParallelTrajectoryRecorder"):
        arena.TrajectoryRecorder(env, tmp_path)
    with pytest.raises(SettingsError, match="possible agents"):
        ParallelTrajectoryRecorder(env, tmp_path, agents=["player_9"])
    with pytest.raises(SettingsError, match="ignore_p1"):
        arena.make(env, traj_rec_settings={"file_path": str(tmp_path), "ignore_p1": 1})
    with pytest.raises(SettingsError, match="max_cycles"):
        DuelParallelEnv(max_cycles=0)
