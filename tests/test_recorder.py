"""Recording wrappers on plain, Dict-observation, two-player and vector envs."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from _helpers_format import SpriteDuel, assert_nested_equal, run_episodes, stack
from trajarena.errors import SettingsError
from trajarena.format.reader import TrajectoryReader
from trajarena.recording.recorder import TrajectoryRecorder, VectorTrajectoryRecorder, settings_to_json


@dataclasses.dataclass(frozen=True)
class FakeSettings:
    difficulty: int = 3
    frame_shape: tuple = (84, 84, 1)


def test_cartpole_recording_stores_settings_and_episodes(tmp_path: Path) -> None:
    env = TrajectoryRecorder(gym.make("CartPole-v1"), tmp_path, username="alex", env_settings=FakeSettings(),
                             wrappers_settings={"stack_frames": 4, "scale": True}, players={"P1": "agent"})
    played = run_episodes(env, 3, seed=5)
    env.close()
    env.close()  # idempotent
    reader = TrajectoryReader(tmp_path)
    meta = reader.metadata
    assert meta["env_id"] == "CartPole-v1" and meta["username"] == "alex" and meta["ignore_p2"] == 0
    assert meta["env_settings"] == {"difficulty": 3, "frame_shape": [84, 84, 1]}
    assert meta["wrappers_settings"] == {"stack_frames": 4, "scale": True} and meta["players"] == {"P1": "agent"}
    assert meta["library_version"] and meta["format_version"] == 2
    assert [e.seed for e in reader.episodes] == [5, 6, 7]
    for i, ep in enumerate(played):
        got = reader.read_episode(i)
        assert np.array_equal(got.observations, np.stack(ep["obs"]))
        assert got.actions.tolist() == [int(a) for a in ep["actions"]]
        assert got.terminations.tolist() == ep["terminated"] and got.truncations.tolist() == ep["truncated"]


@pytest.mark.parametrize("n_players", [1, 2])
def test_image_dict_env_one_and_two_players(tmp_path: Path, n_players: int) -> None:
    env = TrajectoryRecorder(SpriteDuel(size=16, n_players=n_players, max_steps=15), tmp_path, ignore_p2=1,
                             players={"P1": "human", "P2": "cpu" if n_players == 1 else "agent"}, env_id="sprites")
    played = run_episodes(env, 2)
    env.close()
    reader = TrajectoryReader(tmp_path)
    assert reader.metadata["ignore_p2"] == 1 and reader.metadata["env_id"] == "sprites"
    names = [c["name"] for c in reader.metadata["columns"]]
    expected_actions = ["action/agent_0", "action/agent_1"] if n_players == 2 else ["action"]
    assert names == ["obs/frame", "obs/timer", "obs/P1/health", "obs/P1/side", "obs/P2/health", "obs/P2/side",
                     *expected_actions]
    for i, ep in enumerate(played):
        got = reader.read_episode(i)
        assert_nested_equal(stack(reader.observation_space, ep["obs"]), got.observations)
        assert_nested_equal(stack(reader.action_space, ep["actions"]), got.actions)
        assert got.infos["lives"].shape == (len(ep["obs"]), 2)


def test_bad_settings_raise_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="ignore_p2"):
        TrajectoryRecorder(gym.make("CartPole-v1"), tmp_path, ignore_p2=2)
    with pytest.raises(SettingsError, match=r"env_settings\.fn"):
        TrajectoryRecorder(gym.make("CartPole-v1"), tmp_path, env_settings={"fn": print})
    assert settings_to_json({"p": tmp_path, "x": np.float32(0.5), "inf": float("inf")}) == {
        "p": str(tmp_path), "x": 0.5, "inf": "inf"}


def record_vector(folder: Path, mode: AutoresetMode, steps: int = 250, n: int = 3) -> None:
    venv = SyncVectorEnv([lambda: gym.make("CartPole-v1")] * n, autoreset_mode=mode)
    rec = VectorTrajectoryRecorder(venv, folder, username="vec", chunk_steps=64)
    rec.reset(seed=10)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        _, _, te, tr, _ = rec.step(rng.integers(0, 2, n))
        if mode is AutoresetMode.DISABLED and (te | tr).any():
            rec.reset(options={"reset_mask": te | tr})
    rec.close()


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_vector_recording_equals_recording_each_env_alone(tmp_path: Path, mode: AutoresetMode) -> None:
    record_vector(tmp_path, mode)
    reader = TrajectoryReader(tmp_path)
    streams: dict[int, list[int]] = {}
    for i, e in enumerate(reader.episodes):
        vector = reader.file_metadata(i)["vector"]
        assert vector["autoreset_mode"] == mode.value and vector["num_envs"] == 3
        streams.setdefault(vector["index"], []).append(i)
    assert sorted(streams) == [0, 1, 2]
    total = 0
    for sub, episodes in streams.items():
        # the same sub-env recorded alone: same seed, same actions, unseeded resets after the first
        alone_dir = tmp_path / f"alone{sub}"
        env = TrajectoryRecorder(gym.make("CartPole-v1"), alone_dir)
        for k, idx in enumerate(sorted(episodes, key=lambda i: reader.episodes[i].episode)):
            vec_ep = reader.read_episode(idx)
            env.reset(seed=10 + sub if k == 0 else None)
            for a in vec_ep.actions:
                env.step(int(a))
            total += vec_ep.info.length
        env.close()
        alone = TrajectoryReader(alone_dir)
        assert alone.num_episodes == len(episodes)
        for k, idx in enumerate(sorted(episodes, key=lambda i: reader.episodes[i].episode)):
            a, v = alone.read_episode(k), reader.read_episode(idx)
            assert np.array_equal(a.observations, v.observations) and np.array_equal(a.rewards, v.rewards)
            assert np.array_equal(a.terminations, v.terminations) and np.array_equal(a.truncations, v.truncations)
            if v.info.end_reason == "env":
                assert a.info.terminated == v.info.terminated and a.info.truncated == v.info.truncated
    if mode is AutoresetMode.NEXT_STEP:
        assert total == 3 * 250 - sum(1 for e in reader.episodes if e.end_reason == "env")  # reset steps are no transitions
    else:
        assert total == 3 * 250


def test_discard_episode_is_skipped_by_every_reader(tmp_path: Path) -> None:
    from trajarena import verify
    from trajarena.replay.dataset import TrajectoryDataset
    from trajarena.envs.make import make
    from trajarena.replay.imitation import ImitationLearning

    env = make("CartPole-v1", None, None, {"file_path": str(tmp_path), "username": "u"})
    discard = env.get_wrapper_attr("discard_episode")
    kept = []
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        observations, done = [obs], False
        while not done and not (seed % 2 == 0 and len(observations) > 6):  # seeds 0, 2: 6 steps, then discarded
            obs, _, terminated, truncated, _ = env.step(len(observations) % 2)
            observations.append(obs)
            done = terminated or truncated
        if seed % 2 == 0:
            assert discard() is True
        else:
            kept.append(np.stack(observations))
    env.reset(seed=9)  # reset, then closed without a step: not stored either
    env.close()
    steps = sum(len(k) - 1 for k in kept)
    reader = TrajectoryReader(tmp_path)
    assert [e.seed for e in reader.episodes] == [1, 3] and reader.num_steps == steps
    assert all(np.array_equal(reader.read_episode(i).observations, k) for i, k in enumerate(kept))
    report = verify(tmp_path)
    assert (report.episodes, report.steps) == (2, steps)
    ds = TrajectoryDataset(tmp_path)
    assert (ds.n_episodes, len(ds)) == (2, steps)
    il = ImitationLearning(tmp_path)
    assert il.n_episodes == 2
    assert np.array_equal(il.reset(seed=0)[0], kept[0][0])
    from typer.testing import CliRunner

    from trajarena.cli.app import app

    out = CliRunner().invoke(app, ["info", str(tmp_path)]).output
    assert re.search(r"episodes +2 ", out) and re.search(rf"steps +{steps} ", out)


def test_reset_then_close_stores_nothing(tmp_path: Path) -> None:
    env = TrajectoryRecorder(gym.make("CartPole-v1"), tmp_path)
    env.reset(seed=0)
    env.reset(seed=1)
    env.close()
    assert env.files == [] and not list(tmp_path.iterdir())


def test_ignore_p1_is_stored_and_validated(tmp_path: Path) -> None:
    env = TrajectoryRecorder(SpriteDuel(size=8, n_players=2, max_steps=3), tmp_path, ignore_p1=1)
    run_episodes(env, 1)
    env.close()
    meta = TrajectoryReader(tmp_path).metadata
    assert (meta["ignore_p1"], meta["ignore_p2"]) == (1, 0)
    with pytest.raises(SettingsError, match="ignore_p1"):
        TrajectoryRecorder(gym.make("CartPole-v1"), tmp_path, ignore_p1=2)
    with pytest.raises(SettingsError, match="both 1"):
        TrajectoryRecorder(gym.make("CartPole-v1"), tmp_path, ignore_p1=1, ignore_p2=1)


LEAVES_THE_CONTEXT = """
import contextvars, sys
import numpy as np
import gymnasium as gym
from trajarena.format.writer import TrajectoryWriter

before = list(contextvars.copy_context().keys())
with TrajectoryWriter(sys.argv[1], gym.spaces.Box(0, 255, (16, 16, 3), np.uint8), gym.spaces.Discrete(2),
                      writer=sys.argv[2]) as w:
    w.reset(np.zeros((16, 16, 3), np.uint8), {}, seed=0)
    for t in range(50):
        w.step(t % 2, np.full((16, 16, 3), t, np.uint8), 1.0, t == 49, False, {"hp": t})
    inside = list(contextvars.copy_context().keys())
print(before == [], inside == [], "pandas" in sys.modules)  # the writer's first pa.array() imported pandas
"""


READS_IN_THE_CONTEXT = """
import contextvars, sys
from trajarena.format.reader import TrajectoryReader
from trajarena.replay.dataset import TrajectoryDataset

reader = TrajectoryReader(sys.argv[1])
episode = reader.read_episode(0)
frames = TrajectoryDataset(sys.argv[1]).column("obs")
print(list(contextvars.copy_context().keys()) == [], "pandas" in sys.modules, len(frames))
"""


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_recording_sets_no_context_variable_in_the_game_loops_thread(tmp_path: Path, mode: str) -> None:
    """Importing pandas (pyarrow does, on the writer's first array) sets the decimal module's context
    variable; in the game loop's thread that slows every later numpy call (each looks its own
    unset variables up in the thread's context), the env's own included."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("pandas") is None:
        pytest.skip("pandas is not installed: pyarrow imports nothing that sets a context variable")
    run = subprocess.run([sys.executable, "-c", LEAVES_THE_CONTEXT, str(tmp_path), mode], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    # no variable before nor while recording, though pandas was imported by then
    assert run.stdout.split() == ["True", "True", "True"]


def test_reading_sets_no_context_variable_in_the_callers_thread(tmp_path: Path) -> None:
    """As recording: a training loop that read files keeps numpy's fast path (see schema.warm_pyarrow)."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("pandas") is None:
        pytest.skip("pandas is not installed: pyarrow imports nothing that sets a context variable")
    env = TrajectoryRecorder(gym.make("CartPole-v1"), tmp_path, username="x")
    played = run_episodes(env, 2, seed=0)
    env.close()
    run = subprocess.run([sys.executable, "-c", READS_IN_THE_CONTEXT, str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "True", str(sum(len(ep["rewards"]) + 1 for ep in played))]
