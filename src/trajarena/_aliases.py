"""The module paths of trajarena 0.1 (``trajarena.recorder``, ``trajarena.dataset``, ...), kept importable.

0.2 moved every module into a subpackage (see ``docs/architecture.md``). Code written for 0.1
keeps working: importing an old path gives a small module that forwards every attribute to the new
one and warns once (``DeprecationWarning``) with the new path to use. The old paths go in 0.4.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

#: 0.1 path -> its 0.2 home(s), searched in order (a fixed table in code: no module name here comes from data).
MOVED: dict[str, str | tuple[str, ...]] = {
    "trajarena.spaces": ("trajarena.format.spaces", "trajarena.format.leaves"),
    "trajarena.writer": "trajarena.format.writer",
    "trajarena.reader": "trajarena.format.reader",
    "trajarena.integrity": "trajarena.format.integrity",
    "trajarena.columns": "trajarena.format.columns",
    "trajarena.recorder": "trajarena.recording.recorder",
    "trajarena.imitation": "trajarena.replay.imitation",
    "trajarena.vector": "trajarena.replay.vector",
    "trajarena.dataset": "trajarena.replay.dataset",
    "trajarena.torch_data": "trajarena.replay.torch_data",
    "trajarena.agents": "trajarena.learn.agents",
    "trajarena.policy": "trajarena.learn.policy",
    "trajarena.bc": "trajarena.learn.bc",
    "trajarena.evaluate": "trajarena.learn.evaluate",
    "trajarena.record": "trajarena.learn.rollout",
    "trajarena.controls": ("trajarena.play.controls", "trajarena.play.keymap"),
    "trajarena.report": "trajarena.demo.report",
}


def _homes(old: str) -> tuple[str, ...]:
    new = MOVED[old]
    return (new,) if isinstance(new, str) else new


class _Forward(types.ModuleType):
    """An old module path: every attribute comes from the module(s) that replaced it."""

    def __init__(self, name: str) -> None:
        super().__init__(name, f"Moved to {', '.join(_homes(name))}.")

    def __getattr__(self, attr: str) -> Any:
        for home in _homes(self.__name__):
            module = importlib.import_module(home)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(f"module {self.__name__!r} (now {', '.join(_homes(self.__name__))}) "
                             f"has no attribute {attr!r}")

    def __dir__(self) -> list[str]:
        return sorted({n for home in _homes(self.__name__) for n in dir(importlib.import_module(home))})


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        homes = _homes(spec.name)
        warnings.warn(f"{spec.name} moved to {' and '.join(homes)}; the old path goes in trajarena 0.4",
                      DeprecationWarning, stacklevel=2)
        for home in homes:
            importlib.import_module(home)  # fail now, with the real import error, if an extra is missing
        return _Forward(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
