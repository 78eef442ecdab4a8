"""Issue 11 items 4 and 5: a SIGKILL loses no finished episode; repair cleans every kind of leftover.

The kill test records CartPole with the recorder's *default* settings in a child process, kills it
with SIGKILL at seeded random moments, and counts the episodes that had ended (their last
``step()`` returned and was logged) at least 100 ms before the kill but are missing after
``repair``. The leftovers of item 5 are made from what the real writer puts on disk.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

import trajarena
from _helpers_format import child_env
from trajarena.errors import DataNotFoundError, FormatError
from trajarena.format.integrity import repair, verify
from trajarena.format.reader import TrajectoryReader
from trajarena.format.writer import TrajectoryWriter

#: A fork server: imports once, then forks one recorder per request (so 10 kills cost 10 recordings,
#: not 10 interpreter start-ups). Each recorder uses the default settings and logs every episode end
#: (seed = episode number, length, time.monotonic()) to its own file, flushed per line. A recorder
#: runs flat out (CartPole fills a default chunk in ~0.2 s) or paced like a game (a 1 ms sleep per
#: step: a chunk would take seconds to fill, so only the episode end itself can bring the rows to disk).
FORK_SERVER = """
import os, sys, time
import gymnasium as gym
from trajarena.recording.recorder import TrajectoryRecorder
print("up", flush=True)
for line in sys.stdin:
    folder, log_path, pace = line.split()
    pace = float(pace)
    pid = os.fork()
    if pid == 0:
        env = TrajectoryRecorder(gym.make("CartPole-v1"), folder)
        log = open(log_path, "w")
        log.write("ready\\n"); log.flush()
        e = 0
        while True:
            env.reset(seed=e)
            t, done = 0, False
            while not done:
                _, _, te, tr, _ = env.step((t * 7 + e) % 3 % 2)
                done, t = te or tr, t + 1
                if pace:
                    time.sleep(pace)
            log.write(f"{e} {t} {time.monotonic()}\\n"); log.flush()
            e += 1
    print(pid, flush=True)
    os.waitpid(pid, 0)
    print("reaped", flush=True)
"""

KILLS, MARGIN = 5, 0.1  # 5 kills for each pace: the 10 in all


def _wait_for(predicate, what: str, proc: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc is None or proc.poll() is None, f"the child died while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _recorded(folder: Path) -> dict[int, int]:
    """seed -> length of the episodes that ended in the env, in every file under ``folder``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # .partial files repair left: counted as lost here, reported below
            reader = TrajectoryReader(folder)
    except DataNotFoundError:
        return {}
    return {e.seed: e.length for e in reader.episodes if e.end_reason == "env"}


@pytest.mark.slow
@pytest.mark.parametrize("pace", [
    pytest.param(0.001, id="paced"),
    pytest.param(0.0, id="flat_out"),
])
def test_sigkill_loses_no_episode_that_ended_100ms_before(tmp_path: Path, pace: float) -> None:
    rng = np.random.default_rng(11 if pace else 12)
    delays = rng.uniform(0.05, 2.5, KILLS)  # default segment_seconds is 2: kills before and after a rotation
    server = subprocess.Popen([sys.executable, "-c", FORK_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=child_env())
    runs = []
    try:
        assert server.stdout.readline().strip() == "up"
        for i, delay in enumerate(delays):
            folder, log = tmp_path / f"run{i}", tmp_path / f"run{i}.log"
            server.stdin.write(f"{folder} {log} {pace}\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            _wait_for(lambda log=log: log.exists() and log.read_text().startswith("ready"), "the recorder", server)
            time.sleep(float(delay))
            kill_time = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            assert server.stdout.readline().strip() == "reaped"
            runs.append((folder, log, kill_time))
    finally:
        server.stdin.close()
        server.wait(timeout=30)

    report = repair(tmp_path, force=True)  # the recorders are dead: their locks died with them
    lost, settled_total, details = 0, 0, []
    for (folder, log, kill_time), delay in zip(runs, delays, strict=True):
        lines = log.read_text().split("\n")[1:-1]  # whole lines only (each is written with one write())
        ended = {int(e): (int(n), float(when)) for e, n, when in map(str.split, lines)}
        settled = {e: n for e, (n, when) in ended.items() if when <= kill_time - MARGIN}
        got = _recorded(folder) if folder.exists() else {}
        missing = [e for e in settled if got.get(e) != settled[e]]
        lost += len(missing)
        settled_total += len(settled)
        if missing:
            details.append(f"kill after {delay:.2f} s: {len(missing)} of {len(settled)} lost "
                           f"(ended {kill_time - ended[missing[-1]][1]:.2f}-{kill_time - ended[missing[0]][1]:.2f} s "
                           "before the kill)")
    assert settled_total > 50, "the recorders hardly ran: the test proves nothing"
    assert lost == 0, f"{lost} of {settled_total} finished episodes lost: " + "; ".join(details)
    assert not report.skipped, report.skipped  # e.g. an empty .partial of a recorder killed as it opened a file
    assert verify(tmp_path).clean


# ----------------------------------------------------------------------------- item 5: leftovers


def _write_episodes(writer: TrajectoryWriter, episodes: int, steps: int = 6) -> None:
    for e in range(episodes):
        writer.reset(np.array([e, 0], np.float32), {}, seed=e)
        for t in range(1, steps + 1):
            writer.step(t % 2, np.array([e, t], np.float32), 1.0, t == steps, False, {})


@pytest.fixture(scope="module")
def live_partial(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a real ``.partial`` file, copied while its writer was still recording: 3 finished episodes."""
    folder = tmp_path_factory.mktemp("live_partial")
    w = TrajectoryWriter(folder, spaces.Box(0, 100, (2,)), spaces.Discrete(2), {}, chunk_steps=4,
                         segment_seconds=1e9, flush_seconds=60)
    try:
        _write_episodes(w, 3)
        w.flush()
        partial = lambda: list(folder.glob("*.arrow.partial"))  # noqa: E731

        def three_episodes_on_disk() -> bool:
            try:
                reader = trajarena.open_trajectories(partial(), include_partial=True) if partial() else None
                return reader is not None and sum(e.end_reason != "unfinished" for e in reader.episodes) == 3
            except FormatError:
                return False

        _wait_for(three_episodes_on_disk, "the writer thread to write the chunks")
        (path,) = partial()
        return path.read_bytes()
    finally:
        w.close()


def _schema_end(data: bytes) -> int:
    """Where the schema message of an Arrow IPC file ends (what is on disk before the first chunk)."""
    import pyarrow as pa

    reader = pa.BufferReader(pa.py_buffer(data[8:]))
    pa.ipc.read_message(reader)
    return 8 + reader.tell()


STEM = "01700000000000000000_host_1234_0123456789ab"


@pytest.mark.parametrize("force", [True, False])
def test_repair_removes_a_zero_byte_partial(tmp_path: Path, force: bool) -> None:
    path = tmp_path / f"{STEM}.arrow.partial"
    path.write_bytes(b"")
    if not force:  # an hour old: no recording on another machine is still writing it
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    report = repair(tmp_path, force=force)
    assert not path.exists() and path in report.removed, report
    assert not report.skipped, report.skipped


def test_repair_cleans_every_kind_of_leftover(tmp_path: Path, live_partial: bytes) -> None:
    schema_only = live_partial[: _schema_end(live_partial)]
    (tmp_path / f"{STEM}.arrow.partial").write_bytes(live_partial)
    # killed while widening the file: a half-made copy next to the .partial it copies
    (tmp_path / f"{STEM}.arrow.partial.widening").write_bytes(live_partial[: len(live_partial) * 2 // 3])
    # killed while repairing it: a half-written repaired file next to the .partial
    (tmp_path / f"{STEM}.arrow.repairing").write_bytes(live_partial[: len(live_partial) // 2])
    # killed while opening files: empty, or with the schema and no chunk
    (tmp_path / "01700000000000000001_host_1234_0123456789ac.arrow.partial.opening").write_bytes(b"")
    (tmp_path / "01700000000000000002_host_1234_0123456789ad.arrow.partial.opening").write_bytes(schema_only)
    report = repair(tmp_path, force=True)
    assert not report.skipped, report.skipped
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{STEM}.arrow"], sorted(p.name for p in tmp_path.iterdir())
    reader = TrajectoryReader(tmp_path)
    assert [(e.seed, e.length, e.end_reason) for e in reader.episodes] == [(s, 6, "env") for s in range(3)]
    assert verify(tmp_path).clean


LOCKER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def test_verify_tells_a_live_recording_from_a_damaged_file(tmp_path: Path, live_partial: bytes) -> None:
    live = tmp_path / f"{STEM}.arrow.partial"
    live.write_bytes(b"")  # a recording that has just opened its file, its writer holding the lock
    damaged = tmp_path / "01700000000000000003_host_1234_0123456789ae.arrow.partial"
    data = bytearray(live_partial)
    data[_schema_end(live_partial) + 200] ^= 0x10  # the first chunk's body: fails its checksum
    damaged.write_bytes(bytes(data))
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(live)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        with pytest.raises(BlockingIOError):  # the lock is real
            fd = os.open(live, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            finally:
                os.close(fd)
        report = verify(tmp_path)
        assert live not in report.damaged, report.damaged[live]
        assert live in report.live and live not in report.partial, report  # partial: what a crash left
        assert damaged in report.damaged, report
    finally:
        locker.stdin.close()
        locker.wait(timeout=30)


def test_a_damaged_partial_stays_listed_as_damaged_without_a_lock(tmp_path: Path, live_partial: bytes) -> None:
    """The other side of the check above, true today: no lock, bad checksum: damaged."""
    damaged = tmp_path / f"{STEM}.arrow.partial"
    data = bytearray(live_partial)
    data[_schema_end(live_partial) + 200] ^= 0x10
    damaged.write_bytes(bytes(data))
    assert damaged in verify(tmp_path).damaged


# ----------------------------------------------------------------------------- item 4: fsync for power loss


def _record_paced(folder: Path, fsync, writer: str, episodes: int = 3) -> list[float]:
    """Record CartPole episodes with a pause after each; return when each one's last step began (time.monotonic():
    a writer process may sync before that step returns)."""
    import gymnasium as gym

    from trajarena.recording.recorder import TrajectoryRecorder

    env = TrajectoryRecorder(gym.make("CartPole-v1"), folder, fsync=fsync, segment_seconds=1e9, writer=writer)
    assert env.writer.mode == writer
    ends = []
    for e in range(episodes):
        env.reset(seed=e)
        done = False
        while not done:
            began = time.monotonic()
            _, _, te, tr, _ = env.step(e % 2)
            done = te or tr
        ends.append(began)
        time.sleep(0.3)  # the writer has time to write (and sync) the episode before the next one
    env.close()
    return ends


#: Put on the writer process's path: its os.fsync notes when it was called (CLOCK_MONOTONIC is system-wide).
_FSYNC_SPY = """
import os, time
_log, _real = os.environ["FSYNC_LOG"], os.fsync
def _spy(fd):
    with open(_log, "a") as f:
        print(time.monotonic(), file=f)
    return _real(fd)
os.fsync = _spy
"""


@pytest.mark.parametrize("writer", ["thread", "process"])
@pytest.mark.parametrize("fsync, per_episode", [("episode", True), ("file", False), (False, False)])
def test_fsync_at_each_episode_end_is_an_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync,
                                                per_episode: bool, writer: str) -> None:
    """``fsync="episode"`` syncs the file in progress after every episode end (power loss); the default does not.

    Watched where the writer runs: os.fsync of this process (thread), or of the writer process (a
    ``sitecustomize`` on its ``PYTHONPATH`` that logs each call).
    """
    synced: list[float] = []
    if writer == "thread":
        real_fsync = os.fsync
        monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(time.monotonic()), real_fsync(fd))[1])
    else:
        spy, log = tmp_path / "spy", tmp_path / "fsync.log"
        spy.mkdir()
        (spy / "sitecustomize.py").write_text(_FSYNC_SPY)
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(spy), os.environ.get("PYTHONPATH", "")]))
        monkeypatch.setenv("FSYNC_LOG", str(log))
    ends = _record_paced(tmp_path / "data", fsync, writer)
    if writer == "process":
        assert log.exists() or fsync is False  # the spy ran in the writer process (close() syncs the file)
        synced = [float(t) for t in log.read_text().split()] if log.exists() else []
    during = [t for t in synced if t < ends[-1] + 0.25]  # before close() finishes the file
    if per_episode:
        for end in ends:
            assert any(end <= t < end + 0.25 for t in during), (end, synced)
    else:
        assert not during, synced
    assert len(TrajectoryReader(tmp_path / "data").episodes) == 3


def test_a_bad_fsync_mode_is_a_settings_error(tmp_path: Path) -> None:
    from trajarena.errors import SettingsError

    with pytest.raises(SettingsError, match="fsync"):
        TrajectoryWriter(tmp_path, spaces.Box(0, 1, (2,)), spaces.Discrete(2), {}, fsync="always")
