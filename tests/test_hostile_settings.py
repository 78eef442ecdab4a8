"""Issue 11 item 7: writer and recorder keyword arguments are checked; a writer-thread failure is never silent.

Every entry point (``TrajectoryWriter``, ``TrajectoryRecorder``, ``VectorTrajectoryRecorder``) refuses a
bad value at construction with a ``SettingsError`` that names the key. When the background thread
fails (here: the disk refuses the write), the game loop gets a ``RecordingError`` at its next
``step()``/``close()``: never a hang, never a silent loss. Runs that could hang run in a child
process that gives up by itself.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from _helpers_format import run_child
from trajarena.errors import RecordingError, SettingsError
from trajarena.format.writer import TrajectoryWriter
from trajarena.recording.recorder import TrajectoryRecorder, VectorTrajectoryRecorder

#: Records CartPole with the given writer options (JSON in argv[2]) and reports, one line each: the
#: construction, then how the steps and close() ended. A watchdog ends the process if the game loop
#: makes no progress for 20 s (a hang; a loaded machine takes seconds), printing the step it hung at.
STEPPER = """
import json, os, sys, threading, time
import gymnasium as gym
from trajarena.errors import TrajArenaError
from trajarena.recording.recorder import TrajectoryRecorder
folder, options, steps = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
if len(sys.argv) > 4:  # a disk that refuses files above N bytes (EFBIG, not a signal)
    import resource, signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[4]), int(sys.argv[4])))
progress = {"step": 0, "at": time.monotonic()}
def watchdog():
    while True:
        time.sleep(0.1)
        if time.monotonic() - progress["at"] > 20:
            print(f"hung at step {progress['step']}", flush=True)
            os._exit(3)
threading.Thread(target=watchdog, daemon=True).start()
try:
    env = TrajectoryRecorder(gym.make("CartPole-v1"), folder, **options)
except TrajArenaError as exc:
    print(f"construction: {type(exc).__name__}: {exc}", flush=True)
    raise SystemExit(0)
print("construction: ok", flush=True)
progress["at"] = time.monotonic()  # the construction (pyarrow's first use) is not the game loop
try:
    e = 0
    while progress["step"] < steps:
        env.reset(seed=e)
        done = False
        while not done and progress["step"] < steps:
            _, _, te, tr, _ = env.step(progress["step"] % 2)
            done = te or tr
            progress["step"] += 1
            progress["at"] = time.monotonic()
        e += 1
    print(f"steps: ok {progress['step']}", flush=True)
except TrajArenaError as exc:
    print(f"steps: {type(exc).__name__} at step {progress['step']}: {exc!r} cause={exc.__cause__!r}", flush=True)
progress["at"] = time.monotonic()
try:
    env.close()
    print("close: ok", flush=True)
except TrajArenaError as exc:
    print(f"close: {type(exc).__name__}: {exc!r} cause={exc.__cause__!r}", flush=True)
"""


def _step_child(folder: Path, options: dict, steps: int, fsize: int | None = None) -> list[str]:
    import json

    args = ["-c", STEPPER, str(folder), json.dumps(options), str(steps)] + ([str(fsize)] if fsize else [])
    run = run_child(args, timeout=120)
    assert not run.timed_out, "the child hung past its own watchdog"
    return run.stdout.strip().splitlines() + ([f"stderr: {run.stderr.strip()[-1500:]}"] if run.stderr.strip() else [])


def test_a_string_flush_interval_is_refused_at_construction_not_a_hang(tmp_path: Path) -> None:
    lines = _step_child(tmp_path, {"flush_seconds": "2", "chunk_steps": 16}, 400)
    assert lines and lines[0].startswith("construction: SettingsError") and "flush_seconds" in lines[0], lines


def _close_quietly(obj) -> None:
    """Close what a bad setting did not stop from being made (in a thread: today's bugs may hang it)."""
    t = threading.Thread(target=lambda: _ignore_errors(obj.close), daemon=True)
    t.start()
    t.join(10)


def _ignore_errors(fn) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - cleanup of an object that should not exist
        pass


def _makers(folder: Path) -> dict:
    box = spaces.Box(-1, 1, (2,), np.float32)
    return {
        "TrajectoryWriter": lambda **kw: TrajectoryWriter(folder, box, spaces.Discrete(2), {}, **kw),
        "TrajectoryRecorder": lambda **kw: TrajectoryRecorder(gym.make("CartPole-v1"), folder, **kw),
        "VectorTrajectoryRecorder": lambda **kw: VectorTrajectoryRecorder(
            gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2), folder, **kw),
    }


BAD = {"flush_seconds": -5, "level": 99, "max_pending": -1, "segment_seconds": "x"}


@pytest.mark.parametrize("entry", ["TrajectoryWriter", "TrajectoryRecorder", "VectorTrajectoryRecorder"])
@pytest.mark.parametrize("key", list(BAD))
def test_a_bad_writer_option_is_a_settings_error_naming_the_key(tmp_path: Path, entry: str, key: str) -> None:
    make = _makers(tmp_path)[entry]
    try:
        made = make(**{key: BAD[key]})
    except SettingsError as exc:
        assert key in str(exc), exc
        return
    _close_quietly(made)
    pytest.fail(f"{entry}({key}={BAD[key]!r}) was accepted")


def test_a_good_writer_option_set_is_accepted(tmp_path: Path) -> None:
    """The other side of the checks above: sane values of the same keys construct and record."""
    env = TrajectoryRecorder(gym.make("CartPole-v1"), tmp_path, flush_seconds=0.5, level=3, max_pending=2,
                             segment_seconds=1.5, chunk_steps=16)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, te, tr, _ = env.step(0)
        done = te or tr
    env.close()
    assert len(env.files) == 1


def test_a_disk_write_failure_is_a_recording_error_never_a_hang(tmp_path: Path) -> None:
    """The disk refuses writes past 64 KB (RLIMIT_FSIZE: EFBIG): the game loop gets a RecordingError, in time."""
    lines = _step_child(tmp_path, {"chunk_steps": 64}, 20_000, fsize=64 << 10)
    assert lines[0] == "construction: ok", lines
    assert not any(line.startswith("hung") for line in lines), lines
    failed = [line for line in lines[1:] if "RecordingError" in line]
    assert failed, f"the disk refused the writes and nothing said so: {lines}"
    assert "File too large" in failed[0] or "EFBIG" in failed[0] or "errno 27" in failed[0], failed
    assert lines[1].startswith("steps: RecordingError"), lines  # at a step, long before the 20,000th
    assert lines[-1].startswith("close: RecordingError"), lines  # close() says so too: nothing looks saved


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores a read-only folder (the RLIMIT_FSIZE test covers it)")
def test_a_folder_made_read_only_after_opening_is_a_recording_error(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    env = TrajectoryRecorder(gym.make("CartPole-v1"), folder, chunk_steps=16, flush_seconds=0.05,
                             segment_seconds=0.05)
    folder.chmod(0o500)
    try:
        with pytest.raises(RecordingError):
            for e in range(200):
                env.reset(seed=e)
                done = False
                while not done:
                    _, _, te, tr, _ = env.step(0)
                    done = te or tr
            env.close()
    finally:
        folder.chmod(0o700)
        _close_quietly(env)
