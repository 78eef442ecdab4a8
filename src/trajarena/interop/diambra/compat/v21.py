"""DIAMBRA Arena 2.1's ``diambra.arena.ImitationLearning`` on trajarena files (the gym 0.21 API).

2.1 scripts call ``env.reset()`` for an observation alone and unpack ``obs, reward, done, info``
from ``env.step``; ``info["action"]`` is ``[move, attack]`` whatever the action space, and
``render(mode="human")`` and ``show_obs`` show the recorded frames. :class:`ImitationLearning` gives
that API over :class:`trajarena.ImitationLearning`, so a 2.1 script runs once
``import diambra.arena`` becomes ``from trajarena.interop.diambra.compat import diambra21 as diambra``.
New code should use :class:`trajarena.ImitationLearning` (Gymnasium API) directly.

>>> to_move_attack(11), to_move_attack([3, 2])
([0, 3], [3, 2])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trajarena.replay.imitation import ImitationLearning as _ImitationLearning
from trajarena.replay.show import FrameWindow, frame_image

__all__ = ["ImitationLearning", "to_move_attack"]

_MOVES = 9


def to_move_attack(action: Any) -> list[int]:
    """A discrete or multi-discrete action as DIAMBRA 2.1's loader reports it: ``[move, attack]``."""
    a = np.asarray(action).reshape(-1)
    if a.size == 2:
        return [int(a[0]), int(a[1])]
    d = int(a[0])
    return [d, 0] if d < _MOVES else [0, d - _MOVES + 1]


class ImitationLearning:
    """DIAMBRA 2.1's imitation-learning env: gym 0.21 API over trajarena's replay.

    Args:
        traj_files_list: trajarena files (DIAMBRA 2.1 files: import them with ``trajarena import diambra``).
        rank: this env's rank in ``[0, total_cpus)``.
        total_cpus: how many ranks share the files.
    """

    def __init__(self, traj_files_list: Any, rank: int = 0, total_cpus: int = 1) -> None:
        self.env = _ImitationLearning(traj_files_list, total_cpus=total_cpus, rank=rank)
        self.observation_space, self.action_space = self.env.observation_space, self.env.action_space
        self.rank, self.total_cpus = rank, total_cpus
        self._frame: Any = None
        self._window: FrameWindow | None = None

    @property
    def exhausted(self) -> bool:
        """True once this rank's episodes were all replayed."""
        return self.env.exhausted

    def _keep(self, obs: Any) -> Any:
        self._frame = obs.get("frame") if isinstance(obs, dict) else obs
        return obs

    def reset(self) -> Any:
        """The first observation of the next episode (a blank one once exhausted)."""
        obs, _ = self.env.reset()
        return self._keep(obs)

    def step(self, action: Any) -> tuple[Any, float, bool, dict[str, Any]]:
        """``(observation, reward, done, info)``; the action is ignored, ``info["action"]`` is the recorded one."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "action" in info:
            info["action"] = to_move_attack(info["action"]) if not isinstance(info["action"], dict) else info["action"]
        return self._keep(obs), reward, bool(terminated or truncated), info

    def render(self, mode: str = "human") -> Any:
        """``"human"``: show the recorded frame in a window; ``"rgb_array"``: return it as an image."""
        if mode == "rgb_array":
            return frame_image(self._frame)
        self._window = self._window or FrameWindow("trajarena ImitationLearning")
        return self._window.show(self._frame)

    def show_obs(self, observation: Any, wait_key: int = 1, viz: bool = True, string: str = "observation") -> str:
        """Print the observation key by key and, with ``viz``, show its frame (see trajarena's ``show_obs``)."""
        return self.env.show_obs(observation, wait_key=wait_key, viz=viz, string=string)

    def traj_summary(self) -> str:
        """Print and return what the files hold."""
        return self.env.traj_summary()

    def close(self) -> None:
        if self._window is not None:
            self._window.close()
        self.env.close()
