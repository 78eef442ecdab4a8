"""Issue 11 items 2 and 3: crafted headers (valid CRCs) fail fast, typed and small, everywhere.

Each hostile file is made by the real writer and then rewritten as a hostile writer would
(:func:`_helpers_format.rewrite_file`: metadata changed, CRCs recomputed, the schema made to match).
Memory and time are measured in a child process (its peak RSS, ``VmHWM``, read at its exit), never in-process.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import trajarena
from _helpers_format import HOSTILE, cli_child, probe, rewrite_file
from trajarena.errors import CorruptFileError, TrajArenaError
from trajarena.format.integrity import verify
from trajarena.format.writer import TrajectoryWriter

#: The issue's bounds for a hostile header: a typed error within a second, under 300 MB at peak.
SECONDS, PEAK_MB = 1.0, 300
LEAVES = "abcdefgh"


# ----------------------------------------------------------------------------- files


def _record(folder: Path, obs_space: spaces.Space, episodes: int, steps: int, **options) -> list[Path]:
    with TrajectoryWriter(folder, obs_space, spaces.Discrete(2), {"username": "alex"}, **options) as w:
        for e in range(episodes):
            w.reset(np.asarray(obs_space.sample()) if isinstance(obs_space, spaces.Box) else obs_space.sample(),
                    {}, seed=e)
            for t in range(1, steps + 1):
                obs = obs_space.sample()
                w.step(t % 2, obs, 1.0, t == steps, False, {})
    return list(w.files)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile_headers")


@pytest.fixture(scope="module")
def bomb(folder: Path) -> Path:
    """The issue's 6 KB file: no chunks, spaces of 8 ``Box(float64, (2**26,))`` leaves (each within the per-leaf limit)."""
    obs_space = spaces.Dict({k: spaces.Box(-1, 1, (2,), np.float64) for k in LEAVES})
    (base,) = _record(folder / "bomb_base", obs_space, 1, 3)

    def inflate(meta):
        for leaf in meta["observation_space"]["spaces"].values():
            leaf["shape"] = [1 << 26]
        for column in meta["columns"]:
            if column["name"].startswith("obs"):
                column["shape"] = [1 << 26]
        return meta

    (folder / "bomb").mkdir()
    path = rewrite_file(base, folder / "bomb" / "bomb.arrow", inflate, keep_chunks=False)
    assert path.stat().st_size < 8 << 10, path.stat().st_size
    return path


@pytest.fixture(scope="module")
def plain(folder: Path) -> Path:
    """A small good file: 3 episodes of 4 steps in chunks of 8 rows (an episode starts mid-chunk)."""
    (path,) = _record(folder / "plain", spaces.Box(-10, 10, (3,), np.float32), 3, 4, chunk_steps=8)
    return path


@pytest.fixture(scope="module")
def good_files(folder: Path) -> list[Path]:
    """19 good files (one episode each)."""
    files = _record(folder / "good19", spaces.Box(-10, 10, (3,), np.float32), 19, 3, segment_steps=1)
    assert len(files) == 19
    return files


def _set(path: list, value=HOSTILE):
    """A metadata change that sets ``meta[path...] = value``."""

    def change(meta):
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return meta

    return change


def _starts_episode(i: int, doc: dict) -> dict:
    """Every episode start record (``[row, episode, step, seed]``) gets the episode number 1e999."""
    for record in doc.get("starts", []):
        if isinstance(record, dict):  # in case the records become objects
            record["episode"] = HOSTILE
        else:
            record[1] = HOSTILE
    return doc


#: The issue's non-finite numbers (JSON ``1e999`` parses as ``inf`` in Python).
NON_FINITE = {
    "chunk_steps": {"change": _set(["chunk_steps"])},
    "column_shape": {"change": _set(["columns", 0, "shape"], [HOSTILE])},
    "space_shape": {"change": _set(["observation_space", "shape"], [HOSTILE])},
    "episode_start": {"change_chunk": _starts_episode},
}


@pytest.fixture(scope="module")
def non_finite(folder: Path, plain: Path) -> dict[str, Path]:
    out = folder / "non_finite"
    out.mkdir()
    return {name: rewrite_file(plain, out / f"{name}.arrow", **kw) for name, kw in NON_FINITE.items()}


# ----------------------------------------------------------------------------- item 2: the memory bomb


@pytest.mark.parametrize("op", ["open", "imitation"])
def test_memory_bomb_fails_typed_fast_and_small(bomb: Path, op: str) -> None:
    result, run = probe(op, bomb)
    assert result["raised"] == "CorruptFileError" or result["corrupt"], result
    assert result["seconds"] < SECONDS, result
    if op == "imitation":  # importing the replay stack (torch, OpenCV) alone takes ~300 MB: count what the file adds
        assert run.peak_mb - result["imported_mb"] < PEAK_MB, (run.peak_mb, result)
    else:
        assert run.peak_mb < PEAK_MB, run.peak_mb


def test_verify_reports_the_memory_bomb(bomb: Path) -> None:
    result, run = probe("verify", bomb)
    assert result["raised"] is None, result
    assert bomb.name in result["damaged"] and bomb.name not in result["ok"], result
    assert result["seconds"] < SECONDS and run.peak_mb < PEAK_MB, (result, run.peak_mb)


def test_cli_info_on_the_memory_bomb_is_one_line_small_and_quick(bomb: Path) -> None:
    run = cli_child("info", str(bomb))
    output = (run.stdout + run.stderr).strip()
    assert "Traceback" not in output, output[-3000:]
    assert run.returncode == 2, (run.returncode, output[-3000:])
    assert len(output.splitlines()) == 1 and output.startswith("error:"), output
    assert run.peak_mb < PEAK_MB, run.peak_mb


# ----------------------------------------------------------------------------- item 3: non-finite numbers


@pytest.mark.parametrize("name", list(NON_FINITE))
def test_non_finite_numbers_open_as_corrupt(non_finite: dict[str, Path], name: str) -> None:
    with pytest.raises(CorruptFileError):
        reader = trajarena.open_trajectories(non_finite[name])
        for i in range(reader.num_episodes):
            reader.read_episode(i)


@pytest.mark.parametrize("name", list(NON_FINITE))
def test_non_finite_numbers_in_imitation_learning_are_corrupt(non_finite: dict[str, Path], name: str) -> None:
    with pytest.raises(CorruptFileError):
        trajarena.ImitationLearning(traj_files_list=[non_finite[name]])


@pytest.mark.parametrize("name", list(NON_FINITE))
def test_verify_reports_a_non_finite_file_among_19_good_ones_and_goes_on(
        tmp_path: Path, good_files: list[Path], non_finite: dict[str, Path], name: str) -> None:
    for f in good_files:
        shutil.copy(f, tmp_path / f.name)
    bad = shutil.copy(non_finite[name], tmp_path / f"zz_{name}.arrow")
    report = verify(tmp_path)
    assert list(report.damaged) == [Path(bad)], report.damaged
    assert len(report.ok) == 19 and report.episodes == 19


@pytest.mark.parametrize("name", list(NON_FINITE))
def test_cli_info_on_a_non_finite_file_is_one_error_line(non_finite: dict[str, Path], name: str) -> None:
    run = cli_child("info", str(non_finite[name]))
    output = (run.stdout + run.stderr).strip()
    assert "Traceback" not in output, output[-3000:]
    assert run.returncode == 2, (run.returncode, output[-3000:])
    assert len(output.splitlines()) == 1 and output.startswith("error:") and name in output, output


@pytest.mark.parametrize("name", list(NON_FINITE))
def test_cli_verify_reports_the_bad_file_and_goes_on(tmp_path: Path, good_files: list[Path],
                                                     non_finite: dict[str, Path], name: str) -> None:
    for f in good_files:
        shutil.copy(f, tmp_path / f.name)
    shutil.copy(non_finite[name], tmp_path / "zz_bad.arrow")
    run = cli_child("verify", str(tmp_path))
    output = run.stdout + run.stderr
    assert "Traceback" not in output, output[-3000:]
    assert run.returncode == 1, (run.returncode, output[-3000:])
    assert "19 intact file(s)" in output, output
    damaged = [line for line in output.splitlines() if line.startswith("damaged")]
    assert len(damaged) == 1 and "zz_bad.arrow" in damaged[0], output


# ----------------------------------------------------------------------------- MemoryError is typed


@pytest.mark.parametrize("entry", ["open", "imitation"])
def test_a_memory_error_while_opening_surfaces_typed(plain: Path, monkeypatch: pytest.MonkeyPatch,
                                                     entry: str) -> None:
    """The machine runs out of memory while a file's spaces are built: a typed error, not a bare MemoryError."""

    def out_of_memory(self, *args, **kwargs):
        raise MemoryError("Unable to allocate 512. MiB for an array")

    monkeypatch.setattr(gym.spaces.Box, "__init__", out_of_memory)
    with pytest.raises(TrajArenaError):
        if entry == "open":
            reader = trajarena.open_trajectories(plain)
            _ = (reader.observation_space, reader.action_space)
        else:
            trajarena.ImitationLearning(traj_files_list=[plain])
