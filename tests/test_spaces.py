"""Spaces <-> JSON and nested values <-> flat columns."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trajarena.errors import SpaceError
from trajarena.spaces import compile_setter, leaf_fields, nest, space_from_json, space_to_json

DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64"]

CATALOGUE = {
    "box_inf": spaces.Box(-np.inf, np.inf, (3, 2), np.float32),
    "box_half_inf": spaces.Box(np.array([0.0, -np.inf]), np.array([np.inf, 1.0]), dtype=np.float64),
    "box_uint64": spaces.Box(0, np.iinfo(np.uint64).max, (2,), np.uint64),
    "box_int64": spaces.Box(np.iinfo(np.int64).min, np.iinfo(np.int64).max, (1,), np.int64),
    "box_bool": spaces.Box(0, 1, (4,), np.bool_),
    "box_scalar": spaces.Box(0, 1, (), np.float32),
    "image": spaces.Box(0, 255, (8, 6, 3), np.uint8),
    "discrete_start": spaces.Discrete(5, start=-2),
    "multidiscrete": spaces.MultiDiscrete([[3, 4], [5, 6]], start=[[1, 0], [-1, 2]]),
    "multidiscrete_int32": spaces.MultiDiscrete([9, 8], dtype=np.int32),
    "multibinary": spaces.MultiBinary(7),
    "multibinary_2d": spaces.MultiBinary([2, 3]),
    "text": spaces.Text(12, min_length=2, charset="abcxyz 019"),
    "two_player": spaces.Dict(agent_0=spaces.MultiDiscrete([9, 8]), agent_1=spaces.MultiDiscrete([9, 8])),
    "nested": spaces.Dict(
        frame=spaces.Box(0, 255, (4, 4, 1), np.uint8),
        P1=spaces.Dict(health=spaces.Box(0, 100, (), np.float32), side=spaces.Discrete(2)),
        extra=spaces.Tuple([spaces.Discrete(3), spaces.Tuple([spaces.MultiBinary(2), spaces.Text(4)])]),
    ),
}


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_catalogue_round_trips_through_json_text(name: str) -> None:
    space = CATALOGUE[name]
    text = json.dumps(space_to_json(space), allow_nan=False)  # strict JSON: no NaN/Infinity tokens
    back = space_from_json(json.loads(text))
    assert back == space
    assert type(back) is type(space)
    assert [f.name for f in leaf_fields(back, "x")] == [f.name for f in leaf_fields(space, "x")]


def test_unknown_space_raises_not_implemented_naming_it() -> None:
    with pytest.raises(NotImplementedError, match="Graph"):
        space_to_json(spaces.Graph(spaces.Box(0, 1, (2,)), None))
    with pytest.raises(NotImplementedError, match="Sequence"):
        leaf_fields(spaces.Sequence(spaces.Discrete(2)), "obs")


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


# ---------------------------------------------------------------------------- hypothesis


@st.composite
def leaf_spaces(draw: st.DrawFn) -> spaces.Space:
    kind = draw(st.sampled_from(["box", "discrete", "multidiscrete", "multibinary", "text"]))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=3)))
    if kind == "box":
        dtype = np.dtype(draw(st.sampled_from(DTYPES)))
        if dtype.kind == "f":
            low = draw(st.sampled_from([-np.inf, -1.0, 0.0]))
            return spaces.Box(low, draw(st.sampled_from([np.inf, 1.0, 2.5])), shape, dtype)
        info = np.iinfo(dtype)
        return spaces.Box(int(info.min), int(info.max), shape, dtype)
    if kind == "discrete":
        return spaces.Discrete(draw(st.integers(1, 10)), start=draw(st.integers(-5, 5)))
    if kind == "multidiscrete":
        nvec = draw(st.lists(st.integers(1, 9), min_size=1, max_size=4))
        return spaces.MultiDiscrete(nvec, start=draw(st.lists(st.integers(-3, 3), min_size=len(nvec), max_size=len(nvec))))
    if kind == "multibinary":
        return spaces.MultiBinary(list(shape) or [2])
    return spaces.Text(draw(st.integers(1, 6)), charset=draw(st.sampled_from(["ab", "xyz09 ", "é€ü"])))


KEYS = st.text(alphabet="abcP12_/", min_size=1, max_size=5)
any_space = st.recursive(
    leaf_spaces(),
    lambda inner: st.one_of(
        st.dictionaries(KEYS, inner, min_size=1, max_size=3).map(spaces.Dict),
        st.lists(inner, min_size=1, max_size=3).map(spaces.Tuple),
    ),
    max_leaves=6,
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_space)
def test_hypothesis_spaces_round_trip_json(space: spaces.Space) -> None:
    back = space_from_json(json.loads(json.dumps(space_to_json(space), allow_nan=False)))
    assert back == space
    assert [f.name for f in leaf_fields(back, "obs")] == [f.name for f in leaf_fields(space, "obs")]
