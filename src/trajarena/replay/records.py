"""Typed records of the training dataset: transitions, windows and episodes, and where episodes live.

:class:`Transition` and :class:`Window` are ``NamedTuple`` batches (leaves stacked on a first
batch axis; a window adds a step axis and a ``mask``); :class:`Episode` is a whole decoded episode
and :class:`EpisodeInfo` says where one lives in a :class:`~trajarena.replay.dataset.TrajectoryDataset`.
Each prints the shapes and dtypes of its arrays, not the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Episode", "EpisodeInfo", "Transition", "Window"]


def _summary(value: Any) -> str:
    """Shapes and dtypes of a nested value (type names for anything else), for ``repr`` of records."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_summary(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_summary(v) for v in value) + ")"
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{list(value.shape)}"
    return type(value).__name__


class Transition(NamedTuple):
    """One transition or a batch of them (leaves stacked on a first batch axis).

    ``action``, ``reward``, ``terminated`` and ``truncated`` are those of the step from ``obs`` to
    ``next_obs``. Prints shapes and dtypes, not arrays.

    >>> obs = {"frame": np.zeros((4, 8, 8), np.uint8), "hp": np.zeros(4, np.float32)}
    >>> Transition(obs, np.zeros(4, np.int64), np.zeros(4), obs, np.zeros(4, bool), np.zeros(4, bool))
    ... # doctest: +NORMALIZE_WHITESPACE
    Transition(obs={frame: uint8[4, 8, 8], hp: float32[4]}, action=int64[4], reward=float64[4],
               next_obs={frame: uint8[4, 8, 8], hp: float32[4]}, terminated=bool[4], truncated=bool[4])
    """

    obs: Any
    action: Any
    reward: Any
    next_obs: Any
    terminated: Any
    truncated: Any

    def __repr__(self) -> str:
        return "Transition(" + ", ".join(f"{k}={_summary(getattr(self, k))}" for k in self._fields) + ")"


class Window(NamedTuple):
    """``k`` consecutive steps from a start transition (batched: ``(batch, k, ...)``).

    ``mask`` is False where the window runs past the end of its episode; those entries are zeros.

    >>> z = np.zeros((2, 3))
    >>> Window(z, z.astype(np.int64), z, z, z.astype(bool), z.astype(bool), np.ones((2, 3), bool)).mask.shape
    (2, 3)
    """

    obs: Any
    action: Any
    reward: Any
    next_obs: Any
    terminated: Any
    truncated: Any
    mask: np.ndarray

    def __repr__(self) -> str:
        return "Window(" + ", ".join(f"{k}={_summary(getattr(self, k))}" for k in self._fields) + ")"


@dataclass(frozen=True)
class EpisodeInfo:
    """Where one episode lives and what its file says about it.

    Attributes:
        index: the global episode index in the dataset.
        file: the file that holds it.
        file_index: the position of that file in :attr:`TrajectoryDataset.files`.
        episode: the episode id stored in the file.
        length: the number of steps (transitions); the episode has ``length + 1`` observations.
        row: the global row of its reset observation.
        meta: the episode's end metadata from the file (seed, return, terminated, truncated, ...).
        uid: its id in the files' ``episode`` column, unique across files and machines.

    >>> info = EpisodeInfo(1, "b.arrow", 1, 0, 2, 12, {"_file_row0": 10})
    >>> info, info.local_row
    (EpisodeInfo(index=1, file='b.arrow', file_index=1, episode=0, length=2, row=12), 2)
    """

    index: int
    file: str
    file_index: int
    episode: int
    length: int
    row: int
    meta: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    uid: str = field(default="", repr=False)

    @property
    def local_row(self) -> int:
        """The row of the reset observation inside its file."""
        return self.row - self.meta.get("_file_row0", 0)


@dataclass(frozen=True)
class Episode:
    """A whole episode as arrays: ``observations`` has ``length + 1`` rows, the others ``length``.

    ``infos`` maps each recorded info key to ``(values, present)`` over the ``length + 1`` rows
    (row 0 is the reset info). Prints shapes and dtypes, not arrays.

    >>> info = EpisodeInfo(0, "a.arrow", 0, 0, 2, 0)
    >>> Episode(info, np.zeros((3, 2), np.float32), np.zeros(2, np.int64), np.zeros(2), np.zeros(2, bool),
    ...         np.zeros(2, bool), {})
    Episode(index=0, length=2, observations=float32[3, 2], actions=int64[2])
    """

    info: EpisodeInfo
    observations: Any
    actions: Any
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    infos: dict[str, tuple[np.ndarray, np.ndarray]]

    @property
    def length(self) -> int:
        """The number of steps."""
        return self.info.length

    def __len__(self) -> int:
        return self.info.length

    def __repr__(self) -> str:
        return (f"Episode(index={self.info.index}, length={self.info.length}, observations="
                f"{_summary(self.observations)}, actions={_summary(self.actions)})")
