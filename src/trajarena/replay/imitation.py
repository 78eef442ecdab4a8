"""``ImitationLearning``: a Gymnasium env that replays trajectory files (DIAMBRA Arena's loader).

The replay has two layers. :class:`~trajarena.replay.raw.ReplayEnv` plays back the *raw* recorded
stream (the recorder sits below the wrappers), one episode per ``reset``, and owns the replay
units, their partition over ranks, the two-player perspectives and the end of data (see
:mod:`trajarena.replay.raw`). :class:`ImitationLearning`, owned here, wraps it in the wrappers
settings stored in the files (or others, or none), so its observations equal those the live
wrapped env produced; it also keeps the DIAMBRA-style attributes, pickling and ``traj_summary``.
The action given to ``step`` is ignored; ``info["action"]`` is the recorded one, which is also what
the last-action wrapper stacks. Once the data is exhausted, observations are the blank value of
the *wrapped* observation space.

Wrappers that cannot be replayed. ``no_op_max`` is dropped from the re-applied settings: the live
no-op steps were recorded as ordinary raw steps (the recorder is below the wrappers) and the
number of no-ops drawn is not recorded, so the replay shows them as ordinary transitions whose
``info["action"]`` is the no-op; every observation after them equals the live one except the
frame/action stacks of the first ``stack_frames`` steps, which the live env filled after its
no-ops. ``repeat_action`` is re-applied over the raw steps (``k`` raw rows per replay step), which
reproduces the live stream exactly because repeats restart at every episode start.
"""

from __future__ import annotations

import importlib.util
import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym

from trajarena.errors import CorruptFileError, MismatchError, SettingsError
from trajarena.replay.raw import PERSPECTIVES, ReplayEnv, blank_value, check_ranks, partition  # noqa: F401
from trajarena.settings import WrappersSettings
from trajarena.wrappers import apply_wrappers
from trajarena.wrappers.action import noop_action

__all__ = ["ImitationLearning", "ReplayEnv", "blank_value", "partition", "PERSPECTIVES"]

class ImitationLearning(gym.Wrapper):
    """Replay trajectory files as a Gymnasium env, with the recorded wrappers re-applied.

    Args:
        traj_files_list: trajectory files and/or folders (searched for ``*.arrow``).
        total_cpus: the number of ranks the data is split into.
        rank: this env's rank in ``[0, total_cpus)``.
        wrappers_settings: ``None`` re-applies the settings stored in the files (without
            ``no_op_max``, see the module docstring); a dict or :class:`WrappersSettings` applies those.
        wrappers: user wrapper classes that may be re-applied when the files name them. A file
            stores its user wrappers by name only and nothing read from it is imported or called:
            a recorded wrapper not among these classes is left out, with one warning naming it.
        raw: replay the raw recorded stream, no wrappers at all.
        perspective: for two-player files: ``"both"``, ``"P1"``, ``"P2"`` or ``"joint"``.
        mirror: show the player on the P2 side as P1 sees the game (fighting games): frames flipped
            left-right, ``side`` values and left/right moves exchanged, so P2's episodes look like
            P1's (``info["mirrored"]``); see :mod:`trajarena.replay.raw`.
        loop: start a new pass when the data is used up instead of becoming ``exhausted``.
        shuffle: replay this rank's episodes in a random order (a new one each pass).
        seed: seeds the shuffling. ``reset(seed=s)`` starts this rank's data over (reshuffled from
            ``s``) and clears ``exhausted``; a plain ``reset()`` goes on with the next episode.
        render_mode: ``"rgb_array"`` or ``"human"`` (a pygame window) shows the recorded frames.
        cache_dir: replay from decoded, memory-mapped columns kept in this folder (built on first
            use, see :class:`~trajarena.replay.dataset.TrajectoryDataset`) instead of decoding chunks:
            later passes and runs replay image data at memory speed.
        verify_checksums: check every decoded column against its CRC-32 (default; a little slower).

    Raises:
        MismatchError: files disagree on spaces, or on stored wrappers settings (both files named).
        SettingsError: a bad rank/total_cpus, perspective or wrappers setting.

    Pickles as its arguments: an unpickled env starts again from the first episode.

    >>> import tempfile, gymnasium as gym
    >>> from trajarena.recording.recorder import TrajectoryRecorder
    >>> folder = tempfile.mkdtemp()
    >>> env = TrajectoryRecorder(gym.make("CartPole-v1"), folder)
    >>> _ = env.reset(seed=0)
    >>> for a in [0, 1, 0]:
    ...     _ = env.step(a)
    >>> env.close()
    >>> il = ImitationLearning(traj_files_list=env.files, total_cpus=1, rank=0)
    >>> obs, info = il.reset()
    >>> obs, reward, terminated, truncated, info = il.step(il.action_space.sample())
    >>> int(info["action"]), reward
    (0, 1.0)
    """

    def __init__(self, traj_files_list: Any, total_cpus: int = 1, rank: int = 0, *,
                 wrappers_settings: WrappersSettings | Mapping[str, Any] | None = None,
                 wrappers: Sequence[type] = (), raw: bool = False,
                 perspective: str = "both", loop: bool = False, shuffle: bool = False, seed: int | None = None,
                 render_mode: str | None = None, cache_dir: str | os.PathLike | None = None,
                 verify_checksums: bool = True, mirror: bool = False) -> None:
        self._init_args = dict(traj_files_list=traj_files_list, total_cpus=total_cpus, rank=rank,
                               wrappers_settings=wrappers_settings, wrappers=tuple(wrappers), raw=raw, perspective=perspective, loop=loop,
                               shuffle=shuffle, seed=seed, render_mode=render_mode, cache_dir=cache_dir,
                               verify_checksums=verify_checksums, mirror=mirror)
        replay = ReplayEnv(traj_files_list, total_cpus, rank, perspective=perspective, loop=loop, shuffle=shuffle,
                           seed=seed, render_mode=render_mode, cache_dir=None if cache_dir is None else str(cache_dir),
                           verify_checksums=verify_checksums, mirror=mirror)
        if raw:
            settings = WrappersSettings()
        elif wrappers_settings is None:
            settings = _stored_wrappers(replay.all_files, replay.file_metadata, wrappers)
        else:
            settings = WrappersSettings.from_dict(wrappers_settings)
        self.wrappers_settings = settings
        super().__init__(apply_wrappers(replay, settings))
        self.replay = replay
        try:  # what the wrappers get instead of the (ignored) action, so any action is accepted
            self._placeholder: Any = noop_action(self.action_space)
        except SettingsError:
            self._placeholder = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._init_args,))

    # ------------------------------------------------------------------ DIAMBRA-style attributes

    @property
    def exhausted(self) -> bool:
        """True once every episode of this rank was replayed (never with ``loop=True``)."""
        return self.replay.exhausted

    @property
    def passes(self) -> int:
        """Finished passes over this rank's data (with ``loop=True``)."""
        return self.replay.passes

    @property
    def n_episodes(self) -> int:
        """Episodes (one per replayed side) in one pass of this rank."""
        return self.replay.n_units

    @property
    def file_metadata(self) -> list[dict[str, Any]]:
        """The JSON metadata of every file given (all ranks)."""
        return self.replay.file_metadata

    @property
    def env_id(self) -> str | None:
        return self.replay.file_metadata[0].get("env_id")

    @property
    def env_settings(self) -> dict[str, Any]:
        return self.replay.file_metadata[0].get("env_settings") or {}

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        if self.replay.exhausted:
            return blank_value(self.observation_space), info
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if self.replay.exhausted:
            return blank_value(self.observation_space), 0.0, True, False, {"exhausted": True}
        return self.env.step(action if self._placeholder is None else self._placeholder)

    def show_obs(self, observation: Any, wait_key: int = 1, viz: bool = True, string: str = "observation") -> str:
        """Print an observation key by key (DIAMBRA's ``show_obs``) and, with ``viz``, show its frame.

        Frames are printed as shape/min/max and character indexes with their names when the files
        know them; ``viz`` shows the frame (stacked planes side by side) in a window when pygame
        (the ``play`` extra) is installed. ``wait_key`` is accepted for DIAMBRA's signature.

        Returns:
            The printed text.
        """
        from trajarena.replay.show import FrameWindow, describe_observation

        meta = self.replay.file_metadata[0]
        names = meta.get("characters") or (meta.get("source") or {}).get("characters")
        if names is None and meta.get("env_id") == "duel":
            from trajarena.settings import DUEL_CHARACTERS

            names = DUEL_CHARACTERS
        text = describe_observation(observation, names, string)
        print(text)
        frame = observation.get("frame") if isinstance(observation, dict) else observation
        if viz and frame is not None and importlib.util.find_spec("pygame") is not None:
            self._viewer = getattr(self, "_viewer", None) or FrameWindow("trajarena show_obs")
            self._viewer.show(frame)
        return text

    def close(self) -> None:
        viewer = getattr(self, "_viewer", None)
        if viewer is not None:
            viewer.close()
        super().close()

    def traj_summary(self, file: Any = None) -> str:
        """Print and return what the files hold: episodes, steps, spaces and settings per file."""
        out = io.StringIO()
        r = self.replay
        metas = r.file_metadata
        out.write(f"trajarena replay: {len(r.all_files)} file(s), rank {r.rank} of {r.total_cpus}, "
                  f"{r.n_units} episode(s) for this rank, perspective {r.perspective!r}\n")
        m = metas[0]
        out.write(f"  env_id: {m.get('env_id')}  username: {m.get('username')!r}  players: {m.get('players')}\n")
        out.write(f"  env_settings: {m.get('env_settings')}\n")
        out.write(f"  stored wrappers_settings: {m.get('wrappers_settings')}\n")
        out.write(f"  applied wrappers_settings: {self.wrappers_settings.to_dict()}\n")
        out.write(f"  raw observation space: {r.observation_space}\n")
        out.write(f"  observation space: {self.observation_space}\n  action space: {self.action_space}\n")
        data = r.dataset
        if data is not None:
            for fi, path in enumerate(data.files):
                if fi == 20 and len(data.files) > 21:
                    out.write(f"  ... and {len(data.files) - 20} more file(s)\n")
                    break
                eps = [e for e in data.episodes if e.file_index == fi]
                steps = sum(e.length for e in eps)
                ret = [round(float(e.meta.get("return", float("nan"))), 3) for e in eps]
                out.write(f"  {os.path.basename(path)}: {len(eps)} episode(s), {steps} steps, "
                          f"ignore_p1={data.file_metadata(fi).get('ignore_p1', 0)}, "
                          f"ignore_p2={data.file_metadata(fi).get('ignore_p2', 0)}, returns {ret[:8]}"
                          f"{' ...' if len(ret) > 8 else ''}\n")
        text = out.getvalue()
        print(text, end="", file=file)
        return text


def _rebuild(args: dict[str, Any]) -> ImitationLearning:
    return ImitationLearning(**args)


def _stored_wrappers(files: Sequence[str], metas: Sequence[Mapping[str, Any]],
                     wrappers: Sequence[type]) -> WrappersSettings:
    """The wrappers settings stored in the files (all must agree), with ``no_op_max`` dropped.

    Recorded user wrappers are re-applied only from ``wrappers`` (classes given in code).
    """
    stored = [m.get("wrappers_settings") or {} for m in metas]
    for path, s in zip(files[1:], stored[1:], strict=True):
        if s != stored[0]:
            raise MismatchError(
                f"{path} and {files[0]} were recorded with different wrappers settings ({s} vs {stored[0]}); "
                "pass wrappers_settings=... explicitly, or replay them separately."
            )
    try:
        settings = WrappersSettings.from_json(stored[0], wrappers)
    except SettingsError as exc:
        raise CorruptFileError(f"{files[0]}: its stored wrappers settings are not valid: {exc}") from exc
    return settings.replace(no_op_max=0) if settings.no_op_max else settings
