"""DIAMBRA's wrapper set on Gymnasium's wrapper classes, for live envs and replay alike."""

from trajarena.wrappers.core import *  # noqa: F401,F403
from trajarena.wrappers.core import __all__  # noqa: F401
