"""``trajarena play``: a human play session in a window, recorded as it is played.

The options are generated from :class:`trajarena.play.PlayConfig` (one option per field, help from
its metadata) by :func:`~trajarena.cli.app.command_from_dataclass`, so the command line, the Python
API and the docs share one list.
"""

from __future__ import annotations

from typing import Any

from trajarena.cli.app import command_from_dataclass, console, parse_pairs, typer
from trajarena.play import PlayConfig, play


def _play(setting: list[str] | None = None, wrapper: list[str] | None = None, **options: Any) -> None:
    result = play(options, settings=parse_pairs(setting, "setting") or None,
                  wrappers_settings=parse_pairs(wrapper, "wrapper") or None)
    console.print(
        f"{result.episodes_saved} episode(s) saved, {result.episodes_discarded} discarded, "
        f"{result.steps} steps ({result.reason})"
    )
    for path in result.files:
        console.print(f"  {path}", highlight=False, markup=False)


command_from_dataclass(
    PlayConfig, _play, "play",
    "Play a fighting game in a window (keyboard or gamepad, 1-2 humans, vs CPU or an agent), recording it.",
    positional=("env_id",),
    extra={"setting": (list[str] | None, typer.Option(None, "--setting", "-s", help="Environment setting KEY=VALUE.")),
           "wrapper": (list[str] | None, typer.Option(None, "--wrapper", "-w", help="Wrappers setting KEY=VALUE."))},
)
