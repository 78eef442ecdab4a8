"""Recorder wrappers: any Gymnasium env, vector envs and two-player envs, on top of :mod:`trajarena.format`."""

from trajarena.recording.recorder import TrajectoryRecorder, VectorTrajectoryRecorder

__all__ = ["TrajectoryRecorder", "VectorTrajectoryRecorder"]
