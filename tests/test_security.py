"""Data never names code: a file or a policy that names a function to run runs nothing, anywhere.

The payload is the one the security review used: a stored "user wrapper" whose dotted name is a
function that runs a shell command (``pydoc.pipepager``). Before 0.2, loading it imported and called it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import trajarena as arena
from _helpers_format import rewrite_metadata
from trajarena.cli.app import app
from trajarena.errors import WrapperNotAppliedWarning
from trajarena.learn.rollout import record

torch = pytest.importorskip("torch")

runner = CliRunner()


def payload(marker: Path) -> list:
    return [["pydoc.pipepager", {"text": "x", "cmd": f"echo owned > {marker}"}]]


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    out = tmp_path_factory.mktemp("cartpole")
    record("CartPole-v1", "expert", episodes=4, workers=1, out=out, progress=False, seed=0)
    return out


@pytest.fixture
def hostile_file(tmp_path, cartpole):
    marker = tmp_path / "owned"
    (src,) = sorted(cartpole.glob("*.arrow"))[:1]
    folder = tmp_path / "hostile"
    folder.mkdir()

    def inject(meta):
        meta["wrappers_settings"] = {**(meta.get("wrappers_settings") or {}), "wrappers": payload(marker)}
        return meta

    return rewrite_metadata(src, folder / "x.arrow", inject), marker


def test_the_replay_env_names_the_wrapper_it_did_not_apply_and_runs_nothing(hostile_file):
    path, marker = hostile_file
    with pytest.warns(WrapperNotAppliedWarning, match="pydoc.pipepager"):
        il = arena.ImitationLearning(traj_files_list=[path])
    il.reset()
    il.step(il.action_space.sample())
    assert il.wrappers_settings.wrappers == ()
    assert not marker.exists()


def test_train_bc_and_verify_on_a_hostile_file_run_nothing(hostile_file, tmp_path):
    path, marker = hostile_file
    result = runner.invoke(app, ["train-bc", str(path.parent), "-o", str(tmp_path / "p.pt"), "--epochs", "1",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["verify", str(path.parent)])
    assert result.exit_code == 0, result.output
    assert not marker.exists()


@pytest.fixture
def hostile_policy(tmp_path, cartpole):
    from trajarena.learn.bc import train_bc

    good = tmp_path / "good.pt"
    train_bc(cartpole, good, epochs=1, progress=False)
    blob = torch.load(good, weights_only=True)
    meta = json.loads(blob["meta_json"])
    marker = tmp_path / "owned"
    meta["wrappers_settings"] = {**(meta.get("wrappers_settings") or {}), "wrappers": payload(marker)}
    blob["meta_json"] = json.dumps(meta)
    path = tmp_path / "hostile.pt"
    torch.save(blob, path)
    return path, marker


def test_a_hostile_policy_plays_without_running_what_it_names(hostile_policy, tmp_path):
    from trajarena.learn.agents import make_agent
    from trajarena.learn.bc import BCPolicy

    path, marker = hostile_policy
    policy = BCPolicy.load(path)
    with pytest.warns(WrapperNotAppliedWarning, match="pydoc.pipepager"):
        env = policy.make_env()
    env.close()
    env = arena.make("CartPole-v1")
    agent = make_agent(str(path), env)
    obs, info = env.reset(seed=0)
    assert agent.act(obs, info) in (0, 1)
    for args in (["evaluate", str(path), "--episodes", "1"],
                 ["record", "CartPole-v1", "--agent", str(path), "--episodes", "1", "-o", str(tmp_path / "rec"),
                  "--no-progress"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    assert not marker.exists()


def test_a_policy_whose_stored_wrappers_are_malformed_is_not_a_policy(tmp_path, hostile_policy):
    from trajarena.errors import FormatError
    from trajarena.learn.bc import BCPolicy

    path, _ = hostile_policy
    blob = torch.load(path, weights_only=True)
    meta = json.loads(blob["meta_json"])
    meta["wrappers_settings"] = {"wrappers": [[{"not": "a name"}, {}]]}
    blob["meta_json"] = json.dumps(meta)
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(FormatError, match="stored wrappers settings are not valid"):
        BCPolicy.load(tmp_path / "bad.pt")


def test_no_module_imports_a_name_that_came_from_data():
    """Grep-level rule: only fixed tables in code name modules to import (lazy names, extras, 0.1 paths)."""
    src = Path(arena.__file__).parent
    users = sorted(str(p.relative_to(src)) for p in src.rglob("*.py")
                   if "import_module(" in p.read_text() or "__import__(" in p.read_text())
    assert users == ["__init__.py", "_aliases.py", "errors.py"]
    assert np.all([not (src / u).read_text().count("pickle.load") for u in users])
