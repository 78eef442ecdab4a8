"""Settings of the wrappers applied on top of a raw env (DIAMBRA's ``WrappersSettings``), and user wrappers.

User wrappers are classes given in code; a file or a policy stores them by name only, and
:meth:`WrappersSettings.from_json` re-applies only the classes its caller passes (data never names code).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym

from trajarena.errors import WrapperNotAppliedWarning
from trajarena.settings.base import MAX_STACK, Settings, as_bool, as_frame_shape, as_int, fail, is_number, qualified_name

__all__ = ["WrappersSettings"]


@dataclass(frozen=True)
class WrappersSettings(Settings):
    """Wrappers applied on top of the raw env (DIAMBRA's ``WrappersSettings``).

    The same settings build the same observations on a live env and on the replay env.

    Args:
        no_op_max: up to this many no-op steps after reset (seeded).
        repeat_action: repeat each action this many steps.
        normalize_reward: divide rewards by ``normalization_factor`` times the full health.
        normalization_factor: see ``normalize_reward``.
        clip_reward: reward → its sign.
        no_attack_buttons_combinations: keep only single attack buttons in the action space.
        frame_shape: resize/greyscale the frame (0 keeps).
        stack_frames: stack this many frames on the last axis.
        dilation: take every ``dilation``-th frame of the history when stacking.
        add_last_action: add the last action(s) to the observation as ``action``.
        stack_actions: how many last actions to keep.
        scale: scale values to [0, 1] (one-hot for discrete values).
        exclude_image_scaling: with ``scale``, leave the frame as uint8.
        process_discrete_binary: with ``scale``, one-hot encode binary discrete values too.
        role_relative: rename P1/P2 to own/opp from the agent's point of view.
        flatten: flatten nested observation dicts to ``P1_health``-style keys.
        filter_keys: keep only these keys (after flattening).
        wrappers: user wrappers, a sequence of ``[WrapperClass, kwargs]`` applied last.

    >>> WrappersSettings(stack_frames=4, scale=True).stack_frames
    4
    """

    _dialect: ClassVar[str] = "wrappers"

    no_op_max: int = 0
    repeat_action: int = 1
    normalize_reward: bool = False
    normalization_factor: float = 0.5
    clip_reward: bool = False
    no_attack_buttons_combinations: bool = False
    frame_shape: tuple[int, int, int] = (0, 0, 0)
    stack_frames: int = 1
    dilation: int = 1
    add_last_action: bool = False
    stack_actions: int = 1
    scale: bool = False
    exclude_image_scaling: bool = False
    process_discrete_binary: bool = False
    role_relative: bool = False
    flatten: bool = False
    filter_keys: tuple[str, ...] | None = None
    wrappers: tuple[Any, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        o = type(self).__name__
        self._set("no_op_max", as_int(o, "no_op_max", self.no_op_max, 0, 100_000))
        self._set("repeat_action", as_int(o, "repeat_action", self.repeat_action, 1, 10_000))
        self._set("stack_frames", as_int(o, "stack_frames", self.stack_frames, 1, MAX_STACK))
        self._set("dilation", as_int(o, "dilation", self.dilation, 1, MAX_STACK))
        self._set("stack_actions", as_int(o, "stack_actions", self.stack_actions, 1, MAX_STACK))
        for name in (
            "normalize_reward", "clip_reward", "no_attack_buttons_combinations", "add_last_action",
            "scale", "exclude_image_scaling", "process_discrete_binary", "role_relative", "flatten",
        ):
            self._set(name, as_bool(o, name, getattr(self, name)))
        nf = self.normalization_factor
        if not is_number(nf) or not math.isfinite(nf) or not nf > 0:
            raise fail(o, "normalization_factor", nf, "a number > 0")
        self._set("normalization_factor", float(nf))
        self._set("frame_shape", as_frame_shape(o, "frame_shape", self.frame_shape))
        if self.filter_keys is not None:
            if isinstance(self.filter_keys, str) or not all(isinstance(k, str) for k in self.filter_keys):
                raise fail(o, "filter_keys", self.filter_keys, "a list of observation key names, or None")
            self._set("filter_keys", tuple(self.filter_keys))
        self._set("wrappers", tuple(_user_wrapper(o, w) for w in (self.wrappers or ())))

    @property
    def is_identity(self) -> bool:
        """True when these settings change nothing."""
        return self == WrappersSettings()

    @classmethod
    def from_json(cls, data: Mapping[str, Any], wrappers: Sequence[type] = ()) -> WrappersSettings:
        """Rebuild settings stored in a file or a policy: data never names code.

        A recorded user wrapper is only a name (``"package.module.Class"``); nothing read is
        imported or called. It is re-applied only when ``wrappers`` (classes the caller passes in
        code) holds a class of that qualified name; every other recorded wrapper is left out with
        one :class:`~trajarena.errors.WrapperNotAppliedWarning` that names it.

        >>> stored = {"stack_frames": 2, "wrappers": [["os.system", {"command": "echo owned"}]]}
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     s = WrappersSettings.from_json(stored)
        >>> s.stack_frames, s.wrappers
        (2, ())
        >>> print(caught[0].message)
        recorded user wrapper(s) not re-applied: os.system (data never names code; pass the class in wrappers=[...] to re-apply it)
        """
        if not isinstance(data, Mapping):
            raise fail(cls.__name__, "(stored settings)", type(data).__name__, "a JSON object")
        data = dict(data)
        by_name = {qualified_name(w): w for w in wrappers}
        recorded = data.get("wrappers") or ()
        if not isinstance(recorded, list | tuple):
            raise fail(cls.__name__, "wrappers", recorded, "a list of [name, kwargs] pairs")
        applied, missing = [], []
        for item in recorded:
            if not (isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str)
                    and isinstance(item[1], Mapping)):
                raise fail(cls.__name__, "wrappers", item, "a [qualified class name, kwargs] pair")
            if item[0] in by_name:
                applied.append((by_name[item[0]], dict(item[1])))
            else:
                missing.append(item[0][:200])
        if missing:
            warnings.warn(f"recorded user wrapper(s) not re-applied: {', '.join(missing)} (data never names code; "
                          "pass the class in wrappers=[...] to re-apply it)", WrapperNotAppliedWarning, stacklevel=2)
        data["wrappers"] = applied
        return cls.from_dict(data)


def _user_wrapper(owner: str, item: Any) -> tuple[type, dict[str, Any]]:
    if isinstance(item, type):
        item = (item, {})
    if (
        not isinstance(item, list | tuple) or len(item) != 2 or not isinstance(item[0], type)
        or not issubclass(item[0], gym.Wrapper) or not isinstance(item[1], Mapping)
    ):
        raise fail(owner, "wrappers", item, "a [WrapperClass, kwargs_dict] pair (a gymnasium.Wrapper subclass)")
    return (item[0], dict(item[1]))
