"""The dataset viewer: the Rerun recording `trajarena view` makes, read back as a user of Rerun would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import trajarena as arena
from trajarena.cli.app import app
from trajarena.fighting import describe_action
from trajarena.recording.recorder import TrajectoryRecorder

rr = pytest.importorskip("rerun")
from rerun.chunk import RrdReader  # noqa: E402

from trajarena.interop.rerun import save_rrd  # noqa: E402

SRC = str(Path(__file__).resolve().parents[1] / "src")
runner = CliRunner()


def read_rrd(path):
    """The recording as one Arrow table indexed by the ``step`` timeline (Rerun's dataframe API)."""
    return RrdReader(str(path)).stream().collect().reader(index="step").to_arrow_table()


def column(table, name):
    """``{step: value}`` of a column, for the steps where it has a value (a list of one value per step)."""
    steps = table.column("step").to_pylist()
    return {s: v for s, v in zip(steps, table.column(name).to_pylist(), strict=True) if v is not None}


@pytest.fixture
def fights(tmp_path, minifight):
    """Three episodes of the MiniFight env (duel's layout): 20, 20 and 7 steps; the second is discarded."""
    env = TrajectoryRecorder(minifight(), tmp_path / "fights", username="viewer")
    rng = np.random.default_rng(0)
    for seed, (steps, discard) in enumerate([(25, False), (3, True), (25, False), (7, False)]):
        env.reset(seed=seed)
        for _ in range(steps):
            *_, terminated, truncated, _ = env.step(np.array([rng.integers(9), rng.integers(8)]))
            if terminated or truncated:
                break
        if discard:
            env.discard_episode()
    env.close()
    return tmp_path / "fights"


def test_the_saved_recording_holds_every_step_and_value(fights, tmp_path):
    summary = save_rrd(fights, tmp_path / "view.rrd")
    ds = arena.TrajectoryDataset(fights)
    assert (summary.episodes, summary.steps) == (3, 47) == (ds.n_episodes, len(ds))
    table = read_rrd(tmp_path / "view.rrd")
    assert table.column("step").to_pylist() == list(range(47 + 3))  # every observation, episodes in turn
    frames = column(table, "/frame:Image:buffer")
    rewards, returns = column(table, "/reward:Scalars:scalars"), column(table, "/return:Scalars:scalars")
    health, timer = column(table, "/obs/P2/health:Scalars:scalars"), column(table, "/obs/timer:Scalars:scalars")
    actions, rounds = column(table, "/action/P1:StateChange:state"), column(table, "/info/round_done:Scalars:scalars")
    boundaries = column(table, "/episode:StateChange:state")
    step = 0
    for i in range(ds.n_episodes):
        ep = ds.episode(i)
        assert boundaries[step] == [f"episode {i}"]
        for t in range(ep.length + 1):
            frame = np.frombuffer(bytes(frames[step + t][0]), np.uint8).reshape(ep.observations["frame"][t].shape)
            np.testing.assert_array_equal(frame, ep.observations["frame"][t])
            assert health[step + t] == [float(ep.observations["P2"]["health"][t][0])]
            assert timer[step + t] == [float(ep.observations["timer"][t][0])]
        for t in range(ep.length):
            assert rewards[step + 1 + t] == [ep.rewards[t]]
            assert returns[step + 1 + t] == pytest.approx([float(np.sum(ep.rewards[: t + 1]))])
            assert actions[step + 1 + t] == [describe_action(ep.actions[t], ds.action_space)]
            assert rounds[step + 1 + t] == [float(ep.infos["round_done"][0][t + 1])]
        assert step not in rewards  # a reset observation has no reward
        step += ep.length + 1
    events = column(table, "/events:TextLog:text")
    assert events[0][0].startswith("episode 0: 20 steps, return 30.0, terminated, seed 0")
    assert events[21][0].startswith("1 episode(s) discarded while recording before this one")  # the gap
    assert column(table, "/events:TextLog:level")[21] == ["WARN"] and "episode 1: 20 steps" in events[21][0]
    assert "| 2 | 42 | 7 | 10.5 |" in column(table, "/episodes:TextDocument:text")[0][0]
    formats = column(table, "/frame:Image:format")
    assert len(formats) == 50  # the format is static: every step has it


def test_takeovers_show_who_acted(tmp_path):
    pygame = pytest.importorskip("pygame")
    from trajarena.play import play, scripted_events

    t, right = (pygame.event.Event(pygame.KEYDOWN, key=k) for k in (pygame.K_t, pygame.K_RIGHT))
    play(p1="random", p2="cpu", record=str(tmp_path / "d"), settings={"frame_shape": (16, 24, 1)}, seed=0, fps=0,
         show_help=False, print_keymap=False, save_partial=True,
         events=scripted_events([[]] * 3 + [[t, right]] + [[]] * 3 + [[t]] + [[]] * 2))
    save_rrd(tmp_path / "d", tmp_path / "v.rrd")
    table = read_rrd(tmp_path / "v.rrd")
    assert column(table, "/actor:StateChange:state") == {1: ["agent"], 4: ["human"], 8: ["agent"]}
    events = column(table, "/events:TextLog:text")
    assert events[4] == ["a human takes over"] and events[8] == ["the agent plays again"]
    assert "4 steps by a human" in events[0][0]
    assert column(table, "/info/is_intervention:Scalars:scalars")[5] == [1.0]


def test_both_players_actions_have_a_lane_of_their_side(tmp_path):
    env = arena.make("duel", {"n_players": 2, "frame_shape": (16, 24, 3), "role": ("P2", None)}, None,
                     {"file_path": str(tmp_path / "two")})
    env.reset(seed=0)
    env.step({"agent_0": np.array([5, 1]), "agent_1": np.array([3, 0])})
    env.close()
    save_rrd(tmp_path / "two", tmp_path / "two.rrd")
    table = read_rrd(tmp_path / "two.rrd")
    assert column(table, "/action/P2:StateChange:state") == {1: ["right + P"]}  # agent_0 played P2
    assert column(table, "/action/P1:StateChange:state") == {1: ["up"]}
    assert column(table, "/frame:Image:format")[0][0]["color_model"] is not None


def test_the_view_command_saves_chooses_episodes_and_explains_errors(fights, tmp_path, monkeypatch):
    out = tmp_path / "two.rrd"
    result = runner.invoke(app, ["view", str(fights), "--save", str(out), "-e", "1-2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "2 episodes, 27 steps" in result.output
    assert sorted(v[0] for v in column(read_rrd(out), "/episode:StateChange:state").values()) == ["episode 1", "episode 2"]
    result = runner.invoke(app, ["view", str(fights), "--save", str(tmp_path / "x.rrd"), "-e", "7"])
    assert result.exit_code == 2 and "episode 7 does not exist" in result.output
    result = runner.invoke(app, ["view", str(fights), "--save", str(tmp_path / "x.txt")])
    assert result.exit_code == 2 and ".rrd" in result.output
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = runner.invoke(app, ["view", str(fights)])
    assert result.exit_code == 2 and "--web" in result.output and "--save" in result.output


def test_without_the_extra_the_viewer_names_the_install_command(fights, tmp_path):
    code = ("import sys; sys.modules['rerun'] = None\n"
            "from trajarena.cli import main\n"
            f"main(['view', {str(fights)!r}, '--save', {str(tmp_path / 'v.rrd')!r}])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": SRC, "COLUMNS": "200"})
    assert out.returncode == 2 and "pip install 'trajarena[view]'" in out.stdout, out.stdout + out.stderr


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_web_viewer_serves_until_ctrl_c(fights):
    port, data_port = _free_port(), _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "trajarena.cli.app", "view", str(fights), "--web", "--no-browser",
                             "--no-progress", "--port", str(port), "--data-port", str(data_port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": SRC, "COLUMNS": "200"})
    try:
        lines = []
        deadline = time.monotonic() + 90
        while not any(line.startswith("web viewer:") for line in lines) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        url = next(line.split(" ", 2)[2].strip() for line in lines if line.startswith("web viewer:"))
        assert url.startswith(f"http://127.0.0.1:{port}/?url=") and str(data_port) in url
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:
            assert page.status == 200 and b"rerun" in page.read().lower()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "stopped the web viewer" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
