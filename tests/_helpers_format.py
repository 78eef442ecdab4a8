"""Test doubles for the format tests: tiny deterministic envs and a recording loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pyarrow as pa
from gymnasium import spaces
from hypothesis import strategies as st

from trajarena.format import schema as fmt


class SpriteDuel(gym.Env):
    """A tiny deterministic two-player image env: two sprites move on a gradient background.

    Observation: ``Dict(frame=Box(uint8, (H, W, 3)), timer=Box, P1/P2=Dict(health, side))``;
    action: ``Dict(agent_0=MultiDiscrete([9, 8]), agent_1=...)`` (or one player's MultiDiscrete).
    """

    metadata = {"render_modes": []}

    def __init__(self, size: int = 32, n_players: int = 2, max_steps: int = 40, info_arrays: bool = True) -> None:
        self.size, self.n_players, self.max_steps, self.info_arrays = size, n_players, max_steps, info_arrays
        player = spaces.Dict(health=spaces.Box(0, 100, (), np.float32), side=spaces.Discrete(2))
        self.observation_space = spaces.Dict(
            frame=spaces.Box(0, 255, (size, size, 3), np.uint8),
            timer=spaces.Box(0, 99, (1,), np.int16),
            P1=player,
            P2=player,
        )
        one = spaces.MultiDiscrete([9, 8])
        self.action_space = (
            spaces.Dict(agent_0=one, agent_1=one) if n_players == 2 else one
        )
        yy, xx = np.mgrid[0:size, 0:size]
        self._bg = np.stack([xx * 4 % 256, yy * 4 % 256, (xx + yy) * 2 % 256], -1).astype(np.uint8)

    def _obs(self) -> dict[str, Any]:
        frame = self._bg.copy()
        for (x, y), color in zip(self._pos, ((255, 0, 0), (0, 0, 255)), strict=True):
            frame[y : y + 5, x : x + 4] = color
        return {
            "frame": frame,
            "timer": np.array([99 - self._t], np.int16),
            "P1": {"health": np.array(self._hp[0], np.float32), "side": int(self._pos[0][0] > self._pos[1][0])},
            "P2": {"health": np.array(self._hp[1], np.float32), "side": int(self._pos[1][0] > self._pos[0][0])},
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self._t = 0
        self._hp = [100.0, 100.0]
        s = self.size - 6
        self._pos = [list(self.np_random.integers(0, s, 2)), list(self.np_random.integers(0, s, 2))]
        return self._obs(), {"round": 0, "lives": np.array([3, 3], np.int8)} if self.info_arrays else {"round": 0}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        acts = [action["agent_0"], action["agent_1"]] if self.n_players == 2 else [action, self.action_space.sample()]
        moves = [(0, 0), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1)]
        s = self.size - 6
        for p, a in zip(self._pos, acts, strict=True):
            dx, dy = moves[int(a[0])]
            p[0], p[1] = int(np.clip(p[0] + dx, 0, s)), int(np.clip(p[1] + dy, 0, s))
        dist = abs(self._pos[0][0] - self._pos[1][0]) + abs(self._pos[0][1] - self._pos[1][1])
        dmg = [float(acts[i][1] > 0 and dist < 8) * 5 for i in range(2)]
        self._hp = [self._hp[0] - dmg[1], self._hp[1] - dmg[0]]
        self._t += 1
        terminated = min(self._hp) <= 0
        truncated = self._t >= self.max_steps
        info = {"round": 0, "round_done": terminated, "text": "not numeric"}
        if self.info_arrays:
            info["lives"] = np.array([3, 3], np.int8)
        return self._obs(), dmg[0] - dmg[1], terminated, truncated, info


def run_episodes(env: gym.Env, episodes: int, seed: int = 0, rng_seed: int = 1) -> list[dict[str, Any]]:
    """Play ``episodes`` with seeded random actions; return what the env produced, per episode."""
    rng = np.random.default_rng(rng_seed)
    env.action_space.seed(int(rng.integers(1 << 31)))
    out = []
    for e in range(episodes):
        obs, info = env.reset(seed=seed + e)
        ep = {"obs": [obs], "actions": [], "rewards": [], "terminated": [], "truncated": [], "seed": seed + e}
        done = False
        while not done:
            action = env.action_space.sample()
            obs, r, te, tr, info = env.step(action)
            for k, v in (("actions", action), ("obs", obs), ("rewards", r), ("terminated", te), ("truncated", tr)):
                ep[k].append(v)
            done = te or tr
        out.append(ep)
    return out


def assert_nested_equal(a: Any, b: Any) -> None:
    """Bit-identical comparison of nested values (dicts, tuples, arrays, scalars, strings)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), (list(a), b)
        for k in a:
            assert_nested_equal(a[k], b[k])
    elif isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_nested_equal(x, y)
    elif isinstance(a, str):
        assert a == b
    else:
        x, y = np.asarray(a), np.asarray(b)
        assert x.shape == y.shape, (x.shape, y.shape)
        if x.dtype == object or y.dtype == object:
            assert x.tolist() == y.tolist()
            return
        assert x.tobytes() == y.astype(x.dtype, copy=False).tobytes() or np.array_equal(x, y, equal_nan=True), (x, y)


def stack(space: spaces.Space, values: list[Any]) -> Any:
    """Stack a list of nested values along a new first axis, as the reader returns them."""
    if isinstance(space, spaces.Dict):
        return {k: stack(s, [v[k] for v in values]) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(stack(s, [v[i] for v in values]) for i, s in enumerate(space.spaces))
    if isinstance(space, spaces.Text):
        return np.array(values, dtype=object)
    dtype = np.int64 if isinstance(space, spaces.Discrete) else space.dtype
    return np.stack([np.asarray(v, dtype=dtype) for v in values])


# ---------------------------------------------------------------------------- a catalogue of spaces

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


def rewrite_metadata(src: Path, dst: Path, change) -> Path:
    """Copy a file with changed (and correctly checksummed) schema metadata: a hostile writer."""
    reader = pa.ipc.open_file(str(src))
    meta = change(json.loads(reader.schema.metadata[fmt.METADATA_KEY]))
    schema = reader.schema.with_metadata(fmt.encode_metadata(meta))
    with pa.OSFile(str(dst), "wb") as sink, pa.ipc.new_file(
        sink, schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
        for i in range(reader.num_record_batches):
            batch, custom = reader.get_batch_with_custom_metadata(i)
            w.write_batch(pa.record_batch(batch.columns, schema=schema), custom_metadata=custom)
    return dst
