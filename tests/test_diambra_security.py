"""DIAMBRA recordings are pickles: a crafted one runs nothing, a bz2 bomb costs nothing, bad bytes give typed errors."""

from __future__ import annotations

import bz2
import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _diambra import V21, V22
from trajarena.errors import CorruptFileError, FormatError
from trajarena.interop.diambra import import_diambra, read_diambra
from trajarena.interop.diambra.protobuf import decode_env_settings
from trajarena.interop.diambra.unpickle import load_bz2_pickle

ROOT = Path(__file__).resolve().parents[1]


class _Payload:
    """A pickle that, loaded with ``pickle.load``, would run a shell command (as a crafted file would)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _diambra_file(path: Path, payload) -> Path:
    """A .diambra file laid out as DIAMBRA writes it, with ``payload`` where the username goes."""
    content = {"episode_summary": {"steps": 1, "username": payload, "env_settings": None},
               "data": [{"obs": {}, "action": 0, "reward": 0, "terminated": True, "truncated": False, "info": {}}]}
    path.write_bytes(bz2.compress(pickle.dumps(content, protocol=4)))
    return path


@pytest.mark.parametrize("func, args, named", [
    (os.system, lambda m: (f"touch {m}",), "posix.system"),
    (subprocess.check_call, lambda m: (["touch", str(m)],), "subprocess.check_call"),
    (eval, lambda m: (f"open({str(m)!r}, 'w')",), "builtins.eval"),
    (__import__("importlib").import_module, lambda m: ("os",), "importlib.import_module"),
])
def test_a_crafted_diambra_file_runs_nothing_and_names_the_global(tmp_path, func, args, named):
    marker = tmp_path / "owned"
    payload = _Payload(func, *args(marker))
    path = _diambra_file(tmp_path / "2026-01-01_00-00-00.diambra", payload)
    with pytest.raises(FormatError, match=named.replace(".", r"\.")) as err:
        read_diambra(path)
    assert "refused without importing or calling it" in str(err.value)
    summary = import_diambra(path, tmp_path / "out", on_error="skip")
    assert summary.failed and named in summary.failed[0][1] and not summary.files
    assert not marker.exists()
    assert not list((tmp_path / "out").glob("*"))  # a failed file leaves nothing behind


def test_the_import_command_reports_a_crafted_file_and_exits_1(tmp_path):
    from typer.testing import CliRunner

    from trajarena.cli import app

    marker = tmp_path / "owned"
    path = _diambra_file(tmp_path / "evil.diambra", _Payload(os.system, f"touch {marker}"))
    result = CliRunner().invoke(app, ["import", "diambra", str(path), str(V22[0]), "--out", str(tmp_path / "out")])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "posix.system" in text and "imported 1 DIAMBRA file(s)" in text
    assert not marker.exists()


@pytest.mark.parametrize("pickled", [
    pickle.dumps(np.array([1, 2], dtype=object), protocol=4),               # object arrays could hold code
    pickle.dumps(np.dtype([("a", "i4")]), protocol=4),                      # structured dtypes
    b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00" b"cnumpy\ndtype\n(S'O8'\nI0\nI1\ntR.",  # dtype('O8')
    b"\x80\x04(c__builtin__\nexec\nS'1'\no.",                               # INST/OBJ with a callable
    b"\x80\x04P1\n.",                                                       # persistent id
])
def test_other_ways_into_code_are_refused(pickled):
    with pytest.raises(FormatError):
        load_bz2_pickle(io.BytesIO(bz2.compress(pickled)), "crafted")


_MEASURE = textwrap.dedent("""
    import bz2, io, json, resource, sys, time
    from trajarena.errors import FormatError
    from trajarena.interop.diambra.unpickle import load_bz2_pickle
    blob = open(sys.argv[1], "rb").read()
    limit = int(sys.argv[2])
    start = time.process_time()  # CPU seconds: the work the bomb caused, not the machine's load
    try:
        load_bz2_pickle(io.BytesIO(blob), "bomb", **({"max_bytes": limit} if limit else {}))
        error = None
    except FormatError as exc:
        error = str(exc)
    seconds = time.process_time() - start
    try:  # this process's own peak (ru_maxrss may carry the parent's peak across fork + exec)
        status = open("/proc/self/status").read()
        peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB (Linux reports kB)
    print(json.dumps({"error": error, "seconds": seconds, "peak_mb": peak}))
""")


def _bz2_of(parts, zeros: int) -> bytes:
    compressor = bz2.BZ2Compressor(9)
    out = [compressor.compress(p) for p in parts]
    block = bytes(1 << 20)
    out += [compressor.compress(block) for _ in range(zeros >> 20)]
    return b"".join(out) + compressor.flush()


def _bombs() -> dict[str, tuple[bytes, int]]:
    huge = struct.pack("<Q", 900 << 20)
    many = [b"\x80\x04]("] + [b"B" + struct.pack("<I", 1 << 20) + bytes(1 << 20) for _ in range(96)]
    return {
        # 900 MB of zeros declared as one object: refused before anything is allocated or decompressed
        "declared": (_bz2_of([b"\x80\x04\x8e" + huge], 8 << 20), 0),
        # 64 MB of zeros with no pickle in it
        "zeros": (_bz2_of([], 64 << 20), 0),
        # 96 objects of 1 MB: refused when the decompressed total reaches max_bytes
        "many": (_bz2_of(many, 0), 48 << 20),
    }


@pytest.mark.parametrize("kind", ["declared", "zeros", "many"])
def test_a_bz2_bomb_is_refused_quickly_with_bounded_memory(tmp_path, kind):
    blob, limit = _bombs()[kind]
    assert len(blob) < 100_000
    path = tmp_path / "bomb.diambra"
    path.write_bytes(blob)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    run = subprocess.run([sys.executable, "-c", _MEASURE, str(path), str(limit)], capture_output=True, text=True,
                         timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["error"] is not None
    assert result["peak_mb"] < 300 and result["seconds"] < 1.0, result


def test_a_truncated_recording_is_a_corrupt_file_error(tmp_path):
    cut = tmp_path / "cut.diambra"
    cut.write_bytes(V22[0].read_bytes()[:3000])
    with pytest.raises(CorruptFileError, match="ends early"):
        read_diambra(cut)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["episode_summary"].update(steps=99), "episode_summary.steps is 99"),
    (lambda d: d["data"][3].pop("action"), "step 3: the step has no 'action'"),
    (lambda d: d["data"][2].update(action=[9, 99]), "outside MultiDiscrete"),
    (lambda d: d["data"][1]["obs"]["P1"].update(character=99), r"P1.character is 99, outside Discrete\(11\)"),
    (lambda d: d["data"][1]["obs"].pop("timer"), "the observation has the keys"),
    (lambda d: d["data"][4].update(reward=float("nan")), "not a finite number"),
    (lambda d: d["data"][0]["obs"].update(frame=np.zeros(10, np.uint8)), "not a readable JPEG"),
])
def test_a_damaged_22_recording_says_what_and_where(tmp_path, change, message):
    data = load_bz2_pickle(open(V22[2], "rb"), "x")  # doapp_1p_md_rgb: DIAMBRA's layout, decoded safely
    change(data)
    from trajarena.interop.diambra.v22 import read_v22

    with pytest.raises(FormatError, match=message):
        rec = read_v22(data, "ep.diambra")
        list(rec.steps())


def test_a_file_of_another_kind_is_refused_before_unpickling(tmp_path):
    other = tmp_path / "notes.diambra"
    other.write_text("hello")
    with pytest.raises(FormatError, match="does not start like one"):
        import_diambra(other, tmp_path / "out")
    with pytest.raises(FormatError, match="not a DIAMBRA 2.1 or 2.2 recording"):
        path = tmp_path / "list.diambra"
        path.write_bytes(bz2.compress(pickle.dumps({"a": 1})))
        read_diambra(path)


_VALID = [bytes.fromhex(json.loads(p.read_text())["episode_summary"]["env_settings"]["serialized_hex"])
          for p in sorted((ROOT / "tests/data/diambra/expected/v22").glob("*/*.json"))]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_the_protobuf_decoder_gives_a_dict_or_a_format_error_for_any_bytes(data):
    try:
        fields = decode_env_settings(data)
    except FormatError:
        return
    assert set(fields) >= {"game_id", "frame_shape", "episode_settings"}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_VALID), st.integers(0, 200), st.integers(0, 255), st.integers(0, 200))
def test_truncated_or_mutated_settings_never_crash_the_decoder(valid, cut, byte, where):
    for data in (valid[:cut], valid[:where] + bytes([byte]) + valid[where + 1:]):
        try:
            decode_env_settings(data)
        except FormatError:
            pass


def test_every_fixture_settings_message_decodes_to_what_protobuf_says():
    for path in sorted((ROOT / "tests/data/diambra/expected/v22").glob("*/*.json")):
        ref = json.loads(path.read_text())["episode_summary"]["env_settings"]
        mine = decode_env_settings(bytes.fromhex(ref["serialized_hex"]))
        for key, value in ref["fields"].items():
            if key == "episode_settings":
                for k, v in value.items():
                    if k != "player_settings":
                        assert mine[key][k] == v
                for a, b in zip(mine[key]["player_settings"], value["player_settings"], strict=True):
                    assert {k: a[k] for k in b} == b
            else:
                assert mine[key] == value, key


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_the_unpickler_gives_data_or_a_format_error_for_any_bytes(data):
    for blob in (bz2.compress(data), bz2.compress(b"\x80\x04" + data), data):
        try:
            load_bz2_pickle(io.BytesIO(blob), "random")
        except FormatError:
            pass


def test_the_fixtures_use_only_the_globals_allowed(tmp_path):
    from trajarena.interop.diambra.unpickle import ALLOWED_GLOBALS

    seen = set()
    for path in V22 + V21:
        rel = path.relative_to(ROOT / "tests/data/diambra")
        ref = json.loads((ROOT / "tests/data/diambra/expected" / rel.parent / (rel.name + ".json")).read_text())
        seen |= {tuple(g) for g in ref["pickle_globals"]}
    assert seen <= set(ALLOWED_GLOBALS)


_CONVERT = r"a DIAMBRA Arena 2\.x recording .*nothing in it was unpickled\. Convert it with `trajarena import diambra"


def test_imitation_learning_recognises_a_diambra_file_without_unpickling_it(tmp_path):
    import trajarena as arena
    from trajarena.errors import TrajArenaError

    marker = tmp_path / "owned"
    crafted = _diambra_file(tmp_path / "evil.diambra", _Payload(os.system, f"touch {marker}"))
    for path in (V22[0], V21[0], crafted, V22[0].parent):
        with pytest.raises(TrajArenaError, match=_CONVERT):
            arena.ImitationLearning([str(path)])
    assert not marker.exists()


@pytest.mark.parametrize("command", ["info", "verify"])
def test_info_and_verify_recognise_diambra_files(command):
    from typer.testing import CliRunner

    from trajarena.cli import app

    for path in (V22[0], V21[0], V22[0].parent):
        result = CliRunner().invoke(app, [command, str(path)])
        said = result.output + str(result.exception or "")  # the real CLI's main() prints a raised library error
        assert result.exit_code != 0
        assert re.search(_CONVERT, " ".join(said.split())), said


def test_verify_fails_on_a_folder_without_trajectory_files(tmp_path):
    from typer.testing import CliRunner

    from trajarena.cli import app

    (tmp_path / "notes.txt").write_text("no recordings here")
    assert CliRunner().invoke(app, ["verify", str(tmp_path)]).exit_code != 0


@pytest.mark.parametrize("protocol", [4, 5])  # 4: Python 3.8-3.13, 5: from 3.14
def test_numpy_values_load_from_the_pickle_protocols_diambra_writes(protocol):
    value = {"frame": np.arange(24, dtype=np.uint8).reshape(2, 3, 4), "fortran": np.asfortranarray(np.ones((2, 3))),
             "every_other": np.arange(10)[::2], "scalar": np.int64(7), "grey": np.zeros((2, 2), ">f4")}
    out = load_bz2_pickle(io.BytesIO(bz2.compress(pickle.dumps(value, protocol=protocol))), "p")
    for key, array in value.items():
        assert np.array_equal(out[key], array) and out[key].dtype == array.dtype, key


def test_without_diambras_game_table_22_files_name_the_extra_and_21_files_still_import(tmp_path, monkeypatch):
    from trajarena.errors import MissingDependencyError
    from trajarena.interop.diambra import games

    monkeypatch.setattr(games, "installed_table_path", lambda: None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'trajarena\[diambra\]'"):
        import_diambra(V22[0], tmp_path)
    pytest.importorskip("PIL")
    summary = import_diambra(V21[0], tmp_path)  # 2.1 files store their spaces; only the game id is unknown
    assert summary.steps > 0 and summary.imported[0].version == "2.1"
    assert read_diambra(V21[0], game="doapp").env_id == "doapp" and read_diambra(V21[0]).env_id == "diambra-unknown"
