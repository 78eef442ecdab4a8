"""PyTorch datasets: every transition exactly once per epoch over DataLoader workers and ranks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from test_imitation import DUEL_FAST, record

torch = pytest.importorskip("torch")

from torch.utils.data import BatchSampler, DataLoader, RandomSampler  # noqa: E402

from trajarena.replay.dataset import TrajectoryDataset  # noqa: E402
from trajarena.errors import SettingsError  # noqa: E402
from trajarena.replay.torch_data import TransitionDataset, TransitionIterableDataset  # noqa: E402


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cp")
    record("CartPole-v1", folder / "a", 3, seed=0)
    record("CartPole-v1", folder / "b", 2, seed=5)
    return folder


@pytest.fixture(scope="module")
def duel(tmp_path_factory):
    folder = tmp_path_factory.mktemp("duel")
    record("duel", folder, 1, DUEL_FAST)
    return folder


def _check_values(ds: TrajectoryDataset, batch: dict) -> None:
    expect = ds.transitions(batch["index"].numpy())
    assert np.array_equal(batch["obs"].numpy(), expect.obs)
    assert np.array_equal(batch["next_obs"].numpy(), expect.next_obs)
    assert np.array_equal(batch["action"].numpy(), expect.action)
    assert np.array_equal(batch["reward"].numpy(), expect.reward)


def test_map_style_two_workers_each_transition_once(cartpole):
    ds = TransitionDataset(cartpole)
    loader = DataLoader(ds, batch_size=7, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0))
    seen = []
    for batch in loader:
        _check_values(ds.data, batch)
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(len(ds)))


def test_map_style_batched_fetch_with_batch_sampler(cartpole):
    ds = TransitionDataset(cartpole)
    sampler = BatchSampler(RandomSampler(ds, generator=torch.Generator().manual_seed(1)), 16, drop_last=False)
    seen = []
    for batch in DataLoader(ds, sampler=sampler, batch_size=None, num_workers=0):
        assert batch["obs"].dtype == torch.float32 and batch["terminated"].dtype == torch.bool
        _check_values(ds.data, batch)
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(len(ds)))


@pytest.mark.parametrize("batch_size", [None, 5])
def test_iterable_two_workers_each_transition_once_per_epoch(cartpole, batch_size):
    ds = TransitionIterableDataset(cartpole, batch_size=batch_size, seed=3)
    loader = DataLoader(ds, batch_size=None if batch_size else 4, num_workers=2)
    epochs = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        seen = []
        for batch in loader:
            _check_values(ds.data, batch)
            seen += batch["index"].tolist()
        assert sorted(seen) == list(range(len(ds.data)))
        epochs.append(seen)
    assert epochs[0] != epochs[1]  # a new permutation each epoch


def test_iterable_shards_over_ranks_and_workers_without_padding(cartpole):
    data = TrajectoryDataset(cartpole)
    assert len(data) % 3 != 0  # else padding would not be exercised elsewhere
    seen, counts = [], []
    for rank in range(3):
        ds = TransitionIterableDataset(data, batch_size=4, rank=rank, world_size=3, shuffle=False, pad=False)
        batches = list(DataLoader(ds, batch_size=None, num_workers=2))
        assert len(ds) == len(batches)
        counts.append(sum(len(b["index"]) for b in batches))
        seen += [i for b in batches for i in b["index"].tolist()]
    assert sorted(seen) == list(range(len(data)))  # each transition exactly once over ranks and workers
    assert max(counts) - min(counts) <= 1
    with pytest.raises(SettingsError):
        TransitionIterableDataset(data, rank=1)


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # 3 workers on a 2-core runner
@pytest.mark.parametrize("num_workers", [0, 2, 3])
@pytest.mark.parametrize("drop_last", [False, True])
def test_iterable_len_is_exact_for_any_worker_count(cartpole, num_workers, drop_last):
    bs = 7
    ds = TransitionIterableDataset(cartpole, batch_size=bs, seed=1, drop_last=drop_last)
    n = len(ds.data)
    assert n % bs != 0
    batches = list(DataLoader(ds, batch_size=None, num_workers=num_workers))
    assert len(ds) == len(batches) == (n // bs if drop_last else -(-n // bs))
    sizes = [len(b["index"]) for b in batches]
    assert sizes[:-1] == [bs] * (len(sizes) - 1)  # at most one partial batch, and it comes last
    rows = [i for b in batches for i in b["index"].tolist()]
    assert len(rows) == len(set(rows)) == (n - n % bs if drop_last else n)  # drop_last drops < bs rows
    # the same batches in the same order as in the main process, whatever the worker count
    ref = [b["index"].tolist() for b in ds]
    assert [b["index"].tolist() for b in batches] == ref


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_iterable_len_exact_unbatched_with_workers(cartpole):
    ds = TransitionIterableDataset(cartpole, seed=2)
    items = list(DataLoader(ds, batch_size=None, num_workers=3))
    assert len(ds) == len(items) == len(ds.data)
    assert sorted(int(x["index"]) for x in items) == list(range(len(ds.data)))


@pytest.mark.parametrize("batch_size", [None, 4])
def test_iterable_padding_gives_every_rank_the_same_count(cartpole, batch_size):
    data = TrajectoryDataset(cartpole)
    n, world = len(data), 3
    per_rank, seen = [], []
    for rank in range(world):
        ds = TransitionIterableDataset(data, batch_size=batch_size, rank=rank, world_size=world, seed=4)
        ds.set_epoch(1)
        out = list(DataLoader(ds, batch_size=None, num_workers=2 if rank == 1 else 0))
        assert len(ds) == len(out)
        idx = [int(i) for x in out for i in x["index"].reshape(-1).tolist()]
        per_rank.append((len(out), len(idx)))
        seen += idx
    assert len(set(per_rank)) == 1 and per_rank[0][1] == -(-n // world)  # equal counts keep DDP in step
    assert sorted(set(seen)) == list(range(n))  # every transition still appears
    assert len(seen) - n == -n % world  # padding repeats only world_size - 1 indices at most
def test_nested_observations_and_windows(duel):
    ds = TransitionDataset(duel, window=3)
    item = ds[0]
    assert item["obs"]["frame"].shape == (3, 32, 48, 3) and item["obs"]["frame"].dtype == torch.uint8
    assert item["mask"].tolist() == [True, True, True]
    last = ds[len(ds) - 1]
    assert last["mask"].tolist() == [True, False, False]
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["obs"]["P1"]["health"].shape == (4, 3, 1)


def test_pickle_reopens_in_worker(cartpole):
    ds = TransitionIterableDataset(cartpole, batch_size=8)
    clone = pickle.loads(pickle.dumps(ds))
    assert len(clone.data) == len(ds.data) and len(pickle.dumps(ds)) < 4000


@pytest.mark.slow
def test_training_loop_example_runs(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    out = subprocess.run(
        [sys.executable, str(root / "examples" / "torch_training_loop.py"), "--dataset", str(tmp_path / "ds"),
         "--record-episodes", "1", "--epochs", "1", "--num-workers", "0", "--batch-size", "256"],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    ).stdout
    assert "epoch 0: loss" in out
