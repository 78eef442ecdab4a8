"""What the fuzz suite (tests/test_fuzz.py) found on top of issue 11's list, as minimal reproducers.

Each file is a real file rewritten by a hostile writer (valid CRCs) with one malformed field. Every
entry point must say "damaged" in its typed way: ``open_trajectories`` and ``ImitationLearning``
raise ``CorruptFileError`` (a reset included), ``verify`` lists the file as damaged and never raises.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest

import trajarena
from _helpers_format import SpriteDuel, rewrite_file, run_episodes
from trajarena.errors import CorruptFileError
from trajarena.recording.recorder import TrajectoryRecorder


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("findings")
    env = TrajectoryRecorder(SpriteDuel(size=8, max_steps=9), folder / "base", chunk_steps=5, segment_seconds=1e9)
    run_episodes(env, 3)
    env.close()
    (path,) = env.files
    return path


def _meta(change):
    def apply(meta):
        change(meta)
        return meta

    return {"change": apply}


def _each_end(change):
    def apply(i, doc):
        for end in doc.get("ends", []):
            change(end)
        return doc

    return {"change_chunk": apply}


def _extra_space_key(meta):
    p2 = meta["observation_space"]["spaces"]["P2"]["spaces"]
    p2["side_"] = copy.deepcopy(p2["side"])  # a leaf the spaces declare, with no column


CASES = {
    # the file metadata
    "no_observation_space": _meta(lambda m: m.pop("observation_space")),
    "action_space_not_an_object": _meta(lambda m: m.__setitem__("action_space", 3)),
    "dict_spaces_not_an_object": _meta(lambda m: m["action_space"].__setitem__("spaces", 3)),
    "dict_spaces_a_list": _meta(lambda m: m["action_space"].__setitem__("spaces", list(m["action_space"]["spaces"].values()))),
    "a_space_leaf_without_a_column": _meta(_extra_space_key),
    "unknown_space_type": _meta(lambda m: m["observation_space"]["spaces"]["P1"]["spaces"]["side"].__setitem__(
        "type", "Discr-te")),  # found by the atheris harness
    # a chunk's metadata
    "crc32_not_an_object": {"change_chunk": lambda i, doc: {**doc, "crc32": 0}},
    "end_without_terminated": _each_end(lambda end: end.pop("terminated")),
    "return_not_a_number": _each_end(lambda end: end.__setitem__("return", [])),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_field_is_damaged_for_every_entry_point(tmp_path: Path, base: Path, case: str) -> None:
    path = rewrite_file(base, tmp_path / f"{case}.arrow", match_schema=False, **CASES[case])

    def open_and_read():
        reader = trajarena.open_trajectories(path)
        for i in range(reader.num_episodes):
            reader.read_episode(i)

    def imitation():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = trajarena.ImitationLearning(traj_files_list=[path])
            env.reset()
            env.step(env.action_space.sample())

    wrong = []
    for name, call in (("open_trajectories", open_and_read), ("ImitationLearning", imitation)):
        try:
            call()
            wrong.append(f"{name}: no error")
        except CorruptFileError:
            pass
        except Exception as exc:  # noqa: BLE001 - collected: the assertion names them all
            wrong.append(f"{name}: {type(exc).__name__}: {exc}")
    try:
        report = trajarena.verify(path)
        if path not in report.damaged:
            wrong.append("verify: called it intact")
    except Exception as exc:  # noqa: BLE001
        wrong.append(f"verify: {type(exc).__name__}: {exc}")
    assert not wrong, wrong


def test_settings_that_are_not_objects_are_refused_typed(tmp_path: Path, base: Path) -> None:
    """env_settings, wrappers_settings and players are JSON objects; anything else makes the file damaged."""
    for key in ("env_settings", "wrappers_settings", "players"):
        path = rewrite_file(base, tmp_path / f"{key}.arrow", **_meta(lambda m, k=key: m.__setitem__(k, "x")))
        with pytest.raises(CorruptFileError, match=key):
            trajarena.open_trajectories(path)
        with pytest.raises(CorruptFileError, match=key), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trajarena.ImitationLearning(traj_files_list=[path])
        assert path in trajarena.verify(path).damaged
