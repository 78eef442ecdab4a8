"""Human play: input mapping, key maps, the gamepad/keyboard controller and the headless play loop.

The loop runs with ``SDL_VIDEODRIVER=dummy`` (set in conftest), ``fps=0`` and injected events, so
nothing sleeps and nothing depends on a real keyboard.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

pygame = pytest.importorskip("pygame")

from trajarena.play.controls import (  # noqa: E402
    ATTACK_NAMES,
    MOVE_NAMES,
    Buttons,
    HumanController,
    attack_index,
    encode_action,
    move_index,
    scripted_events,
)
from trajarena.errors import SettingsError  # noqa: E402
from trajarena.play.keymap import CONTROLS, Keymap  # noqa: E402
from trajarena.play.session import PlayConfig, play  # noqa: E402
from trajarena.format.reader import TrajectoryReader  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MD, DISC = spaces.MultiDiscrete([9, 8]), spaces.Discrete(16)


def down(key):
    return pygame.event.Event(pygame.KEYDOWN, key=key)


def up(key):
    return pygame.event.Event(pygame.KEYUP, key=key)


def pad(kind, iid=7, **kw):
    return pygame.event.Event(kind, instance_id=iid, **kw)


def idle(n):
    return [[] for _ in range(n)]


def run(frames, *, then_quit=True, **options):
    """Play a script of per-turn event lists; return the result and the actions the env received."""
    seen = []
    options = {"fps": 0, "show_help": False, "print_keymap": False, "seed": 0, **options}
    result = play(events=scripted_events(frames, then_quit), callback=seen.append, **options)
    return result, seen


# ---------------------------------------------------------------------------------- action mapping


@pytest.mark.parametrize(
    ("held", "move"),
    [((), 0), (("left",), 1), (("left", "up"), 2), (("up",), 3), (("up", "right"), 4), (("right",), 5),
     (("right", "down"), 6), (("down",), 7), (("down", "left"), 8),
     (("left", "right"), 0), (("up", "down"), 0), (("left", "right", "up"), 3), (("up", "down", "left"), 1)],
)
def test_moves_follow_diambra_order_and_opposites_cancel(held, move):
    b = Buttons.of(held)
    assert move_index(b.left, b.right, b.up, b.down) == move
    assert encode_action(b, MD).tolist() == [move, 0]
    assert encode_action(b, DISC) == move


def test_attack_buttons_combine_like_the_game():
    names = {(p, k, g): attack_index(p, k, g) for p, k, g in itertools.product((False, True), repeat=3)}
    assert [ATTACK_NAMES[names[c]] for c in [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)]] == [
        "P", "K", "G", "P+K", "P+G", "K+G", "P+K+G"]
    assert attack_index(False, True, True, n_attacks=4) == 2  # no combinations: K beats G
    with pytest.raises(SettingsError, match="8 attacks"):
        attack_index(True, False, False, n_attacks=5)


def test_discrete_and_multi_discrete_agree_with_the_game_for_every_input():
    duel = pytest.importorskip("trajarena.envs.duel")
    assert MOVE_NAMES == duel.MOVE_NAMES
    for held in itertools.product((False, True), repeat=len(CONTROLS)):
        b = Buttons(*held)
        move, attack = encode_action(b, MD).tolist()
        assert encode_action(b, DISC) == duel.multi_to_discrete(move, attack)
        assert MD.contains(encode_action(b, MD)) and DISC.contains(encode_action(b, DISC))
    assert encode_action(Buttons(right=True, punch=True), spaces.MultiDiscrete([9, 4])).tolist() == [5, 1]
    assert encode_action(Buttons(kick=True), spaces.Discrete(12)) == 10


def test_non_fighting_game_space_is_a_typed_error():
    with pytest.raises(SettingsError, match=r"MultiDiscrete\(\[9, 8\]\)"):
        encode_action(Buttons(), spaces.Box(0, 1, (2,)))


# ---------------------------------------------------------------------------------- key maps


def test_keymap_round_trips_through_toml_and_json(tmp_path):
    km = Keymap.from_dict({"players": [{"punch": ["space", "j"]}], "pause": "return"}, n_humans=2)
    (tmp_path / "k.toml").write_text(km.to_toml())
    (tmp_path / "k.json").write_text(json.dumps(km.to_dict()))
    assert Keymap.load(tmp_path / "k.toml", n_humans=2) == km
    assert Keymap.load(tmp_path / "k.json", n_humans=2) == km
    assert km.players[0].punch == ("space", "j") and km.players[0].left == ("a",) and km.pause == ("return",)


@pytest.mark.parametrize(
    ("data", "match"),
    [({"pauze": "p"}, "Did you mean 'pause'"),
     ({"players": [{"punchh": "z"}]}, "Did you mean 'punch'"),
     ({"players": [{"punch": 3}]}, "key name"),
     ({"gamepad": {"dead_zone": 2}}, "dead_zone"),
     ({"quit": []}, "'quit' must be a key name or a non-empty list"),
     ({"players": [{"punch": []}]}, "'punch' must be a key name or a non-empty list"),
     ({"gamepad": {"guard": []}}, "'guard' must be a button number >= 0 or a non-empty list"),
     ({"gamepad": {"punch": [1], "kick": [1]}}, r"gamepad button 1 is bound twice in the key map \(punch and kick\)"),
     ({"gamepad": {"discard": [7]}}, r"gamepad button 7 is bound twice in the key map \(pause and discard\)")],
)
def test_bad_keymap_entries_are_named(data, match):
    with pytest.raises(SettingsError, match=match):
        Keymap.from_dict(data)


def test_gamepad_buttons_may_move_when_nothing_else_uses_them(tmp_path):
    (tmp_path / "pad.toml").write_text("[gamepad]\npunch = [1]\nkick = [0]\n")
    pad = Keymap.load(tmp_path / "pad.toml").gamepad
    assert pad.punch == (1,) and pad.kick == (0,) and pad.guard == (4, 5)


def test_unknown_key_names_and_double_bindings_are_refused(tmp_path):
    with pytest.raises(SettingsError, match="unknown key name 'nokey'"):
        Keymap.from_dict({"players": [{"punch": "nokey"}]}).key_codes(1)
    with pytest.raises(SettingsError, match="bound twice"):
        Keymap.from_dict({"players": [{"punch": "p"}]}).key_codes(1)  # p also pauses
    (tmp_path / "k.yaml").write_text("x")
    with pytest.raises(SettingsError, match=r"\.toml or \.json"):
        Keymap.load(tmp_path / "k.yaml")
    (tmp_path / "bad.toml").write_text("pause = [")
    with pytest.raises(SettingsError, match="not valid TOML"):
        Keymap.load(tmp_path / "bad.toml")


def test_keymap_is_described_for_screen_and_terminal():
    lines = Keymap.default(2).describe(2)
    assert lines[0].split() == ["player", "1", "player", "2", "gamepads"]
    assert "W A S D" in lines[1] and "arrows" in lines[1]
    assert any(line.startswith("discard episode") and "Backspace" in line for line in lines)


# ---------------------------------------------------------------------------------- controller


def test_keys_are_tracked_from_events_and_taps_are_latched():
    c = HumanController(Keymap.from_dict({"players": [{"left": ["left", "a"]}]}))
    for e in (down(pygame.K_LEFT), down(pygame.K_a), up(pygame.K_LEFT)):
        c.handle(e)
    assert c.sample(0).pressed() == ("left",)  # 'a' still holds left
    c.handle(up(pygame.K_a))
    c.handle(down(pygame.K_x))
    c.handle(up(pygame.K_x))
    assert c.sample(0).pressed() == ("kick",)  # the tap counts once...
    assert c.sample(0).pressed() == ()  # ...and only once
    c.handle(down(pygame.K_DOWN))
    c.handle(pygame.event.Event(pygame.WINDOWFOCUSLOST))
    assert c.sample(0).pressed() == ("down",)  # latched press, but no longer held
    assert c.sample(0).pressed() == ()


def test_commands_and_two_keyboard_players():
    c = HumanController(n_humans=2)
    events = [down(pygame.K_d), down(pygame.K_f), down(pygame.K_LEFT), down(pygame.K_KP2), down(pygame.K_p),
              pygame.event.Event(pygame.QUIT), down(pygame.K_BACKSPACE), down(pygame.K_F1), down(pygame.K_ESCAPE)]
    assert [c.handle(e) for e in events][4:] == ["pause", "quit", "discard", "help", "quit"]
    assert c.sample(0).pressed() == ("right", "punch") and c.sample(1).pressed() == ("left", "kick")
    assert c.get_actions(spaces.Dict(agent_0=MD, agent_1=DISC)) == {"agent_0": pytest.approx([5, 1]), "agent_1": 10}


def test_gamepads_hot_plug_and_drive_their_player():
    c = HumanController(n_humans=2)
    c.handle(pygame.event.Event(pygame.JOYDEVICEADDED, device_index=0, instance_id=7))
    c.handle(pygame.event.Event(pygame.JOYDEVICEADDED, device_index=1, instance_id=9))
    assert c.gamepads == {7: 0, 9: 1}
    c.handle(pad(pygame.JOYHATMOTION, 7, hat=0, value=(1, 1)))  # up-right on the d-pad
    c.handle(pad(pygame.JOYBUTTONDOWN, 7, button=2))  # X: punch
    c.handle(pad(pygame.JOYAXISMOTION, 9, axis=1, value=0.9))  # stick down
    c.handle(pad(pygame.JOYAXISMOTION, 9, axis=0, value=-0.3))  # inside the dead zone
    c.handle(pad(pygame.JOYBUTTONDOWN, 9, button=4))  # LB: guard
    assert encode_action(c.sample(0), MD).tolist() == [4, 1]
    assert encode_action(c.sample(1), MD).tolist() == [7, 3]
    assert c.handle(pad(pygame.JOYBUTTONDOWN, 9, button=7)) == "pause"
    assert c.handle(pad(pygame.JOYBUTTONDOWN, 9, button=6)) == "discard"
    c.handle(pygame.event.Event(pygame.JOYDEVICEREMOVED, instance_id=7))
    assert c.gamepads == {9: 1} and c.sample(0).pressed() == ()
    c.handle(pad(pygame.JOYBUTTONDOWN, 11, button=0))  # a new pad's first event claims the free slot
    assert c.gamepads == {9: 1, 11: 0} and c.sample(0).pressed() == ("kick",)


# ---------------------------------------------------------------------------------- play loop


def test_human_vs_cpu_env_receives_exactly_the_held_input():
    frames = [[down(pygame.K_RIGHT)], [], [down(pygame.K_z)], [up(pygame.K_z), down(pygame.K_UP)],
              [down(pygame.K_LEFT)], [up(pygame.K_UP), up(pygame.K_RIGHT), up(pygame.K_LEFT)]]
    result, seen = run(frames)
    assert [s.action.tolist() for s in seen] == [[5, 0], [5, 0], [5, 1], [4, 0], [3, 0], [0, 0]]
    assert result.reason == "quit" and result.steps == 6 and result.episodes_saved == 0


def test_input_is_sampled_once_per_env_step_at_step_ratio_3():
    frames = [[down(pygame.K_x), up(pygame.K_x), down(pygame.K_DOWN)], [], [up(pygame.K_DOWN)]]
    _, seen = run(frames, step_ratio=3, settings={"action_space": "discrete"})
    assert [s.action for s in seen] == [10, 7, 0]  # kick wins over down in Discrete(16)
    assert [s.info["frame_count"] for s in seen] == [3, 6, 9]


def test_recorded_actions_are_the_actions_the_env_received(data_root):
    script = [[down(pygame.K_RIGHT)], *idle(20), [down(pygame.K_c)], *idle(5), [up(pygame.K_c), up(pygame.K_RIGHT)]]
    result, seen = run(script, then_quit=False, record=str(data_root), username="alex", step_ratio=6,
                       difficulty=8, max_episodes=1)
    assert result.reason == "max_episodes" and result.episodes_saved == 1 and len(result.files) == 1
    ds = TrajectoryReader(data_root)
    assert ds.num_episodes == 1 and ds.num_steps == len(seen) == result.steps
    np.testing.assert_array_equal(ds.read_episode(0).actions, np.array([s.action for s in seen]))
    assert ds.episodes[0].terminated and ds.metadata["username"] == "alex"
    assert ds.metadata["players"] == {"P1": "human", "P2": "cpu"} and ds.metadata["ignore_p2"] == 0
    assert ds.metadata["env_settings"]["step_ratio"] == 6 and ds.metadata["env_settings"]["role"] == "P1"
    assert sorted(data_root.iterdir()) == sorted(map(Path, result.files)) and not list(data_root.rglob("*.partial"))


def test_discarded_and_unfinished_episodes_are_not_saved(data_root):
    script = [[down(pygame.K_RIGHT)], *idle(9), [down(pygame.K_BACKSPACE)], *idle(400), [down(pygame.K_ESCAPE)]]
    result, seen = run(script, record=str(data_root), step_ratio=6, difficulty=8)
    assert result.episodes_discarded == 2 and result.episodes_saved >= 1 and result.reason == "quit"
    episodes = [s.episode for s in seen]
    assert episodes.count(0) == 10  # the discarded first episode
    ds = TrajectoryReader(data_root)
    assert ds.num_episodes == result.episodes_saved
    kept = [s for s in seen if 0 < s.episode <= result.episodes_saved]
    np.testing.assert_array_equal(np.concatenate([ds.read_episode(i).actions for i in range(ds.num_episodes)]),
                                  np.array([s.action for s in kept]))
    assert all(e.terminated for e in ds.episodes)


def test_quit_mid_episode_keeps_finished_ones_and_save_partial_keeps_the_rest(data_root):
    result, seen = run(idle(400), record=str(data_root / "a"), step_ratio=6, difficulty=8)
    assert result.episodes_saved >= 1 and result.episodes_discarded == 1
    assert TrajectoryReader(data_root / "a").num_episodes == result.episodes_saved
    result, seen = run(idle(30), record=str(data_root / "b"), step_ratio=6, save_partial=True)
    ds = TrajectoryReader(data_root / "b")
    assert (ds.num_episodes, ds.num_steps, result.episodes_discarded) == (1, 30, 0)
    assert ds.episodes[0].truncated and not ds.episodes[0].terminated


def test_pause_and_start_screen_stop_the_game_and_swallow_presses():
    frames = [*idle(3), [down(pygame.K_SPACE)], [down(pygame.K_RIGHT)], [down(pygame.K_p)],
              [down(pygame.K_z), up(pygame.K_z)], *idle(4), [down(pygame.K_p)], [], [down(pygame.K_F1)], *idle(3),
              [down(pygame.K_TAB)], [up(pygame.K_RIGHT)]]
    result, seen = run(frames, show_help=True)
    # start screen: no step until a key (space) starts; pause and help: no steps, the tapped punch never fires
    assert [s.action.tolist() for s in seen] == [[0, 0], [5, 0], [5, 0], [5, 0], [5, 0], [0, 0]]
    assert result.steps == 6


def test_human_vs_agent_is_a_two_player_env_recorded_with_ignore_p2(data_root):
    class Constant:
        def __init__(self):
            self.resets = 0

        def act(self, obs, info):
            return np.array([1, 2])

        def reset(self, seed=None):
            self.resets += 1

    agent = Constant()
    result, seen = run([[down(pygame.K_RIGHT)], [down(pygame.K_x)]], record=str(data_root), agents={"P2": agent},
                       p2="expert", save_partial=True)
    assert [{k: v.tolist() for k, v in s.action.items()} for s in seen] == [
        {"agent_0": [5, 0], "agent_1": [1, 2]}, {"agent_0": [5, 2], "agent_1": [1, 2]}]
    assert agent.resets == 1
    ds = TrajectoryReader(data_root)
    assert ds.metadata["ignore_p2"] == 1 and ds.metadata["players"] == {"P1": "human", "P2": "agent:Constant"}
    assert ds.read_episode(0).actions["agent_1"].tolist() == [[1, 2], [1, 2]]


def test_named_agent_and_human_on_the_right_side():
    _, seen = run(idle(3), p1="random", p2="human")
    assert set(seen[0].action) == {"agent_0", "agent_1"} and seen[0].action["agent_1"].tolist() == [0, 0]
    _, seen = run([[down(pygame.K_LEFT)]], p1="cpu", p2="human")
    assert seen[0].action.tolist() == [1, 0] and seen[0].info["agent_side"] == 1


def test_two_humans_share_the_keyboard():
    frames = [[down(pygame.K_d), down(pygame.K_g), down(pygame.K_LEFT), down(pygame.K_j), down(pygame.K_l)]]
    _, seen = run(frames, p1="human", p2="human")
    assert {k: v.tolist() for k, v in seen[0].action.items()} == {"agent_0": [5, 2], "agent_1": [1, 5]}


def test_gamepad_events_drive_the_play_loop_and_its_commands():
    frames = [[pygame.event.Event(pygame.JOYDEVICEADDED, device_index=0, instance_id=3)],
              [pad(pygame.JOYHATMOTION, 3, hat=0, value=(-1, 0)), pad(pygame.JOYBUTTONDOWN, 3, button=0)],
              [pad(pygame.JOYBUTTONDOWN, 3, button=7)], [], [pad(pygame.JOYBUTTONDOWN, 3, button=7)],
              [pad(pygame.JOYBUTTONUP, 3, button=0), pad(pygame.JOYHATMOTION, 3, hat=0, value=(0, -1))]]
    result, seen = run(frames)
    assert [s.action.tolist() for s in seen] == [[0, 0], [1, 2], [1, 2], [7, 0]]  # Start paused for 2 turns


def test_ctrl_c_quits_like_escape(data_root):
    script = iter([[down(pygame.K_RIGHT)]] + idle(4))

    def events():
        try:
            return next(script)
        except StopIteration:
            raise KeyboardInterrupt from None

    result = play(record=str(data_root), fps=0, show_help=False, print_keymap=False, events=events)
    assert (result.reason, result.steps, result.episodes_discarded, result.files) == ("interrupted", 5, 1, ())
    assert not any(data_root.rglob("*.arrow*"))


def test_agents_must_act():
    with pytest.raises(SettingsError, match="act"):
        run([], agents={"P2": object()}, p2="random")


def test_keymap_file_is_used(tmp_path):
    (tmp_path / "keys.toml").write_text('[[players]]\npunch = "space"\n')
    _, seen = run([[down(pygame.K_SPACE)], [down(pygame.K_z)]], keymap=str(tmp_path / "keys.toml"))
    assert [s.action.tolist() for s in seen] == [[0, 1], [0, 1]]  # z no longer punches


def test_play_config_validates_and_lists_its_options():
    with pytest.raises(SettingsError, match="both be 'cpu'"):
        PlayConfig(p1="cpu", p2="cpu")
    with pytest.raises(SettingsError, match="fps"):
        PlayConfig(fps=-1)
    with pytest.raises(SettingsError, match="Did you mean 'username'"):
        PlayConfig.from_dict({"usernme": "x"})
    assert PlayConfig(p2="human").recording_ignore_p2 == 0 and PlayConfig(p1="expert", p2="human").recording_ignore_p2 == 0
    assert PlayConfig(p1="expert", p2="human").recording_ignore_p1 == 1 and PlayConfig(p2="expert").recording_ignore_p1 == 0
    assert PlayConfig(p1="cpu", p2="human").recording_ignore_p1 == 0  # a 1-player env: the human is the player
    assert PlayConfig(p1="expert", p2="human", ignore_p2=1).recording_ignore_p1 == 0  # an explicit choice wins
    with pytest.raises(SettingsError, match="both 1"):
        PlayConfig(ignore_p1=1, ignore_p2=1)
    assert PlayConfig(p2="cpu").n_players == 1 and PlayConfig(p2="random").n_players == 2
    assert PlayConfig.from_dict(PlayConfig(record="d").to_dict()) == PlayConfig(record="d")


def test_agent_vs_human_p2_is_recorded_with_ignore_p1_and_replayed_from_p2(data_root):
    from trajarena.replay.imitation import ImitationLearning

    result, seen = run([[down(pygame.K_LEFT)], [], []], record=str(data_root), p1="random", p2="human",
                       save_partial=True)
    ds = TrajectoryReader(data_root)
    assert (ds.metadata["ignore_p1"], ds.metadata["ignore_p2"]) == (1, 0)
    assert ds.metadata["players"] == {"P1": "agent:random", "P2": "human"} and ds.num_steps == result.steps == 3
    il = ImitationLearning(data_root)
    assert il.n_episodes == 1  # the human's side only
    _, info = il.reset()
    assert info["perspective"] == "P2"
    _, _, _, _, info = il.step(None)
    assert info["action"].tolist() == seen[0].action["agent_1"].tolist() == [1, 0]


@pytest.mark.slow
def test_example_script_runs_headless(data_root):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "human_experience_recorder.py"), "--file-path", str(data_root),
         "--max-steps", "30"],
        capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(ROOT / "src"), "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PATH": ""},
    )
    assert out.returncode == 0, out.stderr
    ds = TrajectoryReader(data_root, include_partial=False)
    assert ds.num_steps == 30 and ds.metadata["username"] == "alex"
