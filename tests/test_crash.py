"""A recorder SIGKILLed at random moments loses at most the last moments; repair salvages the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from trajarena.format.integrity import repair, verify
from trajarena.format.reader import TrajectoryReader

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{src!r}]
    import gymnasium as gym
    from trajarena.recording.recorder import TrajectoryRecorder
    folder, tag, log_path = sys.argv[1:4]
    env = TrajectoryRecorder(gym.make("CartPole-v1"), folder, username=tag, chunk_steps=256,
                             flush_seconds=0.1, segment_seconds=0.2)
    log = open(log_path, "w")
    log.write("ready\\n"); log.flush()
    e = 0
    while True:
        env.reset(seed=e)
        t, done = 0, False
        while not done:
            _, _, te, tr, _ = env.step((t * 7 + e) % 3 % 2)
            done, t = te or tr, t + 1
        log.write(f"{{e}} {{t}} {{time.monotonic()}}\\n"); log.flush()
        e += 1
""").format(src=str(ROOT / "src"))


def replay(e: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=e)
    out, actions = [obs], []
    for t in range(steps):
        a = (t * 7 + e) % 3 % 2
        obs, *_ = env.step(a)
        out.append(obs)
        actions.append(a)
    return np.stack(out), np.array(actions)


def wait_ready(log: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not (log.exists() and log.read_text().startswith("ready")):
        assert proc.poll() is None, "the recording child died"
        assert time.monotonic() < deadline, "the recording child never started"
        time.sleep(0.01)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_repair(tmp_path: Path) -> None:
    rng = np.random.default_rng(1234)
    kills: dict[str, tuple[float, Path]] = {}
    for run in range(4):
        tag, log = f"run{run}", tmp_path / f"run{run}.log"
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "data"), tag, str(log)])
        wait_ready(log, proc)
        time.sleep(float(rng.uniform(0.3, 1.2)))
        os.kill(proc.pid, signal.SIGKILL)
        kill_time = time.monotonic()
        proc.wait(timeout=30)  # reaped: repair sees the pid is gone
        kills[tag] = (kill_time, log)

    folder = tmp_path / "data"
    before = verify(folder)
    assert not before.damaged, before.damaged  # finished files need no finalize step
    finished = None
    if before.ok:
        with pytest.warns(UserWarning, match="partial"):
            finished = TrajectoryReader(folder)  # loadable as they are, no finalize step
        assert finished.num_episodes == before.episodes

    report = repair(folder, force=True)  # the children are dead (no lock held): no need to wait out the recency check
    assert not report.skipped and set(report.repaired) | set(report.removed) == set(before.partial)
    after = verify(folder)
    assert after.clean and after.episodes >= (finished.num_episodes if finished else 0)

    reader = TrajectoryReader(folder)
    by_tag: dict[str, list] = {}
    for i, e in enumerate(reader.episodes):
        by_tag.setdefault(reader.file_metadata(i)["username"], []).append(e)
    for tag, (kill_time, log) in kills.items():
        episodes = sorted(by_tag.get(tag, []), key=lambda e: e.episode)
        ids = [e.episode for e in episodes]
        assert ids == list(range(len(ids))), f"{tag}: episodes lost in the middle"
        assert all(e.end_reason == "env" for e in episodes[:-1])
        if episodes and episodes[-1].end_reason != "env":
            assert episodes[-1].end_reason == "crash" and episodes[-1].truncated
        logged = [line.split() for line in log.read_text().splitlines()[1:]]
        settled = [int(e) for e, _, when in logged if float(when) < kill_time - 0.5]
        assert len(ids) >= len(settled), f"{tag}: an episode finished 0.5 s before the kill was lost"
        lengths = {int(e): int(n) for e, n, _ in logged}
        for ep in episodes:
            if ep.end_reason == "env" and ep.episode in lengths:
                assert ep.length == lengths[ep.episode]
        # the content is exact: replay a sample of episodes, including the last (possibly cut) one
        index = {e.episode: i for i, e in enumerate(reader.episodes) if reader.file_metadata(i)["username"] == tag}
        for e in {0, len(ids) // 2, len(ids) - 1} & set(index):
            got = reader.read_episode(index[e])
            obs, actions = replay(e, got.info.length)
            assert np.array_equal(got.observations, obs) and np.array_equal(got.actions, actions)


def _partial_of(tmp_path: Path, lengths: list[int]) -> Path:
    """A finished file turned into the ``.partial`` a crash leaves (footer cut); obs = (episode, t)."""
    from gymnasium.spaces import Box, Discrete

    from trajarena.format.writer import TrajectoryWriter

    with TrajectoryWriter(tmp_path / "src", Box(0, 1e6, (2,)), Discrete(2), {}, chunk_steps=5,
                          compression=None, segment_seconds=1e9) as w:
        for e, n in enumerate(lengths):
            w.reset(np.array([e, 0], np.float32), {}, seed=e)
            for t in range(1, n + 1):
                w.step(t % 2, np.array([e, t], np.float32), 1.0, t == n, False, {})
    (path,) = w.files
    data = path.read_bytes()
    footer = int.from_bytes(data[-10:-6], "little")
    out = tmp_path / "data" / (path.name + ".partial")
    out.parent.mkdir()
    out.write_bytes(data[: len(data) - 10 - footer])
    return out


def _flip_in_chunk(path: Path, ci: int) -> None:
    from trajarena.format.index import index_file

    f = index_file(path, partial=True)
    i = [i for i, rows in enumerate(f.rows) if rows][ci]  # the ci-th chunk with rows (the first is empty)
    data = bytearray(path.read_bytes())
    data[f.offsets[i + 1] - 20] ^= 0x10  # in the chunk's body, after its header
    path.write_bytes(bytes(data))


def test_repair_keeps_every_intact_chunk_after_damaged_ones(tmp_path: Path) -> None:
    lengths = [7, 12, 5, 9]  # 33 steps + 4 reset rows = 37 rows in chunks of 5
    path = _partial_of(tmp_path, lengths)
    _flip_in_chunk(path, 0)  # the first chunk: episode 0 and the start of 1
    _flip_in_chunk(path, 3)  # rows 15-19: the middle of episode 1 (rows 8-20)
    report = repair(path.parent, force=True)
    assert not report.skipped and not report.removed and len(report.repaired) == 1
    assert not path.exists() and verify(path.parent).clean
    reader = TrajectoryReader(path.parent)
    pieces = []
    for ep in reader.iter_episodes():
        obs = ep.observations
        assert (obs[:, 0] == obs[0, 0]).all(), "an episode glued across a gap"
        assert (np.diff(obs[:, 1]) == 1).all(), "rows missing inside an episode"
        pieces.append((int(obs[0, 0]), int(obs[0, 1]), int(obs[-1, 1]), ep.info.end_reason, ep.info.truncated))
    assert sorted(pieces) == [
        (0, 5, 7, "crash", True),  # rows 5-7: the end of episode 0, after the first damaged chunk
        (1, 0, 6, "crash", True),  # rows 8-14: episode 1 up to the second damaged chunk
        (2, 0, 5, "env", False),
        (3, 0, 9, "env", False),
    ]
    assert reader.num_steps == 2 + 6 + 5 + 9  # row 20 (episode 1's last) alone has no step: not kept


def test_repair_moves_aside_a_damaged_file_with_nothing_to_salvage(tmp_path: Path) -> None:
    path = _partial_of(tmp_path, [3])  # 4 rows: one chunk
    data = bytearray(path.read_bytes())
    data[-30] ^= 0x10
    path.write_bytes(bytes(data))
    report = repair(path.parent, force=True)
    assert not report.repaired and not report.removed and path in report.skipped
    assert not path.exists() and path.with_name(path.name.replace(".partial", ".damaged")).exists()


def test_repair_never_touches_a_recording_that_is_still_running(tmp_path: Path) -> None:
    folder, log = tmp_path / "data", tmp_path / "run.log"
    proc = subprocess.Popen([sys.executable, "-c", CHILD.replace("segment_seconds=0.2", "segment_seconds=1e9"),
                             str(folder), "live", str(log)])
    try:
        wait_ready(log, proc)
        deadline = time.monotonic() + 60
        while not list(folder.glob("*.partial")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        (path,) = folder.glob("*.partial")
        # force=True is what a second host or container does (it cannot see the pid): the lock still protects
        report = repair(folder, force=True)
        assert path in report.skipped and "lock" in report.skipped[path] and not report.repaired
        size = path.stat().st_size
        deadline = time.monotonic() + 60
        while path.stat().st_size == size:  # the recording goes on in the same file
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    ahead = time.time() + 120  # just modified (set, so that a slow machine cannot outlast the window)
    os.utime(path, (ahead, ahead))
    report = repair(folder)  # dead, but just modified: the recency check waits for force or later
    assert path in report.skipped and "force=True" in report.skipped[path]
    report = repair(folder, force=True)  # the lock died with the process
    assert list(report.repaired) == [path] and verify(folder).clean


def test_the_recency_window_counts_flushes_and_clocks_that_run_ahead(tmp_path):
    """A .partial modified within 4 flush intervals (at least 1 s) may still be written elsewhere: repair waits."""
    from trajarena.format.repair import _recent

    path = tmp_path / "x.arrow.partial"
    path.write_bytes(b"x")
    now = time.time()
    for age, flush_seconds, waits in [(0.5, 2.0, True), (6.0, 2.0, True), (9.0, 2.0, False), (0.5, 0.1, True),
                                      (5.0, 0.1, False), (60.0, None, False), (3.0, None, True), (-30.0, 2.0, True)]:
        os.utime(path, (now - age, now - age))
        why = _recent(path, flush_seconds)
        assert (why is not None) == waits, (age, flush_seconds, why)
        if waits:
            assert "pass force=True" in why
            assert ("ahead of this machine's clock" in why) == (age < 0) and "-" not in why.split(":")[0], why
