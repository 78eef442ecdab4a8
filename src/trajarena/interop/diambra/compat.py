"""Run DIAMBRA Arena scripts on trajarena by changing only their imports.

* ``import diambra.arena`` (2.2) becomes ``from trajarena.interop.diambra.compat import diambra``;
* ``from diambra.arena import EnvironmentSettings, ...`` and
  ``from diambra.arena.utils.diambra_data_loader import DiambraDataLoader`` import from
  ``trajarena.interop.diambra.compat`` instead;
* ``import diambra.arena`` of a 2.1 script (``ImitationLearning``) becomes
  ``from trajarena.interop.diambra.compat import diambra21 as diambra``.

For 2.2: :func:`make` has ``diambra.arena.make``'s signature and makes trajarena's env (``duel``, or a
DIAMBRA game through the ``diambra`` extra), recording with trajarena's recorder into
``dataset_path``; the settings dataclasses are mutable, with DIAMBRA's field names and defaults
(trajarena reads them through :mod:`trajarena.dialects`); :class:`DiambraDataLoader` replays trajarena
files as DIAMBRA's loader replays ``.diambra`` files. For 2.1: :class:`ImitationLearning21` is 2.1's
``diambra.arena.ImitationLearning`` (gym 0.21 API: ``reset`` returns the observation alone, ``step``
``(obs, reward, done, info)`` with ``info["action"]`` as ``[move, attack]``, ``render(mode="human")``).
These exist for old scripts; new code uses ``trajarena.make`` and ``trajarena.ImitationLearning``,
which take DIAMBRA's settings names too. What is taken from DIAMBRA here is its interface only (class,
function and field names, defaults, enum values, return shapes); the code is trajarena's.

>>> settings = EnvironmentSettings()
>>> settings.action_space = SpaceTypes.DISCRETE
>>> env = diambra.arena.make("duel", settings)
>>> env.action_space
Discrete(16)
>>> env.close()
>>> diambra21.arena.ImitationLearning is ImitationLearning21, to_move_attack(11)
(True, [0, 3])
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, fields, make_dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from trajarena.envs.make import make as _make
from trajarena.errors import DataNotFoundError, NotSupportedError
from trajarena.format.discover import find_files
from trajarena.replay.imitation import ImitationLearning
from trajarena.replay.show import FrameWindow, frame_image
from trajarena.settings import WrappersSettings as _TrajarenaWrappersSettings

__all__ = ["DiambraDataLoader", "EnvironmentSettings", "EnvironmentSettingsMultiAgent", "ImitationLearning21",
           "RecordingSettings", "Roles", "SpaceTypes", "WrappersSettings", "diambra", "diambra21",
           "get_diambra_controller", "make", "to_move_attack"]

_MOVES = 9  # moves of every DIAMBRA game: a discrete action below 9 is a move, above an attack



class SpaceTypes:
    """DIAMBRA's action space types (``diambra.arena.SpaceTypes``).

    >>> SpaceTypes.DISCRETE, SpaceTypes.Name(2)
    (1, 'MULTI_DISCRETE')
    """

    BINARY, DISCRETE, MULTI_DISCRETE, BOX = 0, 1, 2, 3

    @classmethod
    def Name(cls, value: int) -> str:  # noqa: N802 - protobuf's enum API
        return {0: "BINARY", 1: "DISCRETE", 2: "MULTI_DISCRETE", 3: "BOX"}[value]


class Roles:
    """DIAMBRA's player roles (``diambra.arena.Roles``).

    >>> Roles.P2, Roles.Name(2)
    (3, 'P1')
    """

    P1, P2 = 2, 3

    @classmethod
    def Name(cls, value: int) -> str:  # noqa: N802 - protobuf's enum API
        return {2: "P1", 3: "P2"}[value]


@dataclass
class EnvironmentSettings:
    """DIAMBRA 2.2's single-agent environment settings (its field names and defaults).

    >>> EnvironmentSettings(role=Roles.P2).step_ratio
    6
    """

    game_id: str = "doapp"
    frame_shape: tuple[int, int, int] = (0, 0, 0)
    step_ratio: int = 6
    disable_keyboard: bool = True
    disable_joystick: bool = True
    render_mode: str | None = None
    splash_screen: bool = True
    rank: int = 0
    env_address: str | None = None
    grpc_timeout: int = 600
    seed: int | None = None
    difficulty: int | None = None
    continue_game: float = 0.0
    show_final: bool = False
    tower: int | None = 3
    n_players: int = 1
    action_space: int = SpaceTypes.MULTI_DISCRETE
    role: int | None = None
    characters: Any = None
    outfits: int = 1
    super_art: int | None = None
    fighting_style: int | None = None
    ultimate_style: Any = None
    speed_mode: int | None = None


@dataclass
class EnvironmentSettingsMultiAgent(EnvironmentSettings):
    """DIAMBRA 2.2's two-agent environment settings: per-player values are pairs.

    >>> EnvironmentSettingsMultiAgent().outfits
    (1, 1)
    """

    n_players: int = 2
    action_space: Any = (SpaceTypes.MULTI_DISCRETE, SpaceTypes.MULTI_DISCRETE)
    role: Any = (None, None)
    characters: Any = (None, None)
    outfits: Any = (1, 1)
    super_art: Any = (None, None)
    fighting_style: Any = (None, None)
    ultimate_style: Any = (None, None)
    speed_mode: Any = (None, None)


def _mutable_twin(cls: type, name: str, doc: str, defaults: dict[str, Any]) -> type:
    """A mutable dataclass with ``cls``'s fields (DIAMBRA users set settings attribute by attribute)."""
    specs = [(f.name, f.type, field(default_factory=defaults[f.name]) if f.name in defaults
              else field(default=f.default)) for f in fields(cls)]
    twin = make_dataclass(name, specs)
    twin.__doc__, twin.__module__ = doc, __name__
    return twin


WrappersSettings = _mutable_twin(
    _TrajarenaWrappersSettings, "WrappersSettings",
    """DIAMBRA 2.2's wrappers settings: trajarena's fields, mutable, with DIAMBRA's list defaults.

    >>> WrappersSettings(stack_frames=4).filter_keys
    []
    """, {"filter_keys": list, "wrappers": list})


@dataclass
class RecordingSettings:
    """DIAMBRA 2.2's episode recording settings: a ``dataset_path`` turns recording on.

    >>> RecordingSettings().dataset_path is None
    True
    """

    dataset_path: str | None = None
    username: str | None = None


def make(game_id: str, env_settings: Any = None, wrappers_settings: Any = None,
         episode_recording_settings: Any = None, render_mode: str | None = None, rank: int = 0,
         env_addresses: Any = ("localhost:50051",), log_level: int = logging.INFO) -> Any:
    """``diambra.arena.make``: trajarena's env, recorded into ``dataset_path`` when one is set.

    ``rank``, ``env_addresses`` and ``log_level`` are accepted for DIAMBRA's signature; a DIAMBRA
    game's engine address comes from ``DIAMBRA_ENVS`` (``diambra run``) or the ``env_address`` setting.
    """
    recording = episode_recording_settings or RecordingSettings()
    rec = None
    if getattr(recording, "dataset_path", None) is not None:
        rec = {"file_path": recording.dataset_path, "username": recording.username or ""}
    return _make(game_id, env_settings, wrappers_settings, rec, render_mode=render_mode)


def get_diambra_controller(*args: Any, **kwargs: Any) -> Any:
    """DIAMBRA's gamepad helper has no trajarena twin: play and record with ``trajarena play`` instead."""
    raise NotSupportedError("get_diambra_controller is DIAMBRA's own gamepad reader; with trajarena, play and record "
                            "with `trajarena play duel --record DIR` or trajarena.play.controls.HumanController.")


def _frame(obs: Any) -> Any:
    return obs.get("frame") if isinstance(obs, dict) else obs


def _blank_frame() -> np.ndarray:
    """What ``render`` shows before the first step of an episode (a black square, as with DIAMBRA's loader)."""
    return np.zeros((128, 128, 1), dtype=np.uint8)


class DiambraDataLoader:
    """DIAMBRA 2.2's data loader over trajarena files: ``step`` returns the observation *before* the action.

    Args:
        dataset_path: a folder of trajarena files (DIAMBRA's own ``.diambra`` files: import them first
            with ``trajarena import diambra``).
        log_level: the level of the episode summary logged at each reset.

    >>> import tempfile
    >>> DiambraDataLoader(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    trajarena.errors.DataNotFoundError: No trajectory file in ...
    """

    def __init__(self, dataset_path: str, log_level: int = logging.INFO) -> None:
        self.logger = logging.getLogger(__name__)
        self.logger.setLevel(log_level)
        self.dataset_path = dataset_path
        if not os.path.isdir(dataset_path):
            raise DataNotFoundError(f"The path {dataset_path!r} is not a folder of trajectory files.")
        try:
            files = find_files(dataset_path)[0]
        except DataNotFoundError:
            files = []
        if not files:
            diambra = [f for f in os.listdir(dataset_path) if f.endswith(".diambra")]
            hint = (f" It holds {len(diambra)} DIAMBRA .diambra file(s): convert them with "
                    f"`trajarena import diambra {dataset_path} --out OUT` and load OUT.") if diambra else ""
            raise DataNotFoundError(f"No trajectory file in {dataset_path!r}.{hint}")
        self.episode_files = [str(f) for f in files]
        self._env = ImitationLearning(self.episode_files, raw=True, perspective="joint", loop=True)
        self.n_loops = 0
        self.frame = _blank_frame()
        self._obs: Any = None
        self._window: FrameWindow | None = None

    def reset(self) -> int:
        """Open the next episode; return how many times all episodes were replayed."""
        self._obs, info = self._env.reset()
        self.n_loops = self._env.passes
        self.frame = _blank_frame()
        self.logger.info("replaying episode %s of %s (pass %d)", info.get("episode"), info.get("file"), self.n_loops)
        return self.n_loops

    def step(self) -> tuple[Any, Any, float, bool, bool, dict[str, Any]]:
        """The next recorded step: ``(observation, action, reward, terminated, truncated, info)``."""
        obs, reward, terminated, truncated, info = self._env.step(None)
        action = info.pop("action")
        out = (self._obs, action, reward, terminated, truncated, info)
        self.frame = _frame(self._obs)
        self._obs = obs
        return out

    def render(self, waitKey: int = 1) -> bool:  # noqa: N803 - DIAMBRA's signature
        """Show the frame of the last step in a window (pygame); False when none can be shown."""
        try:
            self._window = self._window or FrameWindow("trajarena DiambraDataLoader")
            return self._window.show(self.frame)
        except ImportError:
            return False



def to_move_attack(action: Any) -> list[int]:
    """A discrete or multi-discrete action as DIAMBRA 2.1's loader reports it: ``[move, attack]``."""
    a = np.asarray(action).reshape(-1)
    if a.size == 2:
        return [int(a[0]), int(a[1])]
    d = int(a[0])
    return [d, 0] if d < _MOVES else [0, d - _MOVES + 1]


class ImitationLearning21:
    """DIAMBRA 2.1's imitation-learning env: gym 0.21 API over trajarena's replay.

    Args:
        traj_files_list: trajarena files (DIAMBRA 2.1 files: import them with ``trajarena import diambra``).
        rank: this env's rank in ``[0, total_cpus)``.
        total_cpus: how many ranks share the files.

    >>> import tempfile, gymnasium as gym
    >>> from trajarena.recording.recorder import TrajectoryRecorder
    >>> rec = TrajectoryRecorder(gym.make("CartPole-v1"), tempfile.mkdtemp())
    >>> _ = rec.reset(seed=0); _ = rec.step(1); rec.close()
    >>> env = ImitationLearning21(rec.files)
    >>> obs = env.reset()
    >>> obs, reward, done, info = env.step(0)
    >>> reward, done
    (1.0, True)
    """

    def __init__(self, traj_files_list: Any, rank: int = 0, total_cpus: int = 1) -> None:
        self.env = ImitationLearning(traj_files_list, total_cpus=total_cpus, rank=rank)
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


#: Stands for the ``diambra`` package of a DIAMBRA 2.2 script: ``diambra.arena.make(...)``.
diambra = SimpleNamespace(arena=SimpleNamespace(
    make=make, EnvironmentSettings=EnvironmentSettings, EnvironmentSettingsMultiAgent=EnvironmentSettingsMultiAgent,
    WrappersSettings=WrappersSettings, RecordingSettings=RecordingSettings, SpaceTypes=SpaceTypes, Roles=Roles))
#: Stands for the ``diambra`` package of a DIAMBRA 2.1 script: ``diambra.arena.ImitationLearning(...)``.
diambra21 = SimpleNamespace(arena=SimpleNamespace(ImitationLearning=ImitationLearning21))
