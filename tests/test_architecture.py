"""The layers of the package (import-linter contracts in pyproject.toml) and its size rules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "trajarena"
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(src: Path) -> subprocess.CompletedProcess:
    """Run the project's contracts over the package found in ``src``."""
    return subprocess.run([str(LINT), "--no-cache", str(ROOT / "pyproject.toml")],
                          cwd=src, env={"PYTHONPATH": str(src), "PATH": ""}, capture_output=True, text=True,
                          timeout=120)


pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is in the dev extra")


def test_the_package_keeps_its_layers():
    result = _lint(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().split("contracts:")[-1].split("kept")[0]


@pytest.mark.parametrize("module, wrong", [
    ("format/schema.py", "import trajarena.envs.make"),         # the format must not know the games
    ("envs/duel/env.py", "import trajarena.recording.recorder"),  # a game must not record itself
    ("replay/dataset.py", "import trajarena.learn.agents"),      # a lower layer imports a higher one
    ("format/spaces.py", "import trajarena.format.writer"),      # a cycle inside one package
])
def test_a_wrong_import_breaks_the_contracts(tmp_path, module, wrong):
    copy = tmp_path / "src" / "trajarena"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{wrong}  # deliberately wrong\n")
    result = _lint(tmp_path / "src")
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


def test_no_module_is_too_long_to_hold_in_mind():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"split these along their seams: {long}"


def test_the_top_level_shows_only_the_public_api():
    import trajarena

    names = dir(trajarena)
    assert names == sorted(trajarena.__all__)
    assert not {"Any", "annotations", "importlib", "_gym"} & set(names)
    for name in names:
        assert getattr(trajarena, name) is not None


@pytest.mark.parametrize("old, new, name", [
    ("trajarena.recorder", "trajarena.recording.recorder", "VectorTrajectoryRecorder"),
    ("trajarena.dataset", "trajarena.replay.dataset", "TrajectoryDataset"),
    ("trajarena.vector", "trajarena.replay.vector", "make_sb3_vec_env"),
    ("trajarena.reader", "trajarena.format.reader", "open_trajectories"),
])
def test_0_1_module_paths_still_import_and_say_where_they_went(old, new, name):
    code = (f"import warnings; warnings.simplefilter('always')\n"
            f"from {old} import {name}\n"
            f"import {new}\n"
            f"assert {name} is {new}.{name}\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"{old} moved to {new}" in result.stderr and "DeprecationWarning" in result.stderr


#: Optional packages (extras); the core must import without any of them.
EXTRAS = ("torch", "pygame", "stable_baselines3", "ray", "minari", "rerun", "imageio", "imageio_ffmpeg",
          "pettingzoo", "diambra", "typer", "rich", "matplotlib", "PIL", "h5py", "ale_py", "duckdb", "polars",
          "datasets")
#: The modules that need none of the extras.
CORE = ["trajarena", "trajarena.format", "trajarena.recording", "trajarena.replay", "trajarena.replay.dataset",
        "trajarena.replay.imitation", "trajarena.replay.vector", "trajarena.envs", "trajarena.wrappers",
        "trajarena.settings", "trajarena.dialects", "trajarena.learn.agents", "trajarena.learn.rollout",
        "trajarena.interop.parquet", "trajarena.interop.diambra"]


def test_the_core_imports_without_any_extra():
    """As on a machine with `pip install trajarena` only: every extra blocked (import raises)."""
    code = (f"import sys\nfor name in {EXTRAS!r}:\n    sys.modules[name] = None\n"
            f"import importlib\nfor module in {CORE!r}:\n    importlib.import_module(module)\n"
            "import trajarena as arena\nenv = arena.make('duel')\nenv.reset(seed=0)\nprint('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
