"""Videos: MP4 and GIF of recorded episodes (frame counts read back), clean errors without the video extra."""

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
from trajarena.errors import MissingDependencyError, NotSupportedError, SettingsError
from trajarena.interop.video import episode_frames, export_video, write_video

from _helpers_interop import record_duel, record_env

iio = pytest.importorskip("imageio.v3")
runner = CliRunner()
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def duel(tmp_path_factory):
    return record_duel(tmp_path_factory.mktemp("duel"), episodes=2)


def _mp4_frames(path) -> np.ndarray:
    return iio.imread(path, plugin="FFMPEG")


def test_mp4_holds_every_frame_of_the_episode(duel, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    ds = arena.TrajectoryDataset(duel)
    summary = export_video(duel, tmp_path / "ep.mp4", episode=1, fps=30, scale=2)
    back = _mp4_frames(tmp_path / "ep.mp4")
    assert back.shape == (ds.episodes[1].length + 1, 48, 64, 3)
    assert summary.extra["frames"] == len(back) and summary.steps == ds.episodes[1].length
    truth = episode_frames(ds, 1).repeat(2, axis=1).repeat(2, axis=2).astype(float)
    assert np.abs(back.astype(float) - truth).mean() < 12  # H.264 is lossy, but close


def test_odd_frame_sizes_are_padded_to_even_for_h264(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    frames = np.random.default_rng(0).integers(0, 255, (7, 25, 33, 1), dtype=np.uint8)
    write_video(frames, tmp_path / "odd.mp4", fps=10)
    assert _mp4_frames(tmp_path / "odd.mp4").shape == (7, 26, 34, 3)


def test_gif_is_lossless_for_few_colours(tmp_path):
    pytest.importorskip("PIL")
    frames = np.zeros((4, 10, 12, 3), np.uint8)
    for t in range(4):
        frames[t, t:t + 3, 2:5] = (255, 0, 0)
    write_video(frames, tmp_path / "ep.gif", fps=5)
    back = iio.imread(tmp_path / "ep.gif", index=None)
    assert np.array_equal(back[..., :3], frames)


def test_image_observation_envs_export_too(tmp_path):
    gym = pytest.importorskip("gymnasium")

    class Pixels(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (8, 10, 1), np.uint8)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return np.zeros((8, 10, 1), np.uint8), {}

        def step(self, action):
            self.t += 1
            return np.full((8, 10, 1), self.t * 20, np.uint8), 0.0, self.t == 5, False, {}

    folder = record_env(Pixels(), tmp_path / "px", episodes=1)
    frames = episode_frames(folder)
    assert frames.shape == (6, 8, 10, 3) and frames[3].max() == 60


def test_bad_requests_are_typed_errors(duel, tmp_path):
    with pytest.raises(SettingsError, match=r"\.mp4 or \.gif"):
        export_video(duel, tmp_path / "ep.avi")
    with pytest.raises(SettingsError, match="fps"):
        write_video(np.zeros((2, 4, 4, 3), np.uint8), tmp_path / "a.gif", fps=0)
    with pytest.raises(IndexError, match="episode"):
        export_video(duel, tmp_path / "ep.gif", episode=99)
    with pytest.raises(NotSupportedError, match="frame"):
        episode_frames(duel, 0, key="nope")


def test_missing_extra_names_the_install_command(duel, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'trajarena\[video\]'"):
        export_video(duel, tmp_path / "ep.mp4")
    assert not (tmp_path / "ep.mp4").exists()


def test_cli_replay_to_mp4_and_export_video(duel, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    result = runner.invoke(app, ["replay", str(duel), "-e", "0", "-o", str(tmp_path / "a.mp4"), "--scale", "1"])
    assert result.exit_code == 0, result.output
    n = arena.TrajectoryDataset(duel).episodes[0].length + 1
    assert f"wrote {n} frames" in result.output and len(_mp4_frames(tmp_path / "a.mp4")) == n
    result = runner.invoke(app, ["export", "video", str(duel), str(tmp_path / "b.gif"), "-e", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b.gif").stat().st_size > 0


def test_cli_without_the_extra_prints_one_line(duel, tmp_path):
    code = ("import sys; sys.modules['imageio_ffmpeg'] = None\n"
            "from trajarena.cli import main\n"
            f"main(['replay', {str(duel)!r}, '-o', {str(tmp_path / 'x.mp4')!r}])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": SRC, "COLUMNS": "200"})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'trajarena[video]'" in lines[0]
