"""DIAMBRA Arena's own example scripts run on trajarena with only their imports changed.

The copies live in ``tests/data/diambra_examples`` (changed lines marked ``# trajarena: was``): 2.2's
episode recording (on DIAMBRA's engine mock, game unchanged) and data loader, and 2.1's imitation
learning example (on DIAMBRA 2.1 files imported with ``trajarena import diambra``).
"""

from __future__ import annotations

import runpy
import shutil
import sys
from pathlib import Path

import pytest

import trajarena as arena
from _diambra import V21, Mocker

EXAMPLES = Path(__file__).parent / "data" / "diambra_examples"


def _run(script: Path, monkeypatch, *args: str) -> None:
    """Run a script as ``python script.py ARGS`` would, in this process (where the engine mock is patched)."""
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    runpy.run_path(str(script), run_name="__main__")


def test_only_the_imports_differ_from_diambras_scripts():
    for script in EXAMPLES.glob("*.py"):
        changed = [line for line in script.read_text().splitlines() if "trajarena" in line and not line.startswith("#")]
        assert changed and all("# trajarena: was " in line and "import" in line for line in changed), script.name


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


def test_diambras_22_recording_then_data_loader_examples_run(short_engine, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DISPLAY", raising=False)
    _run(EXAMPLES / "episode_recording.py", monkeypatch, "--use_controller", "0")
    dataset = tmp_path / "DIAMBRA" / "episode_recording" / "mock"
    files = arena.open_trajectories(dataset).files
    assert len(files) == 1
    meta = arena.ImitationLearning(files).file_metadata[0]
    assert meta["env_id"] == "doapp" and meta["username"] == "alexpalms"
    assert meta["env_settings"]["frame_shape"] == [256, 256, 1] and meta["env_settings"]["step_ratio"] == 1
    capsys.readouterr()
    _run(EXAMPLES / "episode_data_loader.py", monkeypatch, "--dataset_path", str(dataset))
    out = capsys.readouterr().out
    steps = arena.open_trajectories(dataset).num_steps
    assert out.count("Terminated: ") == steps and out.count("Terminated: True") == 1


def test_diambras_22_data_loader_example_reads_a_duel_recording(tmp_path, monkeypatch, capsys):
    env = arena.make("duel", {"frame_shape": (32, 32, 1), "difficulty": 8, "seed": 1}, None,
                     {"file_path": str(tmp_path), "username": "alex"})
    env.reset(seed=1)
    for _ in range(40):
        env.step(env.action_space.sample())
    env.close()  # the episode is kept, truncated
    _run(EXAMPLES / "episode_data_loader.py", monkeypatch, "--dataset_path", str(tmp_path))
    out = capsys.readouterr().out
    assert out.count("Action: ") == 40 and out.count("Truncated: True") == 1


def test_the_data_loader_points_at_the_import_command_for_diambra_files(tmp_path):
    from trajarena.errors import DataNotFoundError
    from trajarena.interop.diambra.compat import DiambraDataLoader

    shutil.copy(next((Path(__file__).parent / "data/diambra/v22").glob("*/*.diambra")), tmp_path)
    with pytest.raises(DataNotFoundError, match="trajarena import diambra"):
        DiambraDataLoader(str(tmp_path))


def test_diambras_21_imitation_learning_example_runs_on_imported_21_files(tmp_path, monkeypatch, capsys):
    from trajarena.interop.diambra import import_diambra

    script = tmp_path / "imitation_learning.py"
    shutil.copy(EXAMPLES / "imitation_learning.py", script)
    recorded = [p for p in V21 if p.parent.name in ("doapp_1p_md_grey_stack_scale", "np2_doapp_1p_md_grey_stack_scale")]
    summary = import_diambra(recorded, tmp_path / "recordedTrajectories", game="doapp")
    assert len(summary.files) == 2
    _run(script, monkeypatch)
    out = capsys.readouterr().out
    # rank 0 of 2 replays the first file: one episode, shown with DIAMBRA's show_obs printout
    # the episode's last step, then the step after the data is exhausted, where the script stops
    assert out.count("Done: True") == 2 and out.rstrip().endswith("Info: {'exhausted': True}")
    assert out.count("'action': [") == 10  # the recorded actions, as [move, attack]
    assert 'observation["P1"]["ownHealth"]' in out and 'observation["frame"]: shape (32, 48, 4)' in out
    assert 'observation["P1"]["ownChar"]: [0 0 1 0 0 0 0 0 0 0 0] / Hayabusa' in out  # one-hot index, named
