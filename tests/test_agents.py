"""Scripted agents: the protocol, the registry, the seeded random agent and the duel expert."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from trajarena.learn.agents import AGENTS, Agent, ExpertAgent, RandomAgent, encode_action, make_agent
from trajarena.envs.duel import DuelEnv
from trajarena.errors import NotSupportedError, SettingsError


def test_registry_and_protocol():
    assert set(AGENTS) >= {"random", "expert"}
    env = DuelEnv()
    for name in AGENTS:
        assert isinstance(make_agent(name, env), Agent)
    with pytest.raises(SettingsError, match="Did you mean 'expert'"):
        make_agent("exprt", env)


def test_random_agent_seeded_and_generic():
    env = gym.make("CartPole-v1")
    a, b, c = (make_agent("random", env, seed=s) for s in (3, 3, 4))
    seq_a = [a.act(None, {}) for _ in range(50)]
    assert seq_a == [b.act(None, {}) for _ in range(50)] and seq_a != [c.act(None, {}) for _ in range(50)]
    a.reset(seed=3)
    assert [a.act(None, {}) for _ in range(50)] == seq_a
    assert all(env.action_space.contains(x) for x in seq_a)
    with pytest.raises(NotSupportedError):
        make_agent("expert", gym.make("MountainCar-v0"))


@pytest.mark.parametrize("kind", ["multi_discrete", "discrete"])
def test_expert_actions_fit_the_space(kind):
    env = DuelEnv({"action_space": kind, "seed": 0, "difficulty": 2})
    expert = make_agent("expert", env)
    obs, info = env.reset()
    for _ in range(300):
        action = expert.act(obs, info)
        assert env.action_space.contains(action)
        obs, _, terminated, _, info = env.step(action)
        if terminated:
            break


def test_expert_deterministic():
    def trace():
        env = DuelEnv({"seed": 2, "difficulty": 5})
        expert = make_agent("expert", env)
        obs, info = env.reset()
        out = []
        for _ in range(400):
            action = expert.act(obs, info)
            out.append(tuple(int(v) for v in action))
            obs, _, terminated, _, info = env.step(action)
            if terminated:
                break
        return out

    t = trace()
    assert t == trace() and len(set(t)) >= 3  # walks, punches, kicks, guards...


def test_expert_beats_difficulty_4():
    wins = 0
    for seed in range(8):
        env = DuelEnv({"seed": seed, "difficulty": 4})
        expert = make_agent("expert", env)
        obs, info = env.reset()
        while True:
            obs, _, terminated, _, info = env.step(expert.act(obs, info))
            if info["stage_done"] or terminated:
                wins += info["outcome"] == 1
                break
    assert wins >= 6


def test_two_player_agents_play_their_side():
    env = DuelEnv({"n_players": 2, "action_space": ("discrete", "multi_discrete"), "role": ("P2", "P1")})
    e0, e1 = make_agent("expert", env, player=0), make_agent("expert", env, player=1)
    r1 = make_agent("random", env, player=1, seed=0)
    assert isinstance(e0, ExpertAgent) and isinstance(r1, RandomAgent)
    obs, info = env.reset(seed=0)
    a0, a1 = e0.act(obs, info), e1.act(obs, info)
    assert env.action_space["agent_0"].contains(a0) and env.action_space["agent_1"].contains(a1)
    assert env.action_space["agent_1"].contains(r1.act(obs, info))
    assert a0 == 1 and a1.tolist() == [5, 0]  # agent_0 is on the right (P2): walks left
    with pytest.raises(SettingsError):
        make_agent("expert", DuelEnv(), player=1)


def test_encode_action_reduced_spaces():
    md4, d12 = gym.spaces.MultiDiscrete([9, 4]), gym.spaces.Discrete(12)
    assert encode_action(7, 3, md4).tolist() == [7, 3] and encode_action(0, 6, md4).tolist() == [0, 3]
    assert encode_action(0, 4, md4).tolist() == [0, 0]
    assert encode_action(0, 2, d12) == 10 and encode_action(3, 0, d12) == 3 and encode_action(0, 5, d12) == 11
    with pytest.raises(NotSupportedError):
        encode_action(0, 0, gym.spaces.Box(0, 1, (2,)))
    assert np.issubdtype(encode_action(1, 1, gym.spaces.MultiDiscrete([9, 8])).dtype, np.integer)
