"""Spaces <-> JSON and nested values <-> flat columns."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _helpers_format import CATALOGUE, any_space
from gymnasium import spaces
from hypothesis import HealthCheck, given, settings

from trajarena.errors import SpaceError
from trajarena.format.leaves import compile_setter, leaf_fields, nest
from trajarena.format.spaces import space_from_json, space_to_json


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_catalogue_round_trips_through_json_text(name: str) -> None:
    space = CATALOGUE[name]
    text = json.dumps(space_to_json(space), allow_nan=False)  # strict JSON: no NaN/Infinity tokens
    back = space_from_json(json.loads(text))
    assert back == space
    assert type(back) is type(space)
    assert [f.name for f in leaf_fields(back, "x")] == [f.name for f in leaf_fields(space, "x")]


def test_unknown_space_raises_not_supported_naming_it(tmp_path) -> None:
    from trajarena.errors import NotSupportedError
    from trajarena.format.writer import TrajectoryWriter

    with pytest.raises(NotSupportedError, match="Graph"):
        space_to_json(spaces.Graph(spaces.Box(0, 1, (2,)), None))
    with pytest.raises(NotSupportedError, match="Sequence"):
        leaf_fields(spaces.Sequence(spaces.Discrete(2)), "obs")
    with pytest.raises(NotSupportedError, match="OneOf"):
        TrajectoryWriter(tmp_path, spaces.OneOf([spaces.Discrete(2), spaces.Box(0, 1, (2,))]), spaces.Discrete(2))
    assert issubclass(NotSupportedError, NotImplementedError)  # except NotImplementedError still works


def test_zero_size_box_is_rejected_when_the_writer_is_built(tmp_path) -> None:
    from trajarena.errors import SpaceError
    from trajarena.format.writer import TrajectoryWriter

    space = spaces.Dict({"ok": spaces.Discrete(3), "empty": spaces.Box(0, 1, (0, 3))})
    with pytest.raises(SpaceError, match="obs/empty"):
        TrajectoryWriter(tmp_path, space, spaces.Discrete(2))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "data",
    [
        {"type": "Box", "dtype": "uint8", "shape": [1 << 20, 1 << 20], "low": 0, "high": 1},
        {"type": "Box", "dtype": "object", "shape": [1], "low": 0, "high": 1},
        {"type": "Box", "dtype": "float32", "shape": [2], "low": [0, 1, 2], "high": 1},
        {"type": "Box", "dtype": "float32", "shape": [2], "low": "lots", "high": 1},
        {"type": "MultiBinary", "n": [1 << 30, 1 << 30]},
        {"type": "Text", "min_length": 1, "max_length": 1 << 40, "charset": "ab"},
        {"type": "Discrete", "n": "3", "start": 0},
        {"type": "Nope"},
        ["not", "an", "object"],
        {"type": "Dict", "spaces": {"a": {"type": "Discrete"}}},
    ],
)
def test_bad_or_absurd_json_raises_space_error(data: object) -> None:
    with pytest.raises(SpaceError):
        space_from_json(data)


def test_deep_nesting_is_refused() -> None:
    data: dict = {"type": "Discrete", "n": 2, "start": 0}
    for _ in range(100):
        data = {"type": "Tuple", "spaces": [data]}
    with pytest.raises(SpaceError, match="deeper"):
        space_from_json(data)


def test_flat_names_and_one_code_path_for_two_player_actions() -> None:
    space = CATALOGUE["two_player"]
    fields = leaf_fields(space, "action")
    assert [f.name for f in fields] == ["action/agent_0", "action/agent_1"]
    buffers = [np.zeros((3, *f.shape), f.dtype) for f in fields]
    setter = compile_setter(space, buffers)
    setter(1, {"agent_0": np.array([4, 5]), "agent_1": np.array([8, 7])})
    assert buffers[0][1].tolist() == [4, 5] and buffers[1][1].tolist() == [8, 7]
    assert nest(space, [b[1] for b in buffers])["agent_1"].tolist() == [8, 7]


def test_keys_with_slashes_are_escaped() -> None:
    space = spaces.Dict({"a/b": spaces.Discrete(2), "a%": spaces.Discrete(2)})
    assert sorted(f.name for f in leaf_fields(space, "obs")) == ["obs/a%25", "obs/a%2Fb"]


@settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(any_space)
def test_hypothesis_spaces_round_trip_json(space: spaces.Space) -> None:
    back = space_from_json(json.loads(json.dumps(space_to_json(space), allow_nan=False)))
    assert back == space
    assert [f.name for f in leaf_fields(back, "obs")] == [f.name for f in leaf_fields(space, "obs")]


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_generated_setter_scatters_every_leaf_of_the_catalogue(name: str) -> None:
    space = CATALOGUE[name]
    space.seed(3)
    fields = leaf_fields(space, "x")
    buffers = [np.zeros((2, *f.shape), f.dtype) for f in fields]
    value = space.sample()
    compile_setter(space, buffers)(1, value)
    leaves = [b[1] for b in buffers]
    rebuilt = nest(space, leaves)
    expected, got = [], []

    def flatten(v, out):
        if isinstance(v, dict):
            for k in v:
                flatten(v[k], out)
        elif isinstance(v, tuple):
            for x in v:
                flatten(x, out)
        else:
            out.append(np.asarray(v))

    flatten(value, expected)
    flatten(rebuilt, got)
    assert len(expected) == len(got) == len(fields)
    for e, g, f in zip(expected, got, fields, strict=True):
        assert g.shape == f.shape
        assert np.array_equal(e.astype(f.dtype) if f.dtype != object else e, g)


def test_generated_setter_handles_deep_nesting_and_odd_keys() -> None:
    space = spaces.Dict({"a'b\"": spaces.Tuple((spaces.Discrete(3), spaces.Dict({"x": spaces.Discrete(4)}))),
                         "z": spaces.Tuple((spaces.Tuple((spaces.Discrete(5),)),))})
    buffers = [np.zeros(2, np.int64) for _ in leaf_fields(space, "o")]
    compile_setter(space, buffers)(0, {"a'b\"": (2, {"x": 3}), "z": ((4,),)})
    assert [int(b[0]) for b in buffers] == [2, 3, 4]
    with pytest.raises(KeyError):
        compile_setter(space, buffers)(1, {"z": ((1,),)})
    with pytest.raises(SpaceError, match="needs 3 buffers"):
        compile_setter(space, buffers[:2])
