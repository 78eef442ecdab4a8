"""DIAMBRA games through make(): settings in any dialect, recorded by our recorder, replayed equal to live.

The engine is the mock that ships inside diambra-arena (``diambra.arena.utils.engine_mock``), so no
Docker or ROM is needed; its rounds are shortened as the fixture generator does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import trajarena as arena
from _diambra import Mocker
from trajarena.errors import MissingDependencyError, SettingsError


@pytest.fixture
def engine():
    """DIAMBRA's engine mock, patched in with DIAMBRA's own load_mocker (rounds of 11 steps, 2 stages)."""
    pytest.importorskip("diambra.arena")
    from diambra.arena.utils.engine_mock import load_mocker

    mocker = Mocker()
    load_mocker(mocker)
    mock = mocker.patchers[0].new.__self__
    yield mock
    mocker.stopall()


def _short_rounds(mock) -> None:
    mock.game_data["ram_states"]["common"]["timer"][2] = 1
    mock.game_data["stages_per_game"] = 2


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(_equal(a[k], b[k]) for k in a)
    return np.array_equal(np.asarray(a), np.asarray(b)) and np.asarray(a).dtype == np.asarray(b).dtype


def _play(env, steps: int, seed: int):
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    live = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        live.append(obs)
        if terminated or truncated:
            break
    env.close()
    return live


def test_a_one_player_diambra_game_records_and_replays_equal_to_live(engine, tmp_path):
    wrappers = {"stack_frames": 3, "add_last_action": True, "stack_actions": 2, "scale": True, "role_relative": True}
    env = arena.make("doapp", {"frame_shape": (48, 64, 1), "role": "P2", "difficulty": 2, "action_space": "discrete"},
                     wrappers, {"file_path": str(tmp_path), "username": "mock"})
    _short_rounds(engine)
    assert env.unwrapped.single_attacks == 4 and env.unwrapped.agent_roles == ("P2",)
    live = _play(env, 200, seed=3)
    assert len(live) > 20  # a whole episode with several rounds: the stacks refill at each
    replay = arena.ImitationLearning(str(tmp_path))
    meta = replay.file_metadata[0]
    assert meta["env_id"] == "doapp" and meta["username"] == "mock"
    assert meta["env_settings"]["role"] == "P2" and meta["env_settings"]["action_space"] == "discrete"
    assert replay.observation_space == env.observation_space and replay.action_space == env.action_space
    obs, info = replay.reset()
    replayed = [obs]
    while True:
        obs, _, terminated, truncated, info = replay.step(None)
        replayed.append(obs)
        if terminated or truncated:
            break
    assert len(replayed) == len(live) and all(_equal(a, b) for a, b in zip(live, replayed, strict=True))
    raw = arena.ImitationLearning(str(tmp_path), raw=True)
    obs, info = raw.reset()
    assert obs["P1"]["health"].dtype == np.int16 and info["agent_side"] == 1  # agent played P2
    assert raw.observation_space.contains(obs)


def test_a_two_player_diambra_game_records_both_agents_and_replays_each_side(engine, tmp_path):
    settings = {"n_players": 2, "role": ("P2", "P1"), "action_space": ("discrete", "multi_discrete"),
                "frame_shape": (32, 48, 0), "characters": ("Ryu", "Ken")}
    env = arena.make("sfiii3n", settings, None, {"file_path": str(tmp_path), "ignore_p2": 1})
    _short_rounds(engine)
    live = _play(env, 200, seed=5)
    joint = arena.ImitationLearning(str(tmp_path), perspective="joint")
    assert joint.action_space == env.action_space
    obs, info = joint.reset()
    replayed = [obs]
    for _ in live[1:]:
        obs, *_ = joint.step(None)
        replayed.append(obs)
    assert all(_equal(a, b) for a, b in zip(live, replayed, strict=True))
    assert joint.replay.agent_roles == ("P2", "P1")
    agent_0 = arena.ImitationLearning(str(tmp_path), perspective="P1")
    assert agent_0.n_episodes == 1 and agent_0.action_space == env.action_space["agent_0"]
    with pytest.warns(UserWarning, match="leaves nothing to replay"):  # ignore_p2=1: agent_1 is no demonstration
        assert arena.ImitationLearning(str(tmp_path), perspective="P2").n_episodes == 0


def test_diambra_settings_dataclasses_and_21_names_are_accepted_and_stored_in_ours(engine, tmp_path):
    from diambra.arena import EnvironmentSettings, Roles, SpaceTypes, WrappersSettings

    settings = EnvironmentSettings(frame_shape=(32, 32, 1), role=Roles.P1, action_space=SpaceTypes.DISCRETE,
                                   difficulty=3, characters="Kasumi", splash_screen=False)
    env = arena.make("doapp", settings, WrappersSettings(stack_frames=2), {"dataset_path": str(tmp_path)})
    _play(env, 3, seed=0)
    meta = arena.ImitationLearning(str(tmp_path)).file_metadata[0]
    assert meta["env_settings"]["role"] == "P1" and meta["env_settings"]["action_space"] == "discrete"
    assert meta["env_settings"]["characters"] == "Kasumi" and "pb_model" not in meta["env_settings"]
    assert meta["wrappers_settings"]["stack_frames"] == 2 and meta["wrappers_settings"]["filter_keys"] is None
    env = arena.make("sfiii3n", {"player": "P1P2", "char_outfits": (2, 3), "attack_but_combination": False},
                     {"frame_stack": 2})
    assert env.action_space["agent_0"] == env.action_space["agent_1"]
    assert list(env.action_space["agent_0"].nvec) == [9, 7]  # sfiii3n's 7 single attack buttons
    env.close()


def test_bad_diambra_settings_are_settings_errors_that_say_why(engine):
    with pytest.raises(SettingsError, match="unknown setting 'dificulty'.*Did you mean 'difficulty'"):
        arena.make("doapp", {"dificulty": 3})
    with pytest.raises(SettingsError, match="DIAMBRA refused the settings of 'doapp'.*difficulty"):
        arena.make("doapp", {"difficulty": 9})
    with pytest.raises(SettingsError, match="hardcore=True"):
        arena.make("doapp", {"hardcore": True})


def test_no_engine_is_an_engine_error_that_says_how_to_start_one():
    pytest.importorskip("diambra.arena")
    # in a subprocess: a real gRPC channel leaves threads that make later fork()s (DataLoader workers) unsafe
    code = ("import trajarena as arena\n"
            "try:\n    arena.make('doapp', {'env_address': '127.0.0.1:9', 'grpc_timeout': 1})\n"
            "except arena.errors.EngineError as exc:\n    print(exc)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert "no DIAMBRA engine answered at 127.0.0.1:9" in run.stdout and "diambra run" in run.stdout, run.stderr


def test_without_the_extra_a_diambra_game_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "diambra.arena", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'trajarena\[diambra\]'"):
        arena.make("doapp")
