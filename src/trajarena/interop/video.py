"""Recorded episodes as videos: MP4 (H.264, through imageio-ffmpeg) and GIF (through Pillow).

:func:`episode_frames` takes the frames of one episode from the decoded API (the ``frame`` key of a
``Dict`` observation, or an image observation itself; greyscale is repeated to RGB), and
:func:`write_video` writes frames to ``.mp4`` or ``.gif``; :func:`export_video` does both, for
``trajarena replay -o`` and ``trajarena export video``. Both need the ``video`` extra (``pip
install 'trajarena[video]'``: imageio, imageio-ffmpeg and Pillow); without it they raise
:class:`~trajarena.errors.MissingDependencyError` with that command, before reading any frame.

MP4 frames are streamed to ffmpeg one at a time. H.264 (yuv420p) needs even sizes, so a frame of
odd height or width gets its last row or column repeated once; every other pixel is as recorded
(up to the codec's loss). A GIF holds every frame losslessly (at most 256 colours per frame).

>>> import numpy as np, tempfile, os
>>> frames = np.zeros((5, 24, 32, 3), np.uint8)
>>> path = write_video(frames, os.path.join(tempfile.mkdtemp(), "ep.gif"), fps=10)
>>> path.suffix, path.stat().st_size > 0
('.gif', True)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trajarena.errors import MissingDependencyError, NotSupportedError, RecordingError, SettingsError, require
from trajarena.interop.summary import ConversionSummary, Progress, Timer, report
from trajarena.replay.dataset import TrajectoryDataset

__all__ = ["FORMATS", "episode_frames", "export_video", "write_video"]

#: Output suffixes and what writes them.
FORMATS = {".mp4": "imageio-ffmpeg (H.264)", ".gif": "Pillow"}


def _check_out(out: str | os.PathLike) -> Path:
    path = Path(out)
    if path.suffix.lower() not in FORMATS:
        raise SettingsError(f"a video must end in {' or '.join(FORMATS)}, got {path.name!r}.")
    return path


def _require_writer(suffix: str) -> Any:
    """imageio, plus the backend of ``suffix``; a missing one names ``pip install 'trajarena[video]'``."""
    imageio = require("imageio", "video", f"Writing {suffix} video")
    if suffix == ".gif":
        require("PIL", "video", "Writing GIF video")
        return imageio
    ffmpeg = require("imageio_ffmpeg", "video", "Writing MP4 video")
    try:
        ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:  # the wheel without a binary for this platform
        raise MissingDependencyError(f"Writing MP4 video needs an ffmpeg binary, which imageio-ffmpeg did not find "
                                     f"({exc}). Install ffmpeg or set IMAGEIO_FFMPEG_EXE.") from exc
    return imageio


def _rgb(frames: np.ndarray) -> np.ndarray:
    if frames.ndim != 4 or frames.dtype != np.uint8 or frames.shape[-1] not in (1, 3, 4):
        raise NotSupportedError(f"frames must be uint8 (T, H, W, 1|3|4), got {frames.dtype}{list(frames.shape)}.")
    if frames.shape[-1] == 1:
        return np.repeat(frames, 3, axis=-1)
    return frames[..., :3]


def episode_frames(data: TrajectoryDataset | str | os.PathLike | Sequence[str | os.PathLike], episode: int = 0,
                   key: str = "frame") -> np.ndarray:
    """The RGB frames ``(length + 1, H, W, 3)`` of one recorded episode (its reset frame first).

    Args:
        data: a dataset, or trajectory files/folders.
        episode: the episode's index (as ``trajarena info -e`` lists them).
        key: the observation key of the frame in a ``Dict`` observation.

    Raises:
        IndexError: no such episode.
        NotSupportedError: the observations hold no uint8 image.
    """
    ds = data if isinstance(data, TrajectoryDataset) else TrajectoryDataset(data)
    if isinstance(episode, bool) or not isinstance(episode, int | np.integer) or not 0 <= episode < ds.n_episodes:
        raise IndexError(f"episode must be an index in [0, {ds.n_episodes - 1}], got {episode!r}.")
    obs = ds.episode(int(episode)).observations
    frames = obs.get(key) if isinstance(obs, dict) else obs
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.dtype != np.uint8:
        what = f"keys {sorted(obs)}" if isinstance(obs, dict) else f"{getattr(frames, 'dtype', type(frames))}"
        raise NotSupportedError(f"episode {episode} has no image observation to show (a uint8 (H, W, C) "
                                f"{'under key ' + repr(key) if isinstance(obs, dict) else 'observation'}; got {what}).")
    return _rgb(frames)


def write_video(frames: np.ndarray | Sequence[np.ndarray], out: str | os.PathLike, fps: int = 20,
                scale: int = 1) -> Path:
    """Write uint8 frames ``(T, H, W, C)`` to an ``.mp4`` or ``.gif`` file and return its path.

    Args:
        frames: the frames (greyscale is repeated to RGB, an alpha channel dropped).
        out: the file to write; its suffix chooses the format.
        fps: frames per second (1-240).
        scale: integer upscaling of every frame (nearest neighbour, crisp pixels).

    Raises:
        MissingDependencyError: the ``video`` extra is missing (the message gives the install command).
        SettingsError: a bad suffix, fps or scale.
    """
    path = _check_out(out)
    for name, value, hi in (("fps", fps, 240), ("scale", scale, 16)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 1 <= value <= hi:
            raise SettingsError(f"{name} must be an integer in [1, {hi}], got {value!r}.")
    imageio = _require_writer(path.suffix.lower())
    frames = _rgb(np.asarray(frames))
    if len(frames) == 0:
        raise SettingsError("no frames to write.")
    path.parent.mkdir(parents=True, exist_ok=True)

    def scaled(frame: np.ndarray) -> np.ndarray:
        return frame.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else frame

    if path.suffix.lower() == ".gif":
        imageio.v3.imwrite(path, np.stack([scaled(f) for f in frames]), plugin="pillow",
                           duration=1000 / int(fps), loop=0)
        return path
    h, w = frames.shape[1] * scale, frames.shape[2] * scale
    pad = ((0, h % 2), (0, w % 2), (0, 0))
    writer = imageio.v2.get_writer(path, format="FFMPEG", mode="I", fps=int(fps), codec="libx264",
                                   macro_block_size=1, ffmpeg_log_level="error")
    try:
        for frame in frames:
            frame = scaled(frame)
            writer.append_data(np.pad(frame, pad, mode="edge") if h % 2 or w % 2 else frame)
    finally:
        writer.close()
    if not path.exists() or path.stat().st_size == 0:
        raise RecordingError(f"ffmpeg wrote no video to {path}; run with IMAGEIO_FFMPEG_EXE set to a working ffmpeg.")
    return path


def export_video(paths: TrajectoryDataset | str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike,
                 episode: int = 0, *, fps: int = 20, scale: int = 1, key: str = "frame",
                 progress: Progress | None = None) -> ConversionSummary:
    """Write the frames of one recorded episode to an ``.mp4`` or ``.gif`` file.

    Args:
        paths: trajectory files/folders, or a dataset.
        out: the video file (``.mp4`` or ``.gif``).
        episode, key: which episode, and the frame's key in a ``Dict`` observation.
        fps, scale: see :func:`write_video`.
        progress: ``progress(1, 1)`` once the video is written.

    Raises:
        MissingDependencyError: the ``video`` extra is missing (checked before any frame is decoded).
        NotSupportedError: the episode has no image observation.
    """
    timer = Timer()
    path = _check_out(out)
    _require_writer(path.suffix.lower())
    frames = episode_frames(paths, episode, key)
    write_video(frames, path, fps=fps, scale=scale)
    report(progress, 1, 1)
    return ConversionSummary("video", str(path), (str(path),), 1, len(frames) - 1, path.stat().st_size,
                             timer.seconds, {"frames": len(frames), "fps": int(fps)})
