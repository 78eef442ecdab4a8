"""What the DIAMBRA readers hand to the converter: one recorded episode, as trajarena will write it.

:class:`Recording` is the neutral middle of the importer: :mod:`~trajarena.interop.diambra.v22` and
:mod:`~trajarena.interop.diambra.v21` read a DIAMBRA file into one, already in trajarena's terms
(Gymnasium spaces, the canonical settings, the reset observation, then per step the action and what
it produced), and :mod:`~trajarena.interop.diambra.convert` writes it with the public
:class:`~trajarena.format.writer.TrajectoryWriter`. The steps are produced lazily, so frames are
decoded one at a time. This module also holds the small value checks both readers share.

>>> rec = Recording(path="ep", version="2.2", env_id="doapp", env_settings={}, wrappers_settings={},
...                 username="alex", ignore_p2=0, observation_space=None, action_space=None,
...                 reset_obs=None, steps=lambda: iter(()), n_steps=0)
>>> rec.two_player
False
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces

from trajarena.errors import FormatError

__all__ = ["Recording", "Step", "as_action", "as_bool", "as_reward", "require_keys"]


class Step(NamedTuple):
    """One step: the action taken and what it produced.

    >>> Step(0, {"frame": None}, 1.0, False, False, {}).reward
    1.0
    """

    action: Any
    obs: Any
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]


@dataclass
class Recording:
    """One DIAMBRA episode in trajarena's terms, ready to be written.

    Args:
        path: the DIAMBRA file.
        version: ``"2.2"``, ``"2.1"`` or ``"2.1 hardcore"``.
        env_id: the DIAMBRA game id (``"doapp"``), stored as the file's env id.
        env_settings: the settings of the recording, in trajarena's canonical names.
        wrappers_settings: what the loader re-applies by default (2.1: the frame stack undone here).
        username: who played.
        ignore_p2: 1 when P2's side of a two-player file is no demonstration.
        observation_space, action_space: the spaces of the written file.
        reset_obs: the first observation.
        steps: a function returning an iterator of :class:`Step` (frames decoded lazily).
        n_steps: how many steps ``steps()`` yields.
        seed: the episode's seed, when DIAMBRA recorded it.
        source: JSON-ready facts about the origin (format, what was undone, what stays as recorded).

    >>> from gymnasium import spaces
    >>> Recording("ep", "2.1", "doapp", {}, {}, "alex", 1, None, spaces.Dict(agent_0=spaces.Discrete(12),
    ...           agent_1=spaces.Discrete(12)), None, lambda: iter(()), 0).two_player
    True
    """

    path: Any
    version: str
    env_id: str
    env_settings: dict[str, Any]
    wrappers_settings: dict[str, Any]
    username: str
    ignore_p2: int
    observation_space: Any
    action_space: Any
    reset_obs: Any
    steps: Callable[[], Iterator[Step]]
    n_steps: int
    seed: int | None = None
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def two_player(self) -> bool:
        """Whether the actions are ``Dict(agent_0, agent_1)``."""
        return isinstance(self.action_space, spaces.Dict)


def require_keys(where: str, value: Any, keys: tuple[str, ...], what: str) -> None:
    """Check that ``value`` is a dict holding ``keys``, or raise a FormatError naming the first missing one."""
    if not isinstance(value, Mapping):
        raise FormatError(f"{where}: {what} is {type(value).__name__}, not a dict")
    for key in keys:
        if key not in value:
            raise FormatError(f"{where}: {what} has no {key!r} (it has {', '.join(map(str, value))})")


def as_bool(where: str, value: Any) -> bool:
    """A recorded flag: a Python or numpy bool (or 0/1)."""
    if isinstance(value, bool | np.bool_) or (isinstance(value, int | np.integer) and value in (0, 1)):
        return bool(value)
    raise FormatError(f"{where}: a done flag is {value!r}, not a bool")


def as_reward(where: str, value: Any) -> float:
    """A recorded reward: a finite number."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(float(value)):
        raise FormatError(f"{where}: the reward is {value!r}, not a finite number")
    return float(value)


def as_action(where: str, value: Any, space: spaces.Space) -> Any:
    """One agent's recorded action (int, numpy scalar, list or array) as a value of ``space``."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = np.asarray(None)
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        raise FormatError(f"{where}: the action {value!r} is not made of integers")
    if isinstance(space, spaces.Discrete):
        if arr.size != 1:
            raise FormatError(f"{where}: the action {value!r} is not one integer, as {space} needs")
        out: Any = np.int64(arr.reshape(()).item())
    else:
        out = arr.reshape(-1).astype(np.int64)
        if out.shape != space.shape:
            raise FormatError(f"{where}: the action {value!r} does not have the shape {space.shape} of {space}")
    if not space.contains(out):
        raise FormatError(f"{where}: the action {value!r} is outside {space}")
    return out
