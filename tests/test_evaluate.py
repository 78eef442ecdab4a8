"""Evaluation: same seeds for every contender, win rates and intervals, the comparison table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trajarena.errors import SettingsError
from trajarena.learn.evaluate import AgentEval, EvalResult, evaluate, t_critical, versus_cpu_settings, wilson_interval


def test_wilson_interval_is_inside_unit_range_and_contains_the_rate():
    for k, n in [(0, 5), (5, 5), (3, 10), (50, 100)]:
        lo, hi = wilson_interval(k, n)
        assert 0 <= lo <= k / n <= hi <= 1
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_t_critical_values():
    assert t_critical(1) == 12.706 and t_critical(30) == 2.042 and t_critical(31) == 1.96
    assert math.isnan(t_critical(0))


def test_agent_eval_statistics():
    e = AgentEval("a", (1.0, 2.0, 3.0), (5, 5, 5), 2, 2)
    assert e.mean_return == 2.0 and e.win_rate == 0.5 and e.matches == 4 and e.episodes == 3
    lo, hi = e.return_ci
    assert lo == pytest.approx(2.0 - 4.303 * 1.0 / math.sqrt(3)) and hi == pytest.approx(2.0 + 4.303 / math.sqrt(3))
    assert AgentEval("b", (1.0,), (1,), 0, 0).win_rate is None


def test_cartpole_expert_vs_random_on_the_same_seeds():
    result = evaluate("expert", "CartPole-v1", episodes=3, seed=7, baselines=("random",), progress=False)
    assert [r.name for r in result.results] == ["expert", "random"]
    assert result["expert"].returns == (500.0, 500.0, 500.0)
    assert result["random"].mean_return < 100
    again = evaluate("random", "CartPole-v1", episodes=3, seed=7, baselines=(), progress=False)
    assert again["random"].returns == result["random"].returns  # same seeds, same episodes
    assert result.relative_win_rate() is None


def test_duel_win_rates_and_table_agree():
    result = evaluate("expert", "duel", episodes=2, difficulty=1, seed=0, baselines=("random",), progress=False,
                      settings={"role": "P1", "frame_shape": (24, 32, 1)})
    expert = result["expert"]
    assert result.difficulty == 1 and expert.matches >= 2 and expert.win_rate > 0.5
    table = result.table()
    assert f"{expert.win_rate:.1%}" in table and f"{expert.mean_return:.1f}" in table
    d = result.to_dict()
    assert d["results"][0]["matches_won"] == expert.matches_won and d["difficulty"] == 1


def test_relative_win_rate():
    r = EvalResult("duel", 5, 0, (AgentEval("bc", (1.0,), (1,), 3, 1), AgentEval("expert", (1.0,), (1,), 4, 1)))
    assert r.relative_win_rate() == pytest.approx(0.75 / 0.8)
    assert "of the expert's win rate" in r.table()
    with pytest.raises(KeyError):
        r["nobody"]


def test_agent_objects_are_contenders():
    class Left:
        name = "left"

        def reset(self, seed=None):
            pass

        def act(self, obs, info):
            return 0

    result = evaluate(Left(), "CartPole-v1", episodes=2, baselines=(), progress=False)
    assert result.results[0].name == "left" and np.all(np.array(result.results[0].returns) < 20)


def test_bad_arguments_raise_settings_error():
    with pytest.raises(SettingsError, match="episodes"):
        evaluate("expert", "CartPole-v1", episodes=0, progress=False)
    with pytest.raises(SettingsError, match="difficulty applies to 'duel' only"):
        evaluate("expert", "CartPole-v1", episodes=1, difficulty=3, progress=False)
    with pytest.raises(SettingsError, match="contender"):
        evaluate(42, "CartPole-v1", episodes=1, progress=False)


def test_two_player_settings_are_played_against_the_cpu_from_agent_0s_side():
    assert versus_cpu_settings({"n_players": 2, "role": (None, "P1"), "characters": ("Mira", "Brutus"),
                                "outfits": (2, 3), "action_space": ("discrete", "multi_discrete")}) == {
        "n_players": 1, "role": "P2", "characters": "Mira", "outfits": 2, "action_space": "discrete"}
    assert versus_cpu_settings({"n_players": 2, "role": ["P2", None]})["role"] == "P2"
    assert versus_cpu_settings({"n_players": 2})["role"] == "P1"

    class Watcher:
        name = "watcher"
        seen: list = []

        def reset(self, seed=None):
            pass

        def act(self, obs, info):
            self.seen.append((info["agent_side"], int(obs["P2"]["character"])))
            return np.array([0, 0])

    result = evaluate(Watcher(), "duel", episodes=1, baselines=(), progress=False, max_steps=5,
                      settings={"n_players": 2, "role": (None, "P1"), "characters": ("Mira", "Brutus"),
                                "frame_shape": (24, 32, 1)})
    assert result["watcher"].steps == (5,) and set(Watcher.seen) == {(1, 1)}  # P2, Mira (index 1)


def test_a_policy_trained_on_two_player_files_is_evaluated_against_the_cpu(tmp_path):
    from trajarena.learn.bc import BCPolicy
    from trajarena.envs.make import make

    env = make("duel", {"frame_shape": (24, 32, 1)})
    two_player = {"n_players": 2, "frame_shape": [24, 32, 1], "role": [None, None], "characters": [None, None],
                  "outfits": [1, 1], "action_space": ["multi_discrete", "multi_discrete"], "seed": None}
    policy = BCPolicy.create(env.observation_space, env.action_space, seed=0,
                             meta={"env_id": "duel", "env_settings": two_player}, arch="small")
    env.close()
    path = policy.save(tmp_path / "two.pt")
    result = evaluate(path, episodes=2, difficulty=1, baselines=("random",), progress=False, max_steps=40)
    assert [r.name for r in result.results] == ["two", "random"]
    assert result["two"].steps == (40, 40) and result.difficulty == 1
