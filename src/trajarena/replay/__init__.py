"""Loading recordings back: the replay env, vector envs of ranks and the datasets.

:class:`~trajarena.replay.imitation.ImitationLearning` replays files as a Gymnasium env (on the raw
:class:`~trajarena.replay.raw.ReplayEnv`);
:mod:`~trajarena.replay.vector` builds Gymnasium and Stable-Baselines3 vector envs of ranks;
:class:`~trajarena.replay.dataset.TrajectoryDataset` is the training API (columns, transitions,
windows) and :mod:`~trajarena.replay.records` its typed records; :mod:`trajarena.replay.torch_data`
(needs torch) holds the PyTorch datasets.
"""

from trajarena.replay.dataset import TrajectoryDataset, list_trajectory_files
from trajarena.replay.imitation import ImitationLearning
from trajarena.replay.records import Transition, Window
from trajarena.replay.vector import make_sb3_vec_env, make_vector_env

__all__ = ["ImitationLearning", "StopTrainingOnExhausted", "TrajectoryDataset", "Transition", "Window",
           "list_trajectory_files", "make_sb3_vec_env", "make_vector_env"]


def __getattr__(name: str) -> object:
    if name == "StopTrainingOnExhausted":  # an SB3 callback: needs stable-baselines3, so made on first use
        from trajarena.replay import vector

        return vector.StopTrainingOnExhausted
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
