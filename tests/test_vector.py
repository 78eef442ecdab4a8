"""Vector envs of ranks (Gymnasium sync/async, SB3 Dummy/Subproc) and the stop-on-exhausted callback."""

from __future__ import annotations

import numpy as np
import pytest
from test_imitation import record

from trajarena.errors import SettingsError
from trajarena.replay.vector import all_exhausted, make_sb3_vec_env, make_vector_env, rank_env_fns


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cartpole")
    live = record("CartPole-v1", folder, 5, seed=0)
    return folder, live


def _drain(venv, n_steps=2000):
    """Step until every sub-env is exhausted; return the recorded actions seen per sub-env."""
    venv.reset()
    actions = [[] for _ in range(venv.num_envs)]
    for _ in range(n_steps):
        if all_exhausted(venv):
            return actions
        _, _, _, _, info = venv.step(venv.action_space.sample())
        for i in range(venv.num_envs):
            if "action" in info and info["_action"][i]:
                actions[i].append(int(info["action"][i]))
    raise AssertionError("the vector env never became exhausted")


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_gymnasium_vector_env_of_ranks_covers_all_steps(cartpole, vectorization):
    folder, live = cartpole
    venv = make_vector_env(folder, num_envs=2, vectorization=vectorization)
    try:
        actions = _drain(venv)
    finally:
        venv.close()
    total = sum(len(ep) - 1 for ep in live)
    assert sum(len(a) for a in actions) == total
    assert all(len(a) > 0 for a in actions)


def test_rank_env_fns_validate_and_offset_seeds(cartpole):
    folder, _ = cartpole
    fns = rank_env_fns(folder, 3, shuffle=True, seed=5)
    envs = [fn() for fn in fns]
    assert [e.replay.rank for e in envs] == [0, 1, 2] and {e.replay.total_cpus for e in envs} == {3}
    with pytest.raises(SettingsError, match="rank"):
        rank_env_fns(folder, 2, rank=1)
    with pytest.raises(SettingsError, match="num_envs"):
        make_vector_env(folder, num_envs=0)


def test_sb3_ppo_runs_on_replay_and_stops_at_exhaustion(cartpole):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from trajarena.replay.vector import StopTrainingOnExhausted

    folder, live = cartpole
    total = sum(len(ep) - 1 for ep in live)
    venv = make_sb3_vec_env(folder, num_envs=2)
    callback = StopTrainingOnExhausted()
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=100_000, callback=callback)
    assert callback.stopped_at is not None and model.num_timesteps < 100_000
    assert all(venv.get_attr("exhausted"))
    # every step of the data was seen before the stop (the vector env steps both ranks together)
    assert model.num_timesteps >= total
    venv.close()


def test_sb3_subproc_and_callback_modes(cartpole):
    pytest.importorskip("stable_baselines3")
    from trajarena.replay.vector import StopTrainingOnExhausted

    folder, _ = cartpole
    venv = make_sb3_vec_env(folder, num_envs=2, subproc=True, start_method="fork", monitor=False)
    try:
        obs = venv.reset()
        assert obs.shape == (2, 4)
        seen = 0
        while not all_exhausted(venv):
            _, _, dones, infos = venv.step(np.zeros(2, dtype=np.int64))
            seen += sum("action" in i for i in infos)
        assert all_exhausted(venv, "any")
    finally:
        venv.close()
    with pytest.raises(SettingsError, match="mode"):
        StopTrainingOnExhausted(mode="sometimes")
