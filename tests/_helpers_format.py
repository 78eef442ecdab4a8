"""Test doubles for the format tests: tiny deterministic envs and a recording loop."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pyarrow as pa
from gymnasium import spaces
from hypothesis import strategies as st

from trajarena.format import schema as fmt
from trajarena.format.metadata import encode_metadata


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
    schema = reader.schema.with_metadata(encode_metadata(meta))
    with pa.OSFile(str(dst), "wb") as sink, pa.ipc.new_file(
        sink, schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
        for i in range(reader.num_record_batches):
            batch, custom = reader.get_batch_with_custom_metadata(i)
            w.write_batch(pa.record_batch(batch.columns, schema=schema), custom_metadata=custom)
    return dst


# ---------------------------------------------------------------------------- hostile files and bounded children

#: Put this string where a hostile number should go; :func:`rewrite_file` replaces it (quotes
#: included) with a raw JSON literal such as ``1e999``, which Python's ``json`` parses as ``inf``.
HOSTILE = "\x00hostile\x00"


def _hostile_text(doc: Any, literal: bytes | dict[str, bytes]) -> bytes:
    literals = literal if isinstance(literal, dict) else {HOSTILE: literal}
    text = json.dumps(doc, separators=(",", ":")).encode()
    for sentinel, raw in literals.items():
        text = text.replace(json.dumps(sentinel).encode(), raw)
    return text


def rewrite_file(src: Path, dst: Path, change=None, *, change_chunk=None, keep_chunks: bool = True,
                 match_schema: bool = True, literal: bytes | dict[str, bytes] = b"1e999") -> Path:
    """Copy a file as a hostile writer would: changed metadata with valid CRCs, the schema made to match.

    ``change(meta)`` returns the new file metadata (it may mutate ``meta``); ``change_chunk(i, doc)``
    the new JSON document of chunk ``i``. A value equal to :data:`HOSTILE` is written as the raw
    JSON ``literal`` (or each sentinel string of a ``{sentinel: literal}`` dict as its literal).
    With ``match_schema``, every column whose description in the new ``columns``/``info_columns``
    reads gets the Arrow type the library itself derives from it (so the file passes the "columns
    match the metadata" check and only what the metadata declares is hostile); the others keep
    theirs. ``keep_chunks=False`` writes no record batch at all: a small file that declares anything.
    """
    import zlib

    reader = pa.ipc.open_file(str(src))
    meta = json.loads(reader.schema.metadata[fmt.METADATA_KEY])
    if change is not None:
        meta = change(meta)
    described = {}
    columns = [c for key in ("columns", "info_columns") if isinstance(meta, dict) and isinstance(meta.get(key), list)
               for c in meta[key]]
    for c in columns if match_schema else []:
        try:
            described[str(c["name"])] = fmt.Column.from_json(c).arrow_type()
        except Exception:  # noqa: BLE001 - a hostile description keeps the column's type
            pass
    text = _hostile_text(meta, literal)
    schema = pa.schema([f.with_type(described.get(f.name, f.type)) for f in reader.schema],
                       metadata={fmt.METADATA_KEY: text, fmt.METADATA_KEY + b".crc32": str(zlib.crc32(text)).encode()})
    with pa.OSFile(str(dst), "wb") as sink, pa.ipc.new_file(
            sink, schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
        for i in range(reader.num_record_batches if keep_chunks else 0):
            batch, custom = reader.get_batch_with_custom_metadata(i)
            if change_chunk is not None:
                key = fmt.CHUNK_KEY.encode()
                raw = _hostile_text(change_chunk(i, json.loads(custom[key])), literal)
                custom = {key: raw, key + b".crc32": str(zlib.crc32(raw)).encode()}
            w.write_batch(pa.record_batch(batch.columns, schema=schema), custom_metadata=custom)
    return dst


@dataclass
class ChildRun:
    """How a child process ended: ``returncode`` (``None`` when killed at the timeout), output, peak RSS (MB)."""

    returncode: int | None
    stdout: str
    stderr: str
    peak_mb: float
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child that imports trajarena from this checkout (and tests/ helpers)."""
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(root / "src"), str(root / "tests"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy",
            "COLUMNS": "400", "PYTHONHASHSEED": "0", **extra}


#: How :func:`run_child` starts a child: it records the child's peak RSS at exit from ``/proc/self/status``
#: (``VmHWM``: the peak of the child's own memory since its ``exec``). The kernel's ``ru_maxrss`` of a child
#: (``wait4``, ``RUSAGE_CHILDREN``) is no good here: it keeps the RSS the child had between ``fork`` and
#: ``exec``, i.e. the size of the pytest worker that started it (hundreds of MB once torch is imported).
_BOOT = """
import atexit, os, sys
def _peak():
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    with open(os.environ["TRAJARENA_TEST_PEAK_FILE"], "w") as out:
        out.write(str(kb))
atexit.register(_peak)
if sys.argv[1] == "-c":
    code, sys.argv = sys.argv[2], ["-c", *sys.argv[3:]]
    exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})
else:
    import runpy
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_child(args: list[str], timeout: float = 60.0, mem_cap_mb: int | None = None,
              env: dict[str, str] | None = None) -> ChildRun:
    """Run ``python *args`` (``["-c", code, ...]`` or ``[script, ...]``) and measure it, killed at ``timeout``.

    Its peak RSS is what the child's kernel counters say at its exit (``VmHWM``, see :data:`_BOOT`;
    ``nan`` when it did not exit normally); memory is never measured in the test's own process.
    ``mem_cap_mb`` caps its data memory (``RLIMIT_DATA``: heap and private mappings, not the address
    space that thread pools reserve), so a runaway allocation fails in the child (``MemoryError``)
    instead of exhausting the machine.
    """
    import math
    import resource
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    def limit() -> None:
        if mem_cap_mb:
            resource.setrlimit(resource.RLIMIT_DATA, (mem_cap_mb << 20, mem_cap_mb << 20))

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.TemporaryDirectory() as scratch:
        peak_file = os.path.join(scratch, "peak")
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", _BOOT, *args], stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, preexec_fn=limit,
                                env={**(env or child_env()), "TRAJARENA_TEST_PEAK_FILE": peak_file})
        killed = False
        while True:
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                os.kill(proc.pid, signal.SIGKILL)
                pid, status = os.waitpid(proc.pid, 0)
                killed = True
                break
            time.sleep(0.005)
        seconds = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen
        try:
            with open(peak_file) as f:
                peak_mb = int(f.read()) / 1024
        except (OSError, ValueError):
            peak_mb = math.nan
        out.seek(0)
        err.seek(0)
        return ChildRun(None if killed else proc.returncode, out.read(), err.read(), peak_mb, seconds)


#: A child (``python -c PROBE OP PATH``) that opens a file the way a user would and prints, as the last
#: line, JSON: what was raised (``raised``, ``typed``: a TrajArenaError, ``corrupt``: a CorruptFileError,
#: ``message``), the op's ``seconds`` and ``imported_mb`` (the peak RSS before it, imports done) and, for ``verify``, ``ok``/``damaged``.
PROBE = """
import json, sys, time
op, path = sys.argv[1], sys.argv[2]
import trajarena
from trajarena.errors import CorruptFileError, TrajArenaError
from trajarena.format import integrity, reader
if op == "imitation":
    from trajarena.replay import imitation
import re
hwm = lambda: int(re.search(r"VmHWM:\\s*(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
result = {"raised": None}
imported_mb = hwm()
start = time.process_time()  # CPU seconds: the work the file caused, which other processes' load does not stretch
try:
    if op == "open":
        r = trajarena.open_trajectories(path)
        r.observation_space, r.action_space
        for i in range(r.num_episodes):
            r.read_episode(i)
    elif op == "verify":
        report = trajarena.verify(path)
        result["ok"] = [p.name for p in report.ok]
        result["damaged"] = {p.name: why for p, why in report.damaged.items()}
    elif op == "imitation":
        trajarena.ImitationLearning(traj_files_list=[path])
    else:
        raise SystemExit("unknown op " + op)
except BaseException as exc:
    result = {"raised": type(exc).__name__, "typed": isinstance(exc, TrajArenaError),
              "corrupt": isinstance(exc, CorruptFileError), "message": str(exc)[:500]}
result["seconds"] = time.process_time() - start
result["imported_mb"] = imported_mb  # peak RSS once the modules are imported, before the op
print(json.dumps(result))
"""


def probe(op: str, path: Path, timeout: float = 60.0, mem_cap_mb: int = 1024) -> tuple[dict[str, Any], ChildRun]:
    """Run :data:`PROBE` on ``path`` in a bounded child; return its JSON result and the run."""
    run = run_child(["-c", PROBE, op, str(path)], timeout=timeout, mem_cap_mb=mem_cap_mb)
    assert not run.timed_out, f"{op} on {path.name} hung (killed after {timeout} s)"
    lines = run.stdout.strip().splitlines()
    assert run.returncode == 0 and lines, f"the {op} child died ({run.returncode}): {run.stderr[-2000:]}"
    return json.loads(lines[-1]), run


def cli_child(*args: str, timeout: float = 60.0, mem_cap_mb: int = 1024) -> ChildRun:
    """Run the ``trajarena`` command (its real entry point, ``trajarena.cli:main``) in a bounded child."""
    return run_child(["-c", "import sys; from trajarena.cli import main; sys.argv[0] = 'trajarena'; main()", *args],
                     timeout=timeout, mem_cap_mb=mem_cap_mb)
