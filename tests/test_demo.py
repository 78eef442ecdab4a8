"""``make demo`` end to end on a tiny budget, the report's numbers, and the SB3 example script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trajarena.demo.pipeline import demo_config, main, run_demo
from trajarena.errors import SettingsError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_writes_report_plots_gif_and_policy(tmp_path):
    cfg = demo_config(quick=True, strong=True, out=str(tmp_path / "demo"), episodes=2, workers=2, epochs=1,
                      eval_episodes=1, gif_steps=8, difficulty=1)  # the strong recipe's frames, a tiny budget
    out = run_demo(cfg, progress=False)
    folder = Path(cfg.out)
    for name in ("report.md", "learning_curve.png", "win_rates.png", "returns.png", "bc_policy.gif", "policy.pt",
                 "results.json"):
        assert (folder / name).stat().st_size > 0, name
    assert list((folder / "data").glob("*.arrow"))
    report = (folder / "report.md").read_text()
    assert out["evaluate"].table() in report  # the report shows exactly what evaluate prints
    assert "`frame_shape=[64, 128, 1]`" in report
    results = json.loads((folder / "results.json").read_text())
    assert results["evaluate"] == json.loads(json.dumps(out["evaluate"].to_dict()))
    assert results["record"]["episodes"] == 2 and results["train"]["history"][0]["epoch"] == 1
    from PIL import Image

    with Image.open(folder / "bc_policy.gif") as gif:
        assert gif.n_frames >= 2


def test_demo_config_and_cli_arguments():
    cfg = demo_config(episodes=3, workers=None)
    assert cfg.episodes == 3 and cfg.workers == 2
    with pytest.raises(SystemExit):
        main(["--episodes", "many"])


@pytest.mark.slow
def test_sb3_example_smoke(tmp_path):
    pytest.importorskip("stable_baselines3")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "sb3_pretrain.py"), "--env-id", "CartPole-v1", "--episodes", "2",
         "--epochs", "2", "--eval-episodes", "2", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sb3-bc" in proc.stdout and "mean return" in proc.stdout


@pytest.mark.parametrize(("override", "match"), [
    ({"episodes": 0}, r"DemoConfig.episodes must be an integer >= 1, got 0"),
    ({"difficulty": 12}, r"DemoConfig.difficulty must be an integer in \[1, 8\], got 12"),
    ({"eval_episodes": -1}, "DemoConfig.eval_episodes"),
    ({"workers": 1.5}, "DemoConfig.workers"),
    ({"seed": -1}, "DemoConfig.seed must be an integer >= 0"),
    ({"out": ""}, "DemoConfig.out"),
])
def test_demo_config_refuses_bad_values(override, match):
    with pytest.raises(SettingsError, match=match):
        demo_config(**override)


def test_demo_strong_recipe():
    strong, default = demo_config(strong=True), demo_config()
    assert strong.settings["frame_shape"] == (64, 128, 1) and default.settings["frame_shape"] == (48, 96, 1)
    assert (strong.epochs, strong.dagger_rounds, strong.dagger_epochs) == (10, 3, 3)
    assert demo_config(strong=True, epochs=4).epochs == 4  # options still override the recipe


@pytest.mark.parametrize(("argv", "message"), [
    (["--strong", "--dagger-epochs", "0"], "--dagger-epochs must be an integer >= 1, got 0."),
    (["--episodes", "0"], "--episodes must be an integer >= 1, got 0."),
    (["--difficulty", "12"], "--difficulty must be an integer in [1, 8], got 12."),
    (["--eval-episodes", "0"], "--eval-episodes must be an integer >= 1, got 0."),
])
def test_demo_cli_reports_bad_values_with_exit_code_2_and_no_traceback(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "demo")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "demo").exists()
