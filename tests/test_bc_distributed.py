"""train-bc under torchrun: 2 processes (gloo on CPU), every transition once per epoch, replicas in sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trajarena.learn.distributed import DataParallel

SRC = str(Path(__file__).resolve().parents[1] / "src")

#: Run by torchrun in each rank: records the steps every training epoch got and the weights after it.
SPY = '''
import json, os, sys
import trajarena.learn.fitting as fitting

real, calls = fitting._pass, []

def spy(policy, demos, idx, batch_size, opt, *args):
    out = real(policy, demos, idx, batch_size, opt, *args)
    if opt is not None:
        weights = float(sum(p.detach().double().sum() for p in policy.net.parameters()))
        calls.append({"idx": [int(i) for i in idx], "batch": batch_size, "net": type(policy.net).__name__,
                      "weights": weights})
    return out

fitting._pass = spy  # one epoch's pass over a rank's rows (what DataParallel.epoch runs)
from trajarena.cli.app import main
try:
    main(sys.argv[1:])
finally:
    with open(os.path.join(os.environ["SPY_DIR"], "rank%s.json" % os.environ["RANK"]), "w") as f:
        json.dump({"world": int(os.environ["WORLD_SIZE"]), "calls": calls}, f)
'''


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_rank_shards_hold_every_step_once(world):
    idx = np.random.default_rng(world).permutation(101)
    shards = [DataParallel(rank=r, world_size=world).shard(idx) for r in range(world)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(101))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert sum(DataParallel(rank=r, world_size=world).local_batch(64) for r in range(world)) >= 64


def test_one_process_is_unchanged():
    dp = DataParallel.from_env()
    assert (dp.rank, dp.world_size, dp.enabled, dp.is_main) == (0, 1, False, True)
    assert dp.epoch(lambda *a: (0.5, 0.25), None, None, np.arange(3), 8, object()) == (0.5, 0.25)
    assert dp.finish(lambda: Path("p.pt"), "p.pt") == Path("p.pt")


@pytest.mark.slow
def test_torchrun_two_ranks_train_on_every_transition_once_per_epoch(tmp_path):
    pytest.importorskip("torch")
    from trajarena.learn.bc import load_demonstrations, split_by_episode
    from trajarena.learn.policy import load_policy
    from trajarena.learn.rollout import record

    data, policy = tmp_path / "data", tmp_path / "p.pt"
    record("CartPole-v1", "expert", episodes=3, out=data, progress=False)
    spy = tmp_path / "spy.py"
    spy.write_text(SPY)
    env = {**os.environ, "PYTHONPATH": SRC, "SPY_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(spy),
           "train-bc", str(data), "-o", str(policy), "--epochs", "2", "--batch-size", "64",
           "--val-fraction", "0.34", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("saved") == 1  # rank 0 reports, rank 1 is silent
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2]
    demos = load_demonstrations(data)
    train_idx, _ = split_by_episode(demos, 0.34, seed=0)
    for epoch in range(2):
        a, b = (r["calls"][epoch] for r in ranks)
        assert a["net"] == b["net"] == "DistributedDataParallel" and a["batch"] == b["batch"] == 32
        assert not set(a["idx"]) & set(b["idx"])  # disjoint shards ...
        assert sorted(a["idx"] + b["idx"]) == sorted(train_idx.tolist())  # ... that hold every step once
        assert a["weights"] == pytest.approx(b["weights"], rel=1e-9)  # DDP keeps the replicas equal
    saved = load_policy(policy)
    assert len(saved.meta["history"]) == 2
