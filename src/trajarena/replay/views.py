"""One player's view of recorded steps, for :class:`~trajarena.replay.dataset.TrajectoryDataset`.

The replay env (:mod:`trajarena.replay.raw`) plays a two-player file from each side; the dataset
gives random access to the same views, in batches. A :class:`View` turns the joint values of a
batch of steps into one player's: ``"P1"`` (agent_0) as recorded; ``"P2"`` (agent_1) with the
``P1``/``P2`` observation keys exchanged, agent_1's action and the reward negated, as the loader
replays it. ``mirror`` then shows every step of the player on the P2 side of the screen as P1 sees
the game (:func:`trajarena.fighting.mirror_observation`, :func:`~trajarena.fighting.mirror_action`),
per step, since files may differ in who played where (one-player files recorded with
``role="P2"`` are mirrored too).

>>> import numpy as np
>>> from gymnasium import spaces
>>> md = spaces.MultiDiscrete([9, 8])
>>> meta = {"action_space": {"type": "Dict", "spaces": {"agent_0": {}, "agent_1": {}}}, "env_settings": {"role": ["P1", "P2"]}}
>>> view = View("P2", True, spaces.Dict(agent_0=md, agent_1=md), [meta])
>>> obs = {"frame": np.arange(4, dtype=np.uint8).reshape(1, 1, 4, 1), "P1": {"side": np.array([0])}, "P2": {"side": np.array([1])}}
>>> act = {"agent_0": np.array([[5, 0]]), "agent_1": np.array([[1, 2]])}
>>> o, a, r = view.apply(obs, act, np.array([2.0]), np.array([0]))
>>> o["frame"][0, 0, :, 0].tolist(), int(o["P1"]["side"][0]), a.tolist(), r.tolist()
([3, 2, 1, 0], 0, [[5, 2]], [-2.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.errors import SettingsError
from trajarena.fighting import action_layout, mirror_action, mirror_observation

__all__ = ["DATASET_PERSPECTIVES", "View", "is_two_player"]

#: The views a dataset gives: the steps as recorded, or one player's.
DATASET_PERSPECTIVES = ("joint", "P1", "P2")


def is_two_player(meta: Mapping[str, Any]) -> bool:
    """Whether a file's action space is the two-player ``Dict(agent_0, agent_1)``."""
    act = meta.get("action_space", {})
    return act.get("type") == "Dict" and set(act.get("spaces", {})) == {"agent_0", "agent_1"}


def _first_side(meta: Mapping[str, Any]) -> str:
    """The side (``"P1"``/``"P2"``) agent_0 (or the only agent) played, from the file's env settings."""
    role = (meta.get("env_settings") or {}).get("role")
    role = role[0] if isinstance(role, list | tuple) and role else role
    return "P2" if role == "P2" else "P1"


def _where(mask: np.ndarray, a: Any, b: Any) -> Any:
    """``a`` where ``mask`` (over the leading batch axis), else ``b``; nested dicts and tuples leaf by leaf."""
    if isinstance(a, dict):
        return {k: _where(mask, a[k], b[k]) for k in a}
    if isinstance(a, tuple):
        return tuple(_where(mask, x, y) for x, y in zip(a, b, strict=True))
    a, b = np.asarray(a), np.asarray(b)
    return np.where(mask.reshape(mask.shape + (1,) * (a.ndim - mask.ndim)), a, b)


class View:
    """How one dataset shows its steps: the perspective, and which files' steps are mirrored.

    Args:
        perspective: ``"joint"`` (as recorded), ``"P1"`` or ``"P2"`` (one player's view of two-player files).
        mirror: mirror the steps of the player on the P2 side (fighting games only).
        action_space: the files' action space.
        metas: each file's metadata, in file order.

    Raises:
        SettingsError: an unknown perspective, ``"P2"`` of one-player files, ``mirror`` with joint
            two-player steps or with an action space that is not a fighting game's.
    """

    def __init__(self, perspective: str, mirror: bool, action_space: spaces.Space,
                 metas: Sequence[Mapping[str, Any]]) -> None:
        if perspective not in DATASET_PERSPECTIVES:
            raise SettingsError(f"perspective must be one of {DATASET_PERSPECTIVES}, got {perspective!r}.")
        two = bool(metas) and is_two_player(metas[0])
        if perspective == "P2" and not two:
            raise SettingsError("perspective='P2' needs two-player files (Dict(agent_0, agent_1) actions); these "
                                "have one player: use perspective='joint' or 'P1'.")
        self.perspective, self.mirror, self.two_player = perspective, bool(mirror), two
        self.agent = {"P1": "agent_0", "P2": "agent_1"}.get(perspective) if two else None
        self.action_space = action_space[self.agent] if self.agent else action_space
        if self.mirror:
            if two and self.agent is None:
                raise SettingsError("mirror=True needs one player's view of two-player files: perspective='P1' or "
                                    "'P2', not 'joint'.")
            if action_layout(self.action_space) is None:
                raise SettingsError(f"mirror=True is for fighting games (moves left/right, a 'frame'); this action "
                                    f"space is {self.action_space}. Leave mirror off.")
        own = [_first_side(m) if self.agent != "agent_1" else {"P1": "P2", "P2": "P1"}[_first_side(m)] for m in metas]
        #: per file: whether its steps are mirrored
        self.flip_file = np.array([self.mirror and side == "P2" for side in own], bool)

    @property
    def identity(self) -> bool:
        """True when the view changes nothing (joint steps, nothing mirrored)."""
        return self.agent is None and not self.flip_file.any()

    def apply(self, obs: Any, action: Any, reward: Any, file_index: np.ndarray) -> tuple[Any, Any, Any]:
        """This view of a batch of steps (observations, actions, rewards) of files ``file_index``.

        ``obs`` may be a tuple of observation batches (``obs`` and ``next_obs``), each viewed alike.
        """
        if self.identity:
            return obs, action, reward
        many = isinstance(obs, list)
        batches = obs if many else [obs]
        if self.agent is not None:
            action = action[self.agent]
        if self.agent == "agent_1":
            batches = [{**o, "P1": o["P2"], "P2": o["P1"]} if isinstance(o, dict) and "P1" in o and "P2" in o else o
                       for o in batches]
            reward = -np.asarray(reward)
        flip = self.flip_file[np.asarray(file_index)]
        if flip.any():
            if flip.all():
                batches = [mirror_observation(o) for o in batches]
                action = mirror_action(action, self.action_space)
            else:
                batches = [_where(flip, mirror_observation(o), o) for o in batches]
                action = _where(flip, mirror_action(action, self.action_space), action)
        return (batches if many else batches[0]), action, reward
