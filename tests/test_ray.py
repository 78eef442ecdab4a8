"""Ray Data: read_trajectories gives every decoded transition once, split like the loader's ranks; Parquet too."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trajarena as arena
from trajarena.errors import MissingDependencyError, SettingsError
from trajarena.interop.ray import nest, plan_read_tasks

from _helpers_interop import frames_of, record_duel_two_workers, returns_of


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.lists(st.integers(1, 50), max_size=6), min_size=1, max_size=6), n_tasks=st.integers(1, 9))
def test_read_plans_are_disjoint_and_complete(lengths, n_tasks):
    files = [f"f{i}" for i in range(len(lengths))]
    plans = plan_read_tasks(files, lengths, n_tasks)
    assert len(plans) <= n_tasks
    seen = [(f, e) for p in plans for f, eps in zip(p.files, p.episodes, strict=True) for e in eps]
    assert sorted(seen) == [(f, e) for f, eps in zip(files, lengths, strict=True) for e in range(len(eps))]
    assert sum(p.rows for p in plans) == sum(map(sum, lengths))
    if len(files) >= n_tasks:  # whole files per task, as the loader's ranks
        assert all(sorted(p.files) == [f for f in p.files] for p in plans)
        assert len({f for p in plans for f in p.files}) == sum(1 for p in plans for _ in p.files)


def test_plan_rejects_a_bad_task_count():
    with pytest.raises(SettingsError):
        plan_read_tasks(["a"], [[1]], 0)


def test_missing_ray_names_the_extra(tmp_path, monkeypatch):
    import sys

    from trajarena.interop.ray import data as ours

    ours._datasource_class.cache_clear()
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    try:
        with pytest.raises(MissingDependencyError, match=r"trajarena\[ray\]"):
            ours.read_trajectories(tmp_path)
    finally:
        ours._datasource_class.cache_clear()


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    return record_duel_two_workers(tmp_path_factory.mktemp("ray") / "data", episodes=5)


@pytest.mark.slow
def test_read_trajectories_gives_every_transition_once(ray_local, two_workers):
    from trajarena.interop.ray import read_trajectories

    ds = arena.TrajectoryDataset(two_workers)
    data = read_trajectories(two_workers, override_num_blocks=3)
    assert data.count() == len(ds)
    rows = data.to_pandas().sort_values(["episode", "step"])
    truth = ds.transitions(np.arange(len(ds)))
    assert np.array_equal(rows["reward"].to_numpy(), truth.reward)
    assert np.array_equal(np.stack(rows["obs/frame"].to_numpy()), truth.obs["frame"])
    assert np.array_equal(np.stack(rows["next_obs/frame"].to_numpy()), truth.next_obs["frame"])
    assert np.array_equal(np.stack(rows["action"].to_numpy()), truth.action)
    assert np.array_equal(rows["obs/P1/health"].map(lambda h: h[0]).to_numpy(), truth.obs["P1"]["health"][:, 0])
    returns = rows.groupby("episode")["reward"].sum().to_numpy()
    assert returns == pytest.approx(returns_of(ds))
    first = next(iter(data.iter_batches(batch_size=16, batch_format="numpy")))
    assert nest(first)["obs"]["frame"].shape[1:] == (24, 32, 3) and first["obs/frame"].dtype == np.uint8


@pytest.mark.slow
def test_ray_reads_the_parquet_export(ray_local, two_workers, tmp_path):
    import ray.data

    from trajarena.interop.parquet import export_parquet

    ds = arena.TrajectoryDataset(two_workers)
    summary = export_parquet(two_workers, tmp_path / "pq")
    table = ray.data.read_parquet(summary.target).to_pandas().sort_values(["file", "file_episode", "step"])
    returns = table.groupby("episode")["reward"].sum().to_dict()
    assert returns == {e.uid: pytest.approx(r) for e, r in zip(ds.episodes, returns_of(ds), strict=True)}
    frames = np.array([np.array([np.stack(row) for row in obs["frame"]], np.uint8) for obs in table["obs"]])
    assert np.array_equal(frames, frames_of(ds))


@pytest.mark.slow
def test_read_trajectories_gives_windows_like_the_dataset(ray_local, two_workers):
    from trajarena.interop.ray import read_trajectories

    ds = arena.TrajectoryDataset(two_workers)
    rows = read_trajectories(two_workers, window=4, rows_per_block=7, override_num_blocks=2).to_pandas()
    rows = rows.sort_values(["episode", "step"])
    truth = ds.windows(np.arange(len(ds)), 4)
    assert len(rows) == len(ds)
    assert np.array_equal(np.stack(rows["mask"].to_numpy()), truth.mask) and not truth.mask.all()
    assert np.array_equal(np.stack(rows["obs/frame"].to_numpy()), truth.obs["frame"])
    assert np.array_equal(np.stack(rows["next_obs/frame"].to_numpy()), truth.next_obs["frame"])
    assert np.array_equal(np.stack(rows["action"].to_numpy()), truth.action)
    assert np.array_equal(np.stack(rows["reward"].to_numpy()), truth.reward)
    assert np.array_equal(np.stack(rows["terminated"].to_numpy()), truth.terminated)
    with pytest.raises(SettingsError, match="window"):
        read_trajectories(two_workers, window=0)
