"""The built-in game ``duel``: spaces, determinism, frames, info flags, rules, rendering."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from trajarena.learn.agents import make_agent
from trajarena.envs.duel import (
    ATTACK_NAMES, MOVE_NAMES, N_ATTACKS, N_DISCRETE, N_MOVES, N_STAGES, ROUND_TIME, DuelEnv,
    discrete_to_multi, multi_to_discrete,
)
from trajarena.envs.duel.characters import by_name
from trajarena.envs.duel.game import (
    BLOCKSTUN, FPS, HEIGHT, HITSTUN, KNOCKDOWN, MAX_HEALTH, WIDTH, Game,
)
from trajarena.errors import ResetNeeded, SettingsError, SpaceError
from trajarena.settings import EnvironmentSettings

NOOP2 = {"agent_0": np.array([0, 0]), "agent_1": np.array([0, 0])}


@pytest.mark.parametrize("n_players", [1, 2])
@pytest.mark.parametrize("action_space", ["multi_discrete", "discrete"])
def test_check_env(n_players, action_space):
    env = DuelEnv({"n_players": n_players, "action_space": action_space, "seed": 1})
    check_env(env, skip_render_check=True)
    if n_players == 2:
        assert isinstance(env.action_space, gym.spaces.Dict)
        assert set(env.action_space.spaces) == {"agent_0", "agent_1"}


def test_spaces_and_constants():
    env = DuelEnv({"n_players": 2, "action_space": ("discrete", "multi_discrete")})
    assert env.action_space["agent_0"] == gym.spaces.Discrete(16)
    assert env.action_space["agent_1"] == gym.spaces.MultiDiscrete([9, 8])
    obs_space = env.observation_space
    assert obs_space["frame"].shape == (HEIGHT, WIDTH, 3)
    assert obs_space["stage"].high[0] == N_STAGES and obs_space["timer"].high[0] == ROUND_TIME
    assert obs_space["P2"]["health"].high[0] == MAX_HEALTH and obs_space["P1"]["character"].n == 4
    assert (N_MOVES, N_ATTACKS, N_DISCRETE) == (9, 8, 16)
    assert len(MOVE_NAMES) == 9 and len(ATTACK_NAMES) == 8 and ATTACK_NAMES[:4] == ("none", "punch", "kick", "guard")
    assert isinstance(env.unwrapped.settings, EnvironmentSettings)
    assert env.metadata["render_fps"] == 10


def test_discrete_conversion_round_trip():
    for a in range(N_DISCRETE):
        assert multi_to_discrete(*discrete_to_multi(a)) == a
    assert discrete_to_multi(15) == (0, 7)
    with pytest.raises(SpaceError):
        discrete_to_multi(16)
    with pytest.raises(SpaceError):
        multi_to_discrete(9, 0)


def _rollout(settings, steps, seed):
    env = DuelEnv(settings)
    agent = make_agent("random", env, seed=seed) if settings.get("n_players", 1) == 1 else None
    space = env.action_space
    space.seed(seed)
    out = []
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        action = agent.act(obs, {}) if agent else space.sample()
        obs, reward, terminated, _, info = env.step(action)
        out.append((obs["frame"].tobytes(), obs["P1"]["health"][0], obs["P2"]["health"][0], reward, info["round_done"]))
        if terminated:
            obs, _ = env.reset()
    return out


@pytest.mark.parametrize("settings", [{}, {"n_players": 2}, {"frame_shape": (84, 84, 1), "step_ratio": 2}])
def test_deterministic(settings):
    a = _rollout(settings, 300, seed=7)
    b = _rollout(settings, 300, seed=7)
    assert a == b
    c = _rollout(settings, 300, seed=8)
    assert a != c


def test_settings_seed_and_reset_seed_agree():
    e1, e2 = DuelEnv({"seed": 5}), DuelEnv()
    o1, _ = e1.reset()
    o2, _ = e2.reset(seed=5)
    assert o1["frame"].tobytes() == o2["frame"].tobytes() and e1.agent_sides == e2.agent_sides
    assert e1.unwrapped.difficulty == e2.unwrapped.difficulty


@pytest.mark.parametrize(
    "shape, expected",
    [((84, 84, 1), (84, 84, 1)), ((64, 96, 3), (64, 96, 3)), ((0, 0, 1), (HEIGHT, WIDTH, 1)), ((0, 0, 0), (HEIGHT, WIDTH, 3))],
)
def test_frame_shape(shape, expected):
    env = DuelEnv({"frame_shape": shape}, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert env.observation_space["frame"].shape == expected
    assert obs["frame"].shape == expected and obs["frame"].dtype == np.uint8
    assert obs["frame"].std() > 10  # an actual picture, not a blank
    native = env.render()
    assert native.shape == (HEIGHT, WIDTH, 3)  # render() always gives the native colour frame
    if expected[2] == 1:
        grey = (native.astype(np.float64) @ [0.3, 0.59, 0.11])
        if expected[:2] == (HEIGHT, WIDTH):
            assert np.abs(obs["frame"][..., 0] - grey).max() < 4


def test_round_and_match_flags_2p():
    env = DuelEnv({"n_players": 2, "characters": ("Brutus", "Mira")})
    expert = make_agent("expert", env, player=0)
    obs, info = env.reset(seed=0)
    assert not any(info[k] for k in ("round_done", "stage_done", "game_done", "episode_done", "env_done"))
    wins, total, rounds = [], 0.0, 0
    while True:
        prev = (obs["P1"]["health"][0], obs["P2"]["health"][0])
        obs, reward, terminated, truncated, info = env.step({"agent_0": expert.act(obs, info), "agent_1": np.array([0, 0])})
        assert not truncated
        total += reward
        if not info["round_done"]:
            assert reward == (prev[1] - obs["P2"]["health"][0]) - (prev[0] - obs["P1"]["health"][0])
        else:
            rounds += 1
            wins.append(int(obs["P1"]["wins"][0]))
            assert info["round_outcome"] == 1
        if terminated:
            break
        assert not info["game_done"]
    assert wins == [1, 2] and rounds == 2
    assert info["stage_done"] and info["game_done"] and info["episode_done"] and info["env_done"]
    assert info["outcome"] == 1 and total == 2 * MAX_HEALTH
    assert obs["P2"]["health"][0] == 0  # the final observation shows the KO
    with pytest.raises(ResetNeeded, match="reset"):
        env.step(NOOP2)


def test_timer_runs_out_draw():
    env = DuelEnv({"n_players": 2})
    obs, _ = env.reset(seed=0)
    timers, steps = [int(obs["timer"][0])], 0
    while True:
        obs, reward, terminated, _, info = env.step(NOOP2)
        steps += 1
        timers.append(int(obs["timer"][0]))
        if info["round_done"]:
            break
    assert steps == ROUND_TIME * FPS // 6 and reward == 0
    assert timers[0] == ROUND_TIME and timers == sorted(timers[:-1], reverse=True) + [ROUND_TIME]
    assert info["round_outcome"] == 0 and obs["P1"]["wins"][0] == 1 and obs["P2"]["wins"][0] == 1  # a draw counts for both


def _play_1p(env, agent, max_steps=20000):
    obs, info = env.reset()
    history = []
    for _ in range(max_steps):
        obs, reward, terminated, _, info = env.step(agent.act(obs, info))
        history.append((dict(info), int(obs["stage"][0]), reward))
        if terminated:
            return history
    raise AssertionError("episode did not end")


def test_1p_game_over_and_continue():
    idle = make_agent("random", DuelEnv(), seed=0)
    idle.act = lambda obs, info: np.array([0, 0])  # stands still: loses every match
    env = DuelEnv({"seed": 3, "difficulty": 8})
    history = _play_1p(env, idle)
    last = history[-1][0]
    assert last["game_done"] and last["episode_done"] and last["env_done"] and last["outcome"] == -1
    assert not any(h[0]["stage_done"] for h in history) and history[-1][1] == 1
    assert sum(h[0]["round_done"] for h in history) == 2
    cont = _play_1p(DuelEnv({"seed": 3, "difficulty": 8, "continue_game": -1}), idle)
    losses = [h for h in cont if h[0]["outcome"] == -1]
    assert len(losses) == 2 and not losses[0][0]["game_done"] and losses[1][0]["game_done"]


def test_1p_tower_stages():
    env = DuelEnv({"seed": 1, "difficulty": 1, "characters": "Kenji", "role": "P2"})
    history = _play_1p(env, make_agent("expert", env))
    cleared = [h for h in history if h[0]["stage_done"]]
    stages = [h[1] for h in history]
    assert stages == sorted(stages) and stages[-1] == N_STAGES
    assert len(cleared) == N_STAGES and history[-1][0]["game_done"] and history[-1][0]["outcome"] == 1
    assert env.agent_sides == (1,) and history[-1][0]["agent_side"] == 1
    assert sum(h[2] for h in history) > 0  # reward from P2's (the agent's) side


def test_role_random_and_characters():
    sides = {DuelEnv({"seed": s}).reset()[1]["agent_side"] for s in range(12)}
    assert sides == {0, 1}
    env = DuelEnv({"characters": "Longo", "role": "P1"})
    obs, _ = env.reset(seed=0)
    assert obs["P1"]["character"] == 3 and obs["P1"]["side"] == 0 and obs["P2"]["side"] == 1
    env2 = DuelEnv({"n_players": 2, "characters": ("Mira", "Mira"), "role": ("P2", None)})
    obs, _ = env2.reset(seed=0)
    assert env2.agent_sides == (1, 0) and obs["P1"]["character"] == obs["P2"]["character"] == 1


def test_bad_inputs():
    env = DuelEnv()
    with pytest.raises(ResetNeeded):
        env.step(np.array([0, 0]))
    env.reset(seed=0)
    with pytest.raises(SpaceError):
        env.step(np.array([9, 0]))
    env2 = DuelEnv({"n_players": 2})
    env2.reset(seed=0)
    with pytest.raises(SpaceError):
        env2.step([0, 0])
    with pytest.raises(SettingsError):
        DuelEnv({"characters": "Ryu"})
    with pytest.raises(SettingsError, match="render_mode"):
        DuelEnv(render_mode="ascii")



@pytest.mark.parametrize("seed", [-5, "a", 1.5, True])
def test_reset_with_a_bad_seed_raises_settings_error_naming_it(seed):
    with pytest.raises(SettingsError, match=f"seed={seed!r}"):
        DuelEnv().reset(seed=seed)


def test_reset_accepts_numpy_integer_seeds():
    a, _ = DuelEnv({"frame_shape": (24, 32, 1)}).reset(seed=np.int64(3))
    b, _ = DuelEnv({"frame_shape": (24, 32, 1)}).reset(seed=3)
    np.testing.assert_array_equal(a["frame"], b["frame"])


def test_discrete_actions_accept_integers_and_one_element_arrays():
    results = []
    for action in (3, np.int64(3), np.array(3), np.array([3]), [3], 3.0):
        env = DuelEnv({"action_space": "discrete", "frame_shape": (24, 32, 1)})
        env.reset(seed=0)
        results.append(env.step(action)[0]["frame"])
    for frame in results[1:]:
        np.testing.assert_array_equal(frame, results[0])


@pytest.mark.parametrize("action", [np.array([3, 1]), np.array([3.5]), 2.5, "3", None, True, np.array([[3]])])
def test_bad_discrete_actions_raise_space_error(action):
    env = DuelEnv({"action_space": "discrete"})
    env.reset(seed=0)
    with pytest.raises(SpaceError, match="discrete duel action is an integer"):
        env.step(action)


@pytest.mark.parametrize("action", [np.array([1.5, 0.2]), [1, 2, 3], np.array([[1, 2]]), 3, None, "ab",
                                    np.array([np.nan, 0.0]), np.array([True, False])])
def test_bad_multi_discrete_actions_raise_space_error(action):
    env = DuelEnv()
    env.reset(seed=0)
    with pytest.raises(SpaceError, match="pair of integers"):
        env.step(action)


def test_whole_float_multi_discrete_actions_are_accepted():
    env = DuelEnv({"frame_shape": (24, 32, 1)})
    env.reset(seed=0)
    assert env.step(np.array([3.0, 1.0]))[0]["frame"].shape == (24, 32, 1)

# ---- the rules, on the game itself ---------------------------------------------------------------

def _close_game(a="Kenji", b="Kenji", gap=4.0) -> Game:
    g = Game(by_name(a), by_name(b))
    f1, f2 = g.fighters
    f2.x = f1.x + f1.half_w + f2.half_w + gap
    return g


def _run(g: Game, frames: int, p1=(0, 0), p2=(0, 0)) -> None:
    for _ in range(frames):
        g.tick(*p1, *p2)


def test_characters_differ():
    walked = {}
    for name in ("Kenji", "Mira", "Brutus", "Longo"):
        g = Game(by_name(name), by_name("Kenji"))
        x0 = g.fighters[0].x
        _run(g, 20, p1=(5, 0))
        walked[name] = g.fighters[0].x - x0
    assert walked["Mira"] > walked["Kenji"] > walked["Brutus"]
    damage = {}
    for name in ("Mira", "Kenji", "Brutus"):
        g = _close_game(name, "Kenji")
        _run(g, 12, p1=(0, 1))
        damage[name] = MAX_HEALTH - g.fighters[1].health
    assert damage["Brutus"] > damage["Kenji"] > damage["Mira"] > 0
    for name, gap, hits in (("Longo", 20.0, True), ("Mira", 20.0, False)):  # reach
        g = _close_game(name, "Kenji", gap=gap)
        _run(g, 12, p1=(0, 1))
        assert (g.fighters[1].health < MAX_HEALTH) == hits, name
    assert by_name("Brutus").width > by_name("Mira").width and by_name("Longo").height > by_name("Mira").height


def test_guard_blocks_and_its_counters():
    g = _close_game()  # punch into a standing guard: no damage, block-stun
    _run(g, 8, p1=(0, 1), p2=(0, 3))
    assert g.fighters[1].health == MAX_HEALTH and g.fighters[1].state == BLOCKSTUN
    g = _close_game(gap=10.0)  # a low sweep beats a standing guard...
    _run(g, 12, p1=(7, 2), p2=(0, 3))
    assert g.fighters[1].health < MAX_HEALTH and g.fighters[1].state == KNOCKDOWN
    g = _close_game(gap=10.0)  # ...not a crouching one
    _run(g, 12, p1=(7, 2), p2=(7, 3))
    assert g.fighters[1].health == MAX_HEALTH
    g = _close_game(gap=2.0)  # a throw beats guard
    _run(g, 8, p1=(0, 5), p2=(0, 3))
    assert g.fighters[1].health < MAX_HEALTH and g.fighters[1].state == KNOCKDOWN
    g = _close_game(gap=10.0)  # the special chips through guard
    _run(g, 16, p1=(0, 4), p2=(0, 3))
    assert 0 < MAX_HEALTH - g.fighters[1].health <= 5


def test_hitstun_knockback_and_crouch_dodges_punch():
    g = _close_game()
    x0 = g.fighters[1].x
    _run(g, 6, p1=(0, 1))
    assert g.fighters[1].state == HITSTUN
    _run(g, 6)
    assert g.fighters[1].x > x0 + 3  # pushed away
    g = _close_game("Kenji", "Kenji")
    _run(g, 12, p1=(0, 1), p2=(7, 0))
    assert g.fighters[1].health == MAX_HEALTH  # the punch goes over a crouching foe


def test_jump_and_cross_over():
    g = _close_game(gap=12.0)
    _run(g, 3, p1=(4, 0))
    assert g.fighters[0].y > 0
    _run(g, 60)
    f1, f2 = g.fighters
    assert f1.y == 0 and f1.x > f2.x and f1.facing == -1 and f2.facing == 1


def test_render_rgb_array():
    env = DuelEnv(render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.shape == (HEIGHT, WIDTH, 3) and img.dtype == np.uint8 and len(np.unique(img.reshape(-1, 3), axis=0)) > 50
    assert DuelEnv().render() is None


def test_render_human_headless(monkeypatch):
    pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    env = DuelEnv({"step_ratio": 1}, render_mode="human")
    env.reset(seed=0)
    for _ in range(3):
        env.step(env.action_space.sample())
    assert env._window is not None and env._window.get_size() == (WIDTH * 4, HEIGHT * 4)
    env.close()
    assert env._window is None and "SDL_VIDEODRIVER" in os.environ


def test_continue_with_probability_and_info_numbers():
    env = DuelEnv({"seed": 0, "difficulty": 8, "continue_game": 1.0, "step_ratio": 3})
    assert env.metadata["render_fps"] == 20
    obs, info = env.reset()
    assert (info["stage"], info["round"], info["outcome"]) == (1, 1, 0)
    losses, rounds = 0, []
    for _ in range(20000):
        obs, _, terminated, _, info = env.step(np.array([0, 0]))
        assert not terminated and info["stage"] == 1 and info["difficulty"] == 8
        if info["round_done"]:
            rounds.append(info["round"])
        if info["outcome"] == -1:
            losses += 1
            assert not info["game_done"] and obs["P1"]["wins"][0] == obs["P2"]["wins"][0] == 0
            if losses == 2:
                break
    assert losses == 2 and rounds == [1, 2, 1, 2]


@pytest.mark.slow
def test_bench_duel_speed_quick(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    cmd = [sys.executable, str(root / "bench" / "duel_speed.py"), "--quick", "--results-dir", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=root, env=env, text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| duel default (1P, step_ratio=6, 128x192x3) |" in proc.stdout and (tmp_path / "duel_speed.json").exists()
