"""The writer process: chunks encoded and written by a child process, fed through shared memory.

With ``writer="process"`` (the default ``"auto"`` picks it when a core is free) the
game loop fills its chunks in a shared-memory file (``memfd``, no name, freed with the last process
that maps it) and hands each one over as a small message on a pipe: its slot, the rows to write,
the episode starts and end records, the info values. The child (``python -c ...`` started with
:mod:`subprocess`, importing only the format layer) runs a :class:`~trajarena.format.encoder.ChunkEncoder`,
counts the chunks it has written in the shared memory (the game loop then reuses them) and answers
with the files it finished and, if it fails, the error.
The child's loop is :mod:`trajarena.format.writer_child`.
The encoding (XOR, CRC-32, zstd, Arrow) then never holds the game loop's GIL: an env that keeps the
GIL while it steps (ALE, pure-Python games) is not slowed down by its own recording.

The messages and the shared chunks are :mod:`trajarena.format.writer_wire` (both ends use it). The
child naps (1 ms polls) for a while after each message, so the game loop wakes it (an eventfd write,
~20 us) only once it has gone to sleep. If the game process dies (a kill), the child still writes
every chunk it was handed, then leaves the file ``.partial`` for
:func:`~trajarena.format.integrity.repair`; if the child dies, the game loop's next call raises
:class:`~trajarena.errors.RecordingError`.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from trajarena.errors import RecordingError, SettingsError
from trajarena.format.writer_wire import SharedSlots, pack, pack_chunk

try:  # its watch(): the listener waits without the GIL
    from trajarena.format import _capture
except ImportError:  # pragma: no cover - a build without a C compiler: the listener wakes into Python every poll
    _capture = None

__all__ = ["TOUCH_ROW_BYTES", "WriterLink", "choose_writer"]

_PIPE_BYTES = 1 << 20  # Linux's default fs.pipe-max-size
_START_SECONDS = 60.0  # a loaded machine may take long to start Python
_WATCH_MAX_S = 1.0  # the listener runs Python at least this often (receive with a clock)
_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds the trajarena package
#: The child's program (``-P``: the working folder is not on its import path): it imports only the format modules it needs, not the packages' ``__init__`` (which
#: import gymnasium and the env registry), nor pandas, so it is ready in ~0.1 s instead of ~0.35 s; meanwhile the game
#: loop fills chunks that touch fresh shared memory.
_CHILD = """
import sys, types
class NoPandas:  # pyarrow imports pandas (~0.2 s) on its first array when it can; the child never needs it
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] == "pandas":
            raise ImportError("the trajarena writer process does not use pandas")
sys.meta_path.insert(0, NoPandas)
for name in ("trajarena", "trajarena.format"):
    package = types.ModuleType(name)
    package.__path__ = [sys.argv[1] + "/" + name.replace(".", "/")]
    sys.modules[name] = package
from trajarena.format.writer_child import main
main(sys.argv[2:])
"""


#: ``writer="auto"`` uses a writer process while fewer than cores - 1 of them run for this process
_running = [0]
#: A writer process's chunks get their memory before the first step for rows of at least this many
#: bytes (frames: see :meth:`SharedSlots.touch`); smaller rows take a page fault every few hundred steps.
TOUCH_ROW_BYTES = 32 << 10


def choose_writer(setting: str, text_leaves: bool) -> str:
    """``"thread"`` or ``"process"``: where a writer encodes, for the ``writer`` setting.

    ``"auto"`` picks the process wherever it can run and a core is free for it: the encoding then
    never holds the game loop's GIL (CartPole records at 0.85 of its raw speed with it, 0.70 with
    the thread, ``bench/listener_study.py``; ALE Boxing, whose emulator holds the GIL, 0.91-0.98
    against 0.78).

    Raises:
        SettingsError: ``"process"`` where it cannot run (not Linux, no ``sys.executable``, Text leaves).
    """
    if setting == "thread":
        return "thread"
    why = ("it needs Linux (memfd_create, eventfd)" if not hasattr(os, "memfd_create") or not hasattr(os, "eventfd")
           else "it cannot start Python (sys.executable is empty)" if not sys.executable
           else "Text leaves are recorded by the thread" if text_leaves else "")
    if setting == "process":
        if why:
            raise SettingsError(f"writer='process' is not possible here: {why}. Use writer='thread' or 'auto'.")
        return "process"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return "process" if not why and _running[0] < cores - 1 else "thread"


# ----------------------------------------------------------------------------- the game process's side

#: The child never multiplies matrices: without these, numpy's import starts an OpenBLAS thread per core
#: that spins for ~0.1 s (measured: 13% of a core in a 0.7 s recording), on the core the child needs.
_CHILD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class WriterLink:
    """The game process's end: the child process, its pipes and the shared chunks.

    Args:
        config: what the child needs to make its encoder (folder, columns, metadata, codec, ...).
        layout: one chunk's arrays (see :meth:`SharedSlots`).
        slots: chunks in shared memory.
        touch: give the chunks their memory now (see :meth:`SharedSlots.touch`), not as rows fill them.

    Raises:
        RecordingError: the child could not be started (no shared memory, no process, no answer).
    """

    def __init__(self, config: dict[str, Any], layout: list[tuple[np.dtype, tuple[int, ...]]], slots: int,
                 touch: bool = True) -> None:
        self.broken = False  # a send was interrupted: the stream may hold a torn message, send nothing more
        self.proc: subprocess.Popen | None = None
        self._counted = False  # in _running
        fds: list[int] = []
        try:
            self.shared = SharedSlots(layout, slots)
            fds.append(self.shared.fd)
            to_child_r, to_child_w = os.pipe()
            fds += [to_child_r, to_child_w]
            from_child_r, from_child_w = os.pipe()
            fds += [from_child_r, from_child_w]
            self._wake = os.eventfd(0, os.EFD_CLOEXEC)  # see _next_message
            fds.append(self._wake)
            self._done = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)  # see wait_done
            fds.append(self._done)
            # the parent's interpreter flags (-I, -E, -s, ...) and -P (the working folder is not on the path);
            # a process group of its own: a signal to the game's group (Ctrl-C, SIGTERM from a job manager)
            # reaches the game, which closes the writer cleanly, and the child exits after writing
            self.proc = subprocess.Popen(
                [sys.executable, *subprocess._args_from_interpreter_flags(), "-P", "-c", _CHILD, _ROOT,
                 str(to_child_r), str(from_child_w), str(self.shared.fd), str(self._wake), str(self._done)],
                pass_fds=(to_child_r, from_child_w, self.shared.fd, self._wake, self._done), stdin=subprocess.DEVNULL,
                process_group=0, env={**os.environ, **_CHILD_ENV})
            for fd in (to_child_r, from_child_w, self.shared.fd):  # the child's ends; the mapping keeps the memory
                os.close(fd)
                fds.remove(fd)
            try:  # room for max_pending messages, so the game loop waits for free chunks, not for the pipe
                fcntl.fcntl(to_child_w, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
            except OSError:
                pass  # a lower system limit (fs.pipe-max-size): the default 64 KiB pipe works, it may wait sooner
            self._out = Connection(to_child_w, readable=False)
            self._in = Connection(from_child_r, writable=False)
            fds.clear()
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            raise RecordingError(f"Cannot start the writer process ({exc}); use writer='thread'.") from exc
        try:
            self.send({"kind": "config", **config, **self.shared.describe()})
        except RecordingError:
            pass  # it exited already: _wait_ready says so
        if touch:
            self.shared.touch()  # while the child starts
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Wait until the child can write (~0.1 s), so the game loop never waits for it to start."""
        try:
            answer = json.loads(self._in.recv_bytes(1 << 20)) if self._in.poll(_START_SECONDS) else {}
        except (EOFError, OSError, ValueError):
            answer = {}
        if answer.get("ready"):
            _running[0] += 1
            self._counted = True
            return
        self.kill()
        raise RecordingError(f"The writer process did not start ({answer.get('error') or 'no answer'}); "
                             "use writer='thread'.")

    def send(self, header: dict[str, Any], arrays: list[np.ndarray] = ()) -> None:
        """Send one message (the caller serialises senders); the child is woken for any but a chunk.

        An exception in the middle (a KeyboardInterrupt in the game loop) may leave a torn message
        in the pipe, and the game loop's count of the chunks handed over would be off by one: the
        link is then broken, nothing more is sent, and the child leaves the file for repair.
        """
        self._write(pack(header, arrays), wake=header.get("kind") != "chunk")

    def send_chunk(self, slot: int, lo: int, hi: int, starts: list[list], rotate: bool, fill_s: float,
                   copied: int = 0) -> bool:
        """Send a :func:`pack_chunk` message (the usual chunk); False when it does not fit one (send it
        with :meth:`send`)."""
        data = pack_chunk(slot, lo, hi, starts, rotate, fill_s, copied)
        if data is None:
            return False
        self._write(data, wake=False)
        return True

    def _write(self, data: bytes, wake: bool) -> None:
        """Write one message as :class:`Connection` frames it; wake the child when ``wake`` or when it sleeps.

        The child looks at the pipe after it sets ``asleep`` and this side at ``asleep`` after its
        write (both through system calls, which order memory): one of them sees the other.
        """
        if self.broken:
            raise RecordingError("The writer process's pipe was cut by an interrupted send; what it had is in "
                                 "the folder (run trajarena repair on it).")
        try:
            if len(data) > 4096:
                self._out.send_bytes(data)
            else:  # one write, not Connection's Python (~20 us cold, once per chunk)
                frame = len(data).to_bytes(4, "big") + data
                while frame:
                    frame = frame[os.write(self._out.fileno(), frame):]
            if wake or self.shared.asleep[0]:
                os.eventfd_write(self._wake, 1)
        except BaseException as exc:
            self.broken = True
            if isinstance(exc, OSError):  # the child is gone (EPIPE)
                raise RecordingError(f"The writer process (pid {self.proc.pid}) is gone: {exc}") from exc
            raise

    def receive(self, timeout: float, clock: np.ndarray | None = None, copier: Any = None) -> list[dict[str, Any]] | None:
        """The child's messages that arrived within ``timeout`` seconds; ``None`` once it has exited.

        With the game loop's ``clock`` (``[last handoff, end due, flush seconds, waiting]``, see
        ``ChunkBuffers._clock``) and the C accelerator, it waits without the GIL until a message
        comes, a flush is due (looked at every ``timeout``) or ``_WATCH_MAX_S`` pass: a thread that
        woke into Python every ``timeout`` cost an env that releases the GIL often ~10 % of its speed.
        Meanwhile it copies the frames of a chunk that the game process's ``copier`` (a starved
        low-priority thread) has not started on for 20 ms.
        """
        out: list[dict[str, Any]] = []
        if clock is not None and _capture is not None:
            try:
                ready = _capture.watch(self._in.fileno(), clock, max(1, round(timeout * 1000)),
                                       round(_WATCH_MAX_S * 1000), copier)
            except OSError:  # closed meanwhile: poll() below says so
                ready = True
            clock[3] = 0.0  # this thread has the GIL again (see ProcessHandoff._yield)
            if not ready:
                return out
            timeout = 0
        try:
            while self._in.poll(timeout if not out else 0):
                out.append(json.loads(self._in.recv_bytes(1 << 20)))
        except (EOFError, OSError, ValueError):
            return out or None
        return out

    def wait_done(self, timeout: float) -> None:
        """Sleep until the child has written a chunk (it signals an eventfd) or ``timeout`` seconds pass."""
        poller = select.poll()
        poller.register(self._done, select.POLLIN)
        if poller.poll(timeout * 1000):
            try:
                os.eventfd_read(self._done)
            except BlockingIOError:
                pass

    def close_input(self) -> None:
        """No more messages: the child finishes what it has and exits (a forked copy of this process
        may still hold the pipe, so the child is told, not left to wait for the end of the pipe)."""
        if not self.broken:
            try:
                self.send({"kind": "close"})
            except (RecordingError, OSError):
                pass  # gone already
        self._out.close()
        try:
            os.eventfd_write(self._wake, 1)
        except OSError:
            pass

    def kill(self) -> None:
        """Stop the child now (it failed to start, or the game process gives up on it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self._out.close()
        self.wait()

    def wait(self) -> int:
        code = self.proc.wait()
        self._release()
        return code

    def detach(self) -> None:
        """The child said it has closed every file: drop this side's ends; its exit is not waited for.

        Its exit unmaps the shared memory (~5 ms for 80 MB), which close() need not wait for; the
        writer's listener thread, which got the child's last message, reaps it.
        """
        self._release()

    def _release(self) -> None:
        self._in.close()
        os.close(self._wake)
        os.close(self._done)
        if self._counted:
            _running[0] -= 1
            self._counted = False

    def forget(self) -> None:
        """In a forked copy of the game process: close this copy's ends, so the child sees the real owner only."""
        for conn in (self._out, self._in):
            conn.close()
        os.close(self._wake)
        os.close(self._done)
