"""The play session: humans fight the CPU, each other or an agent in a window, recorded as they play.

This module owns the loop and what it decides: the options (:class:`PlayConfig`), who drives each
side (humans through :class:`~trajarena.play.controls.HumanController`, agents), the env and its
recorder, pause, discard and quit, and the result (:class:`PlayResult`). What the window shows is
:mod:`trajarena.play.view`.

:func:`play` opens a window at the game's native speed (``60 / step_ratio`` fps unless ``fps`` says
otherwise), draws the game's frame scaled up with crisp pixels and a status bar (who plays each
side, recording state, episodes saved, steps in the current episode), and records every finished
episode when ``record`` names a folder. Who plays:

* ``p1="human", p2="cpu"``: a human against the CPU tower (a 1-player env; ``difficulty`` applies);
  ``p1="cpu", p2="human"`` plays the right-hand side.
* ``p1="human", p2="human"``: two humans on one keyboard, or one gamepad each (a 2-player env).
* ``p1="human", p2="expert"`` (any agent name of :func:`trajarena.learn.agents.make_agent`, or an object
  with ``act(obs, info)`` passed in ``agents``): a human against an agent (a 2-player env), recorded
  with ``ignore_p2=1`` so only the human's side is a demonstration; ``p1="expert", p2="human"`` is
  recorded with ``ignore_p1=1`` likewise.

Keys (see :class:`trajarena.play.keymap.Keymap`, changeable with a TOML/JSON file): the key map is shown
at start and with F1/Tab; P pauses, Backspace discards the current episode (it is not saved), Esc or
closing the window quits. Finished episodes are always kept (each is on disk when it ends); an
unfinished one is dropped on quit unless ``save_partial`` is set (it is then saved as truncated).
Recording goes through the ordinary :class:`~trajarena.recording.recorder.TrajectoryRecorder`; discarding uses
its :meth:`~trajarena.recording.recorder.TrajectoryRecorder.discard_episode`.

Tests and scripts drive it headless (``SDL_VIDEODRIVER=dummy``) with injected events and ``fps=0``:

>>> import pygame
>>> right = pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RIGHT)
>>> seen = []
>>> result = play(p2="cpu", fps=0, show_help=False, max_steps=3, print_keymap=False,
...               events=scripted_events([[right], [], []]), callback=lambda s: seen.append(s.action))
>>> [a.tolist() for a in seen], result.steps
([[5, 0], [5, 0], [5, 0]], 3)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gymnasium import spaces

from trajarena.errors import SettingsError
from trajarena.play.controls import HumanController, encode_action, scripted_events  # noqa: F401  (the doctests use it)
from trajarena.play.keymap import Keymap, init_pygame
from trajarena.play.view import PlayWindow, overlay
from trajarena.settings import RecordingSettings, WrappersSettings
from trajarena.settings.base import Settings, as_bool, as_int

__all__ = ["PlayConfig", "PlayResult", "PlaySession", "PlayStep", "play"]

SIDES = ("P1", "P2")


def _meta(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class PlayConfig(Settings):
    """Options of a human play session; the CLI makes one option per field (``help`` in the metadata).

    >>> PlayConfig(p1="human", p2="human").humans
    ('P1', 'P2')
    >>> PlayConfig.from_dict({"p2": "expert", "record": "data/duel"}).recording_ignore_p2
    1
    >>> PlayConfig(p1="expert", p2="human").recording_ignore_p1
    1
    """

    env_id: str = field(default="duel", metadata=_meta("Game to play (a fighting-game env id)."))
    record: str | None = field(default=None, metadata=_meta("Folder to record the episodes to; no recording when unset."))
    username: str = field(default="", metadata=_meta("Player name stored in the trajectory files."))
    p1: str = field(default="human", metadata=_meta("Who plays P1 (left): human, cpu, or an agent name (random, expert)."))
    p2: str = field(default="cpu", metadata=_meta("Who plays P2 (right): human, cpu, or an agent name (random, expert)."))
    difficulty: int | None = field(default=3, metadata=_meta("CPU strength 1-8 (human vs CPU)."))
    character: str | None = field(default=None, metadata=_meta("The first human's fighter (random when unset)."))
    step_ratio: int = field(default=1, metadata=_meta("Game frames per env step (1 = every frame at 60 fps)."))
    fps: float | None = field(default=None, metadata=_meta("Env steps per second; 60/step_ratio when unset, 0 = unlimited."))
    scale: int = field(default=4, metadata=_meta("Window scale of the native frame (integer, crisp pixels)."))
    keymap: str | None = field(default=None, metadata=_meta("TOML/JSON key map file (see docs/keymap.md)."))
    max_episodes: int | None = field(default=None, metadata=_meta("Stop after this many finished episodes."))
    max_steps: int | None = field(default=None, metadata=_meta("Stop after this many env steps in all."))
    ignore_p2: int | None = field(default=None, metadata=_meta("Override ignore_p2 (default: 1 for human P1 vs agent)."))
    ignore_p1: int | None = field(default=None, metadata=_meta("Override ignore_p1 (default: 1 for agent vs human P2)."))
    save_partial: bool = field(default=False, metadata=_meta("On quit, save the unfinished episode as truncated."))
    show_help: bool = field(default=True, metadata=_meta("Show the key map at start (any key starts)."))
    print_keymap: bool = field(default=True, metadata=_meta("Print the key map to the terminal at start."))
    seed: int | None = field(default=None, metadata=_meta("Seed of the first episode."))

    def __post_init__(self) -> None:
        o = type(self).__name__
        for side in ("p1", "p2"):
            value = getattr(self, side)
            if not isinstance(value, str) or not value:
                raise SettingsError(f"{o}.{side} must be 'human', 'cpu' or an agent name, got {value!r}.")
            self._set(side, value.lower() if value.lower() in ("human", "cpu") else value)
        if self.p1 == "cpu" and self.p2 == "cpu":
            raise SettingsError(f"{o}: p1 and p2 cannot both be 'cpu'; make one side 'human' or an agent.")
        if self.difficulty is not None:
            self._set("difficulty", as_int(o, "difficulty", self.difficulty, 1, 8))
        self._set("step_ratio", as_int(o, "step_ratio", self.step_ratio, 1, 60))
        self._set("scale", as_int(o, "scale", self.scale, 1, 16))
        for name in ("max_episodes", "max_steps", "seed"):
            if getattr(self, name) is not None:
                self._set(name, as_int(o, name, getattr(self, name), 0 if name == "seed" else 1))
        if self.fps is not None and (isinstance(self.fps, bool) or not isinstance(self.fps, int | float) or self.fps < 0):
            raise SettingsError(f"{o}.fps must be a number >= 0 (0 = unlimited) or None, got {self.fps!r}.")
        for name in ("ignore_p2", "ignore_p1"):
            value = getattr(self, name)
            if value is not None and (value not in (0, 1) or isinstance(value, float)):
                raise SettingsError(f"{o}.{name} must be 0, 1 or None (automatic), got {value!r}.")
        if self.ignore_p1 == 1 and self.ignore_p2 == 1:
            raise SettingsError(f"{o}: ignore_p1 and ignore_p2 are both 1, so no side would be a demonstration; "
                                "set at most one of them.")
        for name in ("save_partial", "show_help", "print_keymap"):
            self._set(name, as_bool(o, name, getattr(self, name)))

    @property
    def humans(self) -> tuple[str, ...]:
        """The sides humans play, in side order (the first uses key set 1)."""
        return tuple(s for s, who in zip(SIDES, (self.p1, self.p2), strict=True) if who == "human")

    @property
    def n_players(self) -> int:
        """1 when one side is the game's CPU (a 1-player env), else 2."""
        return 1 if "cpu" in (self.p1, self.p2) else 2

    @property
    def recording_ignore_p2(self) -> int:
        """``ignore_p2`` of the recording: 1 when a human plays P1 against a non-human P2."""
        if self.ignore_p2 is not None:
            return int(self.ignore_p2)
        return int(self.n_players == 2 and self.p1 == "human" and self.p2 != "human" and self.ignore_p1 != 1)

    @property
    def recording_ignore_p1(self) -> int:
        """``ignore_p1`` of the recording: 1 when a non-human P1 plays against a human P2."""
        if self.ignore_p1 is not None:
            return int(self.ignore_p1)
        return int(self.n_players == 2 and self.p2 == "human" and self.p1 != "human" and self.ignore_p2 != 1)


@dataclass(frozen=True)
class PlayResult:
    """What a play session did.

    Attributes:
        episodes_saved: finished episodes written to the recording (or played, when not recording).
        episodes_discarded: episodes dropped with the discard key (or unfinished at quit).
        steps: env steps taken in all.
        reason: why it stopped: ``"quit"``, ``"max_episodes"`` or ``"max_steps"``.
        files: the trajectory files written.

    >>> PlayResult(2, 1, 900, "quit").episodes_saved
    2
    """

    episodes_saved: int
    episodes_discarded: int
    steps: int
    reason: str
    files: tuple[str, ...] = ()


class PlayStep(NamedTuple):
    """One env step as :func:`play`'s ``callback`` sees it; ``action`` is exactly what ``env.step`` got."""

    episode: int
    step: int
    action: Any
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]


def play(
    config: PlayConfig | Mapping[str, Any] | None = None,
    /,
    *,
    settings: Any = None,
    wrappers_settings: Any = None,
    agents: Mapping[str, Any] | None = None,
    events: Callable[[], Iterable[Any]] | None = None,
    callback: Callable[[PlayStep], None] | None = None,
    **options: Any,
) -> PlayResult:
    """Play a fighting game in a pygame window, recording the finished episodes.

    Args:
        config: a :class:`PlayConfig` or a dict of its fields; ``options`` override it
            (``play(record="data/duel", username="alex", p2="expert")``).
        settings: extra env settings (``EnvironmentSettings`` or a dict, e.g. ``characters``); the
            play options set ``n_players``, ``role``, ``step_ratio`` and ``difficulty`` on top.
        wrappers_settings: wrappers applied on top of the recorder (stored in the files).
        agents: agent objects with ``act(obs, info)`` by side, e.g. ``{"P2": my_policy}``; they
            override the agent names in ``p1``/``p2``.
        events: the event source (``pygame.event.get`` when None); see :func:`~trajarena.play.controls.scripted_events`.
        callback: called after every env step with a :class:`PlayStep`.

    Returns:
        A :class:`PlayResult`: episodes saved and discarded, steps, why it stopped, files written.

    Raises:
        SettingsError: a bad option, key map or setting.
        MissingDependencyError: pygame is not installed (``pip install 'trajarena[play]'``).
    """
    cfg = PlayConfig.from_dict(config, **options)
    session = PlaySession(cfg, settings=settings, wrappers_settings=wrappers_settings, agents=agents, events=events)
    return session.run(callback)


class PlaySession:
    """The play loop behind :func:`play`: one env, the humans' controller, agents, the window.

    Each loop turn polls events once, then (unless paused) samples every player once and steps the
    env once, so at ``step_ratio > 1`` the input is sampled once per env step.

    >>> session = PlaySession(PlayConfig(fps=0, show_help=False, max_steps=2, print_keymap=False),
    ...                       events=scripted_events([]))
    >>> session.run().reason
    'quit'
    """

    def __init__(
        self,
        config: PlayConfig,
        settings: Any = None,
        wrappers_settings: Any = None,
        agents: Mapping[str, Any] | None = None,
        events: Callable[[], Iterable[Any]] | None = None,
    ) -> None:
        from trajarena.settings import EnvironmentSettings

        self.config = cfg = config
        self.pygame = init_pygame()
        keymap = Keymap.load(cfg.keymap, len(cfg.humans)) if cfg.keymap else Keymap.default(max(1, len(cfg.humans)))
        self.controller = HumanController(keymap, n_humans=max(1, len(cfg.humans)), events=events)
        base = EnvironmentSettings.from_dict(settings).to_dict(json=False) if cfg.env_id == "duel" else dict(settings or {})
        if cfg.env_id == "duel":
            base.update(n_players=cfg.n_players, step_ratio=cfg.step_ratio)
            for key in ("role", "characters", "outfits", "action_space"):
                if cfg.n_players == 1 and isinstance(base[key], tuple):
                    base[key] = base[key][0]
                elif cfg.n_players == 2 and not isinstance(base[key], tuple):
                    base[key] = (base[key], base[key])
            if cfg.n_players == 1:
                base["role"] = "P1" if cfg.p2 == "cpu" else "P2"
                base["difficulty"] = cfg.difficulty if cfg.difficulty is not None else base["difficulty"]
                if cfg.character is not None:
                    base["characters"] = cfg.character
            else:
                base["role"] = ("P1", "P2")
                if cfg.character is not None and cfg.humans:
                    chars = list(base["characters"])
                    chars[SIDES.index(cfg.humans[0])] = cfg.character
                    base["characters"] = tuple(chars)
        self.recording = None
        if cfg.record:
            self.recording = RecordingSettings(
                username=cfg.username,
                file_path=cfg.record,
                ignore_p2=cfg.recording_ignore_p2,
                ignore_p1=cfg.recording_ignore_p1,
                players={"P1": self._label(cfg.p1, "P1", agents), "P2": self._label(cfg.p2, "P2", agents)},
            )
        self.env, self.recorder = _build_env(cfg.env_id, base, wrappers_settings, self.recording)
        try:
            self.drivers = self._drivers(agents)
        except BaseException:
            self.env.close()
            raise
        self.fps = cfg.fps if cfg.fps is not None else 60.0 / cfg.step_ratio
        self.view: PlayWindow | None = None

    def _drivers(self, agents: Mapping[str, Any] | None) -> list[tuple[str, Any]]:
        """Who drives each env agent, in agent order: ``("human", human index)`` or ``("agent", obj)``."""
        cfg = self.config
        active = [s for s, who in zip(SIDES, (cfg.p1, cfg.p2), strict=True) if who != "cpu"]
        drivers: list[tuple[str, Any]] = []
        for i, side in enumerate(active):
            who = cfg.p1 if side == "P1" else cfg.p2
            if agents and side in agents:
                if not callable(getattr(agents[side], "act", None)):
                    raise SettingsError(f"agents[{side!r}] must have an act(obs, info) method, got {agents[side]!r}.")
                drivers.append(("agent", agents[side]))
            elif who == "human":
                drivers.append(("human", cfg.humans.index(side)))
            else:
                from trajarena.learn.agents import make_agent

                drivers.append(("agent", make_agent(who, self.env, player=i, seed=cfg.seed)))
        return drivers

    @staticmethod
    def _label(who: str, side: str, agents: Mapping[str, Any] | None) -> str:
        if agents and side in agents:
            return f"agent:{type(agents[side]).__name__}"
        return who if who in ("human", "cpu") else f"agent:{who}"

    # ------------------------------------------------------------------ the loop

    def action(self, obs: Any, info: dict[str, Any]) -> Any:
        """Sample every human once and ask every agent once: the action for one env step."""
        space = self.env.action_space
        per_agent = []
        for i, (kind, driver) in enumerate(self.drivers):
            sub = space[f"agent_{i}"] if isinstance(space, spaces.Dict) else space
            if kind == "human":
                per_agent.append(encode_action(self.controller.sample(driver), sub))
            else:
                per_agent.append(driver.act(obs, info))
        if isinstance(space, spaces.Dict):
            return {f"agent_{i}": a for i, a in enumerate(per_agent)}
        return per_agent[0]

    def run(self, callback: Callable[[PlayStep], None] | None = None) -> PlayResult:
        """Play until quit, ``max_episodes`` or ``max_steps``; always closes the env.

        Ctrl+C in the terminal counts as quitting (``reason="interrupted"``).
        """
        cfg = self.config
        if cfg.print_keymap:
            print("\n".join(["trajarena play: keys", *("  " + line for line in self.keymap_lines())]))
        self.view = PlayWindow(self.pygame, cfg.scale, f"trajarena play: {cfg.env_id}")
        self.saved = self.discarded = self.total = self.t = self.episode = 0
        try:
            obs, info = self._reset(cfg.seed)
            try:
                reason = self._loop(obs, info, callback)
            except KeyboardInterrupt:
                reason = "interrupted"
            if self.t > 0 and not cfg.save_partial:
                self._discard()
        finally:
            self.env.close()
            self.view.close()
        files = tuple(str(f) for f in self.recorder.files) if self.recorder is not None else ()
        return PlayResult(self.saved, self.discarded, self.total, reason, files)

    def _loop(self, obs: Any, info: dict[str, Any], callback: Callable[[PlayStep], None] | None) -> str:
        cfg, controller = self.config, self.controller
        clock = self.pygame.time.Clock()
        mode = "start" if cfg.show_help else "play"
        while True:
            controller.any_press = False
            commands = controller.poll()
            if "quit" in commands:
                return "quit"
            for cmd in commands:
                if cmd == "pause":
                    mode = "pause" if mode == "play" else "play"
                elif cmd == "help":
                    mode = "help" if mode == "play" else "play"
                elif cmd == "discard" and mode != "start":
                    self._discard()
                    obs, info = self._reset(None)
            if mode == "start" and controller.any_press and not commands:
                mode = "play"
                controller.clear_presses()
            if mode != "play":
                controller.clear_presses()  # presses during a pause do not fire on resume
                self._draw(mode)
                clock.tick(min(self.fps, 30) if self.fps else 0)
                continue
            action = self.action(obs, info)
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.t += 1
            self.total += 1
            if callback is not None:
                callback(PlayStep(self.episode, self.t, action, float(reward), bool(terminated), bool(truncated), info))
            self._draw(mode)
            if terminated or truncated:
                if self.recorder is not None:
                    self.recorder.flush()  # a finished episode reaches the disk now
                self.saved += 1
                self.episode += 1
                self.t = 0
                if cfg.max_episodes is not None and self.saved >= cfg.max_episodes:
                    return "max_episodes"
                obs, info = self._reset(None)
            if cfg.max_steps is not None and self.total >= cfg.max_steps:
                return "max_steps"
            clock.tick(self.fps)

    def _reset(self, seed: int | None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed)
        for kind, driver in self.drivers:
            if kind == "agent" and hasattr(driver, "reset"):
                driver.reset()
        return obs, info

    def _discard(self) -> None:
        """Drop the episode in progress (from the recording too)."""
        if self.recorder is not None:
            self.recorder.discard_episode()
        self.discarded += 1
        self.episode += 1
        self.t = 0

    # ------------------------------------------------------------------ what the window shows

    def keymap_lines(self) -> list[str]:
        """The key map as shown on screen and printed at start."""
        return self.controller.keymap.describe(max(1, len(self.config.humans)))

    def _draw(self, mode: str) -> None:
        cfg = self.config
        who = []
        for side, name in zip(SIDES, (cfg.p1, cfg.p2), strict=True):
            label = name.upper()
            if name == "cpu" and cfg.difficulty is not None:
                label += f" L{cfg.difficulty}"
            who.append(f"{side} {label}")
        status = {
            "recording": cfg.record,
            "saved": self.saved,
            "discarded": self.discarded,
            "step": self.t,
            "players": "  vs  ".join(who),
        }
        table = self.controller.keymap.table(max(1, len(cfg.humans)))
        self.view.draw(self.env.render(), status, overlay(mode, table))


def _build_env(env_id: str, settings: Any, wrappers_settings: Any, recording: RecordingSettings | None) -> tuple[Any, Any]:
    """The play env and its recorder: the raw env, a TrajectoryRecorder (when recording), the wrappers."""
    from trajarena.envs.make import raw_env
    from trajarena.recording.recorder import TrajectoryRecorder
    from trajarena.wrappers import apply_wrappers

    wrappers = WrappersSettings.from_dict(wrappers_settings)
    env, settings_dict = raw_env(env_id, settings, render_mode="rgb_array")
    recorder = None
    if recording is not None:
        env = recorder = TrajectoryRecorder.from_settings(env, recording, env_id=env_id, env_settings=settings_dict,
                                                          wrappers_settings=wrappers.to_dict())
    return apply_wrappers(env, wrappers), recorder
