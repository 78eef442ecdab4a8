"""Human interventions: taking over from an agent in `trajarena play`, the recorded flag, and BC on it.

The play loop runs headless (``SDL_VIDEODRIVER=dummy``, conftest) with injected events.
"""

from __future__ import annotations

import numpy as np
import pytest

pygame = pytest.importorskip("pygame")

import trajarena as arena  # noqa: E402
from trajarena.errors import SettingsError  # noqa: E402
from trajarena.learn.selection import select_steps, step_weights  # noqa: E402
from trajarena.play import play, scripted_events  # noqa: E402
from trajarena.play.controls import HumanController  # noqa: E402
from trajarena.play.keymap import Keymap  # noqa: E402

SMALL = {"frame_shape": (16, 24, 1)}


def key(kind, k):
    return pygame.event.Event(kind, key=k)


T, RIGHT, RIGHT_UP = key(pygame.KEYDOWN, pygame.K_t), key(pygame.KEYDOWN, pygame.K_RIGHT), key(pygame.KEYUP, pygame.K_RIGHT)


class Walker:
    """An agent that always walks left, counting how often it was asked."""

    calls = 0

    def reset(self, seed=None):
        pass

    def act(self, obs, info):
        Walker.calls += 1
        return np.array([1, 0])


def take_over_script():
    """5 agent steps, take over holding right for 6 steps, hand back, 5 agent steps."""
    return [[]] * 5 + [[T, RIGHT]] + [[]] * 5 + [[RIGHT_UP, T]] + [[]] * 4


def test_a_human_takes_over_and_hands_back_and_every_step_says_who_acted(data_root):
    Walker.calls = 0
    seen = []
    result = play(p1="random", p2="cpu", agents={"P1": Walker()}, record=str(data_root), settings=SMALL, seed=0,
                  fps=0, show_help=False, print_keymap=False, save_partial=True, events=scripted_events(take_over_script()),
                  callback=seen.append)
    assert result.steps == 16 and result.intervention_steps == 6 and result.episodes_saved == 1
    assert Walker.calls == 16  # the agent follows the game while the human plays
    flags = [s.info["is_intervention"] for s in seen]
    assert flags == [False] * 5 + [True] * 6 + [False] * 5
    assert [int(s.action[0]) for s in seen] == [1] * 5 + [5] * 6 + [1] * 5  # the human's right, the agent's left
    ds = arena.TrajectoryDataset(data_root)
    assert ds.interventions.tolist() == flags
    assert ds.step_info("is_intervention").tolist() == flags
    np.testing.assert_array_equal(ds.transitions(np.flatnonzero(ds.interventions)).action[:, 0], [5] * 6)
    il = arena.ImitationLearning(data_root)
    il.reset()
    assert [bool(il.step(0)[4]["is_intervention"]) for _ in range(16)] == flags
    assert ds.episode(0).infos["is_intervention"][0][1:].tolist() == flags


def test_take_over_is_offered_only_when_an_agent_plays_without_a_human(data_root):
    result = play(p1="human", p2="random", record=str(data_root), settings=SMALL, seed=0, fps=0, show_help=False,
                  print_keymap=False, save_partial=True, events=scripted_events([[T], [], []]))
    assert result.intervention_steps == 0
    assert "is_intervention" not in arena.TrajectoryDataset(data_root).info_keys  # nothing to say: a human plays P1
    keys = Keymap.default(1)
    assert not any(row[0].startswith("take over") for row in keys.table(1)[1])
    assert ("take over / hand back", ["T", "LS click"]) in keys.table(1, takeover=True)[1]


def test_the_takeover_key_and_gamepad_button_are_commands_and_can_be_remapped():
    c = HumanController(Keymap.from_dict({"takeover": ["space"], "gamepad": {"takeover": [8]}}), events=lambda: [])
    assert c.handle(key(pygame.KEYDOWN, pygame.K_SPACE)) == "takeover"
    assert c.handle(pygame.event.Event(pygame.JOYBUTTONDOWN, instance_id=3, button=8)) == "takeover"
    assert HumanController(events=lambda: []).handle(pygame.event.Event(pygame.JOYBUTTONDOWN, instance_id=3,
                                                                        button=9)) == "takeover"
    with pytest.raises(SettingsError, match="bound twice"):
        Keymap.from_dict({"takeover": ["z"]}).key_codes(1)


def test_the_window_shows_who_has_the_controls(data_root):
    shots = {}

    class Grab:
        def __init__(self):
            self.n = 0

        def __call__(self, step):
            self.n += 1
            surface = pygame.display.get_surface()  # what the window shows: drawn after the step before
            if surface is not None:
                shots[self.n] = pygame.surfarray.array3d(surface).swapaxes(0, 1).copy()

    play(p1="random", p2="cpu", agents={"P1": Walker()}, settings=SMALL, seed=0, fps=0, show_help=False,
         print_keymap=False, scale=4, events=scripted_events(take_over_script()), callback=Grab())
    orange = np.array([255, 150, 30])
    frame_h = 16 * 4
    border = lambda img: (np.abs(img[:frame_h, :4].astype(int) - orange).sum(-1) < 10).mean()  # noqa: E731
    assert border(shots[3]) < 0.5 and border(shots[8]) > 0.9  # the orange frame while the human plays


def test_selection_of_intervention_steps():
    flags = np.array([False, True, False, True])
    assert select_steps(flags, np.array([3, 2, 1]), "only").tolist() == [3, 1]
    assert select_steps(None, np.array([0, 1]), "all").tolist() == [0, 1]
    with pytest.raises(SettingsError, match="is_intervention"):
        select_steps(np.zeros(3, bool), np.arange(3), "only")
    with pytest.raises(SettingsError, match="'all', 'only'"):
        select_steps(flags, np.arange(4), "some")
    assert step_weights(flags, 3).tolist() == [1, 3, 1, 3] and step_weights(None, 3) is None
    with pytest.raises(SettingsError, match="> 0"):
        step_weights(flags, 0)


def test_bc_learns_from_the_intervention_steps_only_or_weighs_them(data_root, tmp_path):
    pytest.importorskip("torch")
    from trajarena.learn.bc import load_demonstrations, load_policy, train_bc

    play(p1="random", p2="cpu", agents={"P1": Walker()}, record=str(data_root), settings=SMALL, seed=0, fps=0,
         show_help=False, print_keymap=False, save_partial=True, events=scripted_events(take_over_script()))
    demos = load_demonstrations(data_root)
    assert demos.intervention.tolist() == [False] * 5 + [True] * 6 + [False] * 5
    only = train_bc(demos, tmp_path / "only.pt", epochs=30, val_fraction=0, progress=False, interventions="only")
    assert only.train_steps == 6 and only.final.train_accuracy == 1.0  # only the human's "right"
    policy = load_policy(only.path)
    assert policy.meta["trained"]["interventions"] == "only"
    assert int(policy.predict_batch(arena.TrajectoryDataset(data_root).transitions([0]).obs)[0, 0]) == 5
    plain = train_bc(demos, tmp_path / "all.pt", epochs=2, val_fraction=0, progress=False, seed=1)
    heavy = train_bc(demos, tmp_path / "heavy.pt", epochs=2, val_fraction=0, progress=False, seed=1,
                     intervention_weight=5.0)
    assert plain.train_steps == heavy.train_steps == 16
    assert plain.final.train_loss != heavy.final.train_loss
