"""Recording wrappers: any Gymnasium env (one or two players) and Gymnasium vector envs.

:class:`TrajectoryRecorder` records the stream of the env it wraps — put it *below* the
preprocessing wrappers so one dataset serves many preprocessing choices — and stores the settings
it is given (env, wrappers, username, ``ignore_p1``/``ignore_p2``, player roles) in every file;
:meth:`TrajectoryRecorder.discard_episode` drops the episode in progress.
:class:`VectorTrajectoryRecorder` keeps one episode stream per sub-env of a
:class:`gymnasium.vector.VectorEnv` and handles the three autoreset modes of Gymnasium 1.x.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import iterate

from trajarena.errors import SettingsError
from trajarena.format.writer import TrajectoryWriter
from trajarena.settings.recording import RecordingSettings

__all__ = ["TrajectoryRecorder", "VectorTrajectoryRecorder", "settings_to_json"]


def settings_to_json(value: Any, name: str = "settings") -> Any:
    """Turn settings (dicts, dataclasses, enums, tuples, numpy values) into JSON data.

    Raises:
        SettingsError: a value that has no JSON form (say which key).

    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class S:
    ...     frame_shape: tuple = (84, 84, 1)
    >>> settings_to_json(S())
    {'frame_shape': [84, 84, 1]}
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    elif hasattr(value, "to_dict") and callable(value.to_dict):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(k): settings_to_json(v, f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [settings_to_json(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, enum.Enum):
        return settings_to_json(value.value, name)
    if isinstance(value, np.generic | np.ndarray):
        return settings_to_json(value.tolist(), name)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise SettingsError(f"{name} = {value!r} ({type(value).__name__}) cannot be stored as JSON; use plain data.")


def _metadata(env_id: str | None, env: Any, rec: RecordingSettings, env_settings: Any, wrappers_settings: Any,
              extra: dict | None) -> dict[str, Any]:
    spec = getattr(env, "spec", None)
    return {
        "env_id": env_id or (spec.id if spec is not None else type(env.unwrapped).__name__),
        "env_settings": settings_to_json(env_settings or {}, "env_settings"),
        "wrappers_settings": settings_to_json(wrappers_settings or {}, "wrappers_settings"),
        "username": rec.username,
        "ignore_p1": rec.ignore_p1,
        "ignore_p2": rec.ignore_p2,
        "players": settings_to_json(rec.players or {}, "players"),
        **settings_to_json(extra or {}, "extra_metadata"),
    }


class TrajectoryRecorder(gym.Wrapper):
    """Record every episode of ``env`` into trajectory files under ``file_path``.

    Args:
        env: any Gymnasium env (nested Dict/Tuple spaces and two-player ``Dict`` actions included).
        file_path: the folder that receives the files.
        username: who played (stored).
        ignore_p2: 1 when P2's side should not be replayed by the loader (e.g. human P1 vs agent P2).
        ignore_p1: 1 when P1's side should not be replayed by the loader (e.g. agent P1 vs human P2).
        players: roles, e.g. ``{"P1": "human", "P2": "cpu"}``.
        env_id: stored env id (default: ``env.spec.id``).
        env_settings: the env settings (dict or dataclass), stored.
        wrappers_settings: the wrappers settings the loader re-applies, stored.
        extra_metadata: more JSON-ready keys to store.
        **writer_options: the writer's options (:class:`~trajarena.settings.WriterSettings` fields:
            ``flush_seconds``, ``segment_seconds``, ``compression``, ``fsync``, ...).

    Every argument but ``env`` is checked by :class:`~trajarena.settings.RecordingSettings`: a bad
    one raises :class:`~trajarena.errors.SettingsError` naming it.

    >>> import tempfile
    >>> env = TrajectoryRecorder(gym.make("CartPole-v1"), tempfile.mkdtemp(), username="alex")
    >>> _ = env.reset(seed=0)
    >>> _ = env.step(0)
    >>> env.discard_episode()  # this episode is dropped
    True
    >>> _ = env.reset(seed=1)
    >>> _ = env.step(1)
    >>> env.close()
    >>> from trajarena.format.reader import TrajectoryReader
    >>> [e.seed for e in TrajectoryReader(env.files).episodes]
    [1]
    """

    def __init__(self, env: gym.Env, file_path: str | os.PathLike, username: str = "", ignore_p2: int = 0,
                 players: dict[str, str] | None = None, env_id: str | None = None, env_settings: Any = None,
                 wrappers_settings: Any = None, extra_metadata: dict[str, Any] | None = None,
                 ignore_p1: int = 0, **writer_options: Any) -> None:
        super().__init__(env)
        rec = RecordingSettings.from_dict(dict(file_path=file_path, username=username, ignore_p2=ignore_p2,
                                               ignore_p1=ignore_p1, players=players, **writer_options))
        meta = _metadata(env_id, env, rec, env_settings, wrappers_settings, extra_metadata)
        self.writer = TrajectoryWriter(rec.file_path, env.observation_space, env.action_space, meta,
                                       rec.writer_options())
        self._closed = False

    @classmethod
    def from_settings(cls, env: gym.Env, recording: Any, env_id: str | None = None, env_settings: Any = None,
                      wrappers_settings: Any = None, extra_metadata: dict[str, Any] | None = None) -> TrajectoryRecorder:
        """A recorder configured by :class:`~trajarena.settings.RecordingSettings` (or a dict of them).

        >>> import tempfile
        >>> env = TrajectoryRecorder.from_settings(gym.make("CartPole-v1"), {"file_path": tempfile.mkdtemp()})
        >>> env.writer.flush_seconds
        2.0
        >>> env.close()
        """
        rec = RecordingSettings.from_dict(recording)
        return cls(env, rec.file_path, username=rec.username, ignore_p2=rec.ignore_p2, ignore_p1=rec.ignore_p1,
                   players=rec.players, env_id=env_id, env_settings=env_settings, wrappers_settings=wrappers_settings,
                   extra_metadata=extra_metadata, **rec.writer_options())

    @property
    def files(self) -> list[Path]:
        """The finished files written so far."""
        return list(self.writer.files)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.writer.reset(obs, info, seed=seed)
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.writer.step(action, obs, reward, terminated, truncated, info)
        return obs, reward, terminated, truncated, info

    def discard_episode(self) -> bool:
        """Drop the episode in progress: no reader replays, samples or counts any of it.

        The env is not reset; call ``reset()`` to start the next episode, which is recorded as usual.

        Returns:
            True if an episode was open (and is now dropped), False if none was.
        """
        return self.writer.discard()

    def flush(self) -> None:
        """Hand buffered steps to the writer thread now (call it when the game loop pauses)."""
        self.writer.flush()

    def close(self) -> None:
        """Save the open episode (as truncated; dropped if it has no step), finish the files, close the env."""
        if not self._closed:
            self._closed = True
            try:
                self.writer.close()
            finally:
                super().close()


def _sub_info(info: dict[str, Any], i: int, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Sub-env ``i``'s part of a vector env's info dict (``_key`` masks respected, nested too)."""
    out = {}
    for key, value in info.items():
        if key.startswith("_") or key in skip:
            continue
        mask = info.get("_" + key)
        if mask is not None and not mask[i]:
            continue
        out[key] = _sub_info(value, i) if isinstance(value, dict) else value[i]
    return out


def _splitter(space: spaces.Space) -> Any:
    if isinstance(space, spaces.Box | spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary):
        return lambda batch: batch
    return lambda batch: list(iterate(space, batch))


class VectorTrajectoryRecorder(gym.vector.VectorWrapper):
    """Record each sub-env of a Gymnasium vector env as its own episode stream.

    Handles ``AutoresetMode.NEXT_STEP`` (the default: the step after an episode end is the
    reset and is not a transition), ``SAME_STEP`` (the final observation is taken from
    ``info["final_obs"]``) and ``DISABLED`` (sub-envs are reset by ``reset(options={"reset_mask":
    ...})``; a finished sub-env is not recorded until then). Arguments as for
    :class:`TrajectoryRecorder`; each file also stores ``vector: {num_envs, index, autoreset_mode}``.

    >>> import tempfile
    >>> venv = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2)
    >>> venv = VectorTrajectoryRecorder(venv, tempfile.mkdtemp())
    >>> _ = venv.reset(seed=0)
    >>> _ = venv.step(np.array([0, 1]))
    >>> venv.close()
    >>> len(venv.files)
    2
    """

    def __init__(self, env: gym.vector.VectorEnv, file_path: str | os.PathLike, username: str = "",
                 ignore_p2: int = 0, players: dict[str, str] | None = None, env_id: str | None = None,
                 env_settings: Any = None, wrappers_settings: Any = None,
                 extra_metadata: dict[str, Any] | None = None, ignore_p1: int = 0, **writer_options: Any) -> None:
        super().__init__(env)
        self.mode = AutoresetMode(env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        rec = RecordingSettings.from_dict(dict(file_path=file_path, username=username, ignore_p2=ignore_p2,
                                               ignore_p1=ignore_p1, players=players, **writer_options))
        meta = _metadata(env_id, env, rec, env_settings, wrappers_settings, extra_metadata)
        n = env.num_envs
        self.writers = [
            TrajectoryWriter(rec.file_path, env.single_observation_space, env.single_action_space,
                             {**meta, "vector": {"num_envs": n, "index": i, "autoreset_mode": self.mode.value}},
                             rec.writer_options())
            for i in range(n)
        ]
        self._split_obs = _splitter(env.single_observation_space)
        self._split_act = _splitter(env.single_action_space)
        self._done = np.zeros(n, bool)
        self._closed = False

    @property
    def files(self) -> list[Path]:
        """The finished files of all sub-envs."""
        return sorted(p for w in self.writers for p in w.files)

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        mask = (options or {}).get("reset_mask")  # read first: the vector env may pop it
        if mask is not None:
            mask = np.array(mask, dtype=bool)
        obs, info = self.env.reset(seed=seed, options=options)
        n = self.num_envs
        seeds = [seed + i for i in range(n)] if isinstance(seed, int) else (list(seed) if seed is not None else [None] * n)
        split = self._split_obs(obs)
        for i, w in enumerate(self.writers):
            if mask is None or mask[i]:
                w.reset(split[i], _sub_info(info, i), seed=seeds[i])
                self._done[i] = False
        return obs, info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict]:
        obs, rewards, terminations, truncations, info = self.env.step(actions)
        split, acts = self._split_obs(obs), self._split_act(actions)
        for i, w in enumerate(self.writers):
            if self._done[i]:
                if self.mode is AutoresetMode.NEXT_STEP:  # this step was the sub-env's reset
                    w.reset(split[i], _sub_info(info, i))
                    self._done[i] = False
                continue  # DISABLED: not recorded until reset(options={"reset_mask": ...})
            done = bool(terminations[i] or truncations[i])
            if done and self.mode is AutoresetMode.SAME_STEP:
                w.step(acts[i], info["final_obs"][i], rewards[i], terminations[i], truncations[i],
                       _sub_info(info["final_info"], i))
                w.reset(split[i], _sub_info(info, i, skip=("final_obs", "final_info")))
                continue
            w.step(acts[i], split[i], rewards[i], terminations[i], truncations[i], _sub_info(info, i))
            self._done[i] = done
        return obs, rewards, terminations, truncations, info

    def close(self, **kwargs: Any) -> None:
        """Save open episodes (as truncated), finish every file, close the vector env."""
        if self._closed:
            return
        self._closed = True
        errors = []
        for w in self.writers:
            try:
                w.close()
            except Exception as exc:  # noqa: BLE001 - close every writer, then raise the first error
                errors.append(exc)
        self.env.close(**kwargs)
        if errors:
            raise errors[0]
