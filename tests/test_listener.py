"""The writer process's listener thread: it waits without the GIL and takes it only when it has work.

A thread that asks for the GIL while the game loop releases it more often than the switch interval
(CartPole: numpy's random at each reset) starves, and every release wakes it for nothing. The
listener therefore waits in C (``_capture.watch``) on the writer process's pipe and on the game
loop's clock, and the game loop lets it have the GIL at a chunk handoff when it asks
(``ProcessHandoff._yield``).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

from trajarena.format.reader import TrajectoryReader
from trajarena.format.writer import TrajectoryWriter

_capture = pytest.importorskip("trajarena.format._capture")
BOX, ACT = spaces.Box(-1, 1, (4,), np.float32), spaces.Discrete(2)


def _clock(last: float = 0.0, end_due: float = 0.0, flush: float = 1e9) -> np.ndarray:
    return np.array([last or time.monotonic(), end_due, flush, 0.0])


def _timed(fd: int, clock: np.ndarray, poll_ms: int, max_ms: int) -> tuple[bool, float]:
    start = time.monotonic()
    ready = _capture.watch(fd, clock, poll_ms, max_ms)
    return ready, time.monotonic() - start


def test_watch_wakes_for_input_a_due_flush_or_its_limit_and_says_it_wants_the_gil() -> None:
    r, w = os.pipe()
    try:
        clock = _clock()
        assert _timed(r, clock, 10, 150)[0] is False and clock[3] == 1.0  # its limit; it raised the flag
        assert 0.14 <= _timed(r, _clock(), 10, 150)[1] < 5
        ready, took = _timed(r, _clock(end_due=time.monotonic() + 0.1), 10, 10_000)  # finished episodes due
        assert not ready and 0.09 <= took < 5
        ready, took = _timed(r, _clock(last=time.monotonic() - 0.95, flush=1.0), 10, 10_000)  # idle for flush_seconds
        assert not ready and 0.04 <= took < 5
        threading.Timer(0.1, os.write, (w, b"x")).start()  # a message from the writer process
        ready, took = _timed(r, _clock(), 10, 10_000)
        assert ready and 0.09 <= took < 5
    finally:
        os.close(r)
        os.close(w)
    r, w = os.pipe()
    os.close(w)  # the writer process is gone: the end of the pipe is input too
    try:
        assert _timed(r, _clock(), 10, 10_000)[0] is True
    finally:
        os.close(r)


def test_watch_takes_the_game_loops_clock_updates_while_it_waits() -> None:
    r, w = os.pipe()
    try:
        clock = _clock()
        threading.Timer(0.1, lambda: clock.__setitem__(1, time.monotonic() + 0.15)).start()  # an episode ends meanwhile
        ready, took = _timed(r, clock, 5, 10_000)
        assert not ready and 0.24 <= took < 5
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("args, error", [
    ((0, np.zeros(3), 10, 10), TypeError),  # a 3-value clock
    ((0, np.zeros(4, np.float32), 10, 10), TypeError),
    ((0, np.zeros((4, 2))[:, 0], 10, 10), TypeError),  # not contiguous
    ((0, np.frombuffer(bytes(32)), 10, 10), TypeError),  # read-only: watch writes clock[3]
    ((0, [0.0, 0.0, 0.0, 0.0], 10, 10), TypeError),
    ((-1, np.zeros(4), 10, 10), ValueError),
    ((1 << 40, np.zeros(4), 10, 10), ValueError),
    ((0, np.zeros(4), 0, 10), ValueError),
    ((0, np.zeros(4), 10, -1), ValueError),
    ((0, np.zeros(4), 10, 1 << 62), ValueError),
    ((0, np.zeros(4), "10", 10), TypeError),
    ((0, np.zeros(4), 10), TypeError),
])
def test_watch_refuses_bad_arguments(args, error) -> None:
    with pytest.raises(error):
        _capture.watch(*args)


def _step_for(w: TrajectoryWriter, seconds: float) -> int:
    """Step ``w`` with short episodes for ``seconds``; a numpy draw per reset releases the GIL (as CartPole's does)."""
    rng, obs, steps = np.random.default_rng(0), np.zeros(4, np.float32), 0
    end = time.monotonic() + seconds
    w.reset(obs)
    while time.monotonic() < end:
        done = steps % 20 == 19
        w.step(steps % 2, obs, 1.0, done, False)
        steps += 1
        if done:
            w.reset(rng.uniform(-0.05, 0.05, size=(4,)).astype(np.float32))
    return steps


def test_the_listener_stays_out_of_python_while_the_game_loop_steps(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Woken into Python every poll (25 ms) it would look ~60 times in 1.5 s; it looks only on its 1 s limit."""
    looks = []
    real = TrajectoryWriter._watch
    monkeypatch.setattr(TrajectoryWriter, "_watch", lambda self: (looks.append(time.monotonic()), real(self))[1])
    with TrajectoryWriter(tmp_path, BOX, ACT, writer="process", segment_seconds=1e9) as w:
        steps = _step_for(w, 1.5)
    assert len(looks) <= 6, looks
    assert TrajectoryReader(tmp_path).num_steps > steps * 0.9


def test_the_game_loop_lets_a_waiting_listener_in_for_a_bounded_time(tmp_path: Path) -> None:
    """Without it, on CartPole, the listener waited for the GIL 22-37 ms at the median, up to 0.8 s (a
    file finished, its 1 s look); with it, at most until the next chunk handoff (~20 ms)."""
    with TrajectoryWriter(tmp_path, BOX, ACT, writer="process") as w:
        w._clock[3] = 1.0  # a listener that never gets the GIL: the game loop gives up after _YIELD_SECONDS
        start = time.monotonic()
        w._yield()
        assert time.monotonic() - start < 1.0
        threading.Timer(0.001, w._clock.__setitem__, (3, 0.0)).start()
        w._clock[3] = 1.0
        start = time.monotonic()
        w._yield()  # back as soon as the listener has it
        assert w._clock[3] == 0.0 and time.monotonic() - start < 1.0
