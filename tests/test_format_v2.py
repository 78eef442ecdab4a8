"""Format version 2 reads right everywhere, and version-1 files still read as they did.

Plain readers (pyarrow, polars, DuckDB, Hugging Face ``datasets``) get true values or cannot
mistake encoded data for values; ``tests/data/v1`` holds files written by the version-1 writer with
the values its reader decoded.
"""

from __future__ import annotations

import glob
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from gymnasium import spaces
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trajarena.format import schema as fmt
from trajarena.format.integrity import verify
from trajarena.format.reader import TrajectoryReader
from trajarena.format.writer import TrajectoryWriter
from trajarena.learn.rollout import record
from trajarena.replay.dataset import TrajectoryDataset

ROOT = Path(__file__).resolve().parents[1]
V1 = ROOT / "tests" / "data" / "v1"


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory) -> Path:
    """A duel folder recorded by 2 worker processes (frames XOR-coded)."""
    folder = tmp_path_factory.mktemp("two_workers")
    record("duel", ["expert", "random"], episodes=4, workers=2, out=folder, progress=False, seed=3,
           settings={"frame_shape": (24, 32, 1), "difficulty": 8, "n_players": 2})
    return folder


@pytest.fixture(scope="module")
def discards(tmp_path_factory) -> Path:
    """A file whose second episode was discarded after some of its rows reached the ``.partial`` file."""
    folder = tmp_path_factory.mktemp("discards")
    box = spaces.Box(0, 255, (4, 4, 1), np.uint8)
    with TrajectoryWriter(folder, spaces.Dict(frame=box), spaces.Discrete(3), {"env_id": "demo"},
                          chunk_steps=3, segment_seconds=1e9) as w:
        for ep in range(3):
            w.reset({"frame": np.full((4, 4, 1), ep, np.uint8)}, seed=ep)
            for t in range(1, 8):
                w.step(t % 3, {"frame": np.full((4, 4, 1), 10 * ep + t, np.uint8)}, float(t), t == 7, False)
                if ep == 1 and t == 5:  # rows of it already reached the .partial file (chunks of 3)
                    w.discard()
                    break
    return folder


def _returns(folder: Path) -> dict[str, tuple[float, int]]:
    ds = TrajectoryDataset(folder)
    return {e.uid: (float(e.meta["return"]), e.length) for e in ds.episodes}


def test_polars_and_duckdb_over_native_files_give_the_datasets_returns(two_workers):
    import duckdb
    import polars as pl
    import pyarrow.dataset as pads

    expected = _returns(two_workers)
    assert len(expected) == 4 and len({uid.split("/")[0] for uid in expected}) == 2  # 2 writers
    files = sorted(glob.glob(f"{two_workers}/**/*.arrow", recursive=True))
    table = (pl.scan_ipc(files).group_by("episode")
             .agg(pl.col("reward").sum().alias("return"), pl.col("reward").count().alias("steps")).collect())
    assert {r[0]: (r[1], r[2]) for r in table.iter_rows()} == expected
    dataset = pads.dataset(files, format="ipc")
    rows = duckdb.sql("SELECT episode, sum(reward), count(reward) FROM dataset GROUP BY episode").fetchall()
    assert {r[0]: (r[1], r[2]) for r in rows} == expected


def test_plain_readers_see_no_reset_reward_no_discarded_rows_and_no_raw_xor_bytes(discards):
    (path,) = discards.glob("*.arrow")
    table = pa.ipc.open_file(path).read_all()
    assert table.column("episode").to_pylist().count(table.column("episode")[0].as_py()) == 8
    assert len(set(table.column("episode").to_pylist())) == 2  # the discarded episode's rows are gone
    reset = np.asarray(table.column("step")) == 0
    assert table.column("reward").is_null().to_pylist() == reset.tolist()
    assert table.column("action").is_null().to_pylist() == reset.tolist()
    assert "obs/frame" not in table.schema.names
    field = table.schema.field("obs/frame@xor_prev")
    assert field.type == pa.binary(16) and field.metadata[b"trajarena.transform"] == b"xor_prev"
    assert verify(path).clean


def test_the_docs_examples_for_plain_readers_run(two_workers):
    text = (ROOT / "docs" / "format.md").read_text()
    snippet = re.search(r"```python\n(# plain-readers.*?)```", text, re.S).group(1)
    out = subprocess.run([sys.executable, "-c", f"folder = {str(two_workers)!r}\n" + snippet],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True 4 episodes"


def test_hugging_face_datasets_reads_the_files_with_the_arrow_builder(two_workers, tmp_path):
    datasets = pytest.importorskip("datasets")
    files = sorted(glob.glob(f"{two_workers}/*.arrow"))
    hf = datasets.load_dataset("arrow", data_files=files, split="train", cache_dir=str(tmp_path))
    rewards = [r for r in hf["reward"] if r is not None]
    ds = TrajectoryDataset(files)
    assert sum(rewards) == pytest.approx(float(sum(e.meta["return"] for e in ds.episodes)))
    assert len(rewards) == len(ds)


def test_frames_read_with_plain_pyarrow_equal_the_datasets(two_workers):
    path = sorted(two_workers.glob("*.arrow"))[0]
    reader = pa.ipc.open_file(path)
    frames = []
    for i in range(reader.num_record_batches):
        packed = reader.get_batch(i).column("obs/frame@xor_prev")
        if len(packed):
            rows = np.frombuffer(packed.buffers()[1], np.uint8, count=len(packed) * 24 * 32,
                                 offset=packed.offset * 24 * 32).reshape(-1, 24, 32, 1)
            frames.append(np.bitwise_xor.accumulate(rows, axis=0))
    ours = TrajectoryDataset(path).column("obs/frame")
    assert np.array_equal(np.concatenate(frames), ours)


# ----------------------------------------------------------------------------- version 1


def _flatten(out: dict, prefix: str, value) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(out, f"{prefix}/{k}", v)
    else:
        out[prefix] = np.asarray(value)


@pytest.mark.parametrize("name", ["sprite_duel_2p", "cartpole"])
def test_version_1_files_read_as_the_version_1_reader_read_them(name):
    path = V1 / f"{name}.arrow"
    expected = np.load(V1 / f"{name}.expected.npz")
    reader = TrajectoryReader(path)
    assert reader.metadata["format_version"] == 1
    got: dict[str, np.ndarray] = {}
    for i, ep in enumerate(reader.iter_episodes()):
        _flatten(got, f"{i}/obs", ep.observations)
        _flatten(got, f"{i}/action", ep.actions)
        for key in ("rewards", "terminations", "truncations"):
            got[f"{i}/{key}"] = getattr(ep, key)
        _flatten(got, f"{i}/info", ep.infos)
    assert sorted(got) == sorted(expected.files)
    for key in expected.files:
        assert np.array_equal(got[key], expected[key]), key
    assert verify(path).clean
    assert [e.uid for e in reader.episodes][0] == f"{path.name.split('.')[0]}/0"
    ds = TrajectoryDataset(path)
    assert ds.n_episodes == reader.num_episodes and len(ds) == reader.num_steps


def test_version_1_files_replay_through_imitation_learning():
    import trajarena as arena

    il = arena.ImitationLearning(traj_files_list=[V1 / "cartpole.arrow"])
    expected = np.load(V1 / "cartpole.expected.npz")
    obs, info = il.reset()
    assert np.array_equal(obs, expected["0/obs"][0])
    obs, reward, *_ , info = il.step(il.action_space.sample())
    assert reward == expected["0/rewards"][0] and info["action"] == expected["0/action"][0]


# ---- the writer's vectorised helpers equal their one-by-one definitions ------------------------------------

_FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_FLOATS, st.lists(_FLOATS, max_size=40)), max_size=30), st.booleans())
@example([(-0.0, []), (-0.0, [-0.0]), (0.0, [-0.0]), (float("nan"), [1.0])], True)  # signed zeros, NaN
def test_running_sums_equal_running_sum_bit_for_bit(segments, long_one):
    if long_one:  # a segment much longer than the others: the one-by-one path
        segments = [*segments, (0.5, [0.1] * 5000)]
    rewards = np.array([r for _, seg in segments for r in seg] + [7.0], np.float64)
    lengths = [len(seg) for _, seg in segments]
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist() if segments else []
    got = fmt.running_sums([s for s, _ in segments], rewards, first, lengths)
    want = [fmt.running_sum(s, np.array(seg, np.float64)) for s, seg in segments]
    assert [np.float64(g).tobytes() for g in got] == [np.float64(w).tobytes() for w in want]


@given(st.lists(st.tuples(st.integers(0, 10**12), st.integers(0, 50)), max_size=20), st.text(max_size=12))
def test_episode_ids_spell_recording_slash_counter_per_row(runs, recording):
    ids = fmt.episode_ids(recording, [e for e, _ in runs], [c for _, c in runs])
    assert ids.type == pa.large_string()
    assert ids.to_pylist() == [f"{recording}/{e}" for e, c in runs for _ in range(c)]
    numbers = np.array([e for e, c in runs for _ in range(c)], np.int64)
    eps, counts = fmt.episode_runs(numbers)
    assert fmt.episode_ids(recording, eps, counts).to_pylist() == ids.to_pylist()
