"""The fighting-game layout shared by the game, human play, the loader's mirroring and the viewer.

Plain data and numpy, no other part of trajarena: the action layout of ``duel`` (DIAMBRA's), how
to name an action (:func:`describe_action`), and how to see a step from the other side of the
screen (:func:`mirror_action`, :func:`mirror_observation`).

Actions. Moves ``0`` no-move, ``1`` left, ``2`` up-left, ``3`` up, ``4`` up-right, ``5`` right,
``6`` down-right, ``7`` down, ``8`` down-left; attacks ``0`` none, ``1`` P, ``2`` K, ``3`` G,
``4`` P+K, ``5`` P+G, ``6`` K+G, ``7`` P+K+G (P, K, G only without combinations). The action space
is ``MultiDiscrete([9, n_attacks])`` or ``Discrete(9 + n_attacks - 1)`` (``0`` no-op, ``1..8``
moves, then the attacks ``1..``).

Mirroring. Moves are screen directions (left is towards the screen's left edge), so a frame
flipped left-right goes with left and right exchanged in the moves (:data:`MIRROR_MOVES`) and in
the players' ``side`` values (``0`` left, ``1`` right). Attacks, health, timer and the rest are
unchanged. Every function takes one value or a batch (leading axes) alike; a frame is the last
three axes ``(H, W, C)``.

>>> from gymnasium import spaces
>>> describe_action(np.array([5, 4]), spaces.MultiDiscrete([9, 8]))
'right + P+K'
>>> mirror_action(np.array([[5, 4], [2, 0]]), spaces.MultiDiscrete([9, 8])).tolist()
[[1, 4], [4, 0]]
>>> mirror_action(13, spaces.Discrete(16)), mirror_action(1, spaces.Discrete(16))
(13, 5)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from trajarena.errors import SettingsError

__all__ = [
    "ATTACK_NAMES",
    "MIRROR_MOVES",
    "MOVE_NAMES",
    "action_layout",
    "describe_action",
    "mirror_action",
    "mirror_observation",
    "split_action",
]

#: Names of the 9 moves and of the 8 attack-button combinations, by action index.
MOVE_NAMES = ("no-move", "left", "up-left", "up", "up-right", "right", "down-right", "down", "down-left")
ATTACK_NAMES = ("none", "P", "K", "G", "P+K", "P+G", "K+G", "P+K+G")
#: The move seen in a mirror: left and right exchanged, up and down kept.
MIRROR_MOVES = (0, 5, 4, 3, 2, 1, 8, 7, 6)
_MIRROR = np.array(MIRROR_MOVES, np.int64)


def action_layout(space: Any) -> tuple[str, int] | None:
    """``("multi_discrete" | "discrete", n_attacks)`` for a fighting-game action space, else None.

    >>> from gymnasium import spaces
    >>> action_layout(spaces.MultiDiscrete([9, 4])), action_layout(spaces.Discrete(16)), action_layout(spaces.Discrete(2))
    (('multi_discrete', 4), ('discrete', 8), None)
    """
    nvec = getattr(space, "nvec", None)
    if nvec is not None and getattr(space, "shape", None) == (2,) and int(nvec[0]) == 9 and int(nvec[1]) in (4, 8) \
            and not np.any(getattr(space, "start", 0)):
        return "multi_discrete", int(nvec[1])
    n = getattr(space, "n", None)
    if nvec is None and n is not None and int(n) in (12, 16) and int(getattr(space, "start", 0)) == 0:
        return "discrete", int(n) - 8
    return None


def _layout(space: Any) -> tuple[str, int]:
    layout = action_layout(space)
    if layout is None:
        raise SettingsError(f"expected a fighting-game action space (MultiDiscrete([9, 8]) or [9, 4], Discrete(16) "
                            f"or Discrete(12)), got {space}; mirroring and move names are for fighting games.")
    return layout


def split_action(action: Any, space: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(move, attack)`` index arrays of one action or a batch of them.

    >>> from gymnasium import spaces
    >>> [a.tolist() for a in split_action(np.array([3, 9, 12]), spaces.Discrete(16))]
    [[3, 0, 0], [0, 1, 4]]
    """
    kind, _ = _layout(space)
    a = np.asarray(action, np.int64)
    if kind == "multi_discrete":
        return a[..., 0], a[..., 1]
    return np.where(a <= 8, a, 0), np.where(a > 8, a - 8, 0)


def describe_action(action: Any, space: Any) -> str:
    """An action of a fighting-game space in words: ``'right + P+K'``, ``'down'``, ``'K'``, ``'no-move'``."""
    move, attack = (int(x) for x in split_action(action, space))
    names = [MOVE_NAMES[move]] if move or not attack else []
    if attack:
        names.append(ATTACK_NAMES[attack] if _layout(space)[1] == 8 else ("P", "K", "G")[attack - 1])
    return " + ".join(names)


def mirror_action(action: Any, space: Any) -> Any:
    """The action with left and right exchanged, in the same form (int, array or batch) as given."""
    kind, _ = _layout(space)
    if kind == "multi_discrete":
        a = np.array(action, copy=True)
        a[..., 0] = _MIRROR[a[..., 0]]
        return a
    a = np.asarray(action)
    out = np.where((a >= 1) & (a <= 8), _MIRROR[np.clip(a, 0, 8)], a).astype(a.dtype)
    if out.ndim == 0 and not isinstance(action, np.ndarray):
        return int(out) if not isinstance(action, np.generic) else out[()]
    return out


def mirror_observation(obs: Any) -> Any:
    """The observation seen in a mirror: ``frame`` flipped left-right, every ``side`` exchanged (0 <-> 1).

    Works on one observation or a batch; other keys are returned as they are (not copied).

    >>> obs = {"frame": np.arange(6, dtype=np.uint8).reshape(1, 3, 2), "P1": {"side": 0}, "P2": {"side": np.int64(1)}}
    >>> m = mirror_observation(obs)
    >>> m["frame"][0, :, 0].tolist(), m["P1"]["side"], int(m["P2"]["side"])
    ([4, 2, 0], 1, 0)
    """
    if not isinstance(obs, Mapping):
        return obs
    out = dict(obs)
    frame = out.get("frame")
    if isinstance(frame, np.ndarray) and frame.ndim >= 3:
        out["frame"] = np.ascontiguousarray(frame[..., ::-1, :])
    for key, value in out.items():
        if key == "side" and value is not None:
            out[key] = 1 - value if not isinstance(value, np.ndarray) else (1 - value).astype(value.dtype)
        elif isinstance(value, Mapping) and key != "frame":
            out[key] = mirror_observation(value)
    return out
