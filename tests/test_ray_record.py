"""Recording on a Ray cluster: N episodes requested -> N finished, unique, loadable; dead workers re-run; URIs.

One local Ray cluster (2 CPUs) serves the module; the tests are marked slow.
"""

from __future__ import annotations

import glob
import os
import sys
import time

import numpy as np
import pytest

import trajarena as arena
from trajarena.errors import ClusterError, MissingDependencyError, RecordingError, SettingsError
from trajarena.interop.ray.cluster import parse_address, probe
from trajarena.interop.ray.destination import UPLOADING, Destination

from _helpers_interop import DUEL_FAST

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


def _episodes_by_seed(folder) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each episode's (rewards, actions), keyed by its reset seed; fails on a seed recorded twice."""
    ds = arena.TrajectoryDataset(folder)
    out = {}
    for i, info in enumerate(ds.episodes):
        seed = info.meta["seed"]
        assert seed not in out, f"seed {seed} recorded twice"
        ep = ds.episode(i)
        out[seed] = (np.asarray(ep.rewards), np.asarray(ep.actions))
    assert len({e.uid for e in ds.episodes}) == ds.n_episodes  # episode ids unique across files
    return out


@pytest.fixture(scope="module")
def local_truth(tmp_path_factory):
    """The same episodes recorded by the local recorder (one process): what every Ray run must equal."""
    from trajarena.learn.rollout import record

    folder = tmp_path_factory.mktemp("local")
    record("duel", "random", episodes=5, workers=1, out=folder, settings=DUEL_FAST, progress=False, seed=3)
    return _episodes_by_seed(folder)


def _same_as_local(folder, truth) -> None:
    got = _episodes_by_seed(folder)
    assert sorted(got) == sorted(truth)
    for seed, (rewards, actions) in truth.items():
        assert np.array_equal(got[seed][0], rewards) and np.array_equal(got[seed][1], actions), seed


def test_ray_records_exactly_the_episodes_asked_for(ray_local, tmp_path, local_truth):
    from trajarena.interop.ray import record_ray

    out = tmp_path / "data"
    summary = record_ray("duel", "random", episodes=5, out=out, workers=2, episodes_per_task=2,
                         settings=DUEL_FAST, seed=3, progress=False)
    assert (summary.episodes, summary.tasks, summary.workers) == (5, 3, 2)
    assert summary.retried == () and summary.removed == ()
    report = arena.verify(out)
    assert report.clean and report.episodes == 5 and report.steps == summary.steps
    assert sorted(map(str, report.ok)) == sorted(summary.files)
    assert not [p for p in out.iterdir() if not p.name.endswith(".arrow")]  # no .uploading, no .partial
    _same_as_local(out, local_truth)
    assert "5 episodes" in summary.format() and "3 tasks on 1 node(s)" in summary.format()
    assert set(summary.task_cpu_seconds) == {"setup", "episodes", "close", "publish"}
    assert summary.task_cpu_seconds["episodes"] > 0 and min(summary.task_cpu_seconds.values()) >= 0


def test_a_killed_worker_is_re_run_and_its_leftovers_removed(ray_local, tmp_path, local_truth):
    from trajarena.interop.ray import record_ray

    marker = str(tmp_path / "killed")

    def killer(env, player, seed):
        """A random agent whose process dies (os._exit) at its 70th step, in the first task to get there."""
        from trajarena.format.reader import TrajectoryReader
        from trajarena.learn.agents import make_agent

        inner, steps = make_agent("random", env, player, seed), [0]

        def until_an_episode_is_on_disk(staging: str) -> None:
            """Wait (60 s at most) until the writer (either kind) has put the finished episode in a staging file."""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for path in glob.glob(os.path.join(staging, "**", "*.arrow.partial"), recursive=True):
                    try:
                        if any(e.end_reason == "env" for e in TrajectoryReader(path, include_partial=True).episodes):
                            return
                    except arena.errors.TrajArenaError:
                        pass  # not written yet
                time.sleep(0.01)
            raise AssertionError("the finished episode never reached the staging folder")

        class Killer:
            def reset(self, seed=None):
                inner.reset(seed)

            def act(self, obs, info):
                steps[0] += 1
                if steps[0] == 70:  # the second episode of its task: the first one is finished, in staging
                    try:
                        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
                        until_an_episode_is_on_disk(os.path.join(os.path.dirname(marker), "staging"))
                        os._exit(1)
                    except FileExistsError:
                        pass
                return inner.act(obs, info)

        return Killer()

    out = tmp_path / "data"
    # one file per task: on a loaded machine an episode can outlive the default 2 s segment, and its file
    # would then be finished (.arrow) before the kill instead of the .partial this test is about
    summary = record_ray("duel", killer, episodes=5, out=out, workers=2, episodes_per_task=2,
                         settings=DUEL_FAST, seed=3, progress=False, staging_dir=str(tmp_path / "staging"),
                         traj_rec_settings={"segment_seconds": 3600})
    assert os.path.exists(marker)
    assert len(summary.retried) == 1 and "WorkerCrashedError" in summary.retried[0]
    assert any(f.endswith(".arrow.partial") for f in summary.removed)  # what the dead worker was writing
    assert not os.listdir(tmp_path / "staging")  # every staging folder is gone
    assert summary.episodes == 5
    report = arena.verify(out)
    assert report.clean and report.episodes == 5 and not report.partial
    _same_as_local(out, local_truth)


def test_ray_records_to_a_pyarrow_filesystem(ray_local, tmp_path, local_truth):
    import pyarrow.fs as pafs

    from trajarena.interop.ray import record_ray

    root = tmp_path / "bucket"
    root.mkdir()
    sub = pafs.SubTreeFileSystem(str(root), pafs.LocalFileSystem())
    summary = record_ray("duel", "random", episodes=5, out="runs/duel", filesystem=sub, settings=DUEL_FAST,
                         seed=3, progress=False)
    assert summary.destination == "subtree:runs/duel" and all(f.startswith("subtree:runs/duel/") for f in summary.files)
    assert arena.verify(root / "runs" / "duel").clean
    _same_as_local(root / "runs" / "duel", local_truth)
    uri = record_ray("duel", "random", episodes=2, out=(tmp_path / "uri").as_uri(), settings=DUEL_FAST,
                     progress=False)
    assert uri.destination == str(tmp_path / "uri") and arena.verify(tmp_path / "uri").episodes == 2


def test_the_cli_records_with_ray(ray_local, tmp_path):
    from typer.testing import CliRunner

    from trajarena.cli.app import app, optional_values

    out = tmp_path / "cli"
    args = ["record", "duel", "-a", "random", "-n", "3", "-o", str(out), "-s", "step_ratio=60",
            "-s", "frame_shape=[24,32,3]", "--no-progress", "--ray"]
    result = CliRunner().invoke(app, optional_values(args))
    assert result.exit_code == 0, result.output
    assert "in 2 Ray worker(s)" in result.output and "written to" in result.output
    assert arena.verify(out).episodes == 3


def test_a_task_error_stops_the_run_with_its_cause(ray_local, tmp_path):
    from trajarena.interop.ray import record_ray

    def broken(env, player, seed):
        raise ValueError("this agent cannot play")

    with pytest.raises(RecordingError, match="task 0 .*ValueError: this agent cannot play"):
        record_ray("duel", broken, episodes=1, out=tmp_path / "x", settings=DUEL_FAST, progress=False)
    assert not list((tmp_path / "x").iterdir())


def test_bad_addresses_fail_fast_with_the_fix(monkeypatch, tmp_path):
    ray = pytest.importorskip("ray")
    from trajarena.interop.ray import record_ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(ClusterError, match="no Ray cluster answers at 127.0.0.1:9.*ray start --head"):
        record_ray("duel", episodes=1, out=tmp_path, address="127.0.0.1:9")
    with pytest.raises(ClusterError, match="not a Ray cluster address.*after the env id"):
        probe("duel")
    assert parse_address("ray://[::1]:10001") == ("::1", 10001)


def test_missing_ray_and_bad_arguments(monkeypatch, tmp_path):
    from trajarena.interop.ray import record_ray

    with pytest.raises(SettingsError, match="unknown agent 'exprt'.*'expert'"):
        record_ray("duel", "exprt", out=tmp_path)
    with pytest.raises(SettingsError, match="workers must be"):
        record_ray("duel", workers=0, out=tmp_path)
    with pytest.raises(SettingsError, match="prefix"):
        record_ray("duel", out=tmp_path, traj_rec_settings={"prefix": "x" * 60})
    with pytest.raises(SettingsError, match="Unrecognized filesystem"):
        record_ray("duel", out="nope://bucket/x")
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'trajarena\[ray\]'"):
        record_ray("duel", out=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_destination_publishes_whole_files_and_removes_an_attempt(tmp_path):
    dest = Destination.of(tmp_path / "d")
    dest.prepare()
    for name in ("r.t00001.a0-1.arrow", "r.t00001.a1-2.arrow", "r.t00001.a10-3.arrow"):
        (tmp_path / name).write_bytes(b"x" * 100)
        assert dest.publish(tmp_path / name, fsync=True) == (str(tmp_path / "d" / name), 100)
    (tmp_path / "d" / f"r.t00001.a1-9.arrow{UPLOADING}").write_bytes(b"half")  # an upload cut by a death
    assert sorted(os.path.basename(p) for p in dest.remove("r.t00001.a1-")) == [
        "r.t00001.a1-2.arrow", f"r.t00001.a1-9.arrow{UPLOADING}"]
    assert dest.names() == ["r.t00001.a0-1.arrow", "r.t00001.a10-3.arrow"]
    with pytest.raises(SettingsError, match="non-empty prefix"):
        dest.remove("")
