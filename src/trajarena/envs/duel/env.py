"""``DuelEnv``: the Gymnasium env of the built-in two-player fighting game.

One env step runs ``step_ratio`` game frames with the same input. In 1-player mode the agent climbs
a tower of :data:`N_STAGES` CPU opponents of rising strength (game over on a lost match unless
``continue_game``); in 2-player mode an episode is one best-of-3 match between ``agent_0`` and
``agent_1``. The reward is the damage dealt minus the damage taken, from the agent's side (1P) or
from ``agent_0``'s side (2P).

Actions (DIAMBRA order): moves 0 no-move, 1 left, 2 up-left, 3 up, 4 up-right, 5 right,
6 down-right, 7 down, 8 down-left; attacks 0 none, 1 punch, 2 kick, 3 guard, 4 punch+kick (a slow
heavy "special" that knocks down and chips through guard), 5 punch+guard (a throw when touching a
grounded foe, else guard), 6 kick+guard and 7 punch+kick+guard (guard). Down+punch is a crouching
jab, down+kick a low sweep (guard it crouching: down+guard), punch or kick in the air a jump attack.
``"multi_discrete"`` is ``MultiDiscrete([9, 8])``; ``"discrete"`` is ``Discrete(16)``: 0 no-op, 1-8
the moves, 9-15 the attacks 1-7 (so it cannot move and attack at once, as in DIAMBRA).

Rounds: a KO or the timer (:data:`ROUND_TIME` s) ends a round, the healthier fighter wins it, a draw
counts for both; two round wins take the match (a 2-2 match is a draw: ``outcome`` 0, and in 1P not
a cleared stage). The step that ends a round shows the next round's start, with updated ``wins``;
the last step of an episode shows the final blow instead.

Info flags (Python bools): ``round_done`` a round ended; ``stage_done`` 1P: the agent won the
stage's match (the tower goes on), 2P: the match ended; ``game_done`` = ``episode_done`` = ``env_done`` the episode is over
(1P: a lost match without a continue, or the last stage won; 2P: the match is over) and
``terminated`` is True. Numbers: ``stage`` and ``round`` the step was played in, ``outcome`` /
``round_outcome`` (1 won, -1 lost, 0 none or draw, from the agent's / ``agent_0``'s side),
``difficulty`` (1P CPU difficulty, 0 in 2P), ``agent_side`` (0 P1, 1 P2), ``frame_count``.

Roles: in 1P ``role`` None picks P1 or P2 at random per episode; in 2P ``agent_0`` plays ``role[0]``
(P1 when both are None) and ``agent_1`` the other side. Per-player settings pairs
(``characters``, ``outfits``, ``action_space``) are ``(agent_0's, agent_1's)``.

>>> env = DuelEnv({"frame_shape": (84, 84, 1), "seed": 0})
>>> obs, info = env.reset()
>>> obs["frame"].shape, sorted(obs["P1"])
((84, 84, 1), ['character', 'health', 'side', 'wins'])
>>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
>>> info["round_done"], truncated
(False, False)
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trajarena.envs.duel.ai import CpuAI
from trajarena.envs.duel.characters import CHARACTERS, index_of
from trajarena.envs.duel.game import HEIGHT, MAX_HEALTH, N_STAGES, ROUND_TIME, WIDTH, Game
from trajarena.envs.duel.render import Renderer
from trajarena.errors import ResetNeeded, SettingsError, SpaceError, require
from trajarena.fighting import MOVE_NAMES  # noqa: F401 - re-exported by trajarena.envs.duel
from trajarena.imaging import FrameResizer
from trajarena.settings import DUEL_CHARACTERS, DUEL_OUTFITS, EnvironmentSettings

N_MOVES = 9
N_ATTACKS = 8
N_DISCRETE = N_MOVES + N_ATTACKS - 1
#: Attack indexes kept by DIAMBRA's ``no_attack_buttons_combinations``: none, punch, kick, guard.
N_SINGLE_ATTACKS = 4
ATTACK_NAMES = ("none", "punch", "kick", "guard", "punch+kick", "punch+guard", "kick+guard", "punch+kick+guard")
INFO_FLAGS = ("round_done", "stage_done", "game_done", "episode_done", "env_done")
_DISCRETE_TO_MULTI = tuple([(m, 0) for m in range(N_MOVES)] + [(0, a) for a in range(1, N_ATTACKS)])


def discrete_to_multi(action: int) -> tuple[int, int]:
    """Convert a ``Discrete(16)`` action to its ``(move, attack)`` pair.

    >>> discrete_to_multi(0), discrete_to_multi(5), discrete_to_multi(9)
    ((0, 0), (5, 0), (0, 1))
    """
    a = int(action)
    if not 0 <= a < N_DISCRETE:
        raise SpaceError(f"a discrete duel action must be an integer in [0, {N_DISCRETE - 1}], got {action!r}.")
    return _DISCRETE_TO_MULTI[a]


def _integers(action: Any, size: int) -> tuple[int, ...] | None:
    """``action`` as ``size`` ints (a scalar or 1-D array; floats only when whole), or None when it is not."""
    if isinstance(action, bool | np.bool_):
        return None
    try:
        arr = np.asarray(action)
    except (TypeError, ValueError):
        return None
    if arr.dtype.kind not in "iuf" or arr.size != size or arr.ndim > 1 or (size > 1 and arr.ndim != 1):
        return None
    flat = arr.reshape(-1)
    if arr.dtype.kind == "f" and not (np.all(np.isfinite(flat)) and np.all(flat == np.floor(flat))):
        return None
    return tuple(int(v) for v in flat)


def multi_to_discrete(move: int, attack: int) -> int:
    """Convert a ``(move, attack)`` pair to a ``Discrete(16)`` action.

    The discrete space cannot move and attack at once: a pair with both keeps the attack.

    >>> multi_to_discrete(5, 0), multi_to_discrete(0, 1), multi_to_discrete(7, 3)
    (5, 9, 11)
    """
    m, a = int(move), int(attack)
    if not (0 <= m < N_MOVES and 0 <= a < N_ATTACKS):
        raise SpaceError(f"a duel action needs move in [0, 8] and attack in [0, 7], got ({move!r}, {attack!r}).")
    return N_MOVES - 1 + a if a else m


def action_space_for(kind: str) -> spaces.Space:
    """The action space of one player: ``"multi_discrete"`` or ``"discrete"``."""
    return spaces.MultiDiscrete([N_MOVES, N_ATTACKS]) if kind == "multi_discrete" else spaces.Discrete(N_DISCRETE)


def _side_space() -> spaces.Dict:
    return spaces.Dict({
        "side": spaces.Discrete(2),
        "wins": spaces.Box(0, 2, (1,), np.int8),
        "character": spaces.Discrete(len(DUEL_CHARACTERS)),
        "health": spaces.Box(0, MAX_HEALTH, (1,), np.int16),
    })


class DuelEnv(gym.Env):
    """The built-in two-player fighting game (see :mod:`trajarena.envs.duel`).

    Args:
        settings: :class:`~trajarena.settings.EnvironmentSettings`, a dict of them, or None.
        render_mode: None, ``"rgb_array"`` (the native full-colour frame) or ``"human"`` (a window).

    Attributes:
        settings: the validated settings.
        game: the live :class:`~trajarena.envs.duel.game.Game` (positions, states, health...).
        agent_sides: the side (0 = P1, 1 = P2) played by each agent.

    >>> env = DuelEnv({"n_players": 2, "action_space": ("discrete", "multi_discrete")})
    >>> env.action_space["agent_0"], env.action_space["agent_1"]
    (Discrete(16), MultiDiscrete([9 8]))
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 10}

    def __init__(self, settings: EnvironmentSettings | dict | None = None, render_mode: str | None = None) -> None:
        self.settings = EnvironmentSettings.from_dict(settings)
        s = self.settings
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise SettingsError(f"render_mode must be None, 'human' or 'rgb_array', got {render_mode!r}.")
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": max(1, 60 // s.step_ratio)}
        self.n_players = s.n_players
        self._process = FrameResizer((HEIGHT, WIDTH, 3), s.frame_shape)
        frame_shape = self._process.shape
        self.observation_space = spaces.Dict({
            "frame": spaces.Box(0, 255, frame_shape, np.uint8),
            "stage": spaces.Box(1, N_STAGES, (1,), np.int8),
            "timer": spaces.Box(0, ROUND_TIME, (1,), np.int16),
            "P1": _side_space(),
            "P2": _side_space(),
        })
        kinds = [s.player("action_space", i) for i in range(s.n_players)]
        self._discrete = [k == "discrete" for k in kinds]
        if s.n_players == 1:
            self.action_space = action_space_for(kinds[0])
        else:
            self.action_space = spaces.Dict({f"agent_{i}": action_space_for(k) for i, k in enumerate(kinds)})
        self._renderer = Renderer()
        self._char_index = {c.name: i for i, c in enumerate(CHARACTERS)}
        self.game: Game | None = None
        self.agent_sides: tuple[int, ...] = (0,) if s.n_players == 1 else (0, 1)
        self.stage = 1
        self._arena = 1
        self.difficulty = 0
        self._outfits = (1, 1)
        self._ai: CpuAI | None = None
        self._opponents: list[int] = []
        self._continues_left = 0
        self._done = True
        self._seeded = False
        self._frame: np.ndarray | None = None
        self._window = None
        self._clock = None

    # ---- episode set-up ----------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start a new episode (1P: stage 1 of the tower; 2P: a new match)."""
        if seed is None and not self._seeded and self.settings.seed is not None:
            seed = self.settings.seed
        if seed is not None and (isinstance(seed, bool | np.bool_) or not isinstance(seed, int | np.integer)
                                 or seed < 0):
            raise SettingsError(f"DuelEnv.reset(seed=...) takes None or an integer >= 0, got seed={seed!r}.")
        seed = None if seed is None else int(seed)  # gymnasium's seeding takes Python ints only
        super().reset(seed=seed)
        self._seeded = True
        s, rng = self.settings, self.np_random
        if s.n_players == 1:
            role = s.role if s.role is not None else ("P1", "P2")[int(rng.integers(2))]
            self.agent_sides = (0 if role == "P1" else 1,)
            name = s.characters if s.characters is not None else DUEL_CHARACTERS[int(rng.integers(len(CHARACTERS)))]
            self._agent_char = index_of(name)
            self._opponents = [int(c) for c in rng.permutation(len(CHARACTERS))[:N_STAGES]]
            self.difficulty = s.difficulty if s.difficulty is not None else int(rng.integers(1, 9))
            cg = s.continue_game
            self._continues_left = int(-cg) if cg < 0 else 0
            self.stage = 1
            self._ai_rng = np.random.default_rng(int(rng.integers(2**63)))
            self._setup_stage()
        else:
            r0, r1 = s.role
            side0 = 0 if r0 == "P1" else 1 if r0 == "P2" else (1 if r1 == "P1" else 0)
            self.agent_sides = (side0, 1 - side0)
            chars = [0, 0]
            outfits = [1, 1]
            for i, side in enumerate(self.agent_sides):
                name = s.characters[i]
                chars[side] = index_of(name) if name is not None else int(rng.integers(len(CHARACTERS)))
                outfits[side] = s.outfits[i]
            if chars[0] == chars[1] and outfits[0] == outfits[1]:
                outfits[1] = outfits[1] % DUEL_OUTFITS + 1
            self.stage = 1
            self._arena = int(rng.integers(1, N_STAGES + 1))  # 2P: a random backdrop per match
            self.difficulty = 0
            self._ai = None
            self._outfits = (outfits[0], outfits[1])
            self.game = Game(CHARACTERS[chars[0]], CHARACTERS[chars[1]])
        self._done = False
        obs = self._observe()
        info = self._info(0, 0, False, False, False, (self.stage, 1))
        if self.render_mode == "human":
            self._render_human()
        return obs, info

    def _setup_stage(self) -> None:
        """1P: a new match against the CPU of the current stage."""
        s = self.settings
        side = self.agent_sides[0]
        cpu_char = self._opponents[self.stage - 1]
        agent_outfit = s.outfits
        cpu_outfit = (agent_outfit + self.stage - 1) % DUEL_OUTFITS + 1
        chars = [0, 0]
        chars[side], chars[1 - side] = self._agent_char, cpu_char
        outfits = [0, 0]
        outfits[side], outfits[1 - side] = agent_outfit, cpu_outfit
        self._outfits = (outfits[0], outfits[1])
        self.game = Game(CHARACTERS[chars[0]], CHARACTERS[chars[1]])
        self._ai = CpuAI(min(8.0, self.difficulty + 0.5 * (self.stage - 1)), self._ai_rng)

    # ---- stepping ----------------------------------------------------------------------------

    def _decode(self, action: Any, index: int) -> tuple[int, int]:
        if self._discrete[index]:
            value = _integers(action, 1)
            if value is None:
                raise SpaceError(f"a discrete duel action is an integer in [0, {N_DISCRETE - 1}] (or a 1-element "
                                 f"integer array), got {action!r}.")
            return discrete_to_multi(value[0])
        pair = _integers(action, 2)
        if pair is None:
            raise SpaceError(f"a multi-discrete duel action is a (move, attack) pair of integers, e.g. "
                             f"np.array([3, 1]), got {action!r}.")
        m, a = pair
        if not (0 <= m < N_MOVES and 0 <= a < N_ATTACKS):
            raise SpaceError(f"a duel action needs move in [0, 8] and attack in [0, 7], got {action!r}.")
        return m, a

    def step(self, action: Any):
        """Run ``step_ratio`` frames with ``action`` (a dict of both agents' actions in 2P)."""
        if self._done or self.game is None:
            raise ResetNeeded("DuelEnv.step() called before reset() or after the episode ended; call reset().")
        game = self.game
        inputs: list[tuple[int, int]] = [(0, 0), (0, 0)]
        if self.n_players == 1:
            inputs[self.agent_sides[0]] = self._decode(action, 0)
        else:
            try:
                a0, a1 = action["agent_0"], action["agent_1"]
            except (TypeError, KeyError, IndexError):
                raise SpaceError(f"a 2-player duel action is a dict with 'agent_0' and 'agent_1', got {action!r}.") from None
            inputs[self.agent_sides[0]] = self._decode(a0, 0)
            inputs[self.agent_sides[1]] = self._decode(a1, 1)
        me = self.agent_sides[0]
        played = (self.stage, game.round)
        f_me, f_op = game.fighters[me], game.fighters[1 - me]
        h_me, h_op = f_me.health, f_op.health
        ai, cpu = self._ai, 1 - me
        (m1, a1), (m2, a2) = inputs
        ended = False
        for _ in range(self.settings.step_ratio):
            if ai is not None:
                if cpu == 0:
                    m1, a1 = ai.act(game, 0)
                else:
                    m2, a2 = ai.act(game, 1)
            if game.tick(m1, a1, m2, a2):
                ended = True
                break
        reward = float((h_op - f_op.health) - (h_me - f_me.health))
        round_done = stage_done = game_done = False
        outcome = round_outcome = 0
        if ended:
            round_done = True
            w = game.round_winner
            round_outcome = 0 if w < 0 else (1 if w == me else -1)
            if game.match_over:
                f = game.fighters
                won = f[me].wins >= 2 and f[1 - me].wins < 2
                lost = f[1 - me].wins >= 2 and f[me].wins < 2
                outcome = 1 if won else -1 if lost else 0
                if self.n_players == 2:
                    stage_done = game_done = True
                elif won:
                    stage_done = True
                    if self.stage >= N_STAGES:
                        game_done = True
                    else:
                        self.stage += 1
                        self._setup_stage()
                elif self._use_continue():
                    self._setup_stage()
                else:
                    game_done = True
            else:
                game.start_round()
        self._done = game_done
        obs = self._observe()
        info = self._info(outcome, round_outcome, round_done, stage_done, game_done, played)
        if self.render_mode == "human":
            self._render_human()
        return obs, reward, game_done, False, info

    def _use_continue(self) -> bool:
        cg = self.settings.continue_game
        if cg < 0:
            if self._continues_left > 0:
                self._continues_left -= 1
                return True
            return False
        return cg > 0 and bool(self.np_random.random() < cg)

    # ---- observation and info ----------------------------------------------------------------

    def _observe(self) -> dict[str, Any]:
        game = self.game
        assert game is not None  # noqa: S101
        if self.n_players == 1:
            frame = self._renderer.draw(game, self.stage, self._outfits, marker=self.agent_sides[0])
        else:
            frame = self._renderer.draw(game, self._arena, self._outfits)
        self._frame = frame
        obs: dict[str, Any] = {
            "frame": self._process(frame),
            "stage": np.array([self.stage], np.int8),
            "timer": np.array([game.timer], np.int16),
        }
        f1, f2 = game.fighters
        p1_side = 0 if f1.x <= f2.x else 1  # the side of the screen: 0 left, 1 right
        for key, f, side in (("P1", f1, p1_side), ("P2", f2, 1 - p1_side)):
            obs[key] = {
                "side": np.int64(side),
                "wins": np.array([f.wins], np.int8),
                "character": np.int64(self._char_index[f.char.name]),
                "health": np.array([f.health], np.int16),
            }
        return obs

    def _info(
        self, outcome: int, round_outcome: int, round_done: bool, stage_done: bool, game_done: bool,
        played: tuple[int, int],
    ) -> dict:
        """Flags (bools) and numbers only, the same keys every step, so that they can be recorded.

        ``stage``/``round`` are those the step was played in; ``outcome`` is the result of a match
        that ended this step (1 won, -1 lost, 0 none or draw) and ``round_outcome`` that of a round,
        from the agent's side (``agent_0``'s in 2-player mode).
        """
        game = self.game
        assert game is not None  # noqa: S101
        return {
            "round_done": round_done,
            "stage_done": stage_done,
            "game_done": game_done,
            "episode_done": game_done,
            "env_done": game_done,
            "stage": played[0],
            "round": played[1],
            "outcome": outcome,
            "round_outcome": round_outcome,
            "difficulty": self.difficulty,
            "agent_side": self.agent_sides[0],
            "frame_count": game.frame,
        }

    # ---- rendering ---------------------------------------------------------------------------

    def render(self):
        """``"rgb_array"``: the native full-colour frame; ``"human"``: draw it in the window."""
        if self.render_mode == "rgb_array":
            return None if self._frame is None else self._frame.copy()
        if self.render_mode == "human":
            self._render_human()
        return None

    def _render_human(self, scale: int = 4) -> None:
        pygame = require("pygame", "play", "render_mode='human'")
        if self._frame is None:
            return
        if self._window is None:
            pygame.init()
            pygame.display.set_caption("trajarena duel")
            self._window = pygame.display.set_mode((WIDTH * scale, HEIGHT * scale))
            self._clock = pygame.time.Clock()
        big = np.repeat(np.repeat(self._frame, scale, 0), scale, 1)
        pygame.surfarray.blit_array(self._window, big.transpose(1, 0, 2))
        pygame.event.pump()
        pygame.display.flip()
        self._clock.tick(self.metadata["render_fps"])

    def close(self) -> None:
        """Close the window, if any."""
        if self._window is not None:
            import pygame

            pygame.display.quit()  # not pygame.quit(): other pygame users (joysticks...) keep working
            self._window = None
