"""examples/ray_train_bc.py end to end with a tiny budget, in a subprocess: Ray Data -> Ray Train -> a policy file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import trajarena as arena

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_ray_train_example_records_reads_and_trains(tmp_path):
    pytest.importorskip("ray.train.torch")
    from trajarena.learn.policy import load_policy

    from trajarena.learn.rollout import record

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    data, out = tmp_path / "data", tmp_path / "p.pt"
    # recorded here, so the example goes straight to Ray Data and Ray Train (record_ray has its own tests)
    record("duel", "expert", episodes=2, out=data, settings={"step_ratio": 12, "frame_shape": (48, 72, 1)},
           progress=False)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "ray_train_bc.py"), "--data", str(data),
         "--address", "local", "--workers", "2", "--cpus-per-worker", "0.5", "--epochs", "1", "--max-rows", "512",
         "--out", str(out), "--storage", str(tmp_path / "ray_results")],
        capture_output=True, text=True, timeout=400, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "trained on 2 episodes with 2 Ray Train workers" in proc.stdout
    assert arena.verify(data).episodes == 2
    policy = load_policy(out)
    assert policy.meta["trained"] == {"epochs": 1, "workers": 2, "engine": "ray.train"}
    game = arena.make("duel", policy.meta["env_settings"])
    obs, _ = game.reset(seed=0)
    assert game.action_space.contains(np.asarray(policy.predict(obs)))
