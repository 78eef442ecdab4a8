"""Issue 11 items 8 and 9: invalid actions are refused, non-finite rewards reported, and the odd edges.

Item 8: a writer checks actions against the action space (per chunk) and raises ``SpaceError``
naming the step; ``verify`` reports non-finite rewards. Item 9: ``trajarena verify`` on a folder
without trajectory files fails with a message; a file whose name is not UTF-8 reads; a folder
that cannot be created is a ``RecordingError``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from _helpers_format import cli_child
from trajarena.errors import RecordingError, SpaceError, TrajArenaError
from trajarena.format.integrity import verify
from trajarena.format.reader import TrajectoryReader
from trajarena.format.writer import TrajectoryWriter
from trajarena.recording.recorder import TrajectoryRecorder

OBS = spaces.Box(-10, 10, (2,), np.float32)
BAD_STEP = 9  # the step (1-based, as in the file's ``step`` column) that gets the invalid action

# ----------------------------------------------------------------------------- item 8: actions


def _record_with_one_bad_action(folder: Path, action_space: spaces.Space, good, bad) -> None:
    """One episode of 12 steps, the action of step 9 invalid; every call up to close() in one go."""
    w = TrajectoryWriter(folder, OBS, action_space, {}, chunk_steps=4)
    try:
        w.reset(np.zeros(2, np.float32), {}, seed=0)
        for t in range(1, 13):
            w.step(bad if t == BAD_STEP else good, np.full(2, t, np.float32), 1.0, t == 12, False, {})
        w.close()
    finally:
        try:
            w.close()
        except TrajArenaError:
            pass


INVALID = {
    "discrete_3.7": (spaces.Discrete(2), 1, 3.7),
    "discrete_-5": (spaces.Discrete(2), 1, -5),
    "discrete_2": (spaces.Discrete(2), 1, 2),
    "discrete_nan": (spaces.Discrete(2), 1, math.nan),
    "box_nan": (spaces.Box(-1, 1, (2,), np.float32), np.zeros(2, np.float32), np.array([math.nan, 0], np.float32)),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_an_invalid_action_is_a_space_error_naming_the_step(tmp_path: Path, case: str) -> None:
    action_space, good, bad = INVALID[case]
    with pytest.raises(SpaceError) as caught:
        _record_with_one_bad_action(tmp_path, action_space, good, bad)
    message = str(caught.value)
    assert "step" in message.lower() and re.search(rf"(?<![\d.]){BAD_STEP}(?![\d.])|(?<![\d.]){BAD_STEP - 1}(?![\d.])",
                                           message), message
    # and nothing invalid reached a file
    files = sorted(tmp_path.glob("*.arrow"))
    if files:
        for ep in TrajectoryReader(files).iter_episodes():
            assert all(action_space.contains(np.asarray(a, action_space.dtype)) for a in ep.actions), ep.actions


def test_valid_actions_of_every_kind_are_accepted(tmp_path: Path) -> None:
    """The other side: the bounds themselves and numpy integer types are valid actions."""
    for i, (space, values) in enumerate([(spaces.Discrete(3, start=-1), [-1, 0, 1, np.int64(1), np.int8(-1)]),
                                         (spaces.Box(-1, 1, (2,), np.float32), [np.array([-1, 1], np.float32)]),
                                         (spaces.MultiDiscrete([9, 8]), [np.array([8, 7]), np.array([0, 0])])]):
        with TrajectoryWriter(tmp_path / str(i), OBS, space, {}, chunk_steps=4) as w:
            w.reset(np.zeros(2, np.float32), {}, seed=0)
            for t, a in enumerate(values, 1):
                w.step(a, np.zeros(2, np.float32), 0.0, t == len(values), False, {})
        assert TrajectoryReader(w.files).num_steps == len(values)


@pytest.mark.parametrize("reward", [math.nan, math.inf])
def test_verify_reports_non_finite_rewards(tmp_path: Path, reward: float) -> None:
    folder = tmp_path / "data"
    with TrajectoryWriter(folder, OBS, spaces.Discrete(2), {}, chunk_steps=4) as w:
        w.reset(np.zeros(2, np.float32), {}, seed=0)
        for t in range(1, 6):
            w.step(t % 2, np.zeros(2, np.float32), reward if t == 3 else 1.0, t == 5, False, {})
    report = verify(folder)
    assert not report.clean, report
    said = repr(report).replace(str(folder), "")
    assert re.search("reward", said, re.I), said


def test_verify_calls_finite_rewards_clean(tmp_path: Path) -> None:
    with TrajectoryWriter(tmp_path, OBS, spaces.Discrete(2), {}, chunk_steps=4) as w:
        w.reset(np.zeros(2, np.float32), {}, seed=0)
        for t in range(1, 6):
            w.step(t % 2, np.zeros(2, np.float32), -1e300 if t == 3 else 0.5, t == 5, False, {})
    assert verify(tmp_path).clean


# ----------------------------------------------------------------------------- item 9: odd edges


@pytest.mark.parametrize("content", ["empty", "other_files"])
def test_cli_verify_of_a_folder_without_trajectory_files_fails_with_a_message(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "nothing"
    folder.mkdir()
    if content == "other_files":
        (folder / "notes.txt").write_text("not a recording")
        (folder / "frames.bin").write_bytes(bytes(range(256)))
    run = cli_child("verify", str(folder))
    output = (run.stdout + run.stderr).strip()
    assert "Traceback" not in output, output
    assert run.returncode not in (0, None), (run.returncode, output)
    assert re.search(r"\bno\b.*(trajector|\.arrow)", output, re.I), output


@pytest.fixture(scope="module")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    with TrajectoryWriter(folder, OBS, spaces.Discrete(2), {}, chunk_steps=4) as w:
        for e in range(2):
            w.reset(np.full(2, e, np.float32), {}, seed=e)
            for t in range(1, 6):
                w.step(t % 2, np.full(2, t, np.float32), 1.0, t == 5, False, {})
    (path,) = w.files
    return path


def _read_a_file_named_in_latin1(tmp_path: Path, good_file: Path) -> None:
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9-\xff.arrow")  # Latin-1 bytes: not UTF-8
    shutil.copyfile(good_file, raw)
    path = Path(os.fsdecode(raw))  # what Python gives for such a name (surrogate escapes)
    assert path.exists() and path in list(tmp_path.iterdir())
    expected = [e.seed for e in TrajectoryReader(good_file).episodes]
    for source in (tmp_path, path):
        reader = TrajectoryReader(source)
        assert [e.seed for e in reader.episodes] == expected
        np.testing.assert_array_equal(reader.read_episode(1).observations,
                                      TrajectoryReader(good_file).read_episode(1).observations)
    report = verify(tmp_path)
    assert report.clean and report.ok == (path,), report


def test_a_file_whose_name_is_not_utf8_reads_fine(tmp_path: Path, good_file: Path) -> None:
    try:
        _read_a_file_named_in_latin1(tmp_path, good_file)
    except BaseException as exc:  # noqa: BLE001 - pytest-xdist cannot send a report whose text has surrogates
        raise AssertionError(f"{type(exc).__name__}: {ascii(str(exc))}") from None


@pytest.mark.parametrize("entry", ["writer", "recorder"])
def test_a_folder_that_cannot_be_created_is_a_recording_error(tmp_path: Path, entry: str) -> None:
    """As root chmod cannot make a read-only parent, so the parent is a regular file (same failing mkdir)."""
    parent = tmp_path / "a_file"
    parent.write_text("not a folder")
    folder = parent / "recordings"
    with pytest.raises(RecordingError) as caught:
        if entry == "writer":
            TrajectoryWriter(folder, OBS, spaces.Discrete(2), {}).close()
        else:
            TrajectoryRecorder(gym.make("CartPole-v1"), folder).close()
    assert "recordings" in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores a read-only folder's permissions")
def test_a_read_only_parent_folder_is_a_recording_error(tmp_path: Path) -> None:
    parent = tmp_path / "read_only"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(RecordingError):
            TrajectoryWriter(parent / "recordings", OBS, spaces.Discrete(2), {}).close()
    finally:
        parent.chmod(0o700)
