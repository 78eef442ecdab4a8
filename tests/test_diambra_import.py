"""DIAMBRA recordings import to values equal to what DIAMBRA's own loaders return, and replay.

Every fixture of ``tests/data/diambra`` (made by DIAMBRA's own recorders) is read, compared step by
step with ``expected/`` (DIAMBRA's ``DiambraDataLoader`` for 2.2, ``ImitationLearning`` for 2.1),
converted to a trajarena file and replayed through :class:`trajarena.ImitationLearning`.
"""

from __future__ import annotations

import numpy as np
import pytest

import trajarena as arena
from _diambra import V21, V22, as_move_attack, dec, expected, expected_array, same_values, sha
from trajarena.interop.diambra import import_diambra, read_diambra

pytest.importorskip("PIL")
pytestmark = pytest.mark.skipif(
    __import__("trajarena.interop.diambra.games", fromlist=["x"]).installed_table_path() is None,
    reason="2.2 spaces need diambra-arena's game table (the diambra extra)")


def _frame(obs):
    return obs["frame"] if isinstance(obs, dict) else obs


def _observations(rec):
    steps = list(rec.steps())
    return [rec.reset_obs] + [s.obs for s in steps], steps


@pytest.mark.parametrize("path", V22, ids=lambda p: p.parent.name + "/" + p.name[:19])
def test_a_22_file_reads_as_diambras_loader_returns_it(path):
    exp = expected(path)
    rec = read_diambra(path)
    assert rec.version == "2.2" and rec.env_id == exp["game_id"] and rec.username == exp["username"]
    assert rec.n_steps == exp["n_steps"] == len(exp["steps"])
    roles = rec.env_settings["role"]
    assert list(roles if exp["n_players"] == 2 else [roles]) == exp["roles"]
    assert rec.two_player == (exp["n_players"] == 2)
    observations, steps = _observations(rec)
    for i, (step, ref) in enumerate(zip(steps, exp["steps"], strict=True)):
        obs = observations[i]  # DIAMBRA stores the observation *before* the step's action
        frame = obs["frame"] if ref["frame_decoded"]["shape"][-1] == 3 else obs["frame"][:, :, 0]
        assert list(frame.shape) == ref["frame_decoded"]["shape"] and sha(frame) == ref["frame_decoded"]["sha256"]
        assert same_values({k: v for k, v in obs.items() if k != "frame"}, dec(ref["obs"])), i
        assert same_values(step.action, dec(ref["action"])), i
        assert step.reward == ref["reward"] and step.terminated == ref["terminated"] and step.truncated == ref["truncated"]
        assert step.info == ref["info"]
    first = expected_array(path, ".frame0.npy")
    assert np.array_equal(observations[0]["frame"].reshape(first.shape), first)
    # the final observation is not recorded: the last one is repeated, and the metadata says so
    assert np.array_equal(observations[-1]["frame"], observations[-2]["frame"])
    assert "repeated" in rec.source["final_observation"]


@pytest.mark.parametrize("path", V22, ids=lambda p: p.parent.name + "/" + p.name[:19])
def test_an_imported_22_file_replays_through_imitation_learning(path, tmp_path):
    exp = expected(path)
    summary = import_diambra(path, tmp_path)
    assert len(summary.files) == 1 and summary.steps == exp["n_steps"]
    env = arena.ImitationLearning([str(summary.files[0])], perspective="joint")
    meta = env.file_metadata[0]
    assert meta["env_id"] == exp["game_id"] and meta["username"] == exp["username"]
    assert meta["source"]["sha256"] == exp["file_sha256"] and meta["lossy"]["codec"] == "jpeg" and meta["lossy"]["quality"] == 80
    assert meta["source"]["env_settings_fields"]["episode_settings"]["random_seed"] == \
        exp["episode_summary"]["env_settings"]["fields"]["episode_settings"]["random_seed"]
    obs, info = env.reset()
    for i, ref in enumerate(exp["steps"]):
        frame = obs["frame"] if ref["frame_decoded"]["shape"][-1] == 3 else obs["frame"][:, :, 0]
        assert sha(frame) == ref["frame_decoded"]["sha256"], i
        obs, reward, terminated, truncated, info = env.step(None)
        assert same_values(info["action"], dec(ref["action"])) and reward == ref["reward"], i
        assert terminated == ref["terminated"] and {k: info[k] for k in ref["info"]} == ref["info"]
    assert terminated
    env.reset()
    assert env.exhausted


def test_a_22_two_player_file_replays_each_side_from_its_role(tmp_path):
    path = next(p for p in V22 if "mixed" in p.parent.name)  # agent_0 plays P2, DISCRETE; agent_1 P1, MULTI_DISCRETE
    exp = expected(path)
    files = import_diambra(path, tmp_path).files
    p1 = arena.ImitationLearning(files, perspective="P1")
    assert p1.replay.action_space == arena.ImitationLearning(files, perspective="joint").action_space["agent_0"]
    obs, _ = p1.reset()
    assert p1.replay.agent_roles == ("P2",)  # agent_0's role, read from the stored settings
    p2 = arena.ImitationLearning(files, perspective="P2")
    obs2, _ = p2.reset()
    assert np.array_equal(obs2["P1"]["health"], obs["P2"]["health"])  # agent_1's side: P1/P2 swapped
    _, r1, *_ , i1 = p1.step(None)
    _, r2, *_ , i2 = p2.step(None)
    assert r2 == -r1 == -exp["steps"][0]["reward"]
    assert int(i1["action"]) == exp["steps"][0]["action"]["agent_0"]
    assert list(i2["action"]) == exp["steps"][0]["action"]["agent_1"]


def _ignore_final(ref_steps, i):
    flags = ref_steps[i]["info"]
    return i == len(ref_steps) - 1 and (flags["round_done"] or flags["stage_done"] or flags["game_done"])


@pytest.mark.parametrize("path", V21, ids=lambda p: p.parent.name)
def test_a_21_file_imports_its_raw_frames_and_replays_as_diambras_loader(path, tmp_path):
    exp = expected(path)
    raw = exp["raw"]
    rec = read_diambra(path)
    assert rec.username == raw["username"] and rec.n_steps == raw["ep_len"]
    assert rec.ignore_p2 == int(raw["ignore_p2"]) and rec.two_player == (raw["player_side"] == "P1P2")
    # frame stacks undone: one stored plane per observation, equal to DIAMBRA's planes
    observations, steps = _observations(rec)
    planes = {p["sha256"] for p in raw["frames"]}
    assert all(sha(_frame(o)[:, :, 0]) in planes for o in observations)
    channels = dec(raw["frame_shp"])[2]  # the reset observation's newest plane is the first frame
    assert sha(_frame(observations[0])[:, :, 0]) == raw["frames"][channels - 1]["sha256"]
    assert channels > 1 or np.array_equal(_frame(observations[0])[:, :, 0], expected_array(path, ".frame0.npy"))
    assert [s.reward for s in steps] == [float(r) for r in dec(raw["rewards"])]
    files = import_diambra(path, tmp_path).files
    env = arena.ImitationLearning(files)
    replays = exp["loader"]["replays"]
    assert env.n_episodes == len(replays)  # ignore_p2 honoured: P2's side is not replayed
    rgb = "rgb" in path.parent.name
    for replay in replays:
        obs, _ = env.reset()
        if not rgb:  # DIAMBRA 2.1's loader mixes planes of consecutive steps as the colours of RGB frames
            assert sha(_frame(obs).astype(np.float64)) == replay["reset_obs_frame"]["sha256"]
        for i, ref in enumerate(replay["steps"]):
            obs, reward, terminated, truncated, info = env.step(None)
            assert reward == ref["reward"] and terminated == ref["done"], i
            assert as_move_attack(info["action"]) == [int(v) for v in dec(ref["info"]["action"])], i
            assert all(info[k] == ref["info"][k] for k in ("round_done", "stage_done", "game_done", "episode_done"))
            if not rgb and not _ignore_final(replay["steps"], i):
                assert sha(_frame(obs).astype(np.float64)) == ref["obs_frame"]["sha256"], i
            if ref["obs"] is not None:  # not hardcore: the RAM states, as the loader gives them (P2's side swapped)
                assert same_values(obs["P1"], dec(ref["obs"]["P1"])), i
    env.reset()
    assert env.exhausted


def test_the_import_command_converts_folders_with_a_summary_and_is_safe_to_rerun(tmp_path):
    from typer.testing import CliRunner

    from trajarena.cli import app

    runner = CliRunner()
    folder = next(p for p in V22 if p.parent.name == "doapp_1p_md_rgb").parent  # two episodes
    result = runner.invoke(app, ["import", "diambra", str(folder), str(V21[0]), "--out", str(tmp_path)])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "imported 3 DIAMBRA file(s) (2.1: 1, 2.2: 2)" in text and "3 episode(s), 54 step(s)" in text
    again = runner.invoke(app, ["import", "diambra", str(folder), "--out", str(tmp_path)])
    assert again.exit_code == 0 and "skipped 2 already imported" in " ".join(again.output.split())
    imported = sorted(tmp_path.glob("2026-*.diambra-*.arrow"))  # each file is named after its DIAMBRA file
    assert len(imported) == 2
    info = runner.invoke(app, ["info", str(imported[0])])
    assert info.exit_code == 0 and "doapp" in info.output
    assert arena.TrajectoryDataset(imported).n_episodes == 2


def test_the_importer_benchmark_runs(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    run = subprocess.run([sys.executable, str(root / "bench" / "bench_diambra.py"), "--quick", "--results-dir",
                          str(tmp_path)], capture_output=True, text=True, timeout=300, env=env, cwd=root)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads((tmp_path / "diambra_import.json").read_text())["rows"]
    assert [r["steps"] for r in rows] == [198, 171] and all(r["import steps/s"] > 0 for r in rows)


def test_imitation_learning_renders_and_shows_imported_frames(tmp_path, capsys):
    path = next(p for p in V22 if p.parent.name == "doapp_1p_md_rgb")
    files = import_diambra(path, tmp_path).files
    env = arena.ImitationLearning(files, render_mode="rgb_array")
    obs, _ = env.reset()
    assert np.array_equal(env.render(), obs["frame"])  # the recorded frame, as DIAMBRA's loader decodes it
    text = env.show_obs(obs)  # DIAMBRA's printout; viz opens a (dummy) window when pygame is installed
    assert 'observation["frame"]: shape (48, 64, 3)' in text and 'observation["P1"]["character"]: 6 / Gen-Fu' in text
    assert text in capsys.readouterr().out
    env.close()


def test_the_import_command_can_mark_p2_as_no_demonstration(tmp_path):
    from typer.testing import CliRunner

    from trajarena.cli import app

    two_players = next(p for p in V22 if p.parent.name == "np1_sfiii3n_2p_disc_grey")
    result = CliRunner().invoke(app, ["import", "diambra", str(two_players), "--out", str(tmp_path), "--ignore-p2", "1"])
    assert result.exit_code == 0, result.output
    env = arena.ImitationLearning(str(tmp_path))
    assert env.file_metadata[0]["ignore_p2"] == 1 and env.n_episodes == 1  # only agent_0's side is replayed
