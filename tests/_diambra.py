"""Shared helpers of the DIAMBRA tests: the fixtures, their expected values, and a mocker stand-in.

The fixtures in ``tests/data/diambra`` were recorded with DIAMBRA's own code; ``expected/`` holds
what DIAMBRA's own loaders return for each (see ``tests/data/diambra/README.md``).
"""

from __future__ import annotations

import collections
import hashlib
import json
import unittest.mock
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data" / "diambra"
V22 = sorted((DATA / "v22").glob("*/*.diambra"))
V21 = sorted(p for p in (DATA / "v21").glob("*/*") if p.is_file())


def expected(path: Path) -> dict:
    """DIAMBRA's loader values for a fixture file."""
    rel = path.relative_to(DATA)
    return json.loads((DATA / "expected" / rel.parent / (rel.name + ".json")).read_text())


def expected_array(path: Path, suffix: str) -> np.ndarray:
    rel = path.relative_to(DATA)
    return np.load(DATA / "expected" / rel.parent / (rel.name + suffix), allow_pickle=False)


def dec(value):
    """Undo ``dump_expected.enc`` (tagged JSON) for the values compared."""
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
        if "__npscalar__" in value:
            return np.dtype(value["dtype"]).type(value["__npscalar__"])
        if "__tuple__" in value:
            return tuple(dec(v) for v in value["__tuple__"])
        if "__ordereddict__" in value:
            return collections.OrderedDict((k, dec(v)) for k, v in value["__ordereddict__"].items())
        return {k: dec(v) for k, v in value.items()}
    if isinstance(value, list):
        return [dec(v) for v in value]
    return value


def sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def same_values(ours, theirs) -> bool:
    """Equal values whatever the container or integer type (DIAMBRA mixes int, np.int64, lists, arrays)."""
    if isinstance(theirs, dict):
        return isinstance(ours, dict) and set(ours) == set(theirs) and all(same_values(ours[k], theirs[k]) for k in theirs)
    return np.array_equal(np.asarray(ours).reshape(-1), np.asarray(theirs).reshape(-1))


def as_move_attack(action, n_moves: int = 9) -> list[int]:
    """A discrete or multi-discrete action as DIAMBRA 2.1's loader reports it: [move, attack]."""
    a = np.asarray(action).reshape(-1)
    if a.size == 2:
        return [int(a[0]), int(a[1])]
    d = int(a[0])
    return [d, 0] if d < n_moves else [0, d - n_moves + 1]


class Mocker:
    """The part of pytest-mock's ``mocker`` that DIAMBRA's ``load_mocker`` uses."""

    def __init__(self) -> None:
        self.patchers: list = []

    def patch(self, target: str, new) -> None:
        patcher = unittest.mock.patch(target, new)
        patcher.start()
        self.patchers.append(patcher)

    def stopall(self) -> None:
        for patcher in reversed(self.patchers):
            patcher.stop()
        self.patchers.clear()
