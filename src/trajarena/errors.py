"""The one exception hierarchy of trajarena.

Every error the library raises on purpose derives from :class:`TrajArenaError`, and also from
the builtin exception a caller would naturally catch (``except ValueError`` still works for a
bad setting). Messages say what was expected, what was found and what to do about it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TrajArenaError(Exception):
    """Base class of every error raised by trajarena."""


class SettingsError(TrajArenaError, ValueError):
    """A setting has an unknown name or a bad value."""


class UnknownEnvError(TrajArenaError, KeyError):
    """An environment id that trajarena cannot make."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(TrajArenaError, ImportError):
    """An optional dependency (an extra) is not installed."""


class NotSupportedError(TrajArenaError, NotImplementedError):
    """A feature that exists in the API but not for this input."""


class SpaceError(TrajArenaError, TypeError):
    """A space or a value that does not fit a space cannot be serialised."""


class FormatError(TrajArenaError, ValueError):
    """A trajectory file is not a valid trajarena file (bad magic, version or metadata)."""


class CorruptFileError(FormatError):
    """A trajectory file is damaged: truncated, bit-flipped or with impossible sizes."""


class MismatchError(TrajArenaError, ValueError):
    """Two trajectory files (or a file and an env) disagree on spaces or settings."""


class RecordingError(TrajArenaError, RuntimeError):
    """The recorder cannot write (closed writer, background thread failure, disk error)."""


class ExhaustedError(TrajArenaError, RuntimeError):
    """The loader has no more data and was asked for more."""


class ResetNeeded(TrajArenaError, RuntimeError):
    """``step()`` was called before ``reset()`` or after the episode ended."""


def close_matches(word: str, choices: Iterable[str]) -> str:
    """Return a ``" Did you mean 'x'?"`` hint, or an empty string when nothing is close."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {found[0]!r}?" if found else ""


def require(package: str, extra: str, purpose: str):
    """Import an optional dependency or raise :class:`MissingDependencyError` with the fix.

    >>> require("json", "core", "testing").__name__
    'json'
    """
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the optional package {package!r}, which is not installed. "
            f"Install it with: pip install 'trajarena[{extra}]'"
        ) from exc


class EngineError(TrajArenaError, RuntimeError):
    """An external game engine (DIAMBRA Arena's) cannot be reached or failed."""


class ClusterError(TrajArenaError, ConnectionError):
    """A Ray cluster cannot be reached, or it kept losing the workers given a piece of work."""


class DataNotFoundError(TrajArenaError, FileNotFoundError):
    """No trajectory file at the given paths (a missing path, an empty folder or an empty list)."""


class TrajArenaWarning(UserWarning):
    """Base class of the warnings trajarena issues."""


class WrapperNotAppliedWarning(TrajArenaWarning):
    """A user wrapper named in a file or policy was not re-applied (data never names code)."""


class OutputExistsError(TrajArenaError, FileExistsError):
    """An export or import target already exists (pass ``overwrite=True`` to replace it)."""


class DialectWarning(TrajArenaWarning):
    """A DIAMBRA setting that has no effect on this env was accepted and ignored."""
