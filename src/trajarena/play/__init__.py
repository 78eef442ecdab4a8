"""Human play in a pygame window: keyboard and gamepads, one or two humans, or a human against an agent.

:mod:`~trajarena.play.keymap` says which keys and buttons do what (defaults, TOML/JSON files);
:mod:`~trajarena.play.controls` turns key and gamepad state into actions;
:mod:`~trajarena.play.config` holds a session's options and results; :mod:`~trajarena.play.session`
runs the game loop and records it (and lets a human take over from an agent); :mod:`~trajarena.play.view` draws
the window. pygame is imported only when a window or a controller is made.
"""

from trajarena.play.controls import scripted_events
from trajarena.play.session import PlayConfig, PlayResult, PlaySession, PlayStep, play

__all__ = ["PlayConfig", "PlayResult", "PlaySession", "PlayStep", "play", "scripted_events"]
