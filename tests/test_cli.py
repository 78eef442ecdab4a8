"""The command line: each command on real recordings, typed errors as exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import trajarena as arena
from trajarena.cli.app import app

runner = CliRunner()
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rec")
    env = arena.make("duel", {"difficulty": 2, "frame_shape": (32, 48, 1), "step_ratio": 6},
                     {"stack_frames": 2}, {"username": "cli", "file_path": str(folder)})
    env.reset(seed=1)
    env.action_space.seed(1)
    for _ in range(150):
        *_, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    env.close()
    return folder


def test_info_shows_metadata_and_episodes(recording):
    result = runner.invoke(app, ["info", str(recording), "--episodes"])
    assert result.exit_code == 0, result.output
    assert "duel" in result.output and "cli" in result.output and "150" in result.output
    assert "stack_frames" in result.output


def test_verify_and_repair_clean_folder(recording):
    result = runner.invoke(app, ["verify", str(recording)])
    assert result.exit_code == 0 and "150 steps" in result.output
    result = runner.invoke(app, ["repair", str(recording)])
    assert result.exit_code == 0 and "0 file(s) repaired" in result.output


def test_verify_reports_a_damaged_file(recording, tmp_path):
    src = next(recording.glob("*.arrow"))
    bad = tmp_path / src.name
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    result = runner.invoke(app, ["verify", str(tmp_path)])
    assert result.exit_code == 1 and "damaged" in result.output


def test_replay_to_gif(recording, tmp_path):
    imageio = pytest.importorskip("imageio")
    out = tmp_path / "ep.gif"
    result = runner.invoke(app, ["replay", str(recording), "-o", str(out), "--scale", "2"])
    assert result.exit_code == 0, result.output
    frames = imageio.mimread(out)
    assert np.asarray(frames[0]).shape[:2] == (64, 96)


def test_stats_with_plots(recording, tmp_path):
    pytest.importorskip("matplotlib")
    result = runner.invoke(app, ["stats", str(recording), "--plots", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "episodes.png").stat().st_size > 1000


def test_settings_lists_every_key():
    result = runner.invoke(app, ["settings"])
    assert result.exit_code == 0
    for key in ("difficulty", "stack_frames", "ignore_p2", "role_relative"):
        assert key in result.output


def test_bad_path_is_a_clear_error_from_the_script(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC}
    result = subprocess.run([sys.executable, "-m", "trajarena.cli.app", "info", str(tmp_path / "nope")],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert "error" in result.stdout and "nope" in result.stdout and "Traceback" not in result.stderr


def test_play_headless_records(tmp_path, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    out = tmp_path / "human"
    result = runner.invoke(app, ["play", "duel", "--max-steps", "25", "--fps", "0", "--no-show-help",
                                 "--no-print-keymap", "--record", str(out), "--save-partial", "--username", "bob",
                                 "-s", "characters=Mira"])
    assert result.exit_code == 0, result.output
    ds = arena.open_trajectories(out)
    assert ds.num_steps == 25 and ds.metadata["username"] == "bob"
    assert ds.metadata["players"] == {"P1": "human", "P2": "cpu"}
    assert ds.metadata["env_settings"]["characters"] == "Mira"


def test_play_rejects_a_bad_option(tmp_path):
    result = runner.invoke(app, ["play", "--p1", "cpu", "--p2", "cpu", "--fps", "0"])
    assert result.exit_code != 0


@pytest.mark.slow
def test_record_train_evaluate_pipeline(tmp_path):
    pytest.importorskip("torch")
    data, policy = tmp_path / "data", tmp_path / "p.pt"
    result = runner.invoke(app, ["record", "duel", "-n", "2", "-o", str(data), "-s", "difficulty=1",
                                 "-s", "frame_shape=[24,32,1]", "-s", "step_ratio=12", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "recorded 2 episodes of duel with 'expert'" in result.output
    assert arena.open_trajectories(data).num_episodes == 2
    result = runner.invoke(app, ["train-bc", str(data), "-o", str(policy), "--epochs", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert policy.exists() and "saved" in result.output
    out_json = tmp_path / "eval.json"
    result = runner.invoke(app, ["evaluate", str(policy), "-n", "1", "--difficulty", "1", "-b", "random",
                                 "--json", str(out_json)])
    assert result.exit_code == 0, result.output
    import json

    names = [r["name"] for r in json.loads(out_json.read_text())["results"]]
    assert names[1:] == ["random"] and len(names) == 2


def test_messages_keep_their_brackets_and_options_are_validated(recording, tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-m", "trajarena.cli.app", "record", "nope", "-n", "1", "--no-progress"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "[atari]" in out.stdout
    result = runner.invoke(app, ["replay", str(recording), "--fps", "0"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["replay", str(recording), "-o", str(tmp_path / "a.xyz")])
    assert result.exit_code == 2 and not (tmp_path / "a.xyz").exists()
    result = runner.invoke(app, ["record", "duel", "--seed", "-5"])
    assert result.exit_code == 2
    two = arena.make("duel", {"n_players": 2, "frame_shape": (16, 16, 1)}, None, {"file_path": str(tmp_path / "two")})
    two.reset(seed=0)
    for _ in range(3):
        two.step(two.action_space.sample())
    two.close()
    assert "[null, null]" in runner.invoke(app, ["info", str(tmp_path / "two")]).output  # not eaten as markup


def test_unwritable_output_is_an_error_not_a_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-m", "trajarena.cli.app", "record", "duel", "-n", "1", "--out", str(blocker),
                          "--no-progress"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "error" in out.stdout and "Traceback" not in out.stderr


def test_info_shows_each_file_when_files_differ_in_who_played(tmp_path):
    for name in ("ann", "bob"):
        env = arena.make("duel", {"frame_shape": (16, 16, 1)}, None, {"username": name, "file_path": str(tmp_path)})
        env.reset(seed=0)
        env.step(env.action_space.sample())
        env.close()
    output = runner.invoke(app, ["info", str(tmp_path)]).output
    assert "files differ in who played" in output and '"ann"' in output and '"bob"' in output
