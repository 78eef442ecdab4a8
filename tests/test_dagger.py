"""Streaming training data, DAgger rounds and parallel evaluation (issue 14)."""

from __future__ import annotations

import numpy as np
import pyarrow.ipc as ipc
import pytest
import torch
from gymnasium import spaces

from trajarena.errors import MismatchError, SettingsError
from trajarena.learn.bc import BCPolicy, fit, load_demonstrations, split_by_episode, train_bc
from trajarena.learn.dagger import DaggerConfig, dagger
from trajarena.learn.data import Demonstrations, StreamingDemonstrations, concat_sources, epoch_batches
from trajarena.learn.evaluate import evaluate
from trajarena.learn.rollout import record

SETTINGS = {"difficulty": 3, "role": "P1", "frame_shape": (24, 32, 1)}


@pytest.fixture(scope="module")
def duel_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("duel")
    record("duel", "expert", episodes=2, workers=1, out=out, settings=SETTINGS,
           wrappers_settings={"stack_frames": 2}, progress=False, seed=0)
    return out


def test_streaming_source_gives_the_same_batches_as_the_in_memory_one(duel_files, tmp_path):
    memory = load_demonstrations(duel_files, max_steps=900)
    with load_demonstrations(duel_files, max_steps=900, stream=True, cache_dir=tmp_path / "cache") as stream:
        assert isinstance(memory, Demonstrations) and isinstance(stream, StreamingDemonstrations)
        assert len(stream) == len(memory) == 900 and stream.image_shape == (24, 32, 2)
        assert stream.path.parent == tmp_path / "cache" and stream.path.stat().st_size == 900 * 24 * 32 * 2
        train, _ = split_by_episode(memory, 0.0, seed=0)
        for a, b in zip(epoch_batches(train, 64, torch.Generator().manual_seed(3)),
                        epoch_batches(train, 64, torch.Generator().manual_seed(3)), strict=True):
            x, y = memory.gather(a), stream.gather(b)
            assert np.array_equal(x.image, y.image) and np.array_equal(x.vector, y.vector)
            assert np.array_equal(x.actions, y.actions) and np.array_equal(x.weight, y.weight)
        # unsorted and repeated indices too
        idx = np.array([5, 3, 3, 899, 0])
        assert np.array_equal(memory.gather(idx).image, stream.gather(idx).image)
        ra = train_bc(memory, tmp_path / "a.pt", epochs=2, progress=False, seed=1)
        rb = train_bc(stream, tmp_path / "b.pt", epochs=2, progress=False, seed=1)
        assert [e.train_loss for e in ra.history] == [e.train_loss for e in rb.history]
    assert not stream.path.exists() or stream._fd is None
    assert train_bc(duel_files, tmp_path / "c.pt", epochs=2, progress=False, seed=1, max_steps=900,
                    stream=True).history[0].train_loss == ra.history[0].train_loss


def test_epoch_batches_cover_every_row_once_in_sorted_batches():
    batches = list(epoch_batches(10, 3, torch.Generator().manual_seed(0)))
    assert sorted(np.concatenate(batches).tolist()) == list(range(10)) and [len(b) for b in batches] == [3, 3, 3, 1]
    assert all(np.all(np.diff(b) > 0) for b in batches)
    again = list(epoch_batches(10, 3, torch.Generator().manual_seed(0)))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


def test_labelled_files_carry_expert_action_and_the_target_is_the_label(tmp_path):
    played = record("duel", "random", episodes=1, workers=1, out=tmp_path / "r", settings=SETTINGS,
                    wrappers_settings={"stack_frames": 2}, progress=False, seed=5, label_with="expert")
    with ipc.open_file(played.files[0]) as f:  # a plain Arrow reader sees the labels as an info column
        table = f.read_all()
    labels = table.column("info/expert_action").drop_null()
    assert len(labels) == played.steps and table.schema.field("info/expert_action") is not None
    demos = load_demonstrations(played.files)
    label_rows = np.array(labels.to_pylist(), np.int64)
    assert np.array_equal(demos.actions, label_rows)  # targets are the expert's labels, not the random actions
    assert 0 <= demos.meta["labelled"]["agreement"] < 0.5 and demos.meta["labelled"]["steps"] == played.steps


def _agreement(policy: BCPolicy, source) -> float:
    batch = source.gather(np.arange(len(source)))
    with torch.no_grad():
        outs = policy.logits(batch.image, batch.vector)
    pred = np.stack([o.argmax(1).numpy() for o in outs], axis=1)
    return float(np.mean(np.all(pred == batch.actions, axis=1)))


def test_a_dagger_round_raises_agreement_with_the_expert_on_learner_visited_states(duel_files, tmp_path):
    source = load_demonstrations(duel_files, max_steps=600, stream=True)
    train, val = split_by_episode(source, 0.0, seed=0)
    policy = BCPolicy.create(source.observation_space, source.action_space, seed=0, meta=dict(source.meta))
    history = fit(policy, source, train, val, epochs=1, progress=False)
    cfg = DaggerConfig(rounds=1, episodes=2, epochs=4, out=str(tmp_path / "labelled"))
    agg, history, rounds = dagger(policy, source, history, cfg, val_fraction=0.0, progress=False)
    try:
        (r,) = rounds
        visited = load_demonstrations(tmp_path / "labelled" / "round-1")
        assert r.steps == len(visited) and r.data_steps == len(agg) == 600 + len(visited)
        after = _agreement(policy, visited)
        assert after > r.agreement + 0.05, (r.agreement, after)  # on the very states the learner visited
        assert len(history) == 1 + 4 and history[-1].epoch == 5
    finally:
        agg.close()


def test_train_bc_with_dagger_rounds_reports_each_round(duel_files, tmp_path):
    result = train_bc(duel_files, tmp_path / "p.pt", epochs=1, progress=False, max_steps=500, dagger_rounds=2,
                      dagger={"episodes": 1, "epochs": 1})
    assert [r.round for r in result.dagger] == [1, 2] and len(result.history) == 3
    assert BCPolicy.load(result.path).meta["trained"]["dagger"][1]["round"] == 2
    assert result.to_dict()["dagger"][0]["episodes"] == 1
    with pytest.raises(SettingsError, match="unknown DAgger setting"):
        DaggerConfig.from_any({"episode": 3})
    with pytest.raises(SettingsError, match="dagger_rounds"):
        train_bc(duel_files, tmp_path / "x.pt", dagger_rounds=-1, progress=False)


def test_concat_refuses_different_spaces(duel_files):
    a = load_demonstrations(duel_files, max_steps=10)
    b = Demonstrations.from_steps([np.zeros(2, np.float32)], [0], [0], spaces.Box(0, 1, (2,), np.float32),
                                  spaces.Discrete(2))
    with pytest.raises(MismatchError, match="different spaces"):
        concat_sources(a, b)


@pytest.mark.slow
def test_evaluate_with_two_workers_equals_one(duel_files, tmp_path):
    trained = train_bc(duel_files, tmp_path / "p.pt", epochs=1, progress=False, max_steps=300)
    kwargs = {"episodes": 3, "seed": 40, "difficulty": 3, "max_steps": 150, "progress": False}
    one = evaluate(trained.path, **kwargs, workers=1).to_dict()
    two = evaluate(trained.path, **kwargs, workers=2).to_dict()
    for r in one["results"] + two["results"]:
        r.pop("seconds")
    assert one == two and [r["name"] for r in one["results"]] == ["p", "expert", "random"]
    with pytest.raises(SettingsError, match="workers"):
        evaluate("expert", "duel", episodes=1, workers=0)


def test_dagger_and_evaluate_workers_from_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from trajarena.cli import app

    runner = CliRunner()
    record("CartPole-v1", "expert", episodes=2, workers=1, out=tmp_path / "d", progress=False)
    result = runner.invoke(app, ["dagger", str(tmp_path / "d"), "--out", str(tmp_path / "p.pt"), "--epochs", "1",
                                 "--rounds", "1", "--episodes", "1", "--round-epochs", "1",
                                 "--labelled", str(tmp_path / "lab"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "round 1: agreement with the expert" in result.output and (tmp_path / "p.pt").exists()
    assert list((tmp_path / "lab" / "round-1").glob("*.arrow"))
    tables = [runner.invoke(app, ["evaluate", "expert", "--env", "CartPole-v1", "-n", "2", "-b", "random",
                                  "--workers", w, "--no-progress"]) for w in ("1", "2")]
    assert all(t.exit_code == 0 for t in tables) and tables[0].output == tables[1].output
