"""DIAMBRA-style usage scripts run on trajarena: DIAMBRA 2.2's ``make``/recording/data loader, 2.1's ``ImitationLearning``.

The scripts in ``tests/data/diambra_style`` were written for these tests (they are not DIAMBRA's
examples): each calls the names DIAMBRA documents, imported from ``trajarena.interop.diambra.compat``.
2.2's recording runs on DIAMBRA's engine mock (a DIAMBRA game through the ``diambra`` extra) and on
``duel``; the loaders read what it wrote and DIAMBRA 2.1 files imported with ``trajarena import diambra``.
"""

from __future__ import annotations

import ast
import runpy
import shutil
import sys
from pathlib import Path

import pytest
from _diambra import V21, V22, Mocker

import trajarena as arena

SCRIPTS = Path(__file__).parent / "data" / "diambra_style"


def _run(script: str, monkeypatch, *args: str) -> None:
    """Run a script as ``python script.py ARGS`` would, in this process (where the engine mock is patched)."""
    path = SCRIPTS / script
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    runpy.run_path(str(path), run_name="__main__")


def test_the_scripts_use_only_the_compat_names():
    scripts = sorted(SCRIPTS.glob("*.py"))
    assert len(scripts) == 3
    for script in scripts:
        modules = set()
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                modules.add(node.module)
        assert "trajarena.interop.diambra.compat" in modules, script.name
        assert modules <= {"trajarena.interop.diambra.compat", "argparse", "pathlib", "numpy"}, script.name


@pytest.fixture
def short_engine():
    """DIAMBRA's engine mock with rounds of 60 steps at step_ratio 1 and 2 stages (episodes of a few hundred steps)."""
    pytest.importorskip("diambra.arena")
    from diambra.arena.utils.engine_mock import load_mocker

    mocker = Mocker()
    load_mocker(mocker)
    mock = mocker.patchers[0].new.__self__
    original = mock.mock_env_init

    def env_init(self, settings):
        response = original(settings)
        mock.game_data["ram_states"]["common"]["timer"][2] = 1
        mock.game_data["stages_per_game"] = 2
        return response

    mocker.patch("diambra.arena.engine.interface.DiambraEngine.env_init", env_init)
    yield mock
    mocker.stopall()


def test_22_recording_on_a_diambra_game_then_the_data_loader(short_engine, tmp_path, monkeypatch, capsys):
    dataset = tmp_path / "doapp"
    _run("record_random_episode.py", monkeypatch, str(dataset), "--game", "doapp", "--user", "alex")
    recorded = int(capsys.readouterr().out.splitlines()[-1].split()[1])
    data = arena.open_trajectories(dataset)
    assert len(data.files) == 1 and data.num_steps == recorded > 0
    meta = arena.ImitationLearning(data.files).file_metadata[0]
    assert meta["env_id"] == "doapp" and meta["username"] == "alex"
    assert meta["env_settings"]["frame_shape"] == [128, 128, 1] and meta["env_settings"]["step_ratio"] == 1
    assert meta["env_settings"]["action_space"] == "multi_discrete"
    _run("walk_dataset.py", monkeypatch, str(dataset))
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"total: 1 episode(s), {recorded} step(s)"
    assert sum("frame (128, 128, 1) action [" in line for line in lines) == recorded
    assert lines[-2].endswith("end terminated") and not any(line.endswith("end truncated") for line in lines)


def test_22_recording_and_data_loader_on_duel(tmp_path, monkeypatch, capsys):
    _run("record_random_episode.py", monkeypatch, str(tmp_path), "--game", "duel", "--seed", "3")
    recorded = int(capsys.readouterr().out.splitlines()[-1].split()[1])
    assert arena.open_trajectories(tmp_path).num_steps == recorded
    _run("walk_dataset.py", monkeypatch, str(tmp_path), "--no-render")
    assert capsys.readouterr().out.splitlines()[-1] == f"total: 1 episode(s), {recorded} step(s)"


def test_22_data_loader_reads_a_truncated_duel_recording(tmp_path, monkeypatch, capsys):
    env = arena.make("duel", {"frame_shape": (32, 32, 1), "difficulty": 8, "seed": 1}, None,
                     {"file_path": str(tmp_path), "username": "alex"})
    env.reset(seed=1)
    for _ in range(40):
        env.step(env.action_space.sample())
    env.close()  # the episode is kept, truncated
    _run("walk_dataset.py", monkeypatch, str(tmp_path))
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "total: 1 episode(s), 40 step(s)" and lines[-2].endswith("end truncated")
    assert all(" frame (32, 32, 1) " in line for line in lines[:-1])


def test_22_data_loader_reads_imported_diambra_22_files(tmp_path, monkeypatch, capsys):
    from trajarena.interop.diambra import import_diambra

    files = [p for p in V22 if p.parent.name == "doapp_1p_md_rgb"]
    summary = import_diambra(files, tmp_path / "imported")
    _run("walk_dataset.py", monkeypatch, str(tmp_path / "imported"), "--no-render")
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"total: 2 episode(s), {summary.steps} step(s)"
    assert sum(line.endswith("end terminated") for line in lines) == 2


def test_the_data_loader_points_at_the_import_command_for_diambra_files(tmp_path):
    from trajarena.errors import DataNotFoundError
    from trajarena.interop.diambra.compat import DiambraDataLoader

    shutil.copy(V22[0], tmp_path)
    with pytest.raises(DataNotFoundError, match="trajarena import diambra"):
        DiambraDataLoader(str(tmp_path))


def test_21_imitation_learning_replays_imported_21_files(tmp_path, monkeypatch, capsys):
    from trajarena.interop.diambra import import_diambra

    recorded = [p for p in V21 if p.parent.name in ("doapp_1p_md_grey_stack_scale", "np2_doapp_1p_md_grey_stack_scale")]
    summary = import_diambra(recorded, tmp_path / "trajectories", game="doapp")
    assert len(summary.files) == 2
    _run("replay_trajectories_21.py", monkeypatch, str(tmp_path / "trajectories"))
    out = capsys.readouterr().out
    # rank 0 of 2 replays the first file: one episode of 10 steps, its actions as [move, attack]
    assert out.rstrip().endswith("replayed 1 episode(s) on rank 0 of 2")
    steps = [line for line in out.splitlines() if line.startswith("reward=")]
    assert len(steps) == 10 and out.count("done=True") == 1 and "done=True" in steps[-1]
    actions = [ast.literal_eval(line.split("info=")[1])["action"] for line in steps]
    assert all(len(a) == 2 and 0 <= a[0] < 9 and 0 <= a[1] < 8 for a in actions)
    # DIAMBRA's show_obs printout of the first observation: RAM states named, one-hot indices decoded
    assert 'observation["P1"]["ownHealth"]' in out and 'observation["frame"]: shape (32, 48, 4)' in out
    assert 'observation["P1"]["ownChar"]: [0 0 1 0 0 0 0 0 0 0 0] / Hayabusa' in out
