"""make(): trajarena ids, Gymnasium ids, settings errors, recording below the wrappers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import trajarena as arena
from trajarena.errors import MissingDependencyError, SettingsError, UnknownEnvError
from trajarena.settings import EnvironmentSettings


def test_duel_from_dict_and_dataclass_are_the_same_env():
    a = arena.make("duel", {"difficulty": 2, "frame_shape": (32, 32, 1)})
    b = arena.make("duel", EnvironmentSettings(difficulty=2, frame_shape=(32, 32, 1)))
    oa, _ = a.reset(seed=3)
    ob, _ = b.reset(seed=3)
    assert np.array_equal(oa["frame"], ob["frame"]) and oa["frame"].shape == (32, 32, 1)


def test_gymnasium_id_with_kwargs():
    env = arena.make("CartPole-v1", {"max_episode_steps": 7})
    env.reset(seed=0)
    steps = 0
    while True:
        steps += 1
        *_, terminated, truncated, _ = env.step(0)
        if terminated or truncated:
            break
    assert steps <= 7


def test_unknown_id_suggests_a_close_one():
    with pytest.raises(UnknownEnvError, match="Did you mean 'duel'"):
        arena.make("duell")
    with pytest.raises(KeyError):  # also a KeyError, as Gymnasium users expect
        arena.make("NoSuchEnv-v0")


def test_bad_kwargs_for_a_gymnasium_id():
    with pytest.raises(SettingsError, match="CartPole-v1"):
        arena.make("CartPole-v1", {"no_such_kwarg": 1})


def test_ale_without_ale_py_says_how_to_install():
    try:
        import ale_py  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match=r"trajarena\[atari\]"):
            arena.make("ALE/Boxing-v5")
    else:
        env = arena.make("ALE/Boxing-v5")
        assert env.observation_space.shape == (210, 160, 3)


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (({"difficulty": 9},), "difficulty"),
        (({}, {"stack_frame": 4}), "stack_frame"),
        (({}, None, {"username": "a"}), "file_path"),
        (({}, None, {"file_path": "x", "ignore_p2": 3}), "ignore_p2"),
    ],
)
def test_settings_errors_name_the_key(args, key, tmp_path):
    with pytest.raises(SettingsError, match=key):
        arena.make("duel", *args)
    assert not any(tmp_path.iterdir())


def test_recorder_sits_below_the_wrappers(data_root):
    env = arena.make("duel", {"frame_shape": (40, 40, 3)}, {"frame_shape": (20, 20, 1), "stack_frames": 3, "flatten": True},
                     {"username": "u", "file_path": str(data_root)})
    obs, _ = env.reset(seed=0)
    assert obs["frame"].shape == (20, 20, 3)
    for _ in range(5):
        env.step(env.action_space.sample())
    env.close()
    ds = arena.open_trajectories(data_root)
    assert ds.observation_space["frame"].shape == (40, 40, 3)  # the raw stream
    assert ds.metadata["wrappers_settings"]["stack_frames"] == 3
    assert ds.metadata["env_settings"]["frame_shape"] == [40, 40, 3]
    assert ds.metadata["username"] == "u" and ds.num_steps == 5


def test_gymnasium_registry_knows_duel():
    env = gym.make("duel")
    obs, _ = env.reset(seed=0)
    assert obs["frame"].dtype == np.uint8


def test_import_does_not_pull_torch_or_pygame():
    import subprocess
    import sys

    code = "import sys, trajarena; trajarena.make('duel'); print('torch' in sys.modules, 'pygame' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def _writer_processes() -> list[str]:
    """Pids of this process's children that run a trajarena writer process (Linux)."""
    import os
    from pathlib import Path

    me = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    pids = me.read_text().split() if me.exists() else []

    def command(pid: str) -> bytes:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # it has just ended
            return b""

    return [p for p in pids if b"writer_child" in command(p)]


def test_a_wrapper_that_does_not_fit_stops_the_recorder(tmp_path):
    import threading

    with pytest.raises(SettingsError, match="image observation"):
        arena.make("CartPole-v1", None, {"stack_frames": 4}, {"file_path": str(tmp_path / "d")})
    for t in threading.enumerate():  # a writer process's listener reaps its exit after close() returns
        if "writer" in t.name:
            t.join(30)
    assert not [t for t in threading.enumerate() if "writer" in t.name]
    assert not _writer_processes(), "a writer process was left running"
    assert not list(tmp_path.rglob("*.arrow*"))
