"""Nested values of a space as flat named columns: the leaves, and the code that scatters and gathers them.

:func:`leaf_fields` lists the *leaves* of a nested space as :class:`Field` records with a flat
column name (``"obs/P1/health"``, ``"action/agent_0"``, ``"obs/0"`` for a Tuple item), and
:func:`compile_setter` / :func:`compile_getter` compile, once per space, the function that
scatters a nested value into per-leaf buffers and the one that gathers it back; :func:`leaf_plan`
is the setter's work as data for the C setter (``trajarena.format._capture``). The same recursive
code path serves every nesting, two-player ``Dict`` actions included.

Leaf values are stored with these dtypes and shapes:

=============  ==========================  ===========================
space          column dtype                per-step shape
=============  ==========================  ===========================
Box            ``space.dtype``             ``space.shape``
Discrete       ``int64``                   ``()``
MultiDiscrete  ``space.dtype``             ``space.shape``
MultiBinary    ``int8``                    ``space.shape``
Text           ``str`` (Arrow ``utf8``)    ``()``
=============  ==========================  ===========================
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.errors import SpaceError
from trajarena.format.spaces import space_to_json

__all__ = ["Field", "compile_getter", "compile_setter", "leaf_fields", "leaf_plan", "nest"]


@dataclass(frozen=True)
class Field:
    """One leaf of a nested space, stored as one flat column.

    Attributes:
        name: the flat column name, e.g. ``"obs/P1/health"``.
        path: the keys (``str`` for Dict, ``int`` for Tuple) from the root value to the leaf.
        dtype: the numpy dtype of the stored values (``object`` for Text).
        shape: the shape of one step's value.
        space: the leaf space.

    >>> from gymnasium.spaces import Box, Dict, Discrete
    >>> [f.name for f in leaf_fields(Dict(a=Discrete(3), b=Box(0, 1, (2,))), "obs")]
    ['obs/a', 'obs/b']
    """

    name: str
    path: tuple[str | int, ...]
    dtype: np.dtype
    shape: tuple[int, ...]
    space: spaces.Space


def _escape(key: str) -> str:
    return key.replace("%", "%25").replace("/", "%2F")


def leaf_fields(space: spaces.Space, prefix: str) -> list[Field]:
    """List the leaves of ``space`` in a fixed depth-first order, named from ``prefix``."""
    out: list[Field] = []

    def walk(s: spaces.Space, name: str, path: tuple[str | int, ...]) -> None:
        if isinstance(s, spaces.Dict):
            for key, sub in s.spaces.items():
                walk(sub, f"{name}/{_escape(key)}", (*path, key))
        elif isinstance(s, spaces.Tuple):
            for i, sub in enumerate(s.spaces):
                walk(sub, f"{name}/{i}", (*path, i))
        elif isinstance(s, spaces.Discrete):
            out.append(Field(name, path, np.dtype(np.int64), (), s))
        elif isinstance(s, spaces.MultiBinary):
            out.append(Field(name, path, np.dtype(np.int8), tuple(s.shape), s))
        elif isinstance(s, spaces.Text):
            out.append(Field(name, path, np.dtype(object), (), s))
        elif isinstance(s, spaces.Box | spaces.MultiDiscrete):
            out.append(Field(name, path, np.dtype(s.dtype), tuple(s.shape), s))
        else:
            space_to_json(s)  # raises NotSupportedError naming the space
            raise SpaceError(f"Cannot store values of space {s}.")

    walk(space, prefix, ())
    return out


def compile_setter(space: spaces.Space, buffers: list[np.ndarray]) -> Callable[[int, Any], None]:
    """Return ``set(row, value)`` that writes a nested value's leaves into ``buffers[i][row]``.

    ``buffers`` are in :func:`leaf_fields` order. A value that does not fit raises numpy's
    ``ValueError``/``TypeError`` or ``KeyError``; callers turn those into :class:`SpaceError`.

    The setter is generated as straight-line code (as :func:`collections.namedtuple` does), one
    assignment per leaf and one lookup per inner node, because it runs for every recorded step:
    ``b0[row] = value["P1"]["health"]`` costs a third of a loop over per-leaf pickers.

    >>> from gymnasium.spaces import Dict, Discrete
    >>> bufs = [np.zeros(2, np.int64), np.zeros(2, np.int64)]
    >>> compile_setter(Dict(a=Discrete(3), b=Discrete(3)), bufs)(1, {"a": 2, "b": 1})
    >>> [b.tolist() for b in bufs]
    [[0, 2], [0, 1]]
    """
    fields = leaf_fields(space, "")
    if len(buffers) != len(fields):
        raise SpaceError(f"compile_setter needs {len(fields)} buffers for {space}, got {len(buffers)}.")
    if len(fields) == 1 and not fields[0].path:
        (buf,) = buffers

        def set_root(row: int, value: Any) -> None:
            buf[row] = value

        return set_root
    lines: list[str] = []
    leaf = iter(range(len(fields)))
    args: list[Any] = list(buffers)
    names = [f"b{i}" for i in range(len(buffers))]

    def literal(key: Any) -> str:
        if type(key) in (str, int):
            return repr(key)
        names.append(f"k{len(args)}")  # any other hashable key: passed in by name, never printed
        args.append(key)
        return names[-1]

    def emit(s: spaces.Space, var: str, depth: int) -> None:
        items = s.spaces.items() if isinstance(s, spaces.Dict) else enumerate(s.spaces)
        for n, (key, sub) in enumerate(items):
            if isinstance(sub, spaces.Dict | spaces.Tuple):
                child = f"v{depth}_{n}"
                lines.append(f"        {child} = {var}[{literal(key)}]")
                emit(sub, child, depth + 1)
            else:
                lines.append(f"        b{next(leaf)}[row] = {var}[{literal(key)}]")

    emit(space, "value", 0)
    # keys enter the source only as repr() of a str/int (or an argument), so it is exactly the space's layout
    source = (f"def make({', '.join(names)}):\n    def set_nested(row, value):\n"
              + "\n".join(lines or ["        pass"]) + "\n    return set_nested\n")
    return _setter_factory(source)(*args)


def leaf_plan(space: spaces.Space, buffers: list[np.ndarray]) -> tuple | None:
    """The plan of :func:`compile_setter`'s work for the C setter (``trajarena.format._capture.fill``).

    One ``(shared, keys, buffer)`` per leaf, in :func:`leaf_fields` order: the leaf's value is
    ``node[k0][k1]...`` for ``keys``, from the inner node that the previous leaf's path reached after
    ``shared`` keys (so ``obs["P1"]`` is looked up once for all its leaves). None when the nesting is
    deeper than the C setter goes (the Python setter then does it).

    >>> from gymnasium.spaces import Dict, Discrete
    >>> bufs = [np.zeros(2, np.int64) for _ in range(3)]
    >>> [p[:2] for p in leaf_plan(Dict(a=Discrete(2), b=Dict(c=Discrete(2), d=Discrete(2))), bufs)]
    [(0, ('a',)), (0, ('b', 'c')), (1, ('d',))]
    """
    fields = leaf_fields(space, "")
    if len(buffers) != len(fields):
        raise SpaceError(f"leaf_plan needs {len(fields)} buffers for {space}, got {len(buffers)}.")
    if any(len(f.path) > _PLAN_DEPTH for f in fields):
        return None
    plan, inner = [], ()
    for f, buf in zip(fields, buffers, strict=True):
        shared = 0
        while shared < min(len(inner), len(f.path) - 1) and inner[shared] == f.path[shared]:
            shared += 1
        plan.append((shared, tuple(f.path[shared:]), buf))
        inner = tuple(f.path[:-1])
    return tuple(plan)


#: The deepest nesting the C setter follows (trajarena/format/_capture.c: MAX_DEPTH).
_PLAN_DEPTH = 64


@functools.lru_cache(maxsize=256)
def _setter_factory(source: str) -> Callable[..., Callable[[int, Any], None]]:
    """Compile a setter's source once; the writer binds new buffers to it for every chunk."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<trajarena setter>", "exec"), namespace)  # noqa: S102
    return namespace["make"]


def compile_getter(space: spaces.Space) -> Callable[[Iterator[Any]], Any]:
    """Return ``build(leaves)`` that nests an iterator of leaf values (in leaf order) as ``space``.

    Works for single steps (leaves are scalars/arrays) and for batches (leaves are stacked arrays).
    """
    if isinstance(space, spaces.Dict):
        subs = [(k, compile_getter(s)) for k, s in space.spaces.items()]
        return lambda it: {k: g(it) for k, g in subs}
    if isinstance(space, spaces.Tuple):
        items = [compile_getter(s) for s in space.spaces]
        return lambda it: tuple(g(it) for g in items)
    return next


def nest(space: spaces.Space, leaves: list[Any]) -> Any:
    """Nest a list of leaf values (in :func:`leaf_fields` order) as a value of ``space``.

    >>> from gymnasium.spaces import Dict, Discrete
    >>> nest(Dict(a=Discrete(2), b=Discrete(3)), [1, 2])
    {'a': 1, 'b': 2}
    """
    return compile_getter(space)(iter(leaves))
