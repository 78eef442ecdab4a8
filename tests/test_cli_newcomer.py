"""The command line as a newcomer meets it: mixed folders, held-out seeds, messages in the CLI's words,
action statistics, partial saves, and recordings that fail early or are interrupted."""

from __future__ import annotations

import inspect
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import trajarena as arena
from trajarena.cli.app import app, cli_message

ROOT = Path(__file__).resolve().parents[1]
SRC = str(ROOT / "src")
runner = CliRunner()


def cli(*args, timeout=120, columns=300):
    """Run ``trajarena ARGS`` as a user does: its own process, the real ``main`` (a wide terminal)."""
    env = {**os.environ, "PYTHONPATH": SRC, "COLUMNS": str(columns), "SDL_VIDEODRIVER": "dummy"}
    return subprocess.run([sys.executable, "-c", "from trajarena.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)


def record_some(folder, env_id="duel", settings=None, steps=40):
    env = arena.make(env_id, settings if settings is not None else ({"frame_shape": (16, 24, 1)} if env_id == "duel"
                                                                      else None), None, {"file_path": str(folder)})
    env.action_space.seed(0)
    env.reset(seed=0)
    for _ in range(steps):
        *_, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    env.close()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """``data/`` as the README leaves it: duel and CartPole recordings side by side."""
    data = tmp_path_factory.mktemp("walk") / "data"
    record_some(data / "duel")
    record_some(data / "cartpole", "CartPole-v1", steps=200)
    return data


def test_info_and_stats_show_a_mixed_folder_kind_by_kind(mixed, tmp_path):
    for command in (["info", mixed], ["stats", mixed, "--plots", tmp_path]):
        out = cli(*command)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "holds recordings of 2 kinds" in out.stdout
        assert "CartPole-v1 (1 file in" in out.stdout and "duel (1 file in" in out.stdout
        assert "'type'" not in out.stdout  # no space JSON dumped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CartPole-v1-actions.png", "CartPole-v1-episodes.png",
                                                          "duel-actions.png", "duel-episodes.png"]


def test_commands_that_need_one_kind_say_so_in_one_line(mixed, tmp_path):
    for command in (["replay", mixed, "-o", tmp_path / "a.gif"], ["view", mixed, "--save", tmp_path / "a.rrd"]):
        out = cli(*command, columns=1000)  # pytest's folders make long paths
        assert out.returncode == 2 and "hold recordings with different observation spaces" in out.stdout
        assert "'type'" not in out.stdout and "trajarena info FOLDER" in out.stdout
        assert len(out.stdout.strip().splitlines()) == 1, out.stdout  # one line (on a wide terminal)


def test_evaluate_plays_seeds_record_never_used():
    from trajarena.cli.learning import evaluate, record
    from trajarena.learn.evaluate import evaluate as evaluate_api
    from trajarena.learn.rollout import record as record_api

    def default(fn, name):
        value = inspect.signature(fn).parameters[name].default
        return getattr(value, "default", value)

    record_seeds = range(default(record, "seed"), default(record, "seed") + 100_000)
    assert default(evaluate, "seed") not in record_seeds[:10_000] and default(evaluate, "seed") == 10_000
    assert default(evaluate_api, "seed") == 10_000 and default(record_api, "seed") == 0


def test_messages_name_options_not_python_arguments():
    assert cli_message("run it later or pass force=True") == "run it later or pass --force"
    assert "--partial" in cli_message("Pass include_partial=True to read them, or run trajarena.repair(folder).")
    assert cli_message("in [PosixPath('empty')]") == "in [empty]"
    assert "trajarena record" in cli_message(
        "record some first (trajarena.make(..., traj_rec_settings={'file_path': ...})) or check the path.")


def test_a_missing_policy_names_the_train_bc_command(tmp_path):
    out = cli("evaluate", tmp_path / "nope.pt")
    assert out.returncode == 2 and "`trajarena train-bc`" in out.stdout and "trajarena bc`" not in out.stdout


def _crash(folder: Path) -> None:
    """A recorder killed mid-episode: its .partial file stays (this machine, a dead process)."""
    code = ("import os, time, trajarena as arena\n"
            f"env = arena.make('duel', {{'frame_shape': (16, 16, 1)}}, None, {{'file_path': {str(folder)!r}, "
            "'flush_seconds': 0.2})\n"
            "env.reset(seed=0)\n"
            "for _ in range(30): env.step(env.action_space.sample())\n"
            "time.sleep(0.6)\n"
            "env.step(env.action_space.sample())\n"  # a step after flush_seconds writes the chunk
            "from trajarena.format.reader import TrajectoryReader\n"
            "def on_disk():\n"
            "    try:\n"
            f"        return TrajectoryReader({str(folder)!r}, include_partial=True).num_steps\n"
            "    except arena.errors.TrajArenaError:\n"
            "        return 0\n"
            "deadline = time.monotonic() + 60\n"
            "while on_disk() < 31:\n"  # the rows are in the file: then die
            "    assert time.monotonic() < deadline, 'the rows never reached the file'\n"
            "    time.sleep(0.02)\n"
            "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": SRC}, check=True, timeout=120)


def test_partial_files_speak_the_command_line(tmp_path):
    _crash(tmp_path / "crashed")
    out = cli("info", tmp_path / "crashed")
    assert out.returncode == 2 and "add --partial" in out.stdout and "include_partial" not in out.stdout
    ahead = time.time() + 120  # written by a clock that runs ahead (a loaded CI machine outlasts a moment ago)
    for partial in (tmp_path / "crashed").glob("*.partial"):
        os.utime(partial, (ahead, ahead))  # repair waits, in case a writer elsewhere still has it
    out = cli("repair", tmp_path / "crashed")
    assert "skipped" in out.stdout and "pass --force" in out.stdout and "force=True" not in out.stdout
    assert "ahead of this machine's clock" in out.stdout and " ago" not in out.stdout
    assert "another machine" not in out.stdout and "on this machine" in out.stdout
    record_some(tmp_path / "crashed")  # a finished file next to the .partial one
    out = cli("info", tmp_path / "crashed")
    assert out.returncode == 0 and "warning: skipped 1 .partial file(s)" in out.stdout
    out = cli("replay", tmp_path / "crashed", "--fps", "240")  # a window (SDL dummy), through open_trajectories
    assert out.returncode == 0, out.stdout + out.stderr
    assert "UserWarning" not in out.stdout + out.stderr and "reader.py" not in out.stdout + out.stderr


def test_stats_counts_actions_per_player_on_whole_number_axes(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.figure

    env = arena.make("duel", {"n_players": 2, "frame_shape": (16, 16, 1)}, None, {"file_path": str(tmp_path / "two")})
    env.reset(seed=0)
    for _ in range(12):
        env.step({"agent_0": np.array([5, 1]), "agent_1": np.array([1, 0])})
    env.close()
    ticks = {}
    real = matplotlib.figure.Figure.savefig

    def spy(fig, path, *args, **kwargs):
        ticks[Path(path).name] = [list(ax.get_yticks()) for ax in fig.axes if ax.get_visible() and ax.axison]
        return real(fig, path, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    result = runner.invoke(app, ["stats", str(tmp_path / "two"), "--plots", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    assert "P1" in result.output and "right 100%" in result.output and "P 100%" in result.output
    assert "P2" in result.output and "left 100%" in result.output and "none 100%" in result.output
    assert set(ticks) == {"episodes.png", "actions.png"} and len(ticks["actions.png"]) == 4  # 2 players x 2
    assert all(float(t).is_integer() for axes in ticks.values() for axis in axes for t in axis)


def test_save_partial_counts_the_episode_it_saves(tmp_path):
    out = cli("play", "duel", "--max-steps", "30", "--fps", "0", "--no-show-help", "--no-print-keymap", "--record",
              tmp_path / "p", "--save-partial", "-s", "frame_shape=[16,16,1]")
    assert out.returncode == 0 and "1 episode(s) saved" in out.stdout, out.stdout + out.stderr
    assert arena.open_trajectories(tmp_path / "p").num_episodes == 1


def test_the_train_bc_bar_counts_samples_with_separators():
    pytest.importorskip("torch")
    from rich.console import Console

    from trajarena.learn.fitting import _Bar

    bar = _Bar(True, 123_456)
    bar.update(1_234, 0.5, 0.5)
    console = Console(file=io.StringIO(), width=200)
    console.print(bar.progress.make_tasks_table(bar.progress.tasks))
    assert "1,234/123,456 samples" in console.file.getvalue()


def test_the_demo_report_states_facts_not_targets():
    source = (ROOT / "src" / "trajarena" / "demo" / "report.py").read_text()
    assert "target" not in source and "bar;" not in source


def test_every_picture_in_docs_is_shown_somewhere():
    texts = (ROOT / "README.md").read_text() + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    unused = [p.name for p in (ROOT / "docs" / "img").glob("*.png") if f"img/{p.name}" not in texts]
    assert not unused, f"pictures no page shows: {unused}"


def test_the_hud_font_draws_m_n_o_apart_from_n_and_0():
    from trajarena.envs.duel.render import text_mask

    assert text_mask("N").shape[1] == 4 and text_mask("O").shape[1] == 4 and text_mask("M").shape[1] == 5
    assert not np.array_equal(text_mask("O")[:, :3], text_mask("0"))
    assert text_mask("K").shape[1] == 4 and not text_mask("K")[2, 2]  # KENJI, not HENJI: no bar across


@pytest.mark.slow
def test_ctrl_c_stops_every_worker_and_prints_the_summary(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC, "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-c", "from trajarena.cli import main; main()", "record", "duel", "-n",
                             "400", "-j", "2", "--out", str(tmp_path / "rec"), "-s", "step_ratio=1", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "rec").glob("*.arrow")) and time.monotonic() < deadline:
        time.sleep(0.2)  # wait for a finished episode
    workers = subprocess.run(["ps", "--ppid", str(proc.pid), "-o", "pid="], capture_output=True, text=True).stdout.split()
    proc.send_signal(signal.SIGINT)  # to the parent alone
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted after" in out and "of 400 episodes" in out, out
    time.sleep(3)
    assert [w for w in workers if Path(f"/proc/{w}").exists()] == []  # no worker plays on
    ds = arena.TrajectoryDataset(tmp_path / "rec")
    assert 1 <= ds.n_episodes < 400 and all(e.meta.get("end_reason") == "env" for e in ds.episodes)


def test_ctrl_c_in_a_one_process_recording_keeps_the_finished_episodes(tmp_path, monkeypatch):
    from trajarena.learn import rollout

    real, calls = rollout.play_episode, []

    def interrupted_second(env, agents, seed=None, on_step=None, max_steps=None):
        calls.append(seed)
        if len(calls) == 2:
            def on_step(n, inner=on_step):  # Ctrl-C in the middle of the second episode
                inner(n)
                if n == 5:
                    raise KeyboardInterrupt
        return real(env, agents, seed=seed, on_step=on_step, max_steps=max_steps)

    monkeypatch.setattr(rollout, "play_episode", interrupted_second)
    summary = rollout.record("CartPole-v1", "expert", episodes=4, out=tmp_path, progress=False)
    assert summary.interrupted and summary.episodes == 1 and "interrupted after 1 of 4 episodes" in summary.format()
    assert arena.TrajectoryDataset(tmp_path).n_episodes == 1
