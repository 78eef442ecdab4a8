"""Writer -> file -> reader round trips, streaming rules, errors, pickling and plain-pyarrow access."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pytest
from gymnasium import spaces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _helpers_format import CATALOGUE, SpriteDuel, any_space, assert_nested_equal, run_episodes, stack
from trajarena.format import schema as fmt
from trajarena.errors import DataNotFoundError, FormatError, MismatchError, RecordingError, SettingsError, SpaceError
from trajarena.format.integrity import verify
from trajarena.format.reader import TrajectoryReader, open_trajectories
from trajarena.format.encoder import ChunkEncoder
from trajarena.format.writer import TrajectoryWriter

ROOT = Path(__file__).resolve().parents[1]


def record(folder: Path, obs_space: spaces.Space, act_space: spaces.Space, lengths: list[int], seed: int = 0,
           **options) -> list[dict]:
    """Write episodes of sampled values; return what was written."""
    obs_space.seed(seed)
    act_space.seed(seed + 1)
    rng = np.random.default_rng(seed)
    written = []
    with TrajectoryWriter(folder, obs_space, act_space, {"env_id": "test"}, **options) as w:
        for e, n in enumerate(lengths):
            ep = {"obs": [obs_space.sample()], "actions": [], "rewards": [], "seed": e}
            w.reset(ep["obs"][0], {}, seed=e)
            for t in range(n):
                a, o, r = act_space.sample(), obs_space.sample(), float(rng.normal())
                ep["actions"].append(a)
                ep["obs"].append(o)
                ep["rewards"].append(r)
                w.step(a, o, r, t == n - 1, False, {"t": t, "x": np.float32(t / 2)})
            written.append(ep)
    return written


def check_same(reader: TrajectoryReader, written: list[dict]) -> None:
    written = [ep for ep in written if ep["actions"]]  # an episode without a step is not stored
    assert reader.num_episodes == len(written)
    for i, ep in enumerate(written):
        got = reader.read_episode(i)
        assert got.info.length == len(ep["actions"]) and got.info.seed == ep["seed"]
        assert_nested_equal(stack(reader.observation_space, ep["obs"]), got.observations)
        if ep["actions"]:
            assert_nested_equal(stack(reader.action_space, ep["actions"]), got.actions)
        assert got.rewards.tolist() == ep["rewards"]
        assert got.info.total_return == float(np.cumsum([0.0, *ep["rewards"]])[-1])


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(obs=any_space, act=any_space, lengths=st.lists(st.integers(0, 7), min_size=1, max_size=3),
       chunk=st.integers(1, 5))
def test_hypothesis_values_round_trip_bit_identical(tmp_path_factory, obs, act, lengths, chunk) -> None:
    folder = tmp_path_factory.mktemp("rt")
    written = record(folder, obs, act, lengths, chunk_steps=chunk)
    if not any(lengths):  # only episodes without a step: nothing is stored, not even an empty file
        assert not list(folder.iterdir())
        return
    reader = TrajectoryReader(folder)
    check_same(reader, written)
    assert reader.observation_space == obs and reader.action_space == act


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_catalogue_round_trips_with_steps_across_chunks(tmp_path: Path, name: str) -> None:
    space = CATALOGUE[name]
    written = record(tmp_path, space, CATALOGUE["two_player"], [5, 0, 9], chunk_steps=3)
    reader = TrajectoryReader(tmp_path)
    check_same(reader, written)
    # a transition whose two rows sit in different chunks (rows 2 and 3)
    step = reader.step(0, 2)
    assert_nested_equal(step.next_obs, reader.step(0, 3).obs)
    assert step.reward == written[0]["rewards"][2] and step.info["t"] == 2


def test_global_indexing_and_iteration(tmp_path: Path) -> None:
    written = record(tmp_path, spaces.Box(-1, 1, (2,)), spaces.Discrete(3), [3, 4, 2], chunk_steps=4)
    reader = open_trajectories(tmp_path)
    assert len(reader) == 9 and reader.locate(3) == (1, 0) and reader.locate(-1) == (2, 1)
    assert [s.reward for s in reader.iter_steps()] == [r for ep in written for r in ep["rewards"]]
    assert reader[5].t == 2 and reader[5].episode == 1
    assert [e.info.length for e in reader.iter_episodes()] == [3, 4, 2]
    assert reader.read_column(1, "reward").tolist() == [0.0, *written[1]["rewards"]]
    with pytest.raises(IndexError):
        reader.step(9)
    with pytest.raises(KeyError, match="columns"):
        reader.read_column(0, "obs/nope")


def test_reader_pickles_as_paths_and_reopens(tmp_path: Path) -> None:
    written = record(tmp_path, spaces.Box(0, 1, (3,)), spaces.Discrete(2), [4])
    reader = TrajectoryReader(tmp_path, cache_bytes=1 << 20)
    reader.read_episode(0)
    blob = pickle.dumps(reader)
    assert len(blob) < 1000  # paths and options, no arrays or memory maps
    check_same(pickle.loads(blob), written)


def test_info_fields_kept_dropped_and_noted(tmp_path: Path) -> None:
    env = SpriteDuel(size=8, max_steps=6)
    with TrajectoryWriter(tmp_path, env.observation_space, env.action_space) as w:
        obs, info = env.reset(seed=0)
        w.reset(obs, info, seed=0)
        for _ in range(6):
            obs, r, te, tr, info = env.step(env.action_space.sample())
            w.step(None or env.action_space.sample(), obs, r, te, tr, {**info, "later": 1.5 if _ > 2 else 1})
    reader = TrajectoryReader(tmp_path)
    ep = reader.read_episode(0)
    assert sorted(ep.infos) == ["later", "lives", "round", "round_done"]
    assert ep.infos["lives"].shape == (7, 2) and ep.infos["lives"].dtype == np.int8
    assert ep.infos["round_done"].dtype == bool and ep.infos["round"][0] == 0
    assert ep.infos["later"].tolist() == [0, 1, 1, 1, 0, 0, 0]  # reset row had none; float values dropped
    notes = reader.episodes[0].notes
    assert notes["info/text"].startswith("dropped: not a numeric") and "changed" in notes["info/later"]
    assert reader.episodes[0].final_info["text"] == "not numeric"  # kept as JSON in the episode record


def test_episode_end_reasons_and_context_manager(tmp_path: Path) -> None:
    box = spaces.Box(0, 1, (1,))
    with TrajectoryWriter(tmp_path, box, spaces.Discrete(2)) as w:
        w.reset(np.zeros(1, np.float32))
        w.step(0, np.ones(1, np.float32), 1.0, False, False)
        w.reset(np.zeros(1, np.float32), seed=5)  # ends the first one as truncated
        w.step(1, np.ones(1, np.float32), 2.0, False, True, {"final": 3})
        w.reset(np.zeros(1, np.float32))
        w.step(1, np.ones(1, np.float32), 4.0, False, False)
    eps = TrajectoryReader(tmp_path).episodes
    assert [(e.end_reason, e.terminated, e.truncated, e.length) for e in eps] == [
        ("reset", False, True, 1), ("env", False, True, 1), ("close", False, True, 1)]
    assert eps[1].seed == 5 and eps[1].final_info == {"final": 3} and eps[2].total_return == 4.0


def test_usage_errors_are_typed(tmp_path: Path) -> None:
    box = spaces.Box(0, 1, (2,))
    with pytest.raises(SettingsError, match="reserved"):
        TrajectoryWriter(tmp_path, box, box, {"columns": 1})
    with pytest.raises(SettingsError, match="JSON"):
        TrajectoryWriter(tmp_path, box, box, {"x": object()})
    w = TrajectoryWriter(tmp_path, box, spaces.Discrete(2))
    with pytest.raises(RecordingError, match="reset"):
        w.step(0, np.zeros(2), 0.0, False, False)
    w.reset(np.zeros(2, np.float32))
    with pytest.raises(SpaceError):
        w.step(0, np.zeros(5), 0.0, False, False)
    w.close()
    with pytest.raises(RecordingError, match="closed"):
        w.reset(np.zeros(2, np.float32))


def test_background_failure_surfaces_as_recording_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trajarena.format.segment import SegmentFile

    box = spaces.Box(0, 1, (2,))
    w = TrajectoryWriter(tmp_path, box, spaces.Discrete(2), chunk_steps=2, writer="thread")  # patched here

    def broken(self, batch, meta):
        raise OSError("disk full")

    monkeypatch.setattr(SegmentFile, "write", broken)
    w.reset(np.zeros(2, np.float32))
    with pytest.raises(RecordingError, match="disk full"):
        for _ in range(50):
            w.step(0, np.zeros(2, np.float32), 0.0, False, False)
            w._thread.join(0.01)
    with pytest.raises(RecordingError, match="disk full"):
        w.close()


def test_partial_files_are_skipped_with_warning_or_read_on_request(tmp_path: Path) -> None:
    box = spaces.Box(0, 1, (2,))
    w = TrajectoryWriter(tmp_path, box, spaces.Discrete(2), chunk_steps=2, segment_seconds=1e9)
    w.reset(np.zeros(2, np.float32), seed=1)
    for t in range(3):
        w.step(0, np.full(2, t, np.float32), 1.0, t == 2, False)
    w.reset(np.zeros(2, np.float32))
    for _ in range(4):
        w.step(1, np.zeros(2, np.float32), 1.0, False, False)
    w.flush()
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("*.partial")) or TrajectoryReader(tmp_path, include_partial=True).num_steps < 7:
        assert time.monotonic() < deadline, "the flushed rows never reached the file"
        time.sleep(0.02)
    with pytest.warns(UserWarning, match="include_partial=True"), pytest.raises(Exception, match="trajectory file in"):
        TrajectoryReader(tmp_path)
    live = TrajectoryReader(tmp_path, include_partial=True)
    assert [(e.length, e.end_reason, e.truncated) for e in live.episodes] == [(3, "env", False), (4, "unfinished", True)]
    w.close()
    assert [e.end_reason for e in TrajectoryReader(tmp_path).episodes] == ["env", "close"]


def test_files_rotate_at_episode_ends(tmp_path: Path) -> None:
    record(tmp_path, spaces.Box(0, 1, (2,)), spaces.Discrete(2), [3, 3, 3, 3], segment_steps=5)
    files = sorted(tmp_path.glob("*.arrow"))
    assert len(files) == 2 and not list(tmp_path.glob("*.partial"))
    names = [f.name.split("_") for f in files]
    assert all(len(n) == 4 and len(n[0]) == 20 for n in names)  # time_ns, host, pid, random
    assert verify(tmp_path).clean and verify(tmp_path).episodes == 4


def test_mismatched_files_name_both(tmp_path: Path) -> None:
    record(tmp_path / "a", spaces.Box(0, 1, (2,)), spaces.Discrete(2), [2])
    record(tmp_path / "b", spaces.Box(0, 1, (3,)), spaces.Discrete(2), [2])
    a, b = next((tmp_path / "a").glob("*.arrow")), next((tmp_path / "b").glob("*.arrow"))
    with pytest.raises(MismatchError) as exc:
        TrajectoryReader([a, b])
    assert a.name in str(exc.value) and b.name in str(exc.value)


def test_cartpole_long_episode_streams_in_constant_memory(tmp_path: Path) -> None:
    env = gym.make("CartPole-v1", max_episode_steps=10**9)
    with TrajectoryWriter(tmp_path, env.observation_space, env.action_space, chunk_steps=1000) as w:
        obs, _ = env.reset(seed=0)
        w.reset(obs, seed=0)
        sizes = set()
        for t in range(30000):
            w.step(t % 2, obs, 1.0, False, False)
            sizes.add(sum(c.nbytes for c in w._chunk.cols))
        assert sizes == {1000 * 4 * 4 + 1000 * 8}  # one preallocated chunk, whatever the length
    ep = TrajectoryReader(tmp_path).episodes[0]
    assert ep.length == 30000 and ep.total_return == 30000.0


def test_files_are_readable_by_plain_pyarrow(tmp_path: Path) -> None:
    run = SpriteDuel(size=8, max_steps=5)
    from trajarena.recording.recorder import TrajectoryRecorder

    env = TrajectoryRecorder(run, tmp_path, username="alex")
    eps = run_episodes(env, 2)
    env.close()
    table = pa.ipc.open_file(env.files[0]).read_all()
    meta = json.loads(table.schema.metadata[b"trajarena"])
    assert meta["username"] == "alex" and meta["observation_space"]["type"] == "Dict"
    assert "obs/frame" not in table.schema.names  # XOR-coded bytes never pass for pixel values
    packed = table.column("obs/frame@xor_prev").combine_chunks()
    assert packed.type == pa.binary(8 * 8 * 3)
    frames = np.frombuffer(packed.buffers()[1], np.uint8).reshape(-1, 8, 8, 3)
    frames = fmt.xor_decode(frames[:6])  # one chunk here: a cumulative XOR gives the frames back
    assert np.array_equal(frames, np.stack([o["frame"] for o in eps[0]["obs"]]))


def test_docs_pyarrow_snippet_runs(tmp_path: Path) -> None:
    """The plain-pyarrow example in docs/format.md runs and prints what it promises."""
    text = (ROOT / "docs" / "format.md").read_text()
    snippet = re.search(r"```python\n(# read-without-trajarena.*?)```", text, re.S).group(1)
    with TrajectoryWriter(tmp_path, spaces.Dict(frame=spaces.Box(0, 255, (4, 4, 3), np.uint8)),
                          spaces.Discrete(3), {"env_id": "demo"}, chunk_steps=3) as w:
        rng = np.random.default_rng(0)
        frames = rng.integers(0, 255, (6, 4, 4, 3), dtype=np.uint8)
        w.reset({"frame": frames[0]}, seed=0)
        for t in range(1, 6):
            w.step(t % 3, {"frame": frames[t]}, 1.0, t == 5, False)
    code = f"path = {str(w.files[0])!r}\n" + snippet + "\nimport numpy as np\nassert np.array_equal(frames, expected)\n"
    np.save(tmp_path / "expected.npy", frames)
    code = code.replace("assert np.array_equal(frames, expected)",
                        f"expected = np.load({str(tmp_path / 'expected.npy')!r}); assert np.array_equal(frames, expected)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "episodes: 1" in out.stdout


def test_processes_record_into_one_folder_without_clashes(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, gymnasium as gym
        sys.path[:0] = [{str(ROOT / 'src')!r}]
        from trajarena.recording.recorder import TrajectoryRecorder
        env = TrajectoryRecorder(gym.make("CartPole-v1"), sys.argv[1], username=sys.argv[2], segment_steps=50)
        for e in range(20):
            env.reset(seed=e)
            done = False
            while not done:
                _, _, te, tr, _ = env.step(env.action_space.sample())
                done = te or tr
        env.close()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), f"p{i}"]) for i in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    reader = TrajectoryReader(tmp_path)
    assert reader.num_episodes == 80 and verify(tmp_path).clean
    users: dict[str, list] = {}
    for i, e in enumerate(reader.episodes):
        users.setdefault(reader.file_metadata(i)["username"], []).append(e.seed)
    assert {u: sorted(s) for u, s in users.items()} == {f"p{i}": list(range(20)) for i in range(4)}


def test_array_info_missing_on_some_rows_round_trips(tmp_path: Path) -> None:
    box = spaces.Box(0, 1, (1,))
    with TrajectoryWriter(tmp_path, box, spaces.Discrete(2), chunk_steps=4) as w:
        w.reset(np.zeros(1, np.float32), {"hits": np.array([1, 2, 3], np.int16)})
        for t in range(6):
            info = {"hits": np.array([t, t, t], np.int16)} if t % 2 else {}
            w.step(0, np.zeros(1, np.float32), 0.0, t == 5, False, info)
    hits = TrajectoryReader(tmp_path).read_episode(0).infos["hits"]
    assert hits.tolist() == [[1, 2, 3], [0] * 3, [1] * 3, [0] * 3, [3] * 3, [0] * 3, [5] * 3]
    assert verify(tmp_path).clean


def test_unclosed_writer_is_finished_at_interpreter_exit(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, gymnasium as gym
        sys.path[:0] = [{str(ROOT / 'src')!r}]
        from trajarena.recording.recorder import TrajectoryRecorder
        env = TrajectoryRecorder(gym.make("CartPole-v1"), {str(tmp_path)!r})
        env.reset(seed=0)
        for _ in range(7):
            env.step(0)
    """)  # no close(): the atexit hook saves the open episode
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    (ep,) = TrajectoryReader(tmp_path).episodes
    assert (ep.length, ep.end_reason, ep.truncated) == (7, "close", True)


def test_stalled_game_loop_is_flushed_by_the_thread(tmp_path: Path) -> None:
    box = spaces.Box(0, 1, (2,))
    w = TrajectoryWriter(tmp_path, box, spaces.Discrete(2), chunk_steps=100, flush_seconds=0.05, segment_seconds=1e9)
    w.reset(np.zeros(2, np.float32), seed=3)
    for t in range(5):
        w.step(t % 2, np.full(2, t, np.float32), 1.0, t == 4, False)
    w.reset(np.zeros(2, np.float32))
    w.step(1, np.ones(2, np.float32), 2.0, False, False)
    deadline = time.monotonic() + 60
    while True:  # the game loop is "paused": no call into the writer
        time.sleep(0.05)
        try:
            live = TrajectoryReader(tmp_path, include_partial=True)
        except (FormatError, DataNotFoundError):
            live = None
        if live is not None and live.num_steps == 6 or time.monotonic() > deadline:
            break
    assert [(e.length, e.end_reason) for e in live.episodes] == [(5, "env"), (1, "unfinished")]
    for t in range(3):  # the game goes on: the rest follows the flushed rows, nothing twice
        w.step(0, np.full(2, 9, np.float32), 1.0, t == 2, False)
    w.close()
    reader = TrajectoryReader(tmp_path)
    assert [(e.length, e.total_return, e.seed) for e in reader.episodes] == [(5, 5.0, 3), (4, 5.0, None)]
    assert reader.read_column(1, "step").tolist() == [0, 1, 2, 3, 4]
    assert reader.read_episode(1).observations[:, 0].tolist() == [0, 1, 9, 9, 9]
    assert verify(tmp_path).clean


def test_a_bad_reset_observation_leaves_the_writer_consistent(tmp_path: Path) -> None:
    box = spaces.Box(0, 1, (2,))
    with TrajectoryWriter(tmp_path, box, spaces.Discrete(2)) as w:
        with pytest.raises(SpaceError):
            w.reset(np.zeros(3, np.float32))
        w.reset(np.zeros(2, np.float32), seed=4)
        w.step(1, np.ones(2, np.float32), 1.0, True, False)
    (ep,) = TrajectoryReader(tmp_path).episodes
    assert (ep.episode, ep.seed, ep.length) == (0, 4, 1)


@pytest.mark.parametrize("options", [{"compression": None}, {"compression": "lz4"}, {"frame_transform": None},
                                     {"frame_transform": "xor_prev", "level": 1}])
def test_codec_options_round_trip(tmp_path: Path, options: dict) -> None:
    space = CATALOGUE["nested"]
    written = record(tmp_path, space, CATALOGUE["two_player"], [6, 3], chunk_steps=4, **options)
    reader = TrajectoryReader(tmp_path)
    check_same(reader, written)
    assert reader.metadata["compression"]["codec"] == options.get("compression", "zstd")
    transforms = {c["name"]: c["transform"] for c in reader.metadata["columns"]}
    expected = options.get("frame_transform", "auto")
    assert transforms["obs/frame"] == (None if expected is None else "xor_prev")
    assert verify(tmp_path).clean


def test_non_finite_rewards_and_observations_are_stored_exactly(tmp_path: Path) -> None:
    box = spaces.Box(-np.inf, np.inf, (3,))
    odd = np.array([np.nan, np.inf, -0.0], np.float32)
    with TrajectoryWriter(tmp_path, box, spaces.Discrete(2)) as w:
        w.reset(odd)
        w.step(0, odd, float("nan"), False, False, {"score": float("inf")})
        w.step(1, odd, 1.0, True, False, {"score": float("-inf")})
    reader = TrajectoryReader(tmp_path)
    ep = reader.read_episode(0)
    assert ep.observations.tobytes() == np.stack([odd] * 3).tobytes()
    assert np.isnan(ep.rewards[0]) and np.isnan(reader.episodes[0].total_return)
    assert ep.infos["score"].tolist() == [0.0, np.inf, -np.inf]
    assert reader.episodes[0].final_info["score"] == "-inf"
    report = verify(tmp_path)  # stored exactly, and flagged: a NaN reward poisons any return or mean
    assert not report.damaged and list(report.suspect.values()) == ["1 non-finite value(s) in 'reward' (chunk 1)"]


def _steps_on_disk(folder: Path) -> int:
    """Steps a running recording has written so far (0 while its file header is being written)."""
    try:
        return TrajectoryReader(folder, include_partial=True).num_steps
    except (FormatError, DataNotFoundError):
        return 0


def _end_records(path: Path) -> list[dict]:
    """Every episode end record of a finished file, read with plain pyarrow."""
    reader = pa.ipc.open_file(path)
    return [e for i in range(reader.num_record_batches)
            for e in json.loads(reader.get_batch_with_custom_metadata(i)[1][b"trajarena.chunk"])["ends"]]


@pytest.mark.parametrize("where", ["in memory", "after full chunks", "after an idle flush"])
def test_discard_drops_the_episode_and_keeps_the_next(tmp_path: Path, where: str) -> None:
    from trajarena.replay.dataset import TrajectoryDataset

    def o(v: float) -> np.ndarray:
        return np.full(1, v, np.float32)

    options = {"chunk_steps": 4 if where == "after full chunks" else 64, "segment_seconds": 1e9}
    if where == "after an idle flush":
        options["flush_seconds"] = 0.02
    w = TrajectoryWriter(tmp_path, spaces.Box(-1e3, 1e3, (1,)), spaces.Discrete(3), **options)
    w.reset(o(0), seed=0)
    for t in range(1, 4):
        w.step(0, o(t), 1.0, t == 3, False)
    w.reset(o(100), seed=1)  # the episode to discard
    for t in range(1, 11):
        w.step(2, o(100 + t), 5.0, False, False, {"k": t})
        if where == "after an idle flush" and t == 7:  # the thread writes rows 0-7 of it, the game loop adds more
            deadline = time.monotonic() + 60
            while _steps_on_disk(tmp_path) < 3 + 7:
                assert time.monotonic() < deadline, "the idle flush never came"
                time.sleep(0.01)
    assert w.discard() is True and w.discard() is False  # nothing open any more
    w.reset(o(200), seed=2)
    for t in range(1, 5):
        w.step(1, o(200 + t), 0.5, t == 4, False)
    w.close()
    reader = TrajectoryReader(tmp_path)
    assert [(e.seed, e.length, e.total_return) for e in reader.episodes] == [(0, 3, 3.0), (2, 4, 2.0)]
    ep = reader.read_episode(1)
    assert ep.observations[:, 0].tolist() == [200, 201, 202, 203, 204] and ep.actions.tolist() == [1] * 4
    report = verify(tmp_path)
    assert report.clean and (report.episodes, report.steps) == (2, 7)
    ds = TrajectoryDataset(tmp_path)
    assert (ds.n_episodes, len(ds)) == (2, 7) and ds.transitions(np.arange(7)).action.tolist() == [0] * 3 + [1] * 4
    if "k" in ds.info_keys:  # the discarded rows' info never shows up on the next episode
        assert not ds.episode(1).infos["k"][1].any()
    # whether its rows stayed in memory or reached the .partial file, the finished file has none of them
    ends = _end_records(w.files[0])
    table = pa.ipc.open_file(w.files[0]).read_all()
    assert set(table.column("episode").to_pylist()) == {f"{w.recording}/0", f"{w.recording}/2"}
    assert [e["end_reason"] for e in ends] == ["env", "env"] and table.num_rows == 4 + 5


@pytest.mark.parametrize("chunk_steps", [1, 64])
def test_episodes_without_a_step_are_not_stored(tmp_path: Path, chunk_steps: int) -> None:
    box = spaces.Box(0, 9, (1,))
    w = TrajectoryWriter(tmp_path, box, spaces.Discrete(2), chunk_steps=chunk_steps)
    w.reset(np.zeros(1, np.float32), seed=0)
    w.reset(np.zeros(1, np.float32), seed=1)  # reset twice: the first one had no step
    w.step(1, np.ones(1, np.float32), 1.0, False, False)
    w.reset(np.zeros(1, np.float32), seed=2)
    w.close()  # reset then closed: no step either
    reader = TrajectoryReader(tmp_path)
    assert [(e.seed, e.length, e.end_reason) for e in reader.episodes] == [(1, 1, "reset")]
    assert verify(tmp_path).episodes == 1
    lone = tmp_path / "lone"
    with TrajectoryWriter(lone, box, spaces.Discrete(2), chunk_steps=chunk_steps) as w:
        w.reset(np.zeros(1, np.float32))
    assert w.files == [] and not list(lone.iterdir())  # no file holding nothing


def test_info_values_of_castable_types_are_stored_and_shape_changes_dropped(tmp_path: Path) -> None:
    values = [1, np.int64(2), 3, True, np.int64(5)]
    with TrajectoryWriter(tmp_path, spaces.Discrete(2), spaces.Discrete(2), chunk_steps=3) as w:
        w.reset(0, {"n": 0, "arr": np.zeros(2, np.float32)})
        for t, v in enumerate(values):
            arr = np.full(3 if t == 3 else 2, t, np.float32)
            w.step(1, 0, 0.0, t == len(values) - 1, False, {"n": v, "arr": arr})
    reader = TrajectoryReader(tmp_path)
    infos = reader.read_episode(0).infos
    assert infos["n"].tolist() == [0, 1, 2, 3, 1, 5]
    assert "changed" in reader.episodes[0].notes["info/arr"]
    assert infos["arr"][:4, 0].tolist() == [0, 0, 1, 2]  # kept until the shape changed, then dropped


def test_crc_of_is_zlib_crc32_of_the_stored_bytes() -> None:
    import zlib

    for values in (np.zeros(0, np.uint8), np.arange(12, dtype=np.float64).reshape(3, 4),
                   np.arange(100_000, dtype=np.int16)[::3], np.ones(5, bool)):
        assert fmt.crc_of(values) == zlib.crc32(np.ascontiguousarray(values).tobytes())


def test_adaptive_level_follows_the_writer_threads_load(tmp_path: Path) -> None:
    frame = spaces.Box(0, 255, (64, 64, 3), np.uint8)
    w = TrajectoryWriter(tmp_path, frame, spaces.Discrete(2), writer="thread")
    try:
        enc = w._encoder
        # first file: 12 kB rows, 1 ms a step: level 5 is affordable
        assert enc._choose_level(100, 100 * 1e-3) == 5
        assert enc._choose_level(100, 100 * 5e-6) == 3  # 5 us a step: the writer would fall behind
        enc._level, enc._load = 5, [0.6, 1.0]  # measured: busy 60% of the game loop's time at level 5
        assert enc._choose_level(100, 0.1) == 3
        enc._level, enc._load = 3, [0.3, 1.0]  # 30% at level 3: level 5 would be ~60%
        assert enc._choose_level(100, 0.1) == 3
        enc._load = [0.2, 1.0]
        assert enc._choose_level(100, 0.1) == 5
    finally:
        w.close()


def test_files_of_adaptive_levels_read_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import itertools

    levels = itertools.cycle([3, 5])
    monkeypatch.setattr(ChunkEncoder, "_choose_level", lambda self, rows, fill_s: next(levels))
    space = CATALOGUE["nested"]
    written = record(tmp_path / "auto", space, spaces.Discrete(3), [5, 4, 6], segment_steps=1)
    files = sorted((tmp_path / "auto").glob("*.arrow"))
    metas = [TrajectoryReader(f).metadata["compression"] for f in files]
    assert metas == [{"codec": "zstd", "level": 3, "adaptive": True}, {"codec": "zstd", "level": 5, "adaptive": True},
                     {"codec": "zstd", "level": 3, "adaptive": True}]
    check_same(TrajectoryReader(tmp_path / "auto"), written)
    assert verify(tmp_path / "auto").clean
    record(tmp_path / "fixed", space, spaces.Discrete(3), [3], level=5)
    assert TrajectoryReader(tmp_path / "fixed").metadata["compression"] == {"codec": "zstd", "level": 5}


def test_info_keys_first_seen_after_the_file_was_opened_are_kept(tmp_path: Path) -> None:
    obs = np.zeros(2, np.float32)
    with TrajectoryWriter(tmp_path, spaces.Box(0, 1, (2,)), spaces.Discrete(2), {}, chunk_steps=3,
                          segment_seconds=1e9) as w:
        w.reset(obs, {"a": 0}, seed=0)
        for t in range(1, 3):
            w.step(0, obs, 1.0, False, False, {"a": t})
        w.flush()
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("*.partial")):  # the thread has opened the file
            assert time.monotonic() < deadline
            time.sleep(0.005)
        for t in range(3, 9):  # new keys on later steps, one of them only on the last one
            w.step(0, obs, 1.0, t == 8, False, {"a": t, "late": np.float32(t / 2),
                                                 **({"won": True} if t == 8 else {})})
    (path,) = w.files
    assert verify(tmp_path).clean and not list(tmp_path.glob("*.widening"))
    ep = TrajectoryReader(tmp_path).read_episode(0)
    assert ep.infos["a"].tolist() == list(range(9))
    assert ep.infos["late"].tolist() == [0, 0, 0, 1.5, 2, 2.5, 3, 3.5, 4]
    assert ep.infos["won"].tolist() == [False] * 8 + [True]
    assert not TrajectoryReader(tmp_path).episodes[0].notes
