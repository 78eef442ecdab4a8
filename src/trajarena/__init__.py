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

import importlib
from typing import Any

import gymnasium as _gym

from trajarena import errors
from trajarena.envs import make, registered_ids
from trajarena.settings import EnvironmentSettings, RecordingSettings, WrappersSettings

__version__ = "0.1.0"

# lazily imported public names -> their module
_LAZY = {
    "ImitationLearning": "trajarena.imitation",
    "TrajectoryDataset": "trajarena.dataset",
    "make_vector_env": "trajarena.vector",
    "make_sb3_vec_env": "trajarena.vector",
    "open_trajectories": "trajarena.reader",
    "TrajectoryRecorder": "trajarena.recorder",
    "verify": "trajarena.integrity",
    "repair": "trajarena.integrity",
    "make_agent": "trajarena.agents",
    "train_bc": "trajarena.bc",
    "load_policy_agent": "trajarena.bc",
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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'trajarena' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if "duel" not in _gym.registry:
    _gym.register(id="duel", entry_point="trajarena.envs.duel:DuelEnv")
