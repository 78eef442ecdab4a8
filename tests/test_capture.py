"""The C setter (trajarena.format._capture) against the Python setters it replaces in the game loop.

Every value, well-formed or not, must leave the buffers exactly as ``compile_setter`` (numpy's
``buffer[row] = value`` per leaf) leaves them, and raise the same exception type when numpy does;
plans and rows it is given are checked, never trusted.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from _helpers_format import any_space
from gymnasium import spaces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_writer_process import ACT, FRAME, contents

from trajarena.errors import SpaceError
from trajarena.format import chunks
from trajarena.format.leaves import compile_setter, leaf_fields, leaf_plan
from trajarena.format.writer import TrajectoryWriter

_capture = chunks._capture
needs_c = pytest.mark.skipif(_capture is None, reason="the C setter is not built here")


def test_the_c_setter_is_built_where_a_compiler_is() -> None:
    # CI and `make test` install with gcc: a silent fallback to the Python setters would hide a broken build
    assert _capture is not None, "trajarena.format._capture did not build: see the pip install output"


def _set_path(value: Any, path: tuple, leaf: Any) -> Any:
    if not path:
        return leaf
    key, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, key: _set_path(value[key], rest, leaf)}
    items = list(value)
    items[key] = _set_path(items[key], rest, leaf)
    return tuple(items)


def _variant(draw: st.DrawFn, leaf: Any) -> Any:
    """The leaf as an env might give it: right, or in another dtype, layout, Python type, or plain wrong."""
    arr = np.asarray(leaf)
    kind = draw(st.sampled_from(["same", "same", "astype", "list", "strided", "swapped", "scalar", "python",
                                 "huge", "nan", "wrong_shape", "string", "none", "bool"]))
    if kind == "same" or arr.dtype.kind in "OUS":  # Text leaves stay as they are
        return leaf
    if kind == "astype":
        return arr.astype(draw(st.sampled_from(["int8", "uint8", "int16", "int64", "float32", "float64", "bool"])))
    if kind == "list":
        return arr.tolist()
    if kind == "strided":
        wide = np.repeat(arr[..., None], 2, axis=-1)
        return wide[..., 0]  # same values, not contiguous
    if kind == "swapped":
        return arr.astype(arr.dtype.newbyteorder())
    if kind == "scalar":
        return arr.reshape(-1)[0] if arr.size else arr  # a numpy scalar
    if kind == "python":
        return arr.reshape(-1)[0].item() if arr.size else 0
    if kind == "huge":
        return draw(st.sampled_from([2**70, -(2**70), 2**63, -1, 255, 256, 32768, -129]))
    if kind == "nan":
        return draw(st.sampled_from([math.nan, math.inf, -math.inf, 3.7, -0.0]))
    if kind == "wrong_shape":
        return np.zeros((*arr.shape, 2), arr.dtype)
    if kind == "string":
        return "7"
    if kind == "bool":
        return draw(st.booleans())
    return None


@st.composite
def space_value_buffers(draw: st.DrawFn):
    space = draw(any_space)
    space.seed(draw(st.integers(0, 2**16)))
    value = space.sample()
    for f in leaf_fields(space, ""):
        if draw(st.booleans()):
            value = _set_path(value, f.path, _variant(draw, _get(value, f.path)))
    float_buffers = draw(st.booleans())  # integer actions are buffered as float64
    dtypes = [np.dtype(np.float64) if float_buffers and f.dtype.kind in "iub" else f.dtype
              for f in leaf_fields(space, "")]
    rows = draw(st.integers(1, 4))
    return space, value, [(d, (rows, *f.shape)) for d, f in zip(dtypes, leaf_fields(space, ""), strict=True)], \
        draw(st.integers(0, rows - 1))


def _get(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def _buffers(layout) -> list[np.ndarray]:
    out = []
    for dtype, shape in layout:
        b = np.zeros(shape, dtype)
        if dtype == object:
            b.fill("")
        out.append(b)
    return out


def _outcome(fn) -> type | None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        return type(exc)
    return None


def _same_buffers(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        if x.dtype == object:
            assert x.tolist() == y.tolist()
        else:
            assert x.tobytes() == y.tobytes()  # bit for bit: NaN, -0.0 and all


@needs_c
@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(space_value_buffers())
def test_c_setter_writes_what_numpy_writes_or_raises_what_it_raises(case) -> None:
    space, value, layout, row = case
    py, c = _buffers(layout), _buffers(layout)
    plan = leaf_plan(space, c)
    with np.errstate(all="ignore"):
        expected = _outcome(lambda: compile_setter(space, py)(row, value))
        got = _outcome(lambda: _capture.fill(row, value, plan))
    assert got is expected
    _same_buffers(py, c)


@needs_c
def test_fast_paths_copy_exact_values() -> None:
    space = spaces.Dict(frame=spaces.Box(0, 255, (4, 5, 3), np.uint8), d=spaces.Discrete(3),
                        h=spaces.Box(0, 9, (1,), np.int16), f=spaces.Box(-1, 1, (), np.float64),
                        b=spaces.MultiBinary(2), t=spaces.Tuple((spaces.Discrete(2), spaces.Box(0, 1, (2,)))))
    fields = leaf_fields(space, "")
    bufs = [np.zeros((3, *f.shape), f.dtype) for f in fields]
    frame = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)
    value = {"frame": frame, "d": np.int64(2), "h": np.array([7], np.int16), "f": 0.25,
             "b": np.array([1, 0], np.int8), "t": (True, np.array([0.5, 1.0], np.float32))}
    _capture.fill(2, value, leaf_plan(space, bufs))
    got = {f.name: b[2].tolist() for f, b in zip(fields, bufs, strict=True)}
    assert got == {"/frame": frame.tolist(), "/d": 2, "/h": [7], "/f": 0.25, "/b": [1, 0], "/t/0": 1, "/t/1": [0.5, 1.0]}
    assert all(not b[:2].any() for b in bufs)  # only row 2 was written


@needs_c
def test_large_rows_are_copied_whole_at_any_alignment() -> None:
    # rows of 64 KiB+ take the streaming copy: odd offsets and a tail that is not a multiple of 64 bytes
    n = 70_001
    buf = np.zeros((3, n), np.uint8)
    src = np.random.default_rng(0).integers(0, 256, n + 7, dtype=np.uint8)
    for shift in range(3):
        value = src[shift : shift + n]
        _capture.fill(1, value, leaf_plan(spaces.Box(0, 255, (n,), np.uint8), [buf]))
        assert buf[1].tobytes() == value.tobytes()
        assert not buf[0].any() and not buf[2].any()


@needs_c
@pytest.mark.parametrize("row", [-1, 3, 2**40, -(2**40)])
def test_rows_outside_the_chunk_raise_and_write_nothing(row: int) -> None:
    buf = np.zeros((3, 2), np.int64)
    with pytest.raises(IndexError, match="outside the chunk"):
        _capture.fill(row, np.array([1, 2]), leaf_plan(spaces.Box(0, 9, (2,), np.int64), [buf]))
    assert not buf.any()


@needs_c
def test_row_that_is_not_an_int_raises() -> None:
    buf = np.zeros((3, 2), np.int64)
    with pytest.raises(TypeError):
        _capture.fill("1", np.array([1, 2]), leaf_plan(spaces.Box(0, 9, (2,), np.int64), [buf]))
    with pytest.raises(OverflowError):
        _capture.fill(2**80, np.array([1, 2]), leaf_plan(spaces.Box(0, 9, (2,), np.int64), [buf]))


@needs_c
@pytest.mark.parametrize("plan, error", [
    ([], TypeError),  # not a tuple
    ((1,), TypeError),  # a leaf that is not a tuple
    (((0, ("a",)),), TypeError),  # two items
    (((0, "a", None),), TypeError),  # keys not a tuple
    (((0, ("a",), np.zeros(3)),), None),  # fine (3 rows)
    (((1, ("a",), np.zeros(3)),), ValueError),  # shares a node the previous leaf never reached
    (((-1, ("a",), np.zeros(3)),), ValueError),
    (((0, ("a",) * 70, np.zeros(3)),), ValueError),  # deeper than the C setter goes
    (((0, ("a",), np.zeros(())),), TypeError),  # a buffer without rows
    (((0, ("a",), [0, 0, 0]),), TypeError),  # not an array
    (((0, (), np.zeros(3)), (0, (), np.zeros(3))), None),  # the root twice
    (((2**70, ("a",), np.zeros(3)),), OverflowError),
])
def test_malformed_plans_raise_instead_of_crashing(plan, error) -> None:
    value = {"a": 1.0}
    if error is None:
        _capture.fill(0, value if plan[0][1] else 1.0, plan)
    else:
        with pytest.raises(error):
            _capture.fill(0, value, plan)


@needs_c
def test_getitem_of_any_mapping_and_its_errors_are_pythons() -> None:
    from collections import OrderedDict, defaultdict

    space = spaces.Dict(a=spaces.Discrete(5), b=spaces.Discrete(5))
    buf = [np.zeros(2, np.int64), np.zeros(2, np.int64)]
    plan = leaf_plan(space, buf)
    _capture.fill(0, OrderedDict(b=3, a=4), plan)
    _capture.fill(1, defaultdict(lambda: 2, a=1), plan)  # __missing__ answers "b"
    assert buf[0].tolist() == [4, 1] and buf[1].tolist() == [3, 2]
    with pytest.raises(KeyError) as missing:
        _capture.fill(0, {"a": 1}, plan)
    assert missing.value.args == ("b",)
    with pytest.raises(KeyError) as tuple_key:  # a tuple key is reported whole, as Python does
        _capture.fill(0, {}, ((0, ((1, 2),), np.zeros(2, np.int64)),))
    assert tuple_key.value.args == ((1, 2),)

    class Exploding(dict):
        def __getitem__(self, key):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _capture.fill(0, Exploding(a=1, b=2), plan)


@needs_c
def test_values_that_run_code_while_stored_cannot_break_it() -> None:
    # numpy calls __array__ of an unknown object: it may drop the caller's last reference to the value
    space = spaces.Dict(a=spaces.Box(0, 9, (2,), np.int64), b=spaces.Discrete(3))
    buf = [np.zeros((2, 2), np.int64), np.zeros(2, np.int64)]
    obs: dict[str, Any] = {}

    class Sneaky:
        def __array__(self, dtype=None, copy=None):
            obs.clear()  # the dict the setter is reading from
            return np.array([5, 6])

    obs.update(a=Sneaky(), b=1)
    with pytest.raises(KeyError):  # "b" is gone by the time it is read
        _capture.fill(0, obs, leaf_plan(space, buf))
    assert buf[0][0].tolist() == [5, 6]


def _python_info(slots: dict, skip: object, row: int, info: dict) -> list:
    """What chunks.ChunkBuffers._put_info does with slots, keys it leaves to its slow path returned."""
    slow = []
    for key, value in info.items():
        slot = slots.get(key)
        if slot is None:
            slow.append(key)
        elif slot is skip:
            continue
        elif type(value) is slot[0] and (not slot[1] or value.shape == slot[1]):
            slot[2][row] = value
            slot[3][row] = True
        else:
            slow.append(key)
    return slow


INFO_VALUES = st.one_of(
    st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.none(), st.text(max_size=3),
    st.sampled_from([np.int64(3), np.float32(2.5), np.bool_(True), np.array([1, 2], np.int8), np.array(1.5),
                     np.array([[1, 2]], np.int8), np.array([1.0, 2.0])]),
)


@needs_c
@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(list("abcdef")), INFO_VALUES, max_size=6), st.integers(0, 2))
def test_info_values_are_stored_as_the_python_loop_stores_them(info: dict, row: int) -> None:
    skip = object()

    def slots():
        return {
            "a": (bool, (), np.zeros(3, bool), np.zeros(3, bool)),
            "b": (int, (), np.zeros(3, np.int64), np.zeros(3, bool)),
            "c": (float, (), np.zeros(3, np.float64), np.zeros(3, bool)),
            "d": (np.ndarray, (2,), np.zeros((3, 2), np.int8), np.zeros(3, bool)),
            "e": skip,
        }

    py, c = slots(), slots()
    expected_error = got_error = None
    try:
        expected = _python_info(py, skip, row, info)
    except Exception as exc:  # noqa: BLE001
        expected_error = type(exc)
    try:
        got = _capture.step(row, None, None, 1.5, True, False, info,
                            ((), (), np.zeros(3), np.zeros(3, bool), np.zeros(3, bool), c, skip, np.zeros(1, np.uint8)))
    except Exception as exc:  # noqa: BLE001
        got_error = type(exc)
    assert got_error is expected_error
    if expected_error is None:
        assert sorted(got or []) == sorted(expected)
    for key in "abcd":
        assert py[key][2].tobytes() == c[key][2].tobytes() and py[key][3].tolist() == c[key][3].tolist()


@needs_c
def test_step_stores_every_part_and_leaves_other_mappings_to_python() -> None:
    from types import MappingProxyType

    space = spaces.Dict(a=spaces.Discrete(3))
    act, obs = np.zeros(2), np.zeros(2, np.int64)
    reward, term, trunc = np.zeros(2), np.zeros(2, bool), np.zeros(2, bool)
    unchecked = np.zeros(1, np.uint8)
    plan = (leaf_plan(spaces.Discrete(3), [act]), leaf_plan(space, [obs]), reward, term, trunc, {}, object(), unchecked)
    assert _capture.step(1, np.int64(2), {"a": 1}, 2.5, True, np.bool_(True), None, plan) is None
    assert act.tolist() == [0, 2] and obs.tolist() == [0, 1]
    assert reward.tolist() == [0, 2.5] and term.tolist() == [False, True] and trunc.tolist() == [False, True]
    assert _capture.step(0, 1, {"a": 1}, 1, False, False, MappingProxyType({"a": 1}), plan) is True
    assert _capture.step(0, 1, {"a": 1}, 1, False, False, {"a": 1, "b": 2}, plan) == ["a", "b"]
    with pytest.raises(ValueError):
        _capture.step(0, 1, {"a": 1}, "not a number", False, False, None, plan)
    with pytest.raises(KeyError):
        _capture.step(0, 1, {}, 1.0, False, False, None, plan)
    with pytest.raises(TypeError):  # slots not a dict
        _capture.step(0, 1, {"a": 1}, 1.0, False, False, None, (*plan[:5], [], None, unchecked))
    with pytest.raises(TypeError):  # a plan of the wrong size
        _capture.step(0, 1, {"a": 1}, 1.0, False, False, None, plan[:7])
    for flag in (np.zeros(1, np.int64), np.zeros(0, np.uint8), [0], np.zeros(4, np.uint8)[::2]):  # not a uint8 flag
        with pytest.raises(TypeError):
            _capture.step(0, 1, {"a": 1}, 1.0, False, False, None, (*plan[:7], flag))
    with pytest.raises(IndexError):
        _capture.step(5, 1, {"a": 1}, 1.0, False, False, None, plan)


HINTED = spaces.Dict(health=spaces.Box(0, 9, (1,), np.int16),
                     body=spaces.Dict(kind=spaces.Discrete(4), pos=spaces.Box(-1, 1, (2,))), side=spaces.Discrete(3))
#: how a step's dicts are built: the env's usual way, another key order, keys that are equal strings but other
#: objects, a deleted entry before them, an extra key, a dict subclass
DICT_WAYS = st.sampled_from(["same", "same", "same", "reversed", "copied keys", "hole", "extra", "subclass"])


def _built(way: str, items: list[tuple[str, Any]]) -> dict:
    if way == "reversed":
        items = items[::-1]
    elif way == "copied keys":
        items = [("".join(list(k)) + "", v) for k, v in items]  # equal, not the same object
    out: dict = {}
    if way == "hole":
        out["zz"] = 0
    for k, v in items:
        out[k] = v
    if way == "hole":
        del out["zz"]
    if way == "extra":
        out["unused"] = 1
    return type("Sub", (dict,), {})(out) if way == "subclass" else out


@needs_c
@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(st.tuples(DICT_WAYS, DICT_WAYS, st.integers(0, 3), st.integers(-5, 5)), min_size=1, max_size=12))
def test_lookup_hints_change_nothing_that_is_stored(steps: list) -> None:
    # the same steps through a plan with hints (kept across steps, as the writer keeps them) and one without
    def buffers() -> tuple:
        obs = [np.zeros((4, *f.shape), f.dtype) for f in leaf_fields(HINTED, "obs")]
        slots = {"hits": (int, (), np.zeros(4, np.int64), np.zeros(4, bool)),
                 "speed": (float, (), np.zeros(4), np.zeros(4, bool))}
        plan = ((), leaf_plan(HINTED, obs), np.zeros(4), np.zeros(4, bool), np.zeros(4, bool), slots, object(),
                np.zeros(1, np.uint8))
        return obs, slots, plan

    (obs_h, slots_h, plan_h), (obs_p, slots_p, plan_p) = buffers(), buffers()
    hints = np.full(16, -1, np.int64)
    for i, (obs_way, info_way, c, x) in enumerate(steps):
        value = _built(obs_way, [("health", np.array([c], np.int16)), ("body", _built(obs_way, [
            ("kind", c), ("pos", np.array([x / 10, -x / 10], np.float32))])), ("side", c % 3)])
        info = _built(info_way, [("hits", x), ("speed", x / 3)])
        got = _capture.step(i % 4, None, value, float(x), False, False, info, (*plan_h, hints))
        want = _capture.step(i % 4, None, value, float(x), False, False, info, plan_p)
        assert got == want
        for h, p in zip(obs_h, obs_p, strict=True):
            assert h.tobytes() == p.tobytes()
        for key in slots_h:
            assert slots_h[key][2].tobytes() == slots_p[key][2].tobytes()
            assert slots_h[key][3].tolist() == slots_p[key][3].tolist()
    if all("copied keys" not in step for step in steps):  # the same key objects: every dict lookup has its hint
        assert (hints[:7] >= 0).all() or any("subclass" in step for step in steps)
    else:  # a key that was another (equal) object: that lookup is plain from then on
        assert (hints[:7] == -2).any()


@needs_c
def test_lookup_hints_of_the_wrong_kind_are_ignored_and_a_missing_key_still_raises() -> None:
    obs = [np.zeros((2, *f.shape), f.dtype) for f in leaf_fields(HINTED, "obs")]
    plan = ((), leaf_plan(HINTED, obs), np.zeros(2), np.zeros(2, bool), np.zeros(2, bool), {}, object(),
            np.zeros(1, np.uint8))
    value = {"health": np.array([7], np.int16), "body": {"kind": 2, "pos": np.ones(2, np.float32)}, "side": 1}
    for hints in (np.full(8, 10**12, np.int64), np.full(8, -7, np.int64), np.zeros(8, np.int32), [0] * 8,
                  np.zeros(0, np.int64), np.full(16, 3, np.int64)[::2]):
        obs[0][:] = 0
        _capture.step(1, None, value, 0.0, False, False, None, (*plan, hints))
        assert obs[0][1].tolist() == [7]
    hints = np.full(8, -1, np.int64)
    _capture.step(1, None, value, 0.0, False, False, None, (*plan, hints))
    with pytest.raises(KeyError):  # a remembered position does not hide a key that is gone
        _capture.step(1, None, {"body": value["body"], "side": 1}, 0.0, False, False, None, (*plan, hints))
    with pytest.raises(TypeError):  # a plan of 10
        _capture.step(1, None, value, 0.0, False, False, None, (*plan, hints, hints))


DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16", "float32",
          "float64", "complex64", ">i4", ">f8"]
EDGES = [True, False, 0, 1, -1, 127, 128, 255, 256, -128, -129, 32767, 32768, 65535, 65536, 2**31 - 1, 2**31,
         2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 0.5, -0.0, 1e300, math.nan,
         math.inf, 1j, "3", None, [1], np.array(7), np.array([7])]


@needs_c
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_scalar_into_every_dtype_as_numpy_does(dtype: str) -> None:
    values = [*EDGES, *(np.dtype(d).type(1) for d in DTYPES), np.dtype(dtype).type(0), np.float64(2**70)]
    for value in values:
        py, c = np.zeros(3, dtype), np.zeros(3, dtype)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # complex into real: numpy warns, and so does the C setter (via numpy)
            expected = _outcome(lambda: py.__setitem__(1, value))  # noqa: B023
            got = _outcome(lambda: _capture.fill(1, value, ((0, (), c),)))  # noqa: B023
        assert got is expected, (dtype, value)
        assert py.tobytes() == c.tobytes(), (dtype, value)


@needs_c
@pytest.mark.parametrize("shape", [(2, 3), (3, 2), (2, 2), (1, 3), (2, 1), (3,), (2, 3, 1), (6,), (1, 2, 3), (), (0, 3)])
@pytest.mark.parametrize("layout", ["c", "fortran", "strided", "readonly", "swapped", "float", "int64", "big"])
@pytest.mark.parametrize("buffer", ["int16", "float64"])
def test_arrays_of_every_shape_and_layout_as_numpy_does(shape: tuple, layout: str, buffer: str) -> None:
    value = np.arange(math.prod(shape), dtype=np.int16).reshape(shape)
    if layout == "fortran":
        value = np.asfortranarray(value)
    elif layout == "strided":
        value = np.repeat(value[..., None], 2, axis=-1)[..., 1]
    elif layout == "readonly":
        value.flags.writeable = False
    elif layout == "swapped":
        value = value.astype(">i2")
    elif layout == "float":
        value = value.astype(np.float64) + 0.5
    elif layout == "int64":  # how integer actions come (their buffer is float64)
        value = value.astype(np.int64) - 3
    elif layout == "big":  # int64 values a float64 rounds
        value = value.astype(np.int64) + (2**62 + 1)
    py, c = np.zeros((3, 2, 3), buffer), np.zeros((3, 2, 3), buffer)
    with np.errstate(all="ignore"):
        expected = _outcome(lambda: py.__setitem__(2, value))
        got = _outcome(lambda: _capture.fill(2, value, ((0, (), c),)))
    assert got is expected
    assert py.tobytes() == c.tobytes()


@needs_c
def test_array_subclasses_go_through_numpy() -> None:
    masked = np.ma.masked_array([1, 2], mask=[False, True])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        matrix = np.asmatrix([[1, 2]])
    for value in (masked, matrix, np.array([1, 2]).view(np.recarray)):
        py, c = np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64)
        expected = _outcome(lambda: py.__setitem__(0, value))  # noqa: B023
        got = _outcome(lambda: _capture.fill(0, value, ((0, (), c),)))  # noqa: B023
        assert got is expected and py.tobytes() == c.tobytes()


@pytest.mark.parametrize("bad", ["none", "obs", "action", "reward", "info"])
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 1000))
def test_the_writer_writes_the_same_files_with_and_without_the_c_setter(tmp_path_factory, monkeypatch, bad, seed):
    def run(folder, use_c: bool) -> list:
        with monkeypatch.context() as m:
            if not use_c:
                m.setattr(chunks, "_capture", None)
            rng = np.random.default_rng(seed)
            w = TrajectoryWriter(folder, FRAME, ACT, writer="thread", chunk_steps=int(rng.integers(1, 5)))
            errors = []
            for t in range(30):
                o = {"frame": rng.integers(0, 256, (6, 5, 3), np.uint8), "hp": np.float32(rng.integers(0, 9))}
                action, reward, info = rng.integers(0, [3, 2]), float(rng.normal()), {"t": t, "x": np.int8(t)}
                if t % 5 == 0 and bad == "obs":
                    o = {"frame": np.zeros((5, 5, 3), np.uint8), "hp": 1.0}
                elif t % 5 == 0 and bad == "action":
                    action = np.array([7, 1])  # out of the space: found at the handoff, its episode discarded
                elif t % 5 == 0 and bad == "reward":
                    reward = "lots"
                elif t % 5 == 0 and bad == "info":
                    info = {"t": 2**70, "x": "text"}
                try:
                    if t % 9 == 0 or w._t < 0:  # a new episode now and then, and after each end
                        w.reset(o, {"round": t}, seed=t)
                    else:
                        w.step(action, o, reward, t % 7 == 0, False, info)
                except (SpaceError, ValueError, OverflowError) as exc:
                    errors.append((t, type(exc).__name__))
            w.close()
            return errors

    c_dir, py_dir = tmp_path_factory.mktemp("c"), tmp_path_factory.mktemp("py")
    errors = run(c_dir, True)
    assert errors == run(py_dir, False) and bool(errors) == (bad != "none")
    assert contents(c_dir) == contents(py_dir)


ACTION_SPACES = {
    "discrete": (spaces.Discrete(5, start=-2), [0, -2, 2, 3, -3, 7, np.int64(1), 1.5, np.float64(2.0), True]),
    "multidiscrete": (spaces.MultiDiscrete([3, 4]), [[0, 3], [2, 4], [-1, 0], np.array([1, 1]), np.array([1.0, 2.5])]),
    "multibinary": (spaces.MultiBinary(3), [[0, 1, 1], [0, 2, 0], np.array([1, 0, 1], np.int8)]),
    "int box": (spaces.Box(-3, 3, (2,), np.int16), [np.array([-3, 3], np.int16), np.array([4, 0], np.int16),
                                                    np.array([-4, 0])]),
    "float box": (spaces.Box(-1.0, 1.0, (2,), np.float32), [np.array([0.5, 9.0], np.float32),  # outside: accepted
                                                           np.array([np.nan, 0], np.float32), [np.inf, 0.0]]),
    "float64 box": (spaces.Box(-1.0, 1.0, (), np.float64), [0.25, np.float64(np.nan), -np.inf, 3.0]),
}


@pytest.mark.parametrize("name", sorted(ACTION_SPACES))
def test_the_c_setter_finds_the_actions_outside_the_space_as_the_chunk_check_does(tmp_path_factory, monkeypatch, name):
    act_space, actions = ACTION_SPACES[name]
    obs_space = spaces.Box(0, 9, (2,), np.int64)

    def run(folder, use_c: bool) -> list:
        with monkeypatch.context() as m:
            if not use_c:
                m.setattr(chunks, "_capture", None)
            w = TrajectoryWriter(folder, obs_space, act_space, writer="thread", chunk_steps=3)
            errors = []
            for i, action in enumerate(actions * 2):
                try:
                    if w._t < 0 or i % 4 == 0:
                        w.reset(np.array([i, 0]), seed=i)
                    w.step(action, np.array([i, 1]), 1.0, False, False)
                except SpaceError as exc:
                    errors.append((i, str(exc).split(":")[1]))
            try:
                w.close()
            except SpaceError as exc:
                errors.append(("close", str(exc).split(":")[1]))
            return errors

    c_dir, py_dir = tmp_path_factory.mktemp("c"), tmp_path_factory.mktemp("py")
    errors = run(c_dir, True)
    assert errors == run(py_dir, False)
    assert errors  # every list holds an action outside its space
    from trajarena.format.reader import TrajectoryReader

    def episodes(folder):
        r = TrajectoryReader(folder)
        return [(e.length, r.read_episode(i).actions.tolist()) for i, e in enumerate(r.episodes)]

    assert episodes(c_dir) == episodes(py_dir)


@needs_c
def test_no_reference_is_leaked_on_any_path() -> None:
    import gc
    import sys

    space = spaces.Dict(a=spaces.Box(0, 9, (2,), np.int64), b=spaces.Dict(c=spaces.Discrete(3), d=spaces.Box(0, 1, ())))
    bufs = [np.zeros((3, 2), np.int64), np.zeros(3, np.int64), np.zeros(3, np.float32)]
    plan, skip = leaf_plan(space, bufs), object()
    slots = {"i": (int, (), np.zeros(3, np.int64), np.zeros(3, bool)), "s": skip}
    step_plan = (leaf_plan(spaces.Discrete(3), [np.zeros(3)]), plan, np.zeros(3), np.zeros(3, bool), np.zeros(3, bool),
                 slots, skip, np.zeros(1, np.uint8))
    cases = [{"a": np.array([1, 2]), "b": {"c": np.int64(1), "d": 0.5}}, {"a": np.array([1, 2]), "b": {"c": 1}},
             {"a": np.array([1, 2, 3]), "b": {"c": 1, "d": 0.5}}, {"a": [1, 2], "b": {"c": "x", "d": 0.5}},
             {"a": np.array([1, 2]), "b": {"c": 2**80, "d": 0.5}}, {"a": np.array([1, 2]), "b": 5}]
    infos = [{"i": 3, "s": 1, "new": 2}, {"i": 2**70}, {"i": "x"}, None]
    infos[1]["i"] = 2**70 + len(infos)  # made here: only the test holds it
    watched = [x for x in [*cases, *(v for c in cases for v in c.values()), *bufs, *infos[:3], *slots.values(),
                           infos[1]["i"], np.int64(7)] if sys.getrefcount(x) < 100]  # not the shared small ints
    infos[0]["new"] = watched[-1]
    before = [sys.getrefcount(x) for x in watched]
    gc.collect()
    objects = len(gc.get_objects())
    for _ in range(500):
        for value in cases:
            for call in (lambda: _capture.fill(1, value, plan),  # noqa: B023
                         *(lambda i=i: _capture.step(2, 1, value, 1.0, False, False, i, step_plan) for i in infos)):  # noqa: B023
                try:
                    call()
                except (KeyError, TypeError, ValueError, OverflowError):
                    pass
    del value, call  # the loop's own references
    gc.collect()
    assert [sys.getrefcount(x) for x in watched] == before
    assert len(gc.get_objects()) <= objects + 50


# ---- findings of a review (each crashed, corrupted or diverged from numpy before its fix)

@needs_c
def test_a_buffer_reshaped_by_the_value_it_receives_is_not_read_out_of_bounds() -> None:
    buf = np.zeros((1000, 8))

    class Reshaping:
        def __array__(self, dtype=None, copy=None):
            buf.shape = (1, 8000)  # the action check must not read row 999 of a 1-row buffer
            return np.full(8, 3.0)

    flag = np.zeros(1, np.uint8)
    plan = (((0, (), buf, True),), (), np.zeros(1000), np.zeros(1000, bool), np.zeros(1000, bool), {}, object(), flag)
    _capture.step(999, Reshaping(), None, 0.0, False, False, None, plan)
    assert flag[0] == 1  # not vouched for: the chunk check looks at it


@needs_c
@pytest.mark.parametrize("n", [8, 4096])  # below and above the streaming copy's threshold
def test_a_value_that_overlaps_its_own_row_is_copied_as_numpy_copies_it(n: int) -> None:
    expected, got = np.arange(4.0 * n).reshape(4, n), np.arange(4.0 * n).reshape(4, n)
    expected[1] = expected.reshape(-1)[n - 1 : 2 * n - 1]
    _capture.fill(1, got.reshape(-1)[n - 1 : 2 * n - 1], ((0, (), got),))
    assert got.tobytes() == expected.tobytes()


@needs_c
def test_a_buffer_subclass_keeps_its_own_setitem() -> None:
    expected, got = np.ma.masked_all((3,)), np.ma.masked_all((3,))
    expected[1] = 2.5
    _capture.fill(1, 2.5, ((0, (), got),))
    assert got.mask.tolist() == expected.mask.tolist() and got.tolist() == expected.tolist()


@needs_c
def test_the_unchecked_flag_is_looked_at_after_the_values_ran_their_code() -> None:
    flag = np.zeros(4, np.uint8)

    class Shrinking:
        def __array__(self, dtype=None, copy=None):
            flag.resize(0, refcheck=False)  # its memory is freed
            return np.array([9.0])  # outside [0, 3): the flag would be written

    plan = (((0, (), np.zeros((2, 1)), (np.zeros(1), np.full(1, 3.0))),), (), np.zeros(2), np.zeros(2, bool),
            np.zeros(2, bool), {}, object(), flag)
    with pytest.raises(ValueError, match="resized"):
        _capture.step(0, Shrinking(), None, 0.0, False, False, None, plan)


@needs_c
def test_an_info_dict_changed_while_it_is_read_raises_as_python_does() -> None:
    info: dict[str, Any] = {}

    class Growing:
        def __float__(self):
            info.update({f"k{i}": i for i in range(100)})
            return 1.0

    info.update(a=np.array([Growing(), 2.0], dtype=object), b=3)
    slots = {"a": (np.ndarray, (2,), np.zeros((2, 2)), np.zeros(2, bool))}
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        _capture.step(1, None, None, 0.0, False, False, info, ((), (), np.zeros(2), np.zeros(2, bool),
                                                                np.zeros(2, bool), slots, object(), np.zeros(1, np.uint8)))


@needs_c
def test_a_bool_is_not_a_row() -> None:
    buf = np.zeros(3)
    with pytest.raises(TypeError, match="bool"):
        _capture.fill(True, 1.0, ((0, (), buf),))
    assert not buf.any()  # numpy's buf[True] = 1.0 would have written every row
