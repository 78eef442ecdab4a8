"""TrajectoryDataset: transitions and windows equal the recorded stream; caching, pickling, errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from test_imitation import DUEL_FAST, record, same

from trajarena.replay.dataset import TrajectoryDataset, Transition, list_trajectory_files
from trajarena.errors import CorruptFileError, MismatchError, SettingsError


def flat_transitions(live):
    """(obs, action, reward, next_obs, terminated, truncated) of every recorded step, in order."""
    out = []
    for steps in live:
        for (o, *_), (o2, r, te, tr, a) in zip(steps[:-1], steps[1:], strict=True):
            out.append((o, a, r, o2, te, tr))
    return out


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cp")
    live = record("CartPole-v1", folder / "a", 3, seed=0) + record("CartPole-v1", folder / "b", 2, seed=7)
    return folder, live


@pytest.fixture(scope="module")
def duel(tmp_path_factory):
    folder = tmp_path_factory.mktemp("duel")
    return folder, record("duel", folder, 2, DUEL_FAST)


def test_every_transition_equals_the_recording(cartpole):
    folder, live = cartpole
    ds = TrajectoryDataset(folder)
    expect = flat_transitions(live)
    assert len(ds) == ds.total_steps == len(expect) and ds.n_episodes == 5
    for i, (o, a, r, o2, te, tr) in enumerate(expect):
        t = ds[i]
        assert same(t.obs, o) and same(t.next_obs, o2)
        assert (int(t.action), t.reward, t.terminated, t.truncated) == (a, r, te, tr)
    batch = ds.transitions(np.arange(len(ds)))
    assert batch.obs.shape == (len(ds), 4) and batch.action.shape == (len(ds),)
    assert np.array_equal(batch.reward, [e[2] for e in expect])
    assert np.array_equal(batch.terminated, [e[4] for e in expect])
    with pytest.raises(IndexError):
        ds.transition(len(ds))


def test_nested_observations_batch_per_leaf(duel):
    folder, live = duel
    ds = TrajectoryDataset(folder)
    expect = flat_transitions(live)
    idx = np.array([0, len(expect) - 1, 5, 5])
    batch = ds.transitions(idx)
    assert batch.obs["frame"].shape == (4, 32, 48, 3) and batch.obs["P1"]["health"].shape == (4, 1)
    assert batch.action.shape == (4, 2)
    for j, i in enumerate(idx):
        o, a, r, o2, te, tr = expect[i]
        assert np.array_equal(batch.obs["frame"][j], o["frame"])
        assert np.array_equal(batch.next_obs["P2"]["health"][j], o2["P2"]["health"])
        assert np.array_equal(batch.action[j], a) and batch.reward[j] == r and batch.terminated[j] == te
    assert "frame: uint8[4, 32, 48, 3]" in repr(batch) and "array(" not in repr(batch)


def test_episode_read_and_infos(duel):
    folder, live = duel
    ds = TrajectoryDataset(folder)
    ep = ds.episode(1)
    assert ep.info.length == len(live[1]) - 1
    assert np.array_equal(ep.observations["frame"][-1], live[1][-1][0]["frame"])
    assert np.array_equal(ep.rewards, [s[1] for s in live[1][1:]])
    values, present = ep.infos["round_done"]
    assert present.all() and values.dtype == bool
    assert ep.info.meta["terminated"] and ep.info.meta["seed"] == 1
    assert [e.info.index for e in ds.iterate_episodes()] == [0, 1] and len(ds.episode(0)) == ds.episodes[0].length
    assert ds.column("reward").shape == (sum(len(s) for s in live),)
    with pytest.raises(SettingsError, match="valid columns"):
        ds.column("obs/nope")


def test_sampling_is_seeded_and_uniform_over_transitions(cartpole):
    folder, _ = cartpole
    ds = TrajectoryDataset(folder)
    a = ds.sample_transitions(64, np.random.default_rng(1))
    b = ds.sample_transitions(64, np.random.default_rng(1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert isinstance(a, Transition)
    idx = np.random.default_rng(1).integers(0, len(ds), size=64)
    assert np.array_equal(a.obs, ds.transitions(idx).obs)


def test_windows_pad_past_episode_end(cartpole):
    folder, live = cartpole
    ds = TrajectoryDataset(folder)
    first_len = len(live[0]) - 1
    w = ds.windows([0, first_len - 2], k=4)
    assert w.mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert w.obs.shape == (2, 4, 4) and w.reward.shape == (2, 4)
    expect = flat_transitions(live)
    assert np.array_equal(w.obs[0], np.stack([expect[i][0] for i in range(4)]))
    assert np.array_equal(w.obs[1, :2], np.stack([expect[first_len - 2][0], expect[first_len - 1][0]]))
    assert not w.obs[1, 2:].any() and not w.reward[1, 2:].any()
    assert w.terminated[1, 1] and not w.terminated[1, 0]
    one = ds.window(first_len - 1, 3)
    assert one.mask.tolist() == [True, False, False] and one.obs.shape == (3, 4)
    assert ds.sample_windows(8, 5, np.random.default_rng(0)).mask.shape == (8, 5)
    with pytest.raises(SettingsError):
        ds.windows([0], 0)


def test_memmap_cache_matches_and_is_reused(duel, tmp_path, monkeypatch):
    folder, _ = duel
    plain = TrajectoryDataset(folder)
    cached = TrajectoryDataset(folder, cache_dir=tmp_path / "cache")
    idx = np.arange(0, len(plain), 3)
    a, b = plain.transitions(idx), cached.transitions(idx)
    assert same(a.obs, b.obs) and same(a.next_obs, b.next_obs) and np.array_equal(a.action, b.action)
    files = sorted((tmp_path / "cache").rglob("*.npy"))
    assert any(f.name == "obs%2Fframe.npy" for f in files)
    assert isinstance(np.load(files[0], mmap_mode="r"), np.memmap)
    from trajarena.format.columns import _TrajFile

    def boom(*args, **kwargs):
        raise AssertionError("decoded again although cached")

    monkeypatch.setattr(_TrajFile, "read_column", boom)
    again = TrajectoryDataset(folder, cache_dir=tmp_path / "cache")
    assert same(again.transitions(idx).obs, a.obs)


def test_pickles_as_paths_and_options(cartpole, tmp_path):
    folder, _ = cartpole
    ds = TrajectoryDataset(folder, cache_dir=tmp_path)
    ds.materialize()
    blob = pickle.dumps(ds)
    assert len(blob) < 2000
    clone = pickle.loads(blob)
    assert clone.cache_dir == str(tmp_path) and len(clone) == len(ds)
    assert np.array_equal(clone.transitions([0, 3]).obs, ds.transitions([0, 3]).obs)
    last = len(ds) - 1  # in the second file: a gather across memory-mapped parts
    assert len(ds.files) == 2 and ds.episode_of(last)[0] == ds.n_episodes - 1
    plain = TrajectoryDataset(folder)
    for i in (0, last):
        assert np.array_equal(clone.transition(i).next_obs, plain.transition(i).next_obs)
    w = clone.windows([last - 1, 0], 3)
    assert np.array_equal(w.obs, plain.windows([last - 1, 0], 3).obs)


def test_files_order_mismatch_and_missing(cartpole, duel, tmp_path):
    (cp, _), (du, _) = cartpole, duel
    ds = TrajectoryDataset([cp / "b", cp / "a"])  # sorted whatever the order given
    assert ds.episodes[0].file.startswith(str(cp / "a")) and ds.episodes[-1].file_index == 1
    cp_file, duel_file = list_trajectory_files(cp)[0], list_trajectory_files(du)[0]
    with pytest.raises(MismatchError) as err:
        TrajectoryDataset([cp_file, duel_file])
    assert cp_file in str(err.value) and duel_file in str(err.value)
    with pytest.raises(FileNotFoundError):
        TrajectoryDataset(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="No '\\*.arrow'"):
        TrajectoryDataset(tmp_path)


def test_bit_flip_in_a_column_is_a_typed_error(tmp_path):
    record("CartPole-v1", tmp_path, 1, seed=0)
    path = list_trajectory_files(tmp_path)[0]
    ds = TrajectoryDataset(path)
    assert len(ds) > 5
    data = bytearray(open(path, "rb").read())
    ds2_path = tmp_path / "copy" / "x.arrow"
    ds2_path.parent.mkdir()
    # flip one byte in the middle of the body (compressed buffers), away from headers
    data[len(data) // 2] ^= 0xFF
    ds2_path.write_bytes(bytes(data))
    try:  # the dataset decodes only the columns it serves; verify checks every column
        TrajectoryDataset(ds2_path).materialize()
    except CorruptFileError:
        return
    from trajarena.format.integrity import verify

    assert ds2_path in verify(ds2_path).damaged


def test_partial_file_of_a_running_recording_is_readable(tmp_path):
    import shutil
    import time

    from gymnasium.spaces import Box, Discrete

    from trajarena.format.writer import TrajectoryWriter

    w = TrajectoryWriter(tmp_path / "live", Box(-9, 9, (2,)), Discrete(2), {"env_id": "demo"}, chunk_steps=4)
    w.reset(np.zeros(2, np.float32), {}, seed=0)
    for t in range(1, 11):
        w.step(t % 2, np.full(2, t, np.float32), 1.0, False, False, {})
    w.flush()
    deadline = time.monotonic() + 60
    while True:  # wait for the background thread to append the chunks
        partial = list((tmp_path / "live").glob("*.arrow.partial"))
        if partial:
            shutil.copy(partial[0], tmp_path / "crash.arrow.partial")
            try:
                ds = TrajectoryDataset(tmp_path / "crash.arrow.partial", include_partial=True)
                if len(ds) == 10:
                    break
            except (CorruptFileError, FileNotFoundError):
                pass
        assert time.monotonic() < deadline, "the writer never flushed"
        time.sleep(0.05)
    w.close()
    assert ds.episodes[0].meta["unfinished"] and ds.n_episodes == 1
    assert ds.transition(9).next_obs.tolist() == [10.0, 10.0] and int(ds.transition(9).action) == 0
    with pytest.raises(FileNotFoundError):
        TrajectoryDataset(tmp_path / "nothing_here")


def test_random_episode_access_keeps_read_ahead_bounded(duel):
    folder, live = duel
    ds = TrajectoryDataset(folder)
    order = [1, 0, 1, 0]
    for i in order:
        ep = ds.episode(i)
        assert np.array_equal(ep.observations["frame"][0], live[i][0][0]["frame"])
    f = ds._files[0]
    assert len(f._pending) <= 2 and len(f._chunks) <= 3
    ds.close()


def test_memory_limit_points_to_the_disk_cache(duel, tmp_path):
    folder, _ = duel
    ds = TrajectoryDataset(folder, max_memory_bytes=1000)
    assert len(ds.column("reward")) > 0  # a small column still fits
    with pytest.raises(SettingsError, match="cache_dir"):
        ds.sample_transitions(4, np.random.default_rng(0))
    cached = TrajectoryDataset(folder, max_memory_bytes=1000, cache_dir=tmp_path)
    assert cached.sample_transitions(4, np.random.default_rng(0)).obs["frame"].shape == (4, 32, 48, 3)
    assert pickle.loads(pickle.dumps(ds)).max_memory_bytes == 1000


def test_file_lists_are_sorted_and_deduplicated_whatever_their_order(cartpole, monkeypatch):
    from trajarena.format.discover import find_files

    cp, _ = cartpole
    files = list_trajectory_files(cp)
    assert files == sorted(files) and len(files) == len(set(files)) >= 2
    monkeypatch.chdir(cp)
    relative = [str(Path(f).relative_to(cp)) for f in files]
    assert list_trajectory_files([files[1], files[0], files[1], relative[0], cp]) == [files[0], files[1], *files[2:]]
    assert list_trajectory_files(files[::-1]) == files
    assert find_files([files[1], files[0], relative[1]])[0] == [Path(files[0]), Path(files[1])]
    one = TrajectoryDataset([files[0]])
    assert len(TrajectoryDataset([files[0], files[0], relative[0]])) == len(one)  # not doubled


def test_no_data_is_one_typed_error_everywhere(tmp_path):
    import trajarena as arena
    from trajarena.errors import DataNotFoundError
    from trajarena.format.reader import TrajectoryReader

    for make in (TrajectoryReader, TrajectoryDataset, list_trajectory_files,
                 lambda p: arena.ImitationLearning(traj_files_list=p)):
        for paths in (tmp_path, [], tmp_path / "missing"):
            with pytest.raises(DataNotFoundError):
                make(paths)
    assert issubclass(DataNotFoundError, FileNotFoundError)


def test_non_integer_indices_and_negative_batch_sizes_are_settings_errors(cartpole):
    cp, _ = cartpole
    ds = TrajectoryDataset(cp / "a")
    assert ds.transition(np.int64(1)).reward == ds.transition(1).reward
    for bad in (lambda: ds.transition(1.5), lambda: ds.transition(True), lambda: ds.transitions([0.5, 1]),
                lambda: ds.sample_transitions(-1, np.random.default_rng(0)),
                lambda: ds.sample_transitions(2.5, np.random.default_rng(0))):
        with pytest.raises(SettingsError):
            bad()
    assert len(ds.sample_transitions(0, np.random.default_rng(0)).reward) == 0
