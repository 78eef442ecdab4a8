"""Damaged, hostile and foreign files raise the library's typed errors, never crash or lie."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from _helpers_format import SpriteDuel, rewrite_metadata, run_episodes
from trajarena.format import limits
from trajarena.format.messages import Flat
from trajarena.errors import CorruptFileError, FormatError
from trajarena.format.integrity import verify
from trajarena.format.reader import TrajectoryReader
from trajarena.recording.recorder import TrajectoryRecorder


@pytest.fixture(scope="module")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    env = TrajectoryRecorder(SpriteDuel(size=8, max_steps=12), folder, chunk_steps=5, username="alex")
    run_episodes(env, 2)
    env.close()
    (path,) = env.files
    return path


def load_all(path: Path) -> list:
    """Everything a user can get from a file: index, every episode and every step."""
    reader = TrajectoryReader(path)
    out = [reader.metadata["username"], [e.length for e in reader.episodes], [e.total_return for e in reader.episodes]]
    for ep in reader.iter_episodes():
        out += [ep.observations["frame"].tobytes(), ep.observations["P1"]["health"].tobytes(),
                ep.actions["agent_0"].tobytes(), ep.rewards.tobytes(), ep.terminations.tobytes(),
                ep.truncations.tobytes(), {k: v.tobytes() for k, v in ep.infos.items()}]
    return out


def damaged(tmp_path: Path, data: bytes, name: str = "x.arrow") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_random_and_empty_files_raise_format_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i, data in enumerate([b"", b"ARROW1", rng.bytes(10), rng.bytes(5000), b"ARROW1\0\0" + rng.bytes(3000)]):
        with pytest.raises(FormatError):
            load_all(damaged(tmp_path, data, f"r{i}.arrow"))


def test_foreign_arrow_file_and_newer_version(tmp_path: Path, good_file: Path) -> None:
    table = pa.table({"a": [1, 2, 3]})
    with pa.OSFile(str(tmp_path / "foreign.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    with pytest.raises(FormatError, match="not a trajarena"):
        load_all(tmp_path / "foreign.arrow")
    newer = rewrite_metadata(good_file, tmp_path / "newer.arrow", lambda m: {**m, "format_version": 99})
    with pytest.raises(FormatError, match="upgrade"):
        load_all(newer)


def test_hostile_metadata_with_valid_checksums(tmp_path: Path, good_file: Path) -> None:
    def huge_space(m):
        m["observation_space"]["spaces"]["frame"]["shape"] = [1 << 30, 1 << 30, 3]
        return m

    def huge_column(m):
        m["columns"][0]["shape"] = [1 << 30, 1 << 30, 3]
        return m

    for i, change in enumerate([huge_space, huge_column, lambda m: {**m, "columns": "x"}]):
        with pytest.raises(CorruptFileError):
            load_all(rewrite_metadata(good_file, tmp_path / f"h{i}.arrow", change))


def test_truncated_files_raise_corrupt(tmp_path: Path, good_file: Path) -> None:
    data = good_file.read_bytes()
    for cut in sorted({8, 100, len(data) // 3, len(data) // 2, len(data) - 200, len(data) - 7, len(data) - 1}):
        with pytest.raises(FormatError):
            load_all(damaged(tmp_path, data[:cut]))
        report = verify(tmp_path / "x.arrow")
        assert list(report.damaged) == [tmp_path / "x.arrow"]


def test_bit_flips_raise_or_change_nothing(tmp_path: Path, good_file: Path) -> None:
    data = good_file.read_bytes()
    expected = load_all(good_file)
    rng = np.random.default_rng(7)
    outcomes = {"error": 0, "same": 0}
    for pos in rng.choice(len(data), size=120, replace=False):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(8))
        path = damaged(tmp_path, bytes(flipped))
        try:
            got = load_all(path)
        except FormatError:
            outcomes["error"] += 1
            continue
        assert got == expected, f"a bit flip at byte {pos} changed the data silently"
        outcomes["same"] += 1  # padding or unused footer bytes
    assert outcomes["error"] > 60


def _first_batch(data: bytes) -> tuple[int, Flat, int]:
    """Byte position of the first record batch with rows: of its flatbuffer and of its body.

    (The writer's first batch is empty: it puts the schema on disk when the file opens.)
    """
    reader = pa.BufferReader(pa.py_buffer(data[8:]))
    pa.ipc.read_message(reader)  # schema
    while True:
        pos = 8 + reader.tell()
        pa.ipc.read_message(reader)
        (size,) = struct.unpack_from("<i", data, pos + 4)
        fb = Flat(data[pos + 8 : pos + 8 + size])
        length = fb.field(fb.ref(fb.field(fb.ref(0), 2)), 0)  # the batch's row count (absent when 0)
        if length is not None and fb.u("q", length):
            return pos + 8, fb, pos + 8 + size


def test_absurd_declared_sizes_raise_corrupt_before_allocating(tmp_path: Path, good_file: Path) -> None:
    data = good_file.read_bytes()
    meta_at, fb, body_at = _first_batch(data)
    root = fb.ref(0)
    batch = fb.ref(fb.field(root, 2))
    # 1. a record batch that declares 2**40 rows
    rows_at = meta_at + fb.field(batch, 0)
    bad = bytearray(data)
    bad[rows_at : rows_at + 8] = struct.pack("<q", 1 << 40)
    with pytest.raises(CorruptFileError, match="rows"):
        load_all(damaged(tmp_path, bytes(bad), "rows.arrow"))
    # 2. every compressed buffer that declares 2**50 uncompressed bytes (a decompression bomb)
    n, at = fb.vector(batch, 2)
    bombs = 0
    for i in range(n):
        off, length = fb.u("q", at + 16 * i), fb.u("q", at + 16 * i + 8)
        if length >= 8:
            bad = bytearray(data)
            bad[body_at + off : body_at + off + 8] = struct.pack("<q", 1 << 50)
            with pytest.raises(CorruptFileError, match="declares"):
                load_all(damaged(tmp_path, bytes(bad), f"bomb{i}.arrow"))
            bombs += 1
    assert bombs >= 5
    # 3. a buffer that points outside the body
    bad = bytearray(data)
    bad[meta_at + at + 8 : meta_at + at + 16] = struct.pack("<q", 1 << 40)
    with pytest.raises(CorruptFileError):
        load_all(damaged(tmp_path, bytes(bad), "outside.arrow"))


def test_damaged_chunk_metadata_is_caught_by_its_checksum(tmp_path: Path, good_file: Path) -> None:
    data = good_file.read_bytes()
    at = data.index(b'"length":')
    bad = data[:at] + b'"length":' + bytes([data[at + 9] ^ 1]) + data[at + 10 :]
    with pytest.raises(CorruptFileError):
        load_all(damaged(tmp_path, bad))
    assert zlib.crc32(bad) != zlib.crc32(data)


def test_a_legal_looking_but_huge_chunk_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Big declared shapes times many rows could still add up to a bomb: the chunk total is capped."""
    from gymnasium import spaces

    from trajarena.errors import SettingsError
    from trajarena.format.writer import TrajectoryWriter

    big = spaces.Box(0, 255, (1 << 20,), np.uint8)
    with pytest.raises(SettingsError, match="chunk"):
        TrajectoryWriter(tmp_path, big, spaces.Discrete(2), chunk_steps=4096)
    with TrajectoryWriter(tmp_path, big, spaces.Discrete(2), chunk_steps=2) as w:
        w.reset(np.zeros(1 << 20, np.uint8))
        w.step(0, np.ones(1 << 20, np.uint8), 0.0, True, False)
    assert TrajectoryReader(tmp_path).read_episode(0).observations.sum() == 1 << 20
    monkeypatch.setattr(limits, "MAX_CHUNK_BYTES", 1 << 20)  # as if the file declared > 1 GiB
    with pytest.raises(CorruptFileError, match="MAX_CHUNK_BYTES"):
        TrajectoryReader(tmp_path)


def _footer_variants(good_file: Path) -> dict[str, bytes]:
    from trajarena.format.index import index_file

    data = good_file.read_bytes()
    size = int.from_bytes(data[-10:-6], "little")
    start = len(data) - 10 - size
    meta_at = data.find(b'"username":"alex"', start)
    offsets = index_file(good_file).offsets
    block_at = data.find(offsets[1].to_bytes(8, "little"), start)
    assert start < meta_at and start < block_at
    variants = {
        "metadata": data[:meta_at] + b'"username":"eve!"' + data[meta_at + 17 :],  # same length, footer copy only
        "offsets": data[:block_at] + (offsets[1] + 8).to_bytes(8, "little") + data[block_at + 8 :],
        "garbage": data[: len(data) - 60] + b"\xff" * 8 + data[len(data) - 52 :],
    }
    return variants


@pytest.mark.parametrize("kind", ["metadata", "offsets", "garbage"])
def test_footer_must_repeat_the_stream_everywhere(tmp_path: Path, good_file: Path, kind: str) -> None:
    import trajarena as arena

    path = damaged(tmp_path, _footer_variants(good_file)[kind])
    assert path in verify(path).damaged
    with pytest.raises(CorruptFileError):
        TrajectoryReader(path)
    with pytest.raises(CorruptFileError):  # the replay env checks files the same way (no raw pyarrow errors)
        arena.ImitationLearning(traj_files_list=[str(path)])
