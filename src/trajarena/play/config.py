"""What a play session is given and what it gives back: :class:`PlayConfig`, :class:`PlayResult`, :class:`PlayStep`.

:class:`PlayConfig` is the session's options as a frozen settings dataclass (validated on
construction, built from dicts); the ``trajarena play`` command makes one option per field, with the
help text of the field's metadata, so the command line, the Python API and the docs share one list.
It also decides what follows from who plays: the number of players of the env and which side the
recording marks as no demonstration. :mod:`trajarena.play.session` runs the session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from trajarena.errors import SettingsError
from trajarena.settings.base import Settings, as_bool, as_int

__all__ = ["SIDES", "PlayConfig", "PlayResult", "PlayStep"]

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
        reason: why it stopped: ``"quit"``, ``"max_episodes"``, ``"max_steps"`` or ``"interrupted"``.
        files: the trajectory files written.
        intervention_steps: steps in which a human had taken over from the agent.

    >>> PlayResult(2, 1, 900, "quit").episodes_saved
    2
    """

    episodes_saved: int
    episodes_discarded: int
    steps: int
    reason: str
    files: tuple[str, ...] = ()
    intervention_steps: int = 0


class PlayStep(NamedTuple):
    """One env step as :func:`play`'s ``callback`` sees it; ``action`` is exactly what ``env.step`` got."""

    episode: int
    step: int
    action: Any
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
