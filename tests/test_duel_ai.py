"""The CPU opponent: stronger at higher difficulty, deterministic, stronger along the tower."""

from __future__ import annotations

import numpy as np
import pytest

from trajarena.learn.agents import make_agent
from trajarena.envs.duel import DuelEnv
from trajarena.envs.duel.ai import CpuAI, Situation, mixup, read, tactic
from trajarena.envs.duel.characters import CHARACTERS
from trajarena.envs.duel.game import Game

SEEDS = range(12)


def first_match(agent_name: str, difficulty: int, seed: int) -> tuple[int, float]:
    """Play the first (stage 1) match of a 1-player episode; return (outcome, total reward)."""
    env = DuelEnv({"seed": seed, "difficulty": difficulty})
    agent = make_agent(agent_name, env, seed=seed)
    obs, info = env.reset()
    total = 0.0
    while True:
        obs, reward, terminated, _, info = env.step(agent.act(obs, info))
        total += reward
        if info["stage_done"] or terminated or info["outcome"] != 0:
            return info["outcome"], total


@pytest.fixture(scope="module")
def results() -> dict[tuple[str, int], list[tuple[int, float]]]:
    return {(a, d): [first_match(a, d, s) for s in SEEDS] for a in ("random", "expert") for d in (1, 8)}


def _win_rate(rows):
    return float(np.mean([o == 1 for o, _ in rows]))


def _reward(rows):
    return float(np.mean([r for _, r in rows]))


def test_random_agent_does_worse_at_difficulty_8(results):
    assert _win_rate(results["random", 1]) >= _win_rate(results["random", 8]) + 0.4
    assert _reward(results["random", 1]) > _reward(results["random", 8]) + 50
    assert _win_rate(results["random", 8]) <= 0.1


def test_expert_does_worse_at_difficulty_8(results):
    assert _win_rate(results["expert", 1]) == 1.0
    assert _reward(results["expert", 1]) > _reward(results["expert", 8]) + 50


def test_parameters_monotonic_in_level():
    ais = [CpuAI(level, np.random.default_rng(0)) for level in range(1, 9)]
    assert all(a.think_every >= b.think_every for a, b in zip(ais, ais[1:]))
    assert all(a.mistake > b.mistake and a.block < b.block and a.punish < b.punish for a, b in zip(ais, ais[1:]))
    assert ais[0].think_every > 3 * ais[-1].think_every


def test_ai_deterministic_given_rng():
    def run(seed):
        g = Game(CHARACTERS[0], CHARACTERS[2])
        a, b = CpuAI(3, np.random.default_rng(seed)), CpuAI(6, np.random.default_rng(seed + 1))
        trace = []
        for _ in range(2000):
            g.tick(*a.act(g, 0), *b.act(g, 1))
            trace.append((round(g.fighters[0].x, 6), g.fighters[0].health, g.fighters[1].health))
            if g.round_over:
                g.start_round()
        return trace

    assert run(1) == run(1) and run(1) != run(2)


def test_tower_gets_stronger():
    env = DuelEnv({"seed": 0, "difficulty": 3, "characters": "Brutus"})
    expert = make_agent("expert", env)
    obs, info = env.reset()
    levels = [env.unwrapped._ai.level]
    while True:
        obs, _, terminated, _, info = env.step(expert.act(obs, info))
        if info["stage_done"] and not terminated:
            levels.append(env.unwrapped._ai.level)
        if terminated:
            break
    assert len(levels) >= 2 and levels == sorted(levels) and len(set(levels)) == len(levels)


def test_tactic_rules():
    base = Situation(gap=60, toward=1, punch=17, kick=24, me_free=True, threat=False, threat_low=False,
                     whiff=False, foe_air=False, foe_down=False)
    assert tactic(base) == (5, 0)  # walk in
    assert tactic(base._replace(toward=-1)) == (1, 0)
    assert tactic(base._replace(gap=10)) == (0, 1)  # punch range
    assert tactic(base._replace(gap=20)) == (0, 2)  # kick range
    assert tactic(base._replace(gap=10, threat=True)) == (0, 3)  # guard
    assert tactic(base._replace(gap=10, threat=True, threat_low=True)) == (7, 3)  # crouch guard
    assert tactic(base._replace(gap=10, threat=True), block=False) == (0, 1)
    s = read(Game(CHARACTERS[3], CHARACTERS[1]), 0)
    assert s.toward == 1 and s.punch > 17 and s.kick > s.punch and not s.threat


def test_mixup_options():
    base = Situation(gap=60, toward=1, punch=17, kick=24, me_free=True, threat=False, threat_low=False,
                     whiff=False, foe_air=False, foe_down=False, sweep=25, special=29)
    assert mixup(base._replace(gap=3, foe_guard=True), 0.9) == (0, 5)  # throw a guarding foe
    assert mixup(base._replace(gap=20, foe_guard=True), 0.9) == (7, 2)  # sweep a standing guard
    assert mixup(base._replace(gap=20, foe_guard=True, foe_crouch=True), 0.9) is None
    assert mixup(base._replace(gap=27, whiff=True), 0.1) == (0, 4)  # special punishes a far whiff
    assert mixup(base._replace(gap=50), 0.1) == (4, 0)  # jump in
    assert mixup(base._replace(gap=20, me_air=True), 0.9) == (0, 2)  # air kick
    assert mixup(base, 0.9) is None
