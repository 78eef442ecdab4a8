"""trajarena: record humans and agents playing games into safe trajectory files, and learn from them.

The public API is small; names that need optional extras (torch, pygame) load lazily, so
``import trajarena`` never imports torch or pygame.

>>> import trajarena as arena
>>> env = arena.make("duel", {"difficulty": 3})
>>> obs, info = env.reset(seed=0)
>>> sorted(obs)
['P1', 'P2', 'frame', 'stage', 'timer']
>>> env.close()
"""

from __future__ import annotations

from trajarena import _aliases, errors
from trajarena.envs import make, registered_ids
from trajarena.envs import registration as _registration
from trajarena.settings import EnvironmentSettings, RecordingSettings, WrappersSettings

__version__ = "0.2.0"

# lazily imported public names -> their module
_LAZY = {
    "ImitationLearning": "trajarena.replay.imitation",
    "TrajectoryDataset": "trajarena.replay.dataset",
    "make_vector_env": "trajarena.replay.vector",
    "make_sb3_vec_env": "trajarena.replay.vector",
    "open_trajectories": "trajarena.format.reader",
    "TrajectoryReader": "trajarena.format.reader",
    "TrajectoryWriter": "trajarena.format.writer",
    "TrajectoryRecorder": "trajarena.recording.recorder",
    "VectorTrajectoryRecorder": "trajarena.recording.recorder",
    "verify": "trajarena.format.integrity",
    "repair": "trajarena.format.integrity",
    "make_agent": "trajarena.learn.agents",
    "train_bc": "trajarena.learn.bc",
    "load_policy_agent": "trajarena.learn.bc",
    "apply_wrappers": "trajarena.wrappers",
}

__all__ = [
    "EnvironmentSettings",
    "RecordingSettings",
    "WrappersSettings",
    "__version__",
    "errors",
    "make",
    "registered_ids",
    *_LAZY,
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'trajarena' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


_aliases.install()
_registration.register_gymnasium_envs()  # gym.make("trajarena/Duel-v0", difficulty=3, ...)
