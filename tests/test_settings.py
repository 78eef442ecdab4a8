"""Settings: every field's validation, unknown keys with hints, JSON round trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from trajarena.errors import SettingsError, WrapperNotAppliedWarning
from trajarena.settings import (
    DUEL_CHARACTERS,
    EnvironmentSettings,
    RecordingSettings,
    WrappersSettings,
)


def test_defaults_round_trip_through_json():
    for cls in (EnvironmentSettings, WrappersSettings):
        s = cls()
        again = cls.from_dict(json.loads(json.dumps(s.to_dict())))
        assert again == s
    r = RecordingSettings(username="a", file_path="x")
    assert RecordingSettings.from_dict(json.loads(json.dumps(r.to_dict()))) == r


@pytest.mark.parametrize(
    ("cls", "key", "hint"),
    [
        (EnvironmentSettings, "dificulty", "difficulty"),
        (EnvironmentSettings, "frame_shap", "frame_shape"),
        (WrappersSettings, "stack_frame", "stack_frames"),
        (RecordingSettings, "user_name", "username"),
    ],
)
def test_unknown_key_names_it_and_suggests(cls, key, hint):
    extra = {"file_path": "x"} if cls is RecordingSettings else {}
    with pytest.raises(SettingsError) as err:
        cls.from_dict({key: 1, **extra})
    msg = str(err.value)
    assert repr(key) in msg and f"Did you mean {hint!r}" in msg and "Valid settings:" in msg


BAD_ENV_VALUES = [
    ("n_players", 3), ("n_players", "1"), ("frame_shape", (84, 84)), ("frame_shape", (84, 84, 2)),
    ("frame_shape", (84, 0, 1)), ("frame_shape", (-1, 84, 1)), ("step_ratio", 0), ("step_ratio", 1.5),
    ("difficulty", 0), ("difficulty", 9), ("difficulty", True), ("continue_game", 1.5),
    ("continue_game", -0.5), ("role", "P3"), ("characters", "Nobody"), ("outfits", 0), ("outfits", 5),
    ("action_space", "box"), ("seed", -2), ("role", ("P1", "P2")),
]


@pytest.mark.parametrize(("key", "value"), BAD_ENV_VALUES)
def test_bad_environment_values_name_the_key(key, value):
    with pytest.raises(SettingsError, match=key):
        EnvironmentSettings.from_dict({key: value})


def test_settings_error_is_a_value_error():
    with pytest.raises(ValueError):
        EnvironmentSettings(difficulty=10)


def test_close_match_for_a_misspelt_choice():
    with pytest.raises(SettingsError, match="Did you mean 'multi_discrete'"):
        EnvironmentSettings(action_space="multi_discrete_")


def test_two_player_pairs_broadcast_and_validate():
    s = EnvironmentSettings(n_players=2, characters="Mira", action_space=("discrete", "multi_discrete"))
    assert s.characters == ("Mira", "Mira")
    assert s.player("action_space", 1) == "multi_discrete"
    with pytest.raises(SettingsError, match="two different sides"):
        EnvironmentSettings(n_players=2, role=("P1", "P1"))
    with pytest.raises(SettingsError, match="pair"):
        EnvironmentSettings(n_players=2, outfits=(1, 2, 3))


@pytest.mark.parametrize(
    ("key", "value"),
    [("stack_frames", 0), ("dilation", 0), ("repeat_action", 0), ("no_op_max", -1), ("scale", "yes"),
     ("normalization_factor", 0), ("filter_keys", "frame"), ("wrappers", [object()]), ("frame_shape", (1, 1))],
)
def test_bad_wrapper_values(key, value):
    with pytest.raises(SettingsError, match=key):
        WrappersSettings.from_dict({key: value})


@pytest.mark.parametrize(
    ("key", "value"),
    [("username", 3), ("file_path", ""), ("ignore_p2", 2), ("ignore_p2", 0.5), ("ignore_p1", 2), ("ignore_p1", 0.5),
     ("players", {"P3": "x"}),     ("flush_seconds", 0), ("compression", "gzip"), ("compression_level", 99)],
)
def test_bad_recording_values(key, value):
    data = {"file_path": "data", **{key: value}}
    with pytest.raises(SettingsError, match=key):
        RecordingSettings.from_dict(data)


def test_ignore_p1_round_trips_and_excludes_ignore_p2():
    r = RecordingSettings.from_dict({"file_path": "data", "ignore_p1": True})
    assert r.ignore_p1 == 1 and type(r.ignore_p1) is int and r.ignore_p2 == 0
    assert RecordingSettings.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    with pytest.raises(SettingsError, match="ignore_p1 and ignore_p2 are both 1"):
        RecordingSettings(file_path="data", ignore_p1=1, ignore_p2=1)


def test_settings_are_frozen_and_replace_validates():
    s = EnvironmentSettings()
    with pytest.raises(AttributeError):
        s.difficulty = 3  # type: ignore[misc]
    assert s.replace(difficulty=2).difficulty == 2
    with pytest.raises(SettingsError):
        s.replace(difficulty=20)


def test_not_a_mapping():
    with pytest.raises(SettingsError, match="dict"):
        EnvironmentSettings.from_dict([("difficulty", 3)])


def test_user_wrappers_are_stored_by_name_and_reapplied_only_from_classes_given_in_code():
    import gymnasium as gym

    ws = WrappersSettings(wrappers=[[gym.wrappers.ClipReward, {"min_reward": -1, "max_reward": 1}]])
    stored = json.loads(json.dumps(ws.to_dict()))
    assert stored["wrappers"][0][0] == "gymnasium.wrappers.transform_reward.ClipReward"
    assert WrappersSettings.from_json(stored, wrappers=[gym.wrappers.ClipReward]) == ws
    with pytest.warns(WrapperNotAppliedWarning, match=r"not re-applied: gymnasium\.wrappers\.transform_reward\.ClipReward"):
        assert WrappersSettings.from_json(stored) == WrappersSettings()


def test_a_stored_wrapper_name_is_never_imported_or_called(tmp_path, monkeypatch):
    """The payload of the security review: a dotted name of a function that runs a shell command."""
    import sys

    marker = tmp_path / "owned"
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("pydoc", None)
    stored = {"wrappers": [["pydoc.pipepager", {"cmd": f"echo owned > {marker}"}]]}
    with pytest.warns(WrapperNotAppliedWarning, match="pydoc.pipepager"):
        settings = WrappersSettings.from_json(stored)
    assert settings.wrappers == () and not marker.exists() and "pydoc" not in sys.modules


@pytest.mark.parametrize("stored", [
    {"wrappers": "pydoc.pipepager"}, {"wrappers": [["pydoc.pipepager"]]}, {"wrappers": [[{"x": 1}, {}]]},
    {"wrappers": [["a.B", "kwargs"]]}, ["not", "an", "object"],
])
def test_malformed_stored_wrappers_are_a_settings_error(stored):
    with pytest.raises(SettingsError):
        WrappersSettings.from_json(stored)


def test_user_wrappers_must_be_wrapper_classes_not_any_callable():
    with pytest.raises(SettingsError, match="gymnasium.Wrapper subclass"):
        WrappersSettings(wrappers=[[print, {}]])


@hsettings(max_examples=60, deadline=None)
@given(
    n_players=st.sampled_from([1, 2]),
    difficulty=st.one_of(st.none(), st.integers(1, 8)),
    character=st.one_of(st.none(), st.sampled_from(DUEL_CHARACTERS)),
    shape=st.tuples(st.integers(1, 256), st.integers(1, 256), st.sampled_from([0, 1, 3])),
    step_ratio=st.integers(1, 60),
)
def test_valid_environment_settings_round_trip(n_players, difficulty, character, shape, step_ratio):
    s = EnvironmentSettings(
        n_players=n_players, difficulty=difficulty, characters=character, frame_shape=shape, step_ratio=step_ratio
    )
    assert EnvironmentSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s


@pytest.mark.parametrize(
    ("cls", "data", "key"),
    [
        (EnvironmentSettings, {"difficulty": float("nan")}, "difficulty"),
        (EnvironmentSettings, {"step_ratio": float("inf")}, "step_ratio"),
        (EnvironmentSettings, {"continue_game": float("-inf")}, "continue_game"),
        (EnvironmentSettings, {"continue_game": float("nan")}, "continue_game"),
        (EnvironmentSettings, {"frame_shape": (100_000, 100_000, 3)}, "frame_shape"),
        (WrappersSettings, {"stack_frames": 10**9}, "stack_frames"),
        (WrappersSettings, {"stack_actions": 10**9}, "stack_actions"),
        (WrappersSettings, {"normalization_factor": float("inf")}, "normalization_factor"),
        (WrappersSettings, {"wrappers": [[int, {}]]}, "wrappers"),
    ],
)
def test_non_finite_huge_and_wrong_kind_values_are_settings_errors(cls, data, key):
    with pytest.raises(SettingsError, match=key):
        cls.from_dict(data)


def test_numpy_numbers_are_accepted():
    import numpy as np

    s = EnvironmentSettings(difficulty=np.int64(3), seed=np.int32(4), frame_shape=np.array([64, 64, 1]))
    assert (s.difficulty, s.seed, s.frame_shape) == (3, 4, (64, 64, 1))
    assert type(s.difficulty) is int and json.dumps(s.to_dict())
    assert WrappersSettings(stack_frames=np.int32(4)).stack_frames == 4
