"""Human play in a pygame window: keyboard and gamepads, one or two humans, or a human against an agent.

:mod:`~trajarena.play.keymap` says which keys and buttons do what (defaults, TOML/JSON files);
:mod:`~trajarena.play.controls` turns key and gamepad state into actions;
:mod:`~trajarena.play.session` runs the game loop and records it. pygame is imported only when a
window or a controller is made.
"""

from trajarena.play.session import PlayConfig, PlayResult, PlaySession, PlayStep, play, scripted_events

__all__ = ["PlayConfig", "PlayResult", "PlaySession", "PlayStep", "play", "scripted_events"]
