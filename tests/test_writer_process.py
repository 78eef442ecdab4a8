"""The writer process (``writer="process"``): same files as the thread, crash behaviour, hostile messages."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trajarena.errors import RecordingError, SettingsError
from trajarena.format import writer_process
from trajarena.format.integrity import repair, verify
from trajarena.format.reader import TrajectoryReader
from trajarena.format.writer import TrajectoryWriter
from trajarena.format.writer_wire import pack, pack_chunk, unpack

ROOT = Path(__file__).resolve().parents[1]
FRAME = spaces.Dict(frame=spaces.Box(0, 255, (6, 5, 3), np.uint8), hp=spaces.Box(0, 9, (), np.float32))
ACT = spaces.MultiDiscrete([3, 2])


def play(folder: Path, script: list[tuple], seed: int, shape: tuple = (6, 5, 3), **options) -> TrajectoryWriter:
    """Run one script of writer calls; the values come from ``seed``, so two runs write the same."""
    rng = np.random.default_rng(seed)

    def obs() -> dict:
        return {"frame": rng.integers(0, 256, shape, np.uint8), "hp": np.float32(rng.integers(0, 9))}

    space = spaces.Dict(frame=spaces.Box(0, 255, shape, np.uint8), hp=FRAME["hp"])
    w = TrajectoryWriter(folder, space, ACT, {"env_id": "test"}, segment_seconds=1e9, **options)
    for op, arg in script:
        if op == "reset":
            w.reset(obs(), {"round": arg}, seed=arg)
        elif op == "step" and w._t >= 0:
            info = {"t": w._t} if arg % 3 else {"t": w._t, "late": np.float32(arg)}  # "late" appears mid-file
            w.step(rng.integers(0, [3, 2]), obs(), float(rng.normal()), arg % 7 == 0, False, info)
        elif op == "discard":
            w.discard()
        elif op == "flush":
            w.flush()
    w.close()
    return w


def contents(folder: Path) -> list:
    if not list(folder.glob("*.arrow")):
        return []
    r = TrajectoryReader(folder)
    out = []
    for i, e in enumerate(r.episodes):
        ep = r.read_episode(i)
        out.append((e.length, e.seed, e.total_return, e.end_reason, e.terminated, ep.observations["frame"].tobytes(),
                    ep.observations["hp"].tolist(), ep.actions.tolist(), ep.rewards.tolist(),
                    {k: np.asarray(v).tolist() for k, v in ep.infos.items()}))
    return out


ops = st.lists(st.tuples(st.sampled_from(["reset", "step", "step", "step", "step", "discard", "flush"]),
                         st.integers(0, 50)), min_size=1, max_size=40)


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(script=ops, chunk=st.integers(1, 6))
def test_the_process_writes_what_the_thread_writes(tmp_path_factory, script, chunk) -> None:
    thread, process = tmp_path_factory.mktemp("thread"), tmp_path_factory.mktemp("process")
    wt = play(thread, [("reset", 0), *script], 7, chunk_steps=chunk, writer="thread", max_pending=1)
    wp = play(process, [("reset", 0), *script], 7, chunk_steps=chunk, writer="process", max_pending=1)
    assert (wt.mode, wp.mode) == ("thread", "process")
    assert contents(process) == contents(thread)
    assert len(wp.files) == len(wt.files) and all(p.exists() for p in wp.files)
    assert sorted(p.name for p in process.iterdir()) == sorted(p.name for p in wp.files)  # no .partial left
    if wp.files:
        assert verify(process).clean


def test_info_keys_that_change_place_in_shared_memory_are_read_where_they_now_are(tmp_path: Path) -> None:
    """A key dropped and another one added: as many info columns as before, at other places."""
    infos = [{"a": 1}] * 5 + [{"a": "text", "b": np.float32(2.5)}] * 5 + [{"b": np.float32(3.5), "c": 7}] * 6
    o = {"frame": np.ones((6, 5, 3), np.uint8), "hp": np.float32(2)}
    for mode in ("thread", "process"):
        w = TrajectoryWriter(tmp_path / mode, FRAME, ACT, writer=mode, chunk_steps=2, max_pending=1)
        w.reset(o, seed=0)
        for i, info in enumerate(infos):
            w.step([0, 0], o, float(i), False, False, info)
        w.close()
    assert contents(tmp_path / "process") == contents(tmp_path / "thread")
    infos = TrajectoryReader(tmp_path / "process").read_episode(0).infos
    assert np.asarray(infos["b"]).tolist()[-6:] == [3.5] * 6 and np.asarray(infos["c"]).tolist()[-6:] == [7] * 6


def test_more_chunks_than_shared_slots_are_reused_in_order(tmp_path: Path) -> None:
    script = [("reset", 0)] + [("step", i + 1) for i in range(300)]
    w = play(tmp_path, script, 3, chunk_steps=2, writer="process", max_pending=1)  # 3 slots, 150 chunks
    assert w._slots == 3
    (ep, *rest) = contents(tmp_path)
    thread = play(tmp_path / "t", script, 3, chunk_steps=2, writer="thread")
    assert [ep, *rest] == contents(tmp_path / "t") and thread.files


def test_auto_uses_a_process_while_a_core_is_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = spaces.Box(0, 255, (128, 96, 3), np.uint8)  # 36 kB a row
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    first = TrajectoryWriter(tmp_path, big, ACT)
    small = TrajectoryWriter(tmp_path, spaces.Box(0, 1, (4,)), ACT)  # CartPole-like rows too (no GIL convoy)
    third = TrajectoryWriter(tmp_path, big, ACT)  # 3 cores: at most 2 writer processes
    text = TrajectoryWriter(tmp_path, spaces.Dict(f=big, t=spaces.Text(8)), ACT)  # Text leaves: the thread
    try:
        assert [w.mode for w in (first, small, third, text)] == ["process", "process", "thread", "thread"]
    finally:
        for w in (first, small, third, text):
            w.close()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    with TrajectoryWriter(tmp_path, big, ACT) as w:
        assert w.mode == "thread"  # one core: a process would only take turns with the game


def _resident(buffer) -> int:
    """Resident bytes of the mapping that starts at ``buffer`` (Linux smaps)."""
    start, inside = np.frombuffer(buffer, np.uint8).ctypes.data, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            inside = int(head.split("-")[0], 16) == start
        elif inside and head == "Rss:":
            return int(line.split()[1]) << 10
    raise AssertionError("no such mapping")


@pytest.mark.parametrize("shape, touched", [((128, 96, 3), True), ((4,), False)])
def test_only_frame_rows_get_their_shared_memory_before_the_first_step(tmp_path: Path, shape, touched) -> None:
    """Frames would take page faults in the game loop (18 a ``duel`` step); small rows hold only what they fill."""
    with TrajectoryWriter(tmp_path, spaces.Box(0, 255, shape, np.uint8), ACT, writer="process") as w:
        chunks = w._link.shared.slots * w._link.shared.slot_bytes
        held = _resident(w._link.shared._map)
        assert (held >= chunks) if touched else (held < chunks // 100), (held, chunks)


def test_writer_setting_is_checked(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="writer"):
        TrajectoryWriter(tmp_path, FRAME, ACT, writer="fork")
    with pytest.raises(SettingsError, match="Text leaves"):
        TrajectoryWriter(tmp_path, spaces.Text(5), ACT, writer="process")


@pytest.mark.parametrize("python", ["/nonexistent/python", "/bin/false"])
def test_a_writer_process_that_cannot_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, python: str) -> None:
    monkeypatch.setattr(writer_process.sys, "executable", python)
    with pytest.raises(RecordingError, match="writer process did not start|Cannot start the writer process"):
        TrajectoryWriter(tmp_path, FRAME, ACT, writer="process")
    big = spaces.Box(0, 255, (128, 96, 3), np.uint8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    with TrajectoryWriter(tmp_path, big, ACT) as w:  # auto: the thread takes over
        w.reset(np.zeros((128, 96, 3), np.uint8))
        w.step([0, 0], np.ones((128, 96, 3), np.uint8), 1.0, True, False)
    assert w.mode == "thread" and TrajectoryReader(w.files).num_steps == 1


def test_a_killed_writer_process_is_a_recording_error_and_its_file_is_repaired(tmp_path: Path) -> None:
    w = TrajectoryWriter(tmp_path, FRAME, ACT, chunk_steps=4, writer="process", segment_seconds=1e9)
    o = {"frame": np.zeros((6, 5, 3), np.uint8), "hp": np.float32(1)}
    w.reset(o, seed=1)
    for t in range(6):
        w.step([0, 1], o, 1.0, t == 5, False)
    w.flush()
    deadline = time.monotonic() + 60
    while int(w._link.shared.done[0]) < 2:  # both chunks written
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(w._link.proc.pid, signal.SIGKILL)
    with pytest.raises(RecordingError, match="writer process"):
        w.reset(o)
        for _ in range(200):
            w.step([0, 0], o, 0.0, False, False)
            time.sleep(0.01)
    with pytest.raises(RecordingError, match="writer process"):
        w.close()
    report = repair(tmp_path, force=True)
    assert report.repaired and verify(tmp_path).clean
    assert [(e.length, e.seed) for e in TrajectoryReader(tmp_path).episodes] == [(6, 1)]


CHILD = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{src!r}]
    import numpy as np
    from gymnasium import spaces
    from trajarena.format.writer import TrajectoryWriter
    folder, log_path, side = sys.argv[1], sys.argv[2], int(sys.argv[3])
    space = spaces.Box(0, 255, (side, 64, 3), np.uint8)
    w = TrajectoryWriter(folder, space, spaces.Discrete(4), {{}}, writer="process", segment_seconds=0.3)
    log = open(log_path, "w")
    log.write(f"ready {{w._link.proc.pid}}\\n"); log.flush()
    e = 0
    while True:
        w.reset(np.full((side, 64, 3), e % 256, np.uint8), seed=e)
        n = 20 + e % 30
        for t in range(n):
            w.step(t % 4, np.full((side, 64, 3), (e + t) % 256, np.uint8), 1.0, t == n - 1, False)
            time.sleep(0.0005)
        log.write(f"{{e}} {{n}} {{time.monotonic()}}\\n"); log.flush()
        e += 1
""").format(src=str(ROOT / "src"))


@pytest.mark.slow
@pytest.mark.parametrize("side", [64, 96])  # 12 kB rows; 18 kB rows, whose frames the copier thread moves
def test_killing_the_game_process_loses_no_episode_it_handed_over(tmp_path: Path, side: int) -> None:
    rng = np.random.default_rng(7)
    for run in range(3):
        folder, log = tmp_path / f"run{run}", tmp_path / f"run{run}.log"
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), str(log), str(side)])
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text().startswith("ready")):
            assert proc.poll() is None and time.monotonic() < deadline, "the recording child never started"
            time.sleep(0.01)
        writer_pid = int(log.read_text().split()[1])
        time.sleep(float(rng.uniform(0.3, 1.5)))
        os.kill(proc.pid, signal.SIGKILL)
        kill_time = time.monotonic()
        proc.wait(timeout=30)
        while _alive(writer_pid):  # the writer process writes what it was handed, then exits by itself
            assert time.monotonic() < kill_time + 20, "the writer process outlived the game process"
            time.sleep(0.02)
        repair(folder, force=True)
        ended = {int(e): int(n) for e, n, when in (line.split() for line in log.read_text().splitlines()[1:])
                 if float(when) <= kill_time - 0.1}
        reader = TrajectoryReader(folder)
        got = {e.episode: e for e in reader.episodes}
        assert set(ended) <= set(got), f"run {run}: episodes {sorted(set(ended) - set(got))} lost"
        for e, n in ended.items():
            assert got[e].length == n and got[e].end_reason == "env"
            frames = reader.read_episode(list(got).index(e)).observations
            assert frames[:, 0, 0, 0].tolist() == [e % 256] + [(e + t) % 256 for t in range(n)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (exited, not yet reaped by init) counts as gone
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("c_watch", [True, False])
def test_a_paused_game_loop_is_flushed_by_the_process_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          c_watch: bool) -> None:
    """Its listener looks at the game loop's clock in C (``_capture.watch``) or, built without the C
    module, in Python every poll: either way it writes what a paused game loop finished."""
    if not c_watch:
        monkeypatch.setattr(writer_process, "_capture", None)
    w = TrajectoryWriter(tmp_path, FRAME, ACT, chunk_steps=100, flush_seconds=0.05, segment_seconds=1e9,
                         writer="process")
    o = {"frame": np.ones((6, 5, 3), np.uint8), "hp": np.float32(2)}
    w.reset(o, seed=3)
    for t in range(5):
        w.step([1, 0], o, 1.0, t == 4, False)
    w.reset(o)
    w.step([2, 1], o, 2.0, False, False)
    deadline = time.monotonic() + 60
    while True:  # no call into the writer: its listening thread hands the finished rows over
        time.sleep(0.05)
        try:
            live = TrajectoryReader(tmp_path, include_partial=True)
        except Exception:  # noqa: BLE001 - not written yet
            live = None
        if live is not None and live.num_steps == 6 or time.monotonic() > deadline:
            break
    assert [(e.length, e.end_reason) for e in live.episodes] == [(5, "env"), (1, "unfinished")]
    for t in range(3):
        w.step([0, 0], o, 1.0, t == 2, False)
    w.close()
    reader = TrajectoryReader(tmp_path)
    assert [(e.length, e.total_return) for e in reader.episodes] == [(5, 5.0), (4, 5.0)]
    assert reader.read_column(1, "step").tolist() == [0, 1, 2, 3, 4]


def test_messages_round_trip_and_bad_ones_are_value_errors() -> None:
    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.array([True, False])
    header, (a2, b2) = unpack(pack({"kind": "rows", "x": [1, None]}, [a, b]))
    assert header == {"kind": "rows", "x": [1, None]} and np.array_equal(a, a2) and np.array_equal(b, b2)
    good = pack({"k": 1}, [a])
    head = json.dumps({"k": 1, "arrays": [["|O", [1]]]}).encode()
    bad = [b"", good[:3], good[:-1], good + b"x", (10**6).to_bytes(4, "little") + good[4:],
           len(head).to_bytes(4, "little") + head + b"\0" * 8,
           _message({"arrays": [["<f4", [-1]]]}), _message({"arrays": [["<f4", [2**40]]]}),
           _message({"arrays": [["not a dtype", [1]]]}), _message({"arrays": 5}), _message([1, 2]),
           _message({"no": "arrays"}), b"\4\0\0\0\xff\xfe\xfd\xfc"]
    for data in bad:
        with pytest.raises(ValueError):
            unpack(data)


def _message(header) -> bytes:
    head = json.dumps(header).encode()
    return len(head).to_bytes(4, "little") + head


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=200))
def test_random_bytes_are_never_more_than_a_value_error(data) -> None:
    try:
        unpack(data)
    except ValueError:
        pass


_STARTS = st.lists(st.one_of(
    st.tuples(st.integers(0, 2**40), st.integers(0, 2**40), st.integers(0, 2**40)).map(list),
    st.tuples(st.integers(0, 2**40), st.integers(0, 2**40), st.just(0),
              st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))).map(list)), max_size=6)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(slot=st.integers(0, 2**32 - 1), lo=st.integers(0, 2**20), n=st.integers(0, 2**20), starts=_STARTS,
       rotate=st.booleans(), fill_s=st.floats(0, 1e6), copied=st.integers(0, 2**64 - 1))
def test_a_chunk_record_reads_back_as_the_json_chunk_message(slot, lo, n, starts, rotate, fill_s, copied) -> None:
    header = {"kind": "chunk", "slot": slot, "lo": lo, "hi": lo + n, "starts": starts, "ends": [], "info": [],
              "rotate": rotate, "fill_s": fill_s, "copied": copied}
    assert unpack(pack_chunk(slot, lo, lo + n, starts, rotate, fill_s, copied)) == (header, [])
    assert unpack(pack(header)) == (header, [])  # what the child gets either way


def test_values_a_chunk_record_cannot_hold_are_left_to_json() -> None:
    assert pack_chunk(0, 0, 5, [[0, 1, 0, 2**64]], False, 0.0) is None  # a seed past 64 bits
    assert pack_chunk(-1, 0, 5, [], False, 0.0) is None
    assert pack_chunk(0, 0, 5, [[0, 1]], False, 0.0) is None


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=200))
def test_a_damaged_chunk_record_is_a_value_error(tail) -> None:
    good = pack_chunk(1, 0, 9, [[0, 3, 7], [4, 4, 0, 11]], True, 0.25)
    for data in (b"\xff\xff\xff\xff" + tail, good[: len(tail) % len(good)], good + tail[:1],
                 good[:-8] + tail[:8].ljust(8, b"\0")):
        try:
            header, arrays = unpack(data)
        except ValueError:
            continue
        assert header["kind"] == "chunk" and arrays == [] and all(len(s) in (3, 4) for s in header["starts"])


def test_a_sleeping_reader_is_woken_by_every_chunk_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """The nap-then-sleep handshake: a missed wake-up would leave the reader asleep for a minute."""
    from multiprocessing.connection import Connection

    from trajarena.format import writer_child

    monkeypatch.setattr(writer_child, "_SLEEP_MS", 60_000)
    monkeypatch.setattr(writer_child, "_NAPS", 2)
    r, w = os.pipe()
    wake = os.eventfd(0, os.EFD_CLOEXEC)
    link = writer_process.WriterLink.__new__(writer_process.WriterLink)  # only its sending half, to a thread
    link.broken, link._out, link._wake = False, Connection(w, readable=False), wake
    link.shared = types.SimpleNamespace(asleep=np.zeros(1, np.uint64))
    inbox, got = Connection(r, writable=False), []

    def reader() -> None:
        for _ in range(120):
            got.append(unpack(writer_child._next_message(inbox, wake, os.getppid(), link.shared.asleep))[0]["slot"])

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    delays = [0.0, 0.0003, 0.001, 0.002, 0.004, 0.02]  # around the naps (2 x 1 ms): napping, falling asleep, asleep
    slept = 0
    for i in range(120):
        time.sleep(delays[i % len(delays)])
        slept += int(link.shared.asleep[0])
        assert link.send_chunk(i, 0, 1, [], False, 0.0)
    thread.join(timeout=30)
    assert not thread.is_alive() and got == list(range(120))
    assert slept  # the reader did fall asleep between some of them
    inbox.close()
    link._out.close()
    os.close(wake)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity")
def test_a_writer_process_on_one_core_sleeps_at_once_and_every_chunk_wakes_it(tmp_path: Path) -> None:
    """No naps on one core (they would take it from the game loop): every chunk goes through the wake-up."""
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # the child inherits it
    try:
        w = TrajectoryWriter(tmp_path, FRAME, ACT, writer="process", chunk_steps=2, max_pending=1)
    finally:
        os.sched_setaffinity(0, cores)
    o = {"frame": np.ones((6, 5, 3), np.uint8), "hp": np.float32(2)}
    w.reset(o, seed=0)
    waits = []
    # one chunk at a time, then nothing: the writer process must be woken for each; chunks 3 and 5 end an
    # episode (a JSON message), the others are binary records
    script = [["step"], ["step", "step"], ["step", "end"], ["reset", "step"], ["step", "end"], ["reset", "step"]]
    for k, calls in enumerate(script, 1):
        for call in calls:
            if call == "reset":
                w.reset(o, seed=k)
            else:
                w.step([0, 0], o, 1.0, call == "end", False)
        start = time.monotonic()
        while int(w._link.shared.done[0]) < k:
            assert time.monotonic() - start < 60
            time.sleep(0.001)
        waits.append(time.monotonic() - start)
    w.close()
    # woken, each is written within milliseconds; a missed wake-up waits out the child's 1 s sleep, which
    # starts as it finishes the chunk before (no naps): ~1 s each (the slowest one may be a slow start)
    assert sorted(waits)[-2] < 0.3, waits
    assert [e.length for e in TrajectoryReader(tmp_path).episodes] == [5, 3, 1]


def test_the_writer_process_sleeps_when_idle_and_the_next_chunk_wakes_it(tmp_path: Path) -> None:
    w = TrajectoryWriter(tmp_path, FRAME, ACT, writer="process", chunk_steps=4)
    o = {"frame": np.ones((6, 5, 3), np.uint8), "hp": np.float32(2)}
    w.reset(o, seed=0)
    for k in (1, 2):
        for _ in range(4):
            w.step([0, 0], o, 1.0, False, False)
        deadline = time.monotonic() + 60
        while not (int(w._link.shared.done[0]) >= k and w._link.shared.asleep[0]):  # written, then asleep
            assert time.monotonic() < deadline
            time.sleep(0.01)
    w.close()
    assert [e.length for e in TrajectoryReader(tmp_path).episodes] == [8]


def test_no_writer_process_is_left_running(tmp_path: Path) -> None:
    w = TrajectoryWriter(tmp_path, FRAME, ACT, writer="process")
    pid = w._link.proc.pid
    before = writer_process._running[0]
    w.close()
    assert writer_process._running[0] == before - 1
    assert w._link.proc.wait(timeout=60) == 0 and not _alive(pid)  # it exits on its own once every file is done


def test_the_writer_process_is_reaped_after_close_without_a_wait(tmp_path: Path) -> None:
    w = TrajectoryWriter(tmp_path, FRAME, ACT, writer="process")
    pid, threads = w._link.proc.pid, threading.active_count()
    w.close()
    assert threading.active_count() <= threads  # close() starts no thread (one took up to 4 ms to start)
    deadline = time.monotonic() + 60
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:  # a zombie still has its entry
        time.sleep(0.01)
    assert not os.path.exists(f"/proc/{pid}"), "the exited writer process was left a zombie"


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_a_forked_copy_never_writes_into_the_recording(tmp_path: Path, mode: str) -> None:
    o = {"frame": np.ones((6, 5, 3), np.uint8), "hp": np.float32(2)}
    w = TrajectoryWriter(tmp_path, FRAME, ACT, writer=mode, chunk_steps=3)
    w.reset(o, seed=1)
    w.step([1, 1], o, 1.0, False, False)
    release, released = os.pipe()
    pid = os.fork()
    if pid == 0:  # the copy: refused (step() writes nothing into the shared chunk), its exit hooks leave it alone
        os.close(released)
        code = 0
        for call in (lambda: w.step([2, 0], o, 100.0, False, False), lambda: w.reset(o)):
            try:
                call()
            except RecordingError as exc:
                code = code or (0 if "forked copy" in str(exc) else 3)
            else:
                code = 4
        w.close()
        w._atexit()  # its exit hook (not every hook of this worker: ray's or grpc's crash in a fork)
        select.select([release], [], [], 60)  # alive until the owner has closed: it must not hold the writer open
        os._exit(code)
    os.close(release)
    for t in range(4):
        w.step([0, 1], o, 2.0, t == 3, False)
    w.close()  # had it waited for the copy, it would return only when the copy gives up after 60 s, and exits
    assert os.waitpid(pid, os.WNOHANG) == (0, 0), "close() waited for the forked copy to exit"
    os.write(released, b"x")
    os.close(released)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    reader = TrajectoryReader(w.files)
    assert [(e.length, e.total_return) for e in reader.episodes] == [(5, 9.0)]
    assert reader.read_episode(0).rewards.tolist() == [1.0, 2.0, 2.0, 2.0, 2.0]


def test_repair_and_a_second_writer_leave_a_live_process_recording_alone(tmp_path: Path) -> None:
    o = {"frame": np.ones((6, 5, 3), np.uint8), "hp": np.float32(2)}
    w = TrajectoryWriter(tmp_path, FRAME, ACT, writer="process", chunk_steps=2, segment_seconds=1e9)
    other = TrajectoryWriter(tmp_path, FRAME, ACT, writer="process", chunk_steps=2, segment_seconds=1e9)
    for writer in (w, other):
        writer.reset(o, seed=0)
        for t in range(3):
            writer.step([1, 1], o, 1.0, False, False)
        writer.flush()
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("*.partial"))) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    report = repair(tmp_path, force=True)  # the writer processes hold the locks
    assert len(report.skipped) == 2 and all("lock" in why for why in report.skipped.values()) and not report.repaired
    for writer in (w, other):
        writer.step([0, 0], o, 1.0, True, False)
        writer.close()
    assert [e.length for e in TrajectoryReader(tmp_path).episodes] == [4, 4] and verify(tmp_path).clean


KILL_SELF = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = [{src!r}]
    import numpy as np
    from gymnasium import spaces
    from trajarena.format.writer import TrajectoryWriter
    w = TrajectoryWriter(sys.argv[1], spaces.Box(0, 255, (128, 96, 3), np.uint8), spaces.Discrete(2),
                         writer="process", chunk_steps=16, segment_steps=1, level=19)  # slow: chunks queue up
    rng = np.random.default_rng(0)
    for ep in range(8):
        w.reset(rng.integers(0, 256, (128, 96, 3), np.uint8), seed=ep)
        for t in range(15):
            w.step(0, rng.integers(0, 256, (128, 96, 3), np.uint8), 1.0, t == 14, False)
    if w._copier is not None:
        w._copier.wait()  # every chunk handed over has its frames in the shared memory (see the next test)
    print(w._link.proc.pid, int(w._link.shared.done[0]), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""").format(src=str(ROOT / "src"))


def test_the_writer_process_writes_every_queued_chunk_after_the_game_dies(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", KILL_SELF, str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    writer_pid, done = (int(x) for x in run.stdout.split())
    assert done < 8  # chunks were still queued at the kill (the test means something)
    deadline = time.monotonic() + 60
    while _alive(writer_pid):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    repair(tmp_path, force=True)
    reader = TrajectoryReader(tmp_path)
    assert sorted(e.seed for e in reader.episodes) == list(range(8)) and {e.length for e in reader.episodes} == {15}


def test_a_dropped_info_key_is_left_out_of_later_files_as_the_thread_does(tmp_path: Path) -> None:
    o = {"frame": np.ones((6, 5, 3), np.uint8), "hp": np.float32(2)}
    columns = {}
    for mode in ("thread", "process"):
        with TrajectoryWriter(tmp_path / mode, FRAME, ACT, writer=mode, chunk_steps=2, segment_steps=1) as w:
            for e, value in enumerate([1, np.zeros(3), 2]):  # the key is dropped when its shape changes
                w.reset(o, seed=e)
                w.step([0, 0], o, 1.0, True, False, {"k": value, 7: 1.5, ("a", 1): 2})  # non-string keys: dropped
        columns[mode] = [[n for n in TrajectoryReader(f).metadata["info_columns"]] for f in w.files]
        notes = TrajectoryReader(w.files).episodes[-1].notes
        assert "string" in notes["info/7"] and "changed" in notes["info/k"]
    assert columns["process"] == columns["thread"] and not columns["thread"][-1]


def test_no_shared_memory_falls_back_to_the_thread_and_leaks_nothing(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def denied(*args):
        raise PermissionError(errno.EPERM, "Operation not permitted")  # a seccomp filter

    big = spaces.Box(0, 255, (128, 96, 3), np.uint8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    fds = len(os.listdir("/proc/self/fd"))
    for name in ("memfd_create", "eventfd"):
        with monkeypatch.context() as m:
            m.setattr(os, name, denied)
            with pytest.raises(RecordingError, match="Cannot start the writer process"):
                TrajectoryWriter(tmp_path, big, ACT, writer="process")
            with TrajectoryWriter(tmp_path, big, ACT) as w:
                assert w.mode == "thread"
    assert len(os.listdir("/proc/self/fd")) <= fds  # nothing left open


SIGTERM_GROUP = textwrap.dedent("""
    import os, signal, sys, time
    sys.path[:0] = [{src!r}]
    import numpy as np
    from gymnasium import spaces
    from trajarena.format.writer import TrajectoryWriter
    signal.signal(signal.SIGTERM, lambda *a: None)  # a training loop that saves and exits on SIGTERM
    resource = __import__("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(min(1100, hard - 64))]  # descriptors above 1024
    w = TrajectoryWriter(sys.argv[1], spaces.Box(0, 255, (128, 96, 3), np.uint8), spaces.Discrete(2),
                         writer="process", chunk_steps=16)
    o = np.ones((128, 96, 3), np.uint8)
    w.reset(o, seed=0)
    for t in range(40):
        w.step(0, o, 1.0, False, False)
    os.killpg(0, signal.SIGTERM)  # what `timeout`, Slurm's scancel or `kill -- -PGID` do
    time.sleep(0.2)
    w.close()
    print(len(w.files))
""").format(src=str(ROOT / "src"))


def test_a_signal_to_the_game_process_group_lets_it_save(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", SIGTERM_GROUP, str(tmp_path)], capture_output=True, text=True,
                         timeout=120, start_new_session=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1"] and [e.length for e in TrajectoryReader(tmp_path).episodes] == [40]


def test_an_interrupted_send_stops_the_stream_and_keeps_what_was_written(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from multiprocessing.connection import Connection

    w = TrajectoryWriter(tmp_path, FRAME, ACT, writer="process", chunk_steps=4, segment_seconds=1e9)
    o = {"frame": np.ones((6, 5, 3), np.uint8), "hp": np.float32(2)}
    w.reset(o, seed=0)
    for _ in range(7):  # two chunks of 4 rows handed over
        w.step([0, 0], o, 1.0, False, False)
    deadline = time.monotonic() + 60
    while int(w._link.shared.done[0]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    def torn(self, data):  # Ctrl-C after half a message reached the pipe
        os.write(self.fileno(), len(data).to_bytes(4, "big") + bytes(data)[: len(data) // 2])
        raise KeyboardInterrupt

    def torn_write(fd, data):  # the same for a chunk's binary record (written with os.write)
        os.write(fd, bytes(data)[: len(data) // 2])
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Connection, "send_bytes", torn)
        patch.setattr(writer_process, "os", types.SimpleNamespace(**{**vars(os), "write": torn_write}))
        with pytest.raises(KeyboardInterrupt):
            for _ in range(4):  # the third chunk's handoff
                w.step([0, 0], o, 1.0, False, False)
    with pytest.raises(RecordingError, match="interrupted"):
        w.step([0, 0], o, 1.0, False, False)
    with pytest.raises(RecordingError, match="repair"):
        w.close()
    assert not _alive(w._link.proc.pid)
    repair(tmp_path, force=True)
    assert [(e.length, e.end_reason) for e in TrajectoryReader(tmp_path).episodes] == [(7, "crash")]


def test_the_writer_process_keeps_the_interpreters_isolation(tmp_path: Path) -> None:
    evil = tmp_path / "evil"
    evil.mkdir()
    marker = tmp_path / "ran.txt"
    (evil / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'a').write('ran')\n")
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(ROOT / 'src')!r}]
        import numpy as np
        from gymnasium import spaces
        from trajarena.format.writer import TrajectoryWriter
        TrajectoryWriter({str(tmp_path / 'data')!r}, spaces.Box(0, 255, (128, 96, 3), np.uint8), spaces.Discrete(2),
                         writer="process").close()
    """)
    env = {**os.environ, "PYTHONPATH": str(evil)}
    subprocess.run([sys.executable, "-I", "-c", script], check=True, env=env, timeout=120)
    assert not marker.exists()  # -I in the game process: PYTHONPATH is ignored in the writer process too


def test_an_idle_flush_between_reclaiming_and_binding_a_chunk_writes_nothing_twice(tmp_path: Path) -> None:
    # one interleaving, replayed: the child wrote the chunk just handed over before the game loop reclaimed it,
    # so _new_chunk returns the chunk still bound, and the listener flushes before _bind starts it afresh
    w = TrajectoryWriter(tmp_path, FRAME, ACT, writer="process", chunk_steps=8, flush_seconds=3600,
                         segment_seconds=1e9)
    o = {"frame": np.ones((6, 5, 3), np.uint8), "hp": np.float32(1)}
    reclaim, new_chunk, reused = w._reclaim, w._new_chunk, []

    def late_reclaim() -> None:
        deadline = time.monotonic() + 60
        while int(w._link.shared.done[0]) < w._reclaimed + len(w._inflight):
            assert time.monotonic() < deadline
            time.sleep(0.001)
        reclaim()

    def racing_new_chunk():
        chunk = new_chunk()
        if chunk is w._chunk:
            reused.append(chunk)
            w._idle_flush()
        return chunk

    w._reclaim, w._new_chunk = late_reclaim, racing_new_chunk
    w.reset(o, seed=0)
    for _ in range(3):
        w.step([0, 0], o, 1.0, False, False)
    w.flush()
    w.step([1, 1], o, 2.0, True, False)
    w.close()
    assert reused
    reader = TrajectoryReader(w.files)
    assert [(e.length, e.total_return) for e in reader.episodes] == [(4, 5.0)]
    assert reader.read_column(0, "step").tolist() == [0, 1, 2, 3, 4]


def test_info_columns_beyond_the_shared_arena_go_through_the_pipe(tmp_path_factory) -> None:
    from trajarena.format.writer import INFO_ARENA_ROW_BYTES

    keys = [f"k{i:02d}" for i in range(INFO_ARENA_ROW_BYTES // 24)]  # (2,) float64 + a flag: 17 bytes a row each
    folders = {}
    for mode in ("thread", "process"):
        rng = np.random.default_rng(3)
        folder = folders[mode] = tmp_path_factory.mktemp(mode)
        w = TrajectoryWriter(folder, FRAME, ACT, writer=mode, chunk_steps=4)
        o = {"frame": np.zeros((6, 5, 3), np.uint8), "hp": np.float32(1)}
        w.reset(o, seed=0)
        for t in range(11):
            info = {k: rng.normal(size=2) for k in keys if (t + int(k[1:])) % 3}  # some keys missing at each step
            w.step([t % 3, t % 2], o, 0.5, False, False, {**info, "t": t})
            if mode == "process" and t == 9:
                at = w._chunk.info_at  # some columns in the arena, the others sent in the messages
                assert at and len(at) < len(w._chunk.info) == len(keys) + 1
        w.close()
    assert contents(folders["process"]) == contents(folders["thread"])
    assert len(contents(folders["process"])[0][-1]) == len(keys) + 1


@pytest.mark.parametrize("at", [
    "k", [None], [["k", 0, 64, "<i8"]], [["k", 0, 0, "<i8", [], 0]], [[1, 0, 64, "<i8", []]], [["k", -8, 64, "<i8", []]],
    [["k", 0, -1, "<i8", []]], [["k", True, 64, "<i8", []]], [["k", 1.0, 64, "<i8", []]],
    [["k", 4, 64, "<i8", []]],  # 4: not aligned for int64
    [["k", 0, 64, "|O", []]], [["k", 0, 64, "<U3", []]], [["k", 0, 64, "no such dtype", []]],  # not numeric
    [["k", 0, 64, "<i8", [-1]]], [["k", 0, 64, "<i8", [2**40]]], [["k", 0, 64, "<i8", "3"]],  # bad shapes
    [["k", 1016, 64, "<i8", []]], [["k", 0, 1021, "<i8", []]], [["k", 2**62, 0, "<i8", []]],  # outside the 1 KiB arena
    [["k", 0, 64, "<i8", [200]]],  # 4 rows of 200 int64: larger than the arena
])
def test_shared_info_columns_outside_the_arena_are_refused(at) -> None:
    from trajarena.format.writer_child import _shared_info

    arena = np.zeros(1024, np.uint8)
    with pytest.raises(ValueError):
        _shared_info(arena, at, 4, 0, 4)
    values, present = _shared_info(arena, [["k", 1024 - 32, 0, "<i8", []]], 4, 1, 3)["k"]  # the last 32 bytes: fine
    assert values.shape == (2,) and present.shape == (2,)


def test_the_writer_process_frees_the_shared_chunks_once_its_files_are_done(tmp_path: Path) -> None:
    w = TrajectoryWriter(tmp_path, FRAME, ACT, writer="process", chunk_steps=2)
    o = {"frame": np.full((6, 5, 3), 7, np.uint8), "hp": np.float32(2)}
    w.reset(o, seed=1)
    for _ in range(5):
        w.step([1, 1], o, 1.0, False, False, {"t": 1})
    chunks = np.frombuffer(w._link.shared._map, np.uint8, w._link.shared.slots * w._link.shared.slot_bytes)
    assert chunks.any()
    w.close()
    assert w._link.proc.wait(timeout=60) == 0
    assert not chunks.any()  # its pages are gone (reads give zeros): the game process has nothing left to unmap
    assert contents(tmp_path)[0][5] == o["frame"].tobytes() * 6  # and everything was written before
