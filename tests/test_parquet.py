"""Parquet export: decoded steps that DuckDB, polars and Hugging Face datasets read as they are, equal to our decode."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trajarena as arena
from trajarena.errors import DataNotFoundError, OutputExistsError, SettingsError
from trajarena.format.writer import TrajectoryWriter
from trajarena.interop.parquet import export_parquet

from _helpers_format import CATALOGUE, any_space
from _helpers_interop import frames_of, record_duel, record_duel_two_workers, record_env, returns_of


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """A duel folder recorded by 2 worker processes, exported to Parquet once."""
    root = tmp_path_factory.mktemp("two_workers")
    folder = record_duel_two_workers(root / "data", episodes=6)
    summary = export_parquet(folder, root / "parquet")
    return folder, summary


def test_the_export_covers_every_episode_of_both_workers(two_workers):
    folder, summary = two_workers
    ds = arena.TrajectoryDataset(folder)
    assert len(ds.files) >= 2 and len(summary.files) == len(ds.files)
    assert (summary.episodes, summary.steps) == (ds.n_episodes, len(ds))
    assert "6 episodes" in str(summary) and summary.bytes > 0


def test_duckdb_per_episode_returns_and_frames_equal_our_decode(two_workers):
    duckdb = pytest.importorskip("duckdb")
    folder, summary = two_workers
    ds = arena.TrajectoryDataset(folder)
    glob = f"{summary.target}/*.parquet"
    rows = duckdb.sql(f"SELECT episode, SUM(reward) AS ret, COUNT(action) AS n FROM read_parquet('{glob}') "
                      "GROUP BY episode").fetchall()
    by_id = {r[0]: (r[1], r[2]) for r in rows}  # the same ids as the native files' episode column
    assert by_id == {e.uid: (pytest.approx(r), e.length) for e, r in zip(ds.episodes, returns_of(ds), strict=True)}
    order = "ORDER BY file, file_episode, step"  # the dataset's order
    frames = duckdb.sql(f"SELECT obs.frame FROM read_parquet('{glob}') {order}").to_arrow_table()
    assert np.array_equal(np.array(frames.column(0).to_pylist(), np.uint8), frames_of(ds))
    health = duckdb.sql(f"SELECT obs.P1.health[1] FROM read_parquet('{glob}') {order}").fetchall()
    assert [h[0] for h in health] == ds.column("obs/P1/health")[:, 0].tolist()


def test_polars_reads_the_export_as_shaped_arrays(two_workers):
    pl = pytest.importorskip("polars")
    folder, summary = two_workers
    ds = arena.TrajectoryDataset(folder)
    df = pl.read_parquet(f"{summary.target}/*.parquet").sort("file", "file_episode", "step")
    returns = dict(df.group_by("episode").agg(pl.col("reward").sum()).iter_rows())
    assert returns == {e.uid: pytest.approx(r) for e, r in zip(ds.episodes, returns_of(ds), strict=True)}
    frames = df.select(pl.col("obs").struct.field("frame")).to_series().to_numpy()
    assert frames.shape == (len(df), 24, 32, 3) and np.array_equal(frames, frames_of(ds))


def test_hugging_face_datasets_reads_the_export(two_workers, tmp_path):
    datasets = pytest.importorskip("datasets")
    folder, summary = two_workers
    ds = arena.TrajectoryDataset(folder)
    hf = datasets.Dataset.from_parquet(list(summary.files), cache_dir=str(tmp_path / "hf")).with_format("numpy")
    assert len(hf) == len(ds) + ds.n_episodes
    order = np.lexsort((hf["step"], hf["file_episode"], hf["file"]))
    assert np.array_equal(np.stack(hf["obs"]["frame"])[order], frames_of(ds))
    rewards = np.asarray(hf["reward"], np.float64)[order]
    assert np.nansum(rewards) == pytest.approx(sum(returns_of(ds)))


def test_two_player_actions_are_a_struct_of_both_agents(tmp_path):
    folder = record_duel(tmp_path / "data", episodes=1, n_players=2)
    summary = export_parquet(folder, tmp_path / "out")
    table = pq.read_table(summary.files[0])
    ds = arena.TrajectoryDataset(folder)
    actions = table.column("action").to_pylist()
    assert actions[0] is None
    assert [a["agent_1"] for a in actions[1:]] == ds.episode(0).actions["agent_1"].tolist()
    info = table.column("info").to_pylist()
    assert [i["outcome"] for i in info] == ds.episode(0).infos["outcome"][0].tolist()


def test_info_keys_missing_on_some_steps_are_null(tmp_path):
    class Sparse(gym.Env):
        observation_space = gym.spaces.Box(0, 1, (2,), np.float32)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return np.zeros(2, np.float32), {}

        def step(self, action):
            self.t += 1
            return np.full(2, self.t / 10, np.float32), 1.0, self.t == 4, False, ({"bonus": self.t} if self.t % 2 else {})

    folder = record_env(Sparse(), tmp_path / "data", episodes=1)
    table = pq.read_table(export_parquet(folder, tmp_path / "out").files[0])
    assert [i and i["bonus"] for i in table.column("info").to_pylist()] == [None, 1, None, 3, None]


def _write(folder, space_obs, space_act, steps, seed):
    space_obs.seed(seed)
    space_act.seed(seed + 1)
    with TrajectoryWriter(folder, space_obs, space_act, {"env_id": "random"}) as w:
        w.reset(space_obs.sample(), {}, seed=seed)
        for t in range(steps):
            w.step(space_act.sample(), space_obs.sample(), float(t), t == steps - 1, False, {"t": t})


def _plain(value):
    """Our decoded values as the plain Python a Parquet reader returns (Tuple items become "0", "1"...)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {str(i): _plain(v) for i, v in enumerate(value)}
    return np.asarray(value).tolist()


def _rows(value, n):
    if isinstance(value, dict):
        return [dict(zip(value, vals, strict=True)) for vals in zip(*(_rows(v, n) for v in value.values()), strict=True)] \
            if value else [{}] * n
    return list(value)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_every_space_of_the_catalogue_round_trips(tmp_path, name):
    space = CATALOGUE[name]
    _write(tmp_path / "data", space, space, 5, seed=3)
    table = pq.read_table(export_parquet(tmp_path / "data", tmp_path / "out").files[0])
    ep = arena.TrajectoryDataset(tmp_path / "data").episode(0)
    assert table.column("obs").to_pylist() == _rows(_plain(ep.observations), 6)
    assert table.column("action").to_pylist()[1:] == _rows(_plain(ep.actions), 5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obs=any_space, act=any_space, steps=st.integers(1, 6), seed=st.integers(0, 100))
def test_any_space_round_trips(tmp_path_factory, obs, act, steps, seed):
    root = tmp_path_factory.mktemp("any")
    _write(root / "data", obs, act, steps, seed)
    table = pq.read_table(export_parquet(root / "data", root / "out").files[0])
    ep = arena.TrajectoryDataset(root / "data").episode(0)
    assert table.column("obs").to_pylist() == _rows(_plain(ep.observations), steps + 1)
    assert table.column("action").to_pylist()[1:] == _rows(_plain(ep.actions), steps)
    assert table.column("reward").to_pylist() == [None, *map(float, range(steps))]


def test_bad_inputs_are_typed_errors(tmp_path):
    folder = record_duel(tmp_path / "data", episodes=1)
    export_parquet(folder, tmp_path / "out")
    with pytest.raises(OutputExistsError, match="overwrite"):
        export_parquet(folder, tmp_path / "out")
    again = export_parquet(folder, tmp_path / "out", overwrite=True)
    assert len(again.files) == 1 and not list((tmp_path / "out").glob("*.tmp"))
    with pytest.raises(SettingsError, match="compression"):
        export_parquet(folder, tmp_path / "o2", compression="brotli9")
    with pytest.raises(SettingsError, match="row_group_rows"):
        export_parquet(folder, tmp_path / "o2", row_group_rows=0)
    with pytest.raises(DataNotFoundError):
        export_parquet(tmp_path / "nothing-here", tmp_path / "o3")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SettingsError, match="is a file"):
        export_parquet(folder, tmp_path / "afile")


def test_progress_is_reported_per_episode(tmp_path):
    folder = record_duel(tmp_path / "data", episodes=2)
    calls = []
    export_parquet(folder, tmp_path / "out", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]
