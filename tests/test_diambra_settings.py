"""DIAMBRA's settings names (v2.1 and v2.2) are aliases of trajarena's, stored in one canonical form."""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trajarena as arena
from trajarena import dialects
from trajarena.errors import DialectWarning, SettingsError
from trajarena.interop.diambra import compat as v22

DOCS = Path(__file__).resolve().parents[1] / "docs" / "diambra.md"


@dataclasses.dataclass
class Settings21:
    """The fields and defaults of DIAMBRA 2.1's EnvironmentSettings1P (diambra-arena 2.1.3)."""

    game_id: str = "doapp"
    step_ratio: int = 6
    disable_keyboard: bool = True
    disable_joystick: bool = True
    rank: int = 0
    seed: int = -1
    env_address: str = "localhost:50051"
    grpc_timeout: int = 600
    player: str = "Random"
    continue_game: float = 0.0
    show_final: bool = True
    difficulty: int = 3
    frame_shape: tuple = (0, 0, 0)
    tower: int = 3
    hardcore: bool = False
    characters: tuple = ("Random", "Random", "Random")
    char_outfits: int = 1
    action_space: str = "multi_discrete"
    attack_but_combination: bool = True
    super_art: int = 0
    fighting_style: int = 0
    ultimate_style: tuple = (0, 0, 0)


@dataclasses.dataclass
class Wrappers21:
    """The fields and defaults of DIAMBRA 2.1's WrappersSettings."""

    no_op_max: int = 0
    sticky_actions: int = 1
    clip_rewards: bool = False
    reward_normalization: bool = False
    reward_normalization_factor: float = 0.5
    frame_stack: int = 1
    actions_stack: int = 1
    scale: bool = False
    exclude_image_scaling: bool = False
    process_discrete_binary: bool = False
    scale_mod: int = 0
    hwc_obs_resize: tuple = (84, 84, 0)
    dilation: int = 1
    flatten: bool = False
    filter_keys: list = None


@pytest.mark.parametrize("kind, old, new", [(k, o, n) for k, table in dialects.RENAMED.items() for o, n in table.items()])
def test_each_renamed_diambra_setting_is_stored_under_trajarenas_name(kind, old, new):
    value = {"outfits": 2, "repeat_action": 3, "clip_reward": True, "normalize_reward": True,
             "normalization_factor": 0.25, "stack_frames": 4, "file_path": "data/x"}[new]
    assert dialects.canonical(kind, {old: value})[0] == {new: value}


def test_diambra_21_dataclasses_work_for_duel_and_are_stored_in_trajarenas_names(tmp_path):
    env21 = Settings21(player="P2", char_outfits=3, frame_shape=(48, 48, 1), attack_but_combination=False,
                       difficulty=4, seed=7)
    wrappers21 = Wrappers21(frame_stack=3, actions_stack=2, scale=True, reward_normalization=True,
                            hwc_obs_resize=(32, 32, 1))
    env = arena.make("duel", env21, wrappers21, {"file_path": str(tmp_path), "ignore_p2": False})
    assert env.action_space == arena.make("duel", {}, {"no_attack_buttons_combinations": True}).action_space
    assert env.observation_space["frame"].shape == (32, 32, 3)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.close()
    meta = arena.ImitationLearning(str(tmp_path)).file_metadata[0]
    assert meta["env_settings"] == arena.EnvironmentSettings(role="P2", outfits=3, frame_shape=(48, 48, 1),
                                                             difficulty=4, seed=7).to_dict()
    stored = meta["wrappers_settings"]
    assert stored["stack_frames"] == 3 and stored["add_last_action"] and stored["stack_actions"] == 2
    assert stored["no_attack_buttons_combinations"] and stored["normalize_reward"] and stored["frame_shape"] == [32, 32, 1]
    assert not {"frame_stack", "actions_stack", "hwc_obs_resize", "sticky_actions"} & set(stored)


def test_diambra_22_dataclasses_and_enum_values_work_for_duel():
    settings = v22.EnvironmentSettingsMultiAgent(role=(v22.Roles.P2, v22.Roles.P1),
                                                 action_space=(v22.SpaceTypes.DISCRETE, v22.SpaceTypes.MULTI_DISCRETE))
    env = arena.make("duel", settings, v22.WrappersSettings(stack_frames=2))
    assert env.unwrapped.settings.role == ("P2", "P1")
    assert env.unwrapped.settings.action_space == ("discrete", "multi_discrete")
    assert env.observation_space["frame"].shape[-1] == 6
    env.close()
    assert arena.RecordingSettings.from_dict(v22.RecordingSettings(dataset_path="data/x", username="a")).file_path == "data/x"


def test_the_21_player_setting_maps_to_role_and_players():
    assert dialects.canonical("env", {"player": "Random"})[0] == {"role": None}
    assert dialects.canonical("env", {"player": "P1P2"})[0] == {"n_players": 2, "role": ("P1", "P2")}
    with pytest.raises(SettingsError, match="player must be"):
        dialects.canonical("env", {"player": "P3"})


def test_two_names_for_one_setting_must_agree():
    assert dialects.canonical("wrappers", {"frame_stack": 4, "stack_frames": 4})[0] == {"stack_frames": 4}
    with pytest.raises(SettingsError, match="'frame_stack' and 'stack_frames' both set"):
        dialects.canonical("wrappers", {"stack_frames": 2, "frame_stack": 4})


def test_diambra_only_settings_in_duel_are_ignored_and_warn_when_set(recwarn):
    env = arena.make("duel", {"splash_screen": False, "env_address": "x:1", "grpc_timeout": 5, "show_final": True,
                              "tower": 3, "super_art": None, "game_id": "doapp", "render_mode": "human", "rank": 3})
    env.close()
    assert not [w for w in recwarn if issubclass(w.category, DialectWarning)]
    with pytest.warns(DialectWarning, match="super_art=2 has no effect in duel"):
        arena.make("duel", {"super_art": 2}).close()
    with pytest.raises(SettingsError, match="hardcore=True.*filter_keys"):
        arena.make("duel", {"hardcore": True})
    with pytest.raises(SettingsError, match="scale_mod=1"):
        arena.make("duel", None, {"scale_mod": 1})
    with pytest.raises(SettingsError, match="attack_but_combination.*wrappers"):
        arena.EnvironmentSettings.from_dict({"attack_but_combination": False})
    with pytest.raises(SettingsError, match="team of fighters"):
        arena.make("duel", {"characters": ("Mira", "Kenji", "Random")})
    assert arena.EnvironmentSettings.from_dict({"characters": ("Mira", "Random", "Random")}).characters == "Mira"


@settings(max_examples=60, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "n_players": st.just(1), "difficulty": st.integers(1, 8) | st.none(), "step_ratio": st.integers(1, 6),
    "role": st.sampled_from(["P1", "P2", None]), "characters": st.sampled_from(["Kenji", "Mira", None]),
    "outfits": st.integers(1, 4), "action_space": st.sampled_from(["discrete", "multi_discrete"]),
    "seed": st.integers(0, 99) | st.none(), "frame_shape": st.sampled_from([(0, 0, 0), (64, 64, 1), (32, 48, 3)]),
}))
def test_trajarenas_own_settings_are_already_canonical(data):
    canonical = arena.EnvironmentSettings.from_dict(data).to_dict(json=False)
    assert dialects.canonical("env", canonical)[0] == canonical
    assert arena.EnvironmentSettings.from_dict(canonical).to_dict(json=False) == canonical


def test_the_docs_table_names_every_diambra_setting():
    text = DOCS.read_text()
    names = {o for table in dialects.RENAMED.values() for o in table} | set(dialects.IGNORED) | \
        set(dialects.DIAMBRA_GAME_KEYS) | set(dialects.DIAMBRA_ENGINE_KEYS) | \
        {"player", "attack_but_combination", "hardcore", "actions_stack", "hwc_obs_resize", "role", "action_space"}
    missing = [n for n in sorted(names) if not re.search(rf"`{re.escape(n)}`", text)]
    assert not missing, f"docs/diambra.md does not name {missing}"


def test_diambras_own_22_dataclasses_work_for_duel(tmp_path):
    diambra_arena = pytest.importorskip("diambra.arena")
    settings = diambra_arena.EnvironmentSettings(role=diambra_arena.Roles.P2, action_space=diambra_arena.SpaceTypes.DISCRETE,
                                                 frame_shape=(64, 64, 1), difficulty=2)
    wrappers = diambra_arena.WrappersSettings(stack_frames=2, add_last_action=True, stack_actions=3)
    recording = diambra_arena.RecordingSettings(dataset_path=str(tmp_path), username="alex")
    env = arena.make("duel", settings, wrappers, recording)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.close()
    meta = arena.ImitationLearning(str(tmp_path)).file_metadata[0]
    assert meta["env_id"] == "duel" and meta["username"] == "alex"
    assert meta["env_settings"]["role"] == "P2" and meta["env_settings"]["action_space"] == "discrete"
    assert meta["wrappers_settings"]["stack_actions"] == 3 and meta["wrappers_settings"]["filter_keys"] is None
