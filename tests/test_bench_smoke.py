"""Smoke tests of the bench scripts: each runs end to end with ``--quick`` in a subprocess.

In the main venv Minari (and maybe ale-py) are not installed: the scripts then report those
columns as ``n/a (...)`` and still measure the raw env (and trajarena once it exists). With the
bench venv (``bench/requirements.txt``) the Minari baselines run too.
"""

from __future__ import annotations

import doctest
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def _run(script: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    env.setdefault("SDL_VIDEODRIVER", "dummy")
    env["MINARI_DATASETS_PATH"] = str(tmp_path / "minari-home")  # never write to ~/.minari
    cmd = [sys.executable, str(BENCH / script), "--quick", "--results-dir", str(tmp_path / "results"), *extra]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _load(tmp_path: Path, name: str) -> dict:
    return json.loads((tmp_path / "results" / f"{name}.json").read_text())


def _is_figure_or_na(value) -> bool:
    return value is None or isinstance(value, (int, float)) or str(value).startswith("n/a")


def test_bench_record_quick(tmp_path):
    proc = _run("bench_record.py", tmp_path, "--workdir", str(tmp_path))
    assert "| env | steps | raw steps/s |" in proc.stdout
    speed = _load(tmp_path, "record_speed")
    rows = {row["env"]: row for row in speed["rows"]}
    assert set(rows) == {"duel", "CartPole-v1", "ALE/Boxing-v5"}
    cartpole = rows["CartPole-v1"]
    assert isinstance(cartpole["raw steps/s"], float) and cartpole["raw steps/s"] > 0
    assert cartpole["steps"] == 2_000
    for row in speed["rows"]:
        assert all(_is_figure_or_na(v) for k, v in row.items() if k != "env")
    low, mid, high = (cartpole[f"trajarena/raw{s}"] for s in (" lowest round", "", " highest round"))
    assert 0 < low <= mid <= high  # a median ratio lies between the rounds' (the median is monotone)
    size = {row["env"]: row for row in _load(tmp_path, "record_bytes")["rows"]}
    assert size["CartPole-v1"]["npz B/step"] > 0  # the npz baseline needs nothing optional
    for name in ("record_pauses", "record_memory"):
        assert _load(tmp_path, name)["rows"], name
    # temporary recordings are cleaned up; only the results folder remains
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("trajarena-")) == []


def test_record_paired_quick(tmp_path):
    proc = _run("record_paired.py", tmp_path, "--envs", "duel", "CartPole-v1")
    assert "[duel] pair ratios:" in proc.stdout and "[CartPole-v1] pair ratios:" in proc.stdout
    rows = {row["env"]: row for row in _load(tmp_path, "record_paired")["rows"]}
    assert set(rows) == {"duel", "CartPole-v1"}
    for row in rows.values():
        assert row["pairs x steps"] == "4 x 50"
        q1, q3 = map(float, row["ratio q1 - q3"].split(" - "))
        assert 0 < q1 <= row["ratio median"] <= q3 and row["ratio of totals"] > 0 and row["close() ms"] > 0
        assert row["raw steps/s"] > 0 and row["recording steps/s"] > 0


def test_listener_study_quick(tmp_path):
    proc = _run("listener_study.py", tmp_path)
    assert "[CartPole-v1] round 0 poll:" in proc.stdout
    rows = {row["variant"]: row for row in _load(tmp_path, "listener_study")["rows"]}
    assert list(rows) == ["raw", "watch", "poll", "thread"]
    assert rows["raw"]["ratio to raw"] == 1.0 and rows["raw"]["writer process CPU us/step"] == 0.0
    for row in rows.values():
        assert row["runs"] == 1 and row["steps/s"] > 0 and row["game process CPU us/step"] > 0
    assert rows["watch"]["writer process CPU us/step"] > 0 and rows["thread"]["writer process CPU us/step"] == 0.0


def test_record_study_quick(tmp_path):
    proc = _run("record_study.py", tmp_path)
    assert "Where the recording overhead goes (duel, 3 rounds x 120 steps)" in proc.stdout
    rows = {row["variant"]: row for row in _load(tmp_path, "record_study")["rows"]}
    assert list(rows) == ["raw env", "recorder", "no frame copy", "no compression", "zstd level 1", "zstd level 3",
                          "zstd level 5", "chunk handoff (recorder), us per chunk"]
    assert rows["raw env"]["us/step over raw, median"] > 0
    assert rows["chunk handoff (recorder), us per chunk"]["us/step over raw, median"] > 0  # a chunk a block
    assert rows["recorder"]["us/step saved vs recorder, median"] is None  # the reference itself
    for name in ("zstd level 1", "zstd level 5"):
        assert 0 < rows[name]["ratio of totals"] and isinstance(rows[name]["us/step saved vs recorder, median"], float)
    # the recordings are real: uncompressed frames take far more room than zstd's XOR-coded ones
    assert rows["no compression"]["bytes/step"] > 10 * rows["zstd level 5"]["bytes/step"] > 0


def test_bench_replay_quick(tmp_path):
    proc = _run("bench_replay.py", tmp_path, "--envs", "CartPole-v1", "--workdir", str(tmp_path))
    assert "Replay and random access" in proc.stdout
    rows = _load(tmp_path, "replay")["rows"]
    assert [r["measure"] for r in rows] == [
        "sequential steps (reader)", "sequential steps (dataset)", "sequential steps (ImitationLearning env)",
        "random transitions (single, reader)",
        "random transitions (single, dataset)", "random transitions (batch 32, dataset)"]
    for row in rows:
        assert _is_figure_or_na(row["trajarena /s"]) and _is_figure_or_na(row["Minari /s"])


def test_bench_export_quick(tmp_path):
    proc = _run("bench_export.py", tmp_path, "--workdir", str(tmp_path))
    assert "Export speed" in proc.stdout
    rows = _load(tmp_path, "export")["rows"]
    assert {(r["export"], r["env"]) for r in rows} >= {("Parquet (zstd)", "duel"), ("Parquet (zstd)", "CartPole-v1")}
    for row in rows:
        assert _is_figure_or_na(row["steps/s"]) and _is_figure_or_na(row["B/step out"])
    assert all(isinstance(r["steps/s"], float) for r in rows if r["export"].startswith("Parquet"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("trajarena-export-")]


def test_bench_view_quick(tmp_path):
    proc = _run("bench_view.py", tmp_path, "--workdir", str(tmp_path))
    assert "Viewer export" in proc.stdout
    rows = _load(tmp_path, "view")["rows"]
    assert [r["data"] for r in rows] == ["duel, 128x192x3", "duel, 84x84 grey", "CartPole-v1"]
    for row in rows:
        assert all(_is_figure_or_na(v) for k, v in row.items() if k != "data")
        assert isinstance(row["Parquet steps/s"], float)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("trajarena-view-")]


@pytest.mark.slow
def test_bench_ray_quick(tmp_path):
    pytest.importorskip("ray")
    proc = _run("bench_ray.py", tmp_path, "--workdir", str(tmp_path))
    assert "Ray tasks vs local processes" in proc.stdout and "Ray Data vs one process" in proc.stdout
    rows = {r["recording"]: r for r in _load(tmp_path, "ray_record")["rows"]}
    assert set(rows) == {"local, 1 process", "local, 2 processes (--workers 2)", "Ray, 1 worker, 1 task",
                         "Ray, 1 worker, 1 episode per task", "Ray, 2 workers, 2 tasks",
                         "Ray, 2 workers, 1 episode per task"}
    assert rows["Ray, 1 worker, 1 episode per task"]["tasks"] == 4 and rows["Ray, 2 workers, 2 tasks"]["tasks"] == 2
    assert len({r["steps"] for r in rows.values()}) == 1  # the same episodes every time
    assert all(isinstance(r["steps/s"], float) and r["steps/s"] > 0 for r in rows.values())
    reads = _load(tmp_path, "ray_read")["rows"]
    assert [r["read"] for r in reads][0] == "one process (no Ray)" and len({r["transitions"] for r in reads}) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("trajarena-ray-")]


@pytest.mark.slow
def test_run_all_quick_writes_targets(tmp_path):
    proc = _run("run_all.py", tmp_path, "--no-others")
    assert "Targets (DESIGN.md §5)" in proc.stdout
    results = {p.stem for p in (tmp_path / "results").glob("*.json")}
    assert {"record_speed", "record_bytes", "record_pauses", "record_memory", "replay", "targets"} <= results
    targets = _load(tmp_path, "targets")
    assert len(targets["rows"]) == 13
    assert all(row["met"] in (None, "yes", "NO") for row in targets["rows"])


@pytest.mark.parametrize("module", ["_common", "_envs"])
def test_bench_helpers_doctests(module, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_table_and_pause_helpers(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    common = importlib.import_module("_common")
    stats = common.pause_stats([0.002] * 90 + [0.5] * 10)
    assert stats["count"] == 100 and stats["p50_ms"] == 2.0 and stats["max_ms"] == 500.0
    assert stats["p99_first_ms"] == 2.0 and stats["p99_last_ms"] == 500.0  # a growing pause shows
    table = common.Table("t", ["a", "b"], title="T")
    table.add_row(a="x", b=None)
    with pytest.raises(KeyError, match="valid"):
        table.add_row(c=1)
    saved = json.loads(table.save(tmp_path).read_text())
    assert saved["rows"] == [{"a": "x", "b": None}] and "python" in saved["machine"]
    assert "| x | n/a |" in table.markdown()
