"""The copier thread: a chunk's frames move from the game loop's private memory into the writer process's
shared memory off the game loop (``trajarena.format._capture.Copier``, see ``_copier.c``).

It runs at SCHED_IDLE, so a busy machine may starve it: whoever calls ``help`` (the game loop at each
handoff, the listener from ``watch``) does the jobs it has not started, and the shared counter only ever
names a job once it and every job before it are done.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_writer_process import ROOT, _alive, contents, ops, play

from trajarena.format.integrity import repair, verify
from trajarena.format.reader import TrajectoryReader
from trajarena.format.writer import TrajectoryWriter

_capture = pytest.importorskip("trajarena.format._capture")
two_cores = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="frames are staged only with a core to spare")


def _jobs(n: int, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.full(size, j + 1, np.uint8), np.zeros(size, np.uint8)) for j in range(n)]


def test_jobs_are_copied_and_their_numbers_published_in_order() -> None:
    copier, counter = _capture.Copier(), np.zeros(1, np.uint64)
    jobs = _jobs(40, 1 << 20)
    seen, stop = [], threading.Event()

    def watch() -> None:  # at any moment, every job up to the published number is complete
        while not stop.is_set():
            k = int(counter[0])
            seen.append((k, all(dst[-1] == j + 1 and dst[0] == j + 1 for j, (_, dst) in enumerate(jobs[:k]))))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for j, (src, dst) in enumerate(jobs):
            copier.submit(((src, dst),), counter, j + 1)
            if j % 3 == 0:
                copier.help(0.0)  # the caller takes pending jobs, racing the thread
        copier.wait()
    finally:
        stop.set()
        watcher.join()
        copier.close()
    assert int(counter[0]) == 40 and all(np.array_equal(src, dst) for src, dst in jobs)
    assert seen and all(ok for _, ok in seen)
    assert [k for k, _ in seen] == sorted(k for k, _ in seen)  # it never goes back


def test_a_job_with_several_buffers_is_published_once_all_are_copied() -> None:
    copier, counter = _capture.Copier(), np.zeros(1, np.uint64)
    (a, da), (b, db) = _jobs(2, 3 << 20)
    copier.submit(((a, da), (b[:1000], db[:1000])), counter, 7)
    copier.wait()
    copier.close()
    assert int(counter[0]) == 7 and np.array_equal(a, da) and np.array_equal(b[:1000], db[:1000]) and not db[1000:].any()


def test_help_takes_only_jobs_that_waited_long_enough() -> None:
    copier, counter = _capture.Copier(), np.zeros(1, np.uint64)
    assert copier.help(0.0) == 0  # nothing pending
    (src, dst), = _jobs(1, 4096)
    copier.submit(((src, dst),), counter, 1)
    assert copier.help(1e9) == 0  # not old enough: left to the thread
    copier.wait()
    assert int(counter[0]) == 1
    copier.close()


def test_bad_calls_are_typed_errors() -> None:
    copier, counter = _capture.Copier(), np.zeros(1, np.uint64)
    src = np.zeros(10, np.uint8)
    with pytest.raises(TypeError):
        _capture.Copier(1)
    with pytest.raises(TypeError):
        copier.submit(((src, src),), np.zeros(1, np.int64), 1)  # not a uint64 counter
    with pytest.raises(TypeError):
        copier.submit(((src, src[::2]),), counter, 1)  # not contiguous
    with pytest.raises(ValueError):
        copier.submit(((src, np.zeros(9, np.uint8)),), counter, 1)  # sizes differ
    ro = np.zeros(10, np.uint8)
    ro.flags.writeable = False
    with pytest.raises(TypeError):
        copier.submit(((src, ro),), counter, 1)
    with pytest.raises(TypeError):
        copier.submit(tuple((src, src) for _ in range(9)), counter, 1)  # too many buffers for one job
    with pytest.raises(TypeError):
        _capture.watch(0, np.zeros(4), 1, 0, "not a copier")
    copier.close()
    copier.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        copier.submit(((src, src),), counter, 1)


def test_a_forked_copy_refuses_every_call() -> None:
    copier, counter = _capture.Copier(), np.zeros(1, np.uint64)
    src = np.zeros(10, np.uint8)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            copier.submit(((src, src),), counter, 1)
        except RuntimeError as exc:
            os._exit(0 if "forked" in str(exc) else 2)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    copier.submit(((src, np.zeros(10, np.uint8)),), counter, 1)  # the owner's copier still works
    copier.wait()
    copier.close()
    assert int(counter[0]) == 1


STARVED = textwrap.dedent("""
    import os, subprocess, sys, time
    sys.path[:0] = [{src!r}]
    import numpy as np
    from trajarena.format import _capture
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {{cpu}})  # this thread, and the copier thread it starts, on one core
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # a busy core: SCHED_IDLE starves
    os.sched_setaffinity(spinner.pid, {{cpu}})
    copier, counter = _capture.Copier(), np.zeros(1, np.uint64)
    src, dst = np.full(1 << 20, 5, np.uint8), np.zeros(1 << 20, np.uint8)
    time.sleep(0.05)
    out = []
    copier.submit(((src, dst),), counter, 1)
    time.sleep(0.01)
    copier.help(0.005)  # the game loop's handoff
    out.append(int(counter[0]))
    copier.submit(((src, np.zeros(1 << 20, np.uint8)),), counter, 2)
    r, w = os.pipe()
    _capture.watch(r, np.array([time.monotonic(), 0.0, 1e9, 0.0]), 5, 200, copier)  # the listener, 200 ms
    out.append(int(counter[0]))
    spinner.kill()
    copier.close()
    print(*out, int((dst == 5).all()))
""").format(src=str(ROOT / "src"))


def test_a_starved_copier_is_helped_by_the_game_loop_and_the_listener() -> None:
    run = subprocess.run([sys.executable, "-c", STARVED], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1", "2", "1"]


@two_cores
@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(script=ops, chunk=st.integers(1, 6))
def test_staged_frames_write_what_the_thread_writes(tmp_path_factory, script, chunk) -> None:
    """Rows of 18 kB: the process writer fills them in private memory and the copier moves them."""
    thread, process = tmp_path_factory.mktemp("thread"), tmp_path_factory.mktemp("process")
    wt = play(thread, [("reset", 0), *script], 7, (64, 96, 3), chunk_steps=chunk, writer="thread", max_pending=1)
    wp = play(process, [("reset", 0), *script], 7, (64, 96, 3), chunk_steps=chunk, writer="process", max_pending=1)
    assert wp._staged  # its frames were filled in private memory
    assert contents(process) == contents(thread)
    if wp.files:
        assert verify(process).clean


@two_cores
def test_a_paused_game_loops_staged_rows_are_flushed(tmp_path: Path) -> None:
    """The listener's idle flush copies the rows it writes itself (the chunk is still being filled)."""
    o = {"frame": np.full((64, 96, 3), 9, np.uint8), "hp": np.float32(2)}
    space = spaces.Dict(frame=spaces.Box(0, 255, (64, 96, 3), np.uint8), hp=spaces.Box(0, 9, (), np.float32))
    writer = TrajectoryWriter(tmp_path, space, spaces.Discrete(2), writer="process", flush_seconds=0.05,
                              segment_seconds=1e9)
    try:
        writer.reset(o, seed=3)
        for t in range(5):
            writer.step(1, {**o, "frame": np.full((64, 96, 3), t, np.uint8)}, 1.0, False, False)
        deadline = time.monotonic() + 30
        while writer._chunk.flushed < 6:  # the game loop makes no call: the listener writes the rows
            assert time.monotonic() < deadline, "the paused game's episode never reached the file"
            time.sleep(0.02)
        assert writer._copy_seq == 0  # its frames were copied by the idle flush, not by a copy job
    finally:
        writer.close()
    ep = TrajectoryReader(tmp_path).read_episode(0)
    assert ep.observations["frame"][:, 0, 0, 0].tolist() == [9, 0, 1, 2, 3, 4]


NEVER_COPIED = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = [{src!r}]
    import numpy as np
    from gymnasium import spaces
    from trajarena.format import handoff

    class FirstJobsOnly:  # a copier that copies the first two jobs and never the later ones (a kill mid-copy)
        def __init__(self):
            self.jobs = 0
        def submit(self, pairs, counter, seq):
            self.jobs += 1
            if self.jobs <= 2:
                for src, dst in pairs:
                    dst[...] = src
                counter[0] = seq
        def help(self, min_age):
            return 0

    handoff._capture = type("C", (), {{"Copier": FirstJobsOnly}})
    from trajarena.format import writer_process
    writer_process._capture = None  # the listener polls in Python (its C watch takes real copiers only)
    from trajarena.format.writer import TrajectoryWriter
    w = TrajectoryWriter(sys.argv[1], spaces.Box(0, 255, (64, 96, 3), np.uint8), spaces.Discrete(2),
                         writer="process", chunk_steps=4, segment_seconds=1e9)
    for ep in range(4):  # one chunk (a copy job) an episode
        w.reset(np.full((64, 96, 3), ep, np.uint8), seed=ep)
        for t in range(3):
            w.step(0, np.full((64, 96, 3), ep, np.uint8), 1.0, t == 2, False)
    print(w._link.proc.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""").format(src=str(ROOT / "src"))


@two_cores
def test_a_chunk_whose_frames_never_arrive_is_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    """The game dies before its copier moved a chunk's frames: the writer process does not wait forever; it
    stops there and leaves the file for repair with every chunk before it (as if the chunk had not been
    handed over)."""
    run = subprocess.run([sys.executable, "-c", NEVER_COPIED, str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr
    writer_pid = int(run.stdout.split()[0])
    deadline = time.monotonic() + 30
    while _alive(writer_pid):
        assert time.monotonic() < deadline, "the writer process waits for frames from a dead game"
        time.sleep(0.02)
    repair(tmp_path, force=True)
    reader = TrajectoryReader(tmp_path)
    assert [(e.seed, e.length) for e in reader.episodes] == [(0, 3), (1, 3)]
    assert [reader.read_episode(i).observations[:, 0, 0, 0].tolist() for i in range(2)] == [[0] * 4, [1] * 4]
    assert verify(tmp_path).clean
