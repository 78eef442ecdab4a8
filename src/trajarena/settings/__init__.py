"""Settings as data: frozen dataclasses with validation and JSON round trips.

Every settings object can be built from a plain dict (as DIAMBRA users write them), is validated on
construction, and turns back into a JSON-ready dict that is stored in every trajectory file.

>>> s = EnvironmentSettings.from_dict({"difficulty": 3, "frame_shape": (84, 84, 1)})
>>> s.difficulty, s.frame_shape
(3, (84, 84, 1))
>>> EnvironmentSettings.from_dict({"dificulty": 3})
Traceback (most recent call last):
...
trajarena.errors.SettingsError: unknown setting 'dificulty' for EnvironmentSettings. Did you mean 'difficulty'? Valid settings: action_space, characters, continue_game, difficulty, frame_shape, n_players, outfits, role, seed, step_ratio
"""

from trajarena.settings.base import (
    ACTION_SPACES,
    DUEL_CHARACTERS,
    DUEL_OUTFITS,
    MAX_FRAME_SIDE,
    MAX_STACK,
    ROLES,
    Settings,
    as_settings,
    qualified_name,
)
from trajarena.settings.env import EnvironmentSettings
from trajarena.settings.recording import RecordingSettings, WriterSettings
from trajarena.settings.wrappers import WrappersSettings

__all__ = ["ACTION_SPACES", "DUEL_CHARACTERS", "DUEL_OUTFITS", "MAX_FRAME_SIDE", "MAX_STACK", "ROLES",
           "EnvironmentSettings", "RecordingSettings", "Settings", "WrappersSettings", "WriterSettings", "as_settings",
           "qualified_name"]
