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
* ``p1="policy.pt", p2="cpu"`` (no human side): an agent plays and a human watches, ready to take
  over. The take-over key (T, or a click of the left stick) gives the first agent's side to the
  human (with the one-human keys) and, pressed again, hands it back, at any moment. Every recorded
  step says who acted: ``info["is_intervention"]`` is True where the human had the controls
  (DAgger-style corrections; ``train_bc(interventions="only")`` learns from them). The agent keeps
  seeing every step while the human plays, so it takes over smoothly.

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
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from trajarena.errors import SettingsError
from trajarena.play.config import SIDES, PlayConfig, PlayResult, PlayStep
from trajarena.play.controls import HumanController, encode_action, scripted_events  # noqa: F401  (the doctests use it)
from trajarena.play.keymap import Keymap, init_pygame, key_label
from trajarena.play.view import PlayWindow, overlay
from trajarena.settings import RecordingSettings, WrappersSettings

__all__ = ["PlayConfig", "PlayResult", "PlaySession", "PlayStep", "play"]


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
        #: the driver a human may take over (the first agent's side, when no human plays), or None
        self.takeover_index: int | None = None
        can_take_over = not cfg.humans and any(who not in ("human", "cpu") for who in (cfg.p1, cfg.p2))
        self.env, self.recorder, self.intervention = _build_env(cfg.env_id, base, wrappers_settings, self.recording,
                                                                can_take_over)
        try:
            self.drivers = self._drivers(agents)
        except BaseException:
            self.env.close()
            raise
        if can_take_over:
            self.takeover_index = next(i for i, (kind, _) in enumerate(self.drivers) if kind == "agent")
        self.human_control = False
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
        """Sample every human once and ask every agent once: the action for one env step.

        An agent whose side a human took over is still asked (it keeps following the game), but the
        human's buttons are played.
        """
        space = self.env.action_space
        per_agent = []
        for i, (kind, driver) in enumerate(self.drivers):
            sub = space[f"agent_{i}"] if isinstance(space, spaces.Dict) else space
            if kind == "human":
                per_agent.append(encode_action(self.controller.sample(driver), sub))
            else:
                act = driver.act(obs, info)
                if self.human_control and i == self.takeover_index:
                    act = encode_action(self.controller.sample(0), sub)
                per_agent.append(act)
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
        self.saved = self.discarded = self.total = self.t = self.episode = self.taken_over = 0
        try:
            obs, info = self._reset(cfg.seed)
            try:
                reason = self._loop(obs, info, callback)
            except KeyboardInterrupt:
                reason = "interrupted"
            if self.t > 0 and not cfg.save_partial:
                self._discard()
            elif self.t > 0 and self.recorder is not None:
                self.saved += 1  # closing the recorder keeps the unfinished episode, marked truncated
        finally:
            self.env.close()
            self.view.close()
        files = tuple(str(f) for f in self.recorder.files) if self.recorder is not None else ()
        return PlayResult(self.saved, self.discarded, self.total, reason, files, self.taken_over)

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
                elif cmd == "takeover" and self.takeover_index is not None and mode != "start":
                    self.human_control = not self.human_control
                    controller.clear_presses()
            if mode == "start" and controller.any_press and not commands:
                mode = "play"
                controller.clear_presses()
            if mode != "play":
                controller.clear_presses()  # presses during a pause do not fire on resume
                self._draw(mode)
                clock.tick(min(self.fps, 30) if self.fps else 0)
                continue
            action = self.action(obs, info)
            if self.intervention is not None:
                self.intervention.active = self.human_control
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.t += 1
            self.total += 1
            self.taken_over += self.human_control
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
        return self.controller.keymap.describe(max(1, len(self.config.humans)), self.takeover_index is not None)

    def _draw(self, mode: str) -> None:
        cfg = self.config
        who = []
        taken = self._taken_side()
        for side, name in zip(SIDES, (cfg.p1, cfg.p2), strict=True):
            label = _short(name).upper()
            if name == "cpu" and cfg.difficulty is not None:
                label += f" L{cfg.difficulty}"
            if side == taken and self.human_control:
                label = f"YOU (for {label})"
            who.append(f"{side} {label}")
        status = {
            "recording": cfg.record,
            "saved": self.saved,
            "discarded": self.discarded,
            "step": self.t,
            "players": "  vs  ".join(who),
            "takeover": None if taken is None else {
                "side": taken, "active": self.human_control, "steps": self.taken_over,
                "key": key_label(self.controller.keymap.takeover[:1])},
        }
        table = self.controller.keymap.table(max(1, len(cfg.humans)), taken is not None)
        self.view.draw(self.env.render(), status, overlay(mode, table))

    def _taken_side(self) -> str | None:
        """The side (``"P1"``/``"P2"``) a human can take over, or None."""
        if self.takeover_index is None:
            return None
        cfg = self.config
        return [s for s, who in zip(SIDES, (cfg.p1, cfg.p2), strict=True) if who != "cpu"][self.takeover_index]


def _short(name: str) -> str:
    """How a player is named in the status bar: a policy file by its stem."""
    return name.rsplit("/", 1)[-1].removesuffix(".pt") if name.endswith(".pt") else name


class _Intervention(gym.Wrapper):
    """Below the recorder: every step's info says whether a human had taken over (``is_intervention``)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.active = False

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "is_intervention": self.active}

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "is_intervention": self.active}


def _build_env(env_id: str, settings: Any, wrappers_settings: Any, recording: RecordingSettings | None,
               intervention: bool = False) -> tuple[Any, Any, _Intervention | None]:
    """The play env: the raw env, the take-over flag (when a human may take over), a TrajectoryRecorder
    (when recording), the wrappers; returned with the recorder and the flag's wrapper."""
    from trajarena.envs.make import raw_env
    from trajarena.recording.recorder import TrajectoryRecorder
    from trajarena.wrappers import apply_wrappers

    wrappers = WrappersSettings.from_dict(wrappers_settings)
    env, settings_dict = raw_env(env_id, settings, render_mode="rgb_array")
    flag = _Intervention(env) if intervention else None
    env = flag or env
    recorder = None
    if recording is not None:
        env = recorder = TrajectoryRecorder.from_settings(env, recording, env_id=env_id, env_settings=settings_dict,
                                                          wrappers_settings=wrappers.to_dict())
    return apply_wrappers(env, wrappers), recorder, flag
