"""Behavioural cloning: observation encoding, training from recorded files, safe policy files, agents."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

from trajarena.learn.bc import (
    BCPolicy,
    Demonstrations,
    ObsEncoder,
    PolicyAgent,
    action_heads,
    load_demonstrations,
    load_policy_agent,
    train_bc,
)
from trajarena.learn.agents import make_agent
from trajarena.errors import FormatError, NotSupportedError, SettingsError
from trajarena.learn.evaluate import evaluate
from trajarena.learn.rollout import record


@pytest.fixture(scope="module")
def cartpole_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("cartpole")
    summary = record("CartPole-v1", "expert", episodes=10, workers=1, out=out, progress=False, seed=0)
    return out, summary


def test_encoder_one_hots_discrete_scales_boxes_and_finds_the_frame():
    space = spaces.Dict(
        frame=spaces.Box(0, 255, (16, 16, 2), np.uint8),
        P1=spaces.Dict(side=spaces.Discrete(2), health=spaces.Box(0, 100, (1,), np.int16)),
        moves=spaces.MultiDiscrete([3, 2]),
    )
    enc = ObsEncoder.from_space(space)
    assert enc.image_shape == (16, 16, 2) and enc.vector_dim == 2 + 1 + 5
    obs = {"frame": np.full((2, 16, 16, 2), 7, np.uint8),
           "P1": {"side": np.array([1, 0]), "health": np.array([[50], [100]], np.int16)},
           "moves": np.array([[2, 0], [0, 1]])}
    image, vector = enc.encode(obs)
    assert image.dtype == np.uint8 and image.shape == (2, 16, 16, 2)
    np.testing.assert_allclose(vector, [[0, 1, 0.5, 0, 0, 1, 1, 0], [1, 0, 1.0, 1, 0, 0, 0, 1]])
    assert ObsEncoder.from_json(json.loads(json.dumps(enc.to_json()))) == enc


def test_float_frames_are_quantised_back_to_uint8():
    enc = ObsEncoder.from_space(spaces.Box(0.0, 1.0, (8, 8, 1), np.float32))
    image, vector = enc.encode(np.full((1, 8, 8, 1), 0.5, np.float32))
    assert image.dtype == np.uint8 and int(image[0, 0, 0, 0]) == 128 and vector.shape == (1, 0)


def test_action_heads_and_unsupported_actions():
    assert action_heads(spaces.Discrete(16)) == ([16], [0])
    assert action_heads(spaces.MultiDiscrete([9, 8])) == ([9, 8], [0, 0])
    with pytest.raises(NotSupportedError, match="Discrete and 1-D MultiDiscrete"):
        action_heads(spaces.Box(-1, 1, (2,)))


def test_loss_falls_and_the_policy_beats_random_on_the_same_seeds(cartpole_files, tmp_path):
    data, _ = cartpole_files
    result = train_bc(data, tmp_path / "p.pt", epochs=3, progress=False, max_steps=1500)
    losses = [e.train_loss for e in result.history]
    assert losses[-1] < losses[0]
    assert result.train_steps + result.val_steps == 1500 and result.val_steps > 0
    ev = evaluate(result.path, episodes=3, baselines=("random",), progress=False)
    assert ev["p"].mean_return > ev["random"].mean_return + 50


def test_policy_file_records_its_data_and_loads_without_pickle(cartpole_files, tmp_path):
    data, summary = cartpole_files
    result = train_bc(data, tmp_path / "p.pt", epochs=1, progress=False, max_steps=600)
    blob = torch.load(result.path, weights_only=True)  # plain tensors + a JSON string
    meta = json.loads(blob["meta_json"])
    assert meta["env_id"] == "CartPole-v1"
    assert {f["name"] for f in meta["files"]} == {p.rsplit("/", 1)[-1] for p in summary.files}
    assert all(len(f["sha256"]) == 64 for f in meta["files"])
    assert meta["action_space"] and meta["observation_space"] and "wrappers_settings" in meta
    assert meta["trained"]["steps"] == result.train_steps and len(meta["history"]) == 1
    policy = BCPolicy.load(result.path)
    obs = np.array([0.01, 0.0, 0.02, 0.1], np.float32)
    fresh = BCPolicy.load(result.path)
    assert policy.predict(obs) == fresh.predict(obs) in (0, 1)


def test_training_is_reproducible_and_leaves_the_global_rng_alone(cartpole_files, tmp_path):
    data, _ = cartpole_files
    demos = load_demonstrations(data, max_steps=400)
    state = torch.random.get_rng_state()
    a = train_bc(demos, tmp_path / "a.pt", epochs=1, progress=False)
    b = train_bc(demos, tmp_path / "b.pt", epochs=1, progress=False)
    assert torch.equal(state, torch.random.get_rng_state())
    sa, sb = (torch.load(r.path, weights_only=True)["state_dict"] for r in (a, b))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.history[0].train_loss == b.history[0].train_loss


@pytest.mark.slow
def test_cartpole_bc_from_ten_expert_episodes_reaches_475(cartpole_files, tmp_path):
    data, _ = cartpole_files
    result = train_bc(data, tmp_path / "p.pt", epochs=10, progress=False, seed=0)
    ev = evaluate(result.path, episodes=10, seed=100, baselines=(), progress=False)
    assert ev.results[0].mean_return >= 475


def test_duel_policy_from_frames_and_dict_observations(tmp_path):
    settings = {"difficulty": 1, "role": "P1", "frame_shape": (24, 32, 1)}
    rec = record("duel", "expert", episodes=2, workers=1, out=tmp_path / "d", settings=settings,
                 wrappers_settings={"stack_frames": 2}, progress=False)
    result = train_bc(tmp_path / "d", tmp_path / "duel.pt", epochs=1, progress=False, max_steps=400)
    policy = BCPolicy.load(result.path)
    assert policy.encoder.image_shape == (24, 32, 2) and policy.nvec == [9, 8]
    assert policy.meta["wrappers_settings"]["stack_frames"] == 2 and rec.steps > 0
    env = policy.make_env()
    assert env.observation_space["frame"].shape == (24, 32, 2)
    obs, info = env.reset(seed=0)
    agent = load_policy_agent(result.path, env)
    action = agent.act(obs, info)
    assert env.action_space.contains(action)
    by_name = make_agent(str(result.path), env)  # a saved policy is an agent name too (play, record, evaluate)
    assert np.array_equal(by_name.act(obs, info), action)
    env.close()


def test_policy_agent_as_player_two_sees_its_own_side(monkeypatch):
    space = spaces.Dict(P1=spaces.Box(0, 1, (1,)), P2=spaces.Box(0, 1, (1,)))
    policy = BCPolicy.create(space, spaces.Discrete(2), seed=0)
    seen = []
    monkeypatch.setattr(policy, "predict", lambda obs: seen.append(obs) or 0)
    PolicyAgent(policy, player=1).act({"P1": np.zeros(1), "P2": np.ones(1)}, {})
    assert seen[0]["P1"][0] == 1.0 and seen[0]["P2"][0] == 0.0


def test_demonstrations_from_steps_subtract_action_starts():
    demos = Demonstrations.from_steps([np.zeros(2, np.float32)] * 3, [1, 2, 3], [0, 0, 1],
                                      spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(3, start=1))
    assert demos.actions.ravel().tolist() == [0, 1, 2] and demos.n_episodes == 2
    assert "steps=3" in repr(demos)


def test_bad_files_and_settings_raise_typed_errors(tmp_path, cartpole_files):
    junk = tmp_path / "junk.pt"
    torch.save({"weights": torch.zeros(1)}, junk)
    with pytest.raises(FormatError, match="not a trajarena BC policy"):
        BCPolicy.load(junk)
    with pytest.raises(SettingsError, match="epochs >= 1"):
        train_bc(cartpole_files[0], tmp_path / "x.pt", epochs=0, progress=False)
    with pytest.raises(FileNotFoundError):
        train_bc(tmp_path / "missing", tmp_path / "x.pt", progress=False)



def _policy_blob(**meta_changes):
    policy = BCPolicy.create(spaces.Box(-1.0, 1.0, (4,), np.float32), spaces.Discrete(2), seed=0)
    meta = {k: v for k, v in {**policy.meta, **meta_changes}.items() if v is not None}
    return {"state_dict": policy.net.state_dict(), "meta_json": json.dumps(meta)}


@pytest.mark.parametrize("content, why", [
    (b"x\n", "torch.load.*cannot read it"),
    (torch.zeros(3), "expected a dict with 'state_dict' and 'meta_json', got a torch.Tensor"),
    ([1, 2], "expected a dict .* got a list"),
    ({"state_dict": {}, "meta_json": "[1, 2]"}, "metadata must be a JSON object, got list"),
    ({"state_dict": {}, "meta_json": "{not json"}, "JSONDecodeError"),
    ("no_encoder", "metadata has no 'encoder' entry"),
    ("other_format", "expected format 'trajarena-bc-policy'"),
    ("newer", "version <= 1"),
    ("empty_state", "weights do not fit the network.*Missing key"),
])
def test_any_file_that_is_not_a_policy_raises_format_error_naming_the_file(tmp_path, content, why):
    path = tmp_path / "bad.pt"
    builders = {"no_encoder": lambda: _policy_blob(encoder=None),
                "other_format": lambda: _policy_blob(format="something-else"),
                "newer": lambda: _policy_blob(version=99),
                "empty_state": lambda: {**_policy_blob(), "state_dict": {}}}
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(builders[content]() if isinstance(content, str) else content, path)
    with pytest.raises(FormatError, match=f"bad.pt is not a trajarena BC policy file: .*{why}"):
        BCPolicy.load(path)


def test_a_policy_round_trips_and_a_missing_file_is_file_not_found(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save(_policy_blob(), path)
    assert BCPolicy.load(path).predict(np.zeros(4, np.float32)) in (0, 1)
    with pytest.raises(FileNotFoundError, match="No policy file"):
        BCPolicy.load(tmp_path / "missing.pt")

def test_cnn_layouts_round_trip_and_unknown_layouts_fail(tmp_path):
    space = spaces.Dict(frame=spaces.Box(0, 255, (40, 48, 1), np.uint8), t=spaces.Discrete(3))
    obs = {"frame": np.zeros((40, 48, 1), np.uint8), "t": 1}
    for arch in ("nature", "fine"):
        policy = BCPolicy.create(space, spaces.MultiDiscrete([9, 8]), seed=1, arch=arch)
        path = policy.save(tmp_path / f"{arch}.pt")
        loaded = BCPolicy.load(path)
        assert loaded.meta["arch"] == arch
        np.testing.assert_array_equal(loaded.predict(obs), policy.predict(obs))
    with pytest.raises(SettingsError, match="arch must be one of"):
        BCPolicy.create(space, spaces.Discrete(2), arch="resnet")


def test_policy_agent_adapts_native_two_player_frames(tmp_path):
    import trajarena as arena

    settings = {"difficulty": 1, "role": "P1", "frame_shape": (24, 32, 1)}
    record("duel", "expert", episodes=1, workers=1, out=tmp_path / "d", settings=settings,
           wrappers_settings={"stack_frames": 2}, progress=False)
    path = train_bc(tmp_path / "d", tmp_path / "p.pt", epochs=1, progress=False, max_steps=200).path
    env = arena.make("duel", {"n_players": 2})  # native colour frames, no wrappers: as in `trajarena play`
    agent = load_policy_agent(path, env, player=1)
    seen = []
    predict = agent.policy.predict
    agent.policy.predict = lambda obs: seen.append(obs["frame"].shape) or predict(obs)
    obs, info = env.reset(seed=0)
    for _ in range(3):
        action = agent.act(obs, info)
        assert env.action_space["agent_1"].contains(action)
        obs, _, _, _, info = env.step({"agent_0": env.action_space["agent_0"].sample(), "agent_1": action})
    assert seen == [(24, 32, 2)] * 3
    env.close()


def test_split_and_batches_do_not_depend_on_file_order(tmp_path):
    first = record("CartPole-v1", "random", episodes=3, workers=1, out=tmp_path / "d", progress=False, seed=0)
    second = record("CartPole-v1", "random", episodes=3, workers=1, out=tmp_path / "d", progress=False, seed=3)
    files = [*first.files, *second.files]
    assert len(files) >= 2
    a = load_demonstrations(files)
    b = load_demonstrations(files[::-1])
    ra = train_bc(a, tmp_path / "a.pt", epochs=1, progress=False)
    rb = train_bc(b, tmp_path / "b.pt", epochs=1, progress=False)
    assert (ra.train_steps, ra.val_steps) == (rb.train_steps, rb.val_steps)
    assert ra.history[0].train_loss == pytest.approx(rb.history[0].train_loss, rel=1e-6)
