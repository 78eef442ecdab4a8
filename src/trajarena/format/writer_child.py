"""The writer process's own side: its loop (see :mod:`trajarena.format.writer_process`).

:func:`main` runs in the child that :class:`~trajarena.format.writer_process.WriterLink` starts: it
naps, then sleeps on an eventfd, until a message comes, encodes the chunk the message names from the shared
memory (its info columns from the chunk's arena, checked against it), counts it done, and says which
files it finished. It imports only format modules.
"""

from __future__ import annotations

import json
import math
import os
import select
import signal
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from trajarena.format.writer_wire import MAX_MESSAGE_BYTES, SharedSlots, unpack

__all__ = ["main"]


#: After a message the child naps this long between looks at the pipe, up to _NAPS times, before it
#: sleeps until the game loop wakes it: a game loop at full speed hands a chunk over every few
#: milliseconds and then need not wake it (an eventfd write that wakes a process: ~20 us of its time).
_NAP_MS = 1
_NAPS = 50 if len(os.sched_getaffinity(0)) > 1 else 0  # one core: a nap would take it from the game loop
#: Asleep, it still looks whether the game process is gone this often (a kill between its message and
#: the eventfd write).
_SLEEP_MS = 1000
#: How often it looks whether the frames of a chunk it was handed have been copied (see _copied).
_COPY_POLL_S = 0.0001


def _copied(shared: SharedSlots, job: int, parent: int) -> bool:
    """Wait until the game process's copier thread has put a chunk's frames in the shared memory (its
    copy job ``job``, ~1 ms for 8 MB); False if the game process died first (that chunk is lost, as
    one not yet handed over would be)."""
    while int(shared.copied[0]) < job:
        if os.getppid() != parent:
            return False
        time.sleep(_COPY_POLL_S)
    return True


def _next_message(inbox: Connection, wake_fd: int, parent: int, asleep: np.ndarray) -> bytes:
    """The next message from the game process, waiting on its eventfd (EOFError once it is gone).

    The child sleeps on the eventfd, not on the pipe: a pipe write wakes its reader as a *sync*
    wakeup, which makes Linux run the reader on the writer's core (it expects the writer to sleep
    next); the writer process then took the game loop's core for its whole chunk (Boxing: 0.79 of
    raw speed instead of 0.88). An eventfd wakes it on a free core. It first naps (``_NAPS`` polls
    of ``_NAP_MS``, which nobody needs to interrupt), then raises ``asleep`` and looks at the pipe
    once more before it sleeps: the game loop writes the eventfd after a message only when it sees
    ``asleep`` (and always for a message it must not wait for, such as ``close``). A game process
    killed between its message and the eventfd write is noticed within a second: its pipe ends, or
    (a forked copy of it still holds the pipe) this process's parent changes.
    """
    poller = select.poll()  # not select(): descriptors above 1024
    poller.register(wake_fd, select.POLLIN)
    naps = 0
    while not inbox.poll(0):
        if os.getppid() != parent:
            raise EOFError("the game process is gone")
        if naps < _NAPS:
            naps, timeout = naps + 1, _NAP_MS
        elif not asleep[0]:
            asleep[0] = 1
            continue  # the pipe once more, now that the game loop will wake this process
        else:
            timeout = _SLEEP_MS
        if poller.poll(timeout):
            os.eventfd_read(wake_fd)
    asleep[0] = 0
    return inbox.recv_bytes(MAX_MESSAGE_BYTES)


class _Arrays:
    def __init__(self, arrays: list[np.ndarray]) -> None:  # a chunk's arrays, then its info arena
        self.cols, self.reward, self.terminated, self.truncated = arrays[:-4], arrays[-4], arrays[-3], arrays[-2]
        self.arena = arrays[-1]


def _shared_info(arena: np.ndarray, at: Any, rows: int, lo: int, hi: int) -> dict:
    """``{key: (values, present)}`` of rows ``[lo, hi)`` for the info columns in a chunk's arena.

    Raises:
        ValueError: ``at`` is not ``[[key, values offset, present offset, dtype, shape], ...]`` of
            numeric columns that lie inside the arena, aligned.
    """
    out = {}
    for item in at if isinstance(at, list) else [None]:
        if not (isinstance(item, list) and len(item) == 5 and isinstance(item[0], str)
                and all(type(o) is int and o >= 0 for o in item[1:3]) and isinstance(item[3], str)
                and isinstance(item[4], list) and all(type(d) is int and 0 <= d <= 4096 for d in item[4])):
            raise ValueError(f"bad shared info column {item!r}")
        key, off_v, off_p, dtype, shape = item
        try:
            dtype = np.dtype(dtype)
        except TypeError as exc:
            raise ValueError(f"shared info column {key!r} of dtype {item[3]!r}: {exc}") from exc
        if dtype.kind not in "biuf":
            raise ValueError(f"shared info column {key!r} of dtype {dtype} (not numeric)")
        size = rows * dtype.itemsize * math.prod(shape)
        if off_v % dtype.alignment or off_v + size > len(arena) or off_p + rows > len(arena):
            raise ValueError(f"shared info column {key!r} at {off_v}/{off_p} is outside the arena of {len(arena)} bytes")
        values = arena[off_v : off_v + size].view(dtype).reshape(rows, *shape)
        out[key] = values[lo:hi], arena[off_p : off_p + rows].view(bool)[lo:hi]
    return out


def main(argv: list[str] | None = None) -> None:
    """The child: encode the chunks the game process hands over until it closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the game process, which closes us cleanly
    from trajarena.format import schema as fmt
    from trajarena.format.encoder import ChunkEncoder

    in_fd, out_fd, mem_fd, wake_fd, done_fd = (int(a) for a in (argv or sys.argv[1:]))
    inbox, outbox = Connection(in_fd, writable=False), Connection(out_fd, readable=False)
    parent = os.getppid()
    encoder = None

    def say(**message: Any) -> None:
        try:
            outbox.send_bytes(json.dumps(message).encode())
        except OSError:
            pass  # the game process is gone: write what it handed over all the same

    try:
        config, _ = unpack(inbox.recv_bytes(MAX_MESSAGE_BYTES))
        shared = SharedSlots([(np.dtype(d), tuple(s)) for d, s in config["layout"]], config["slots"], mem_fd)
        known: dict[str, tuple] = {}
        encoder = ChunkEncoder(Path(config["folder"]), [fmt.Column.from_json(c) for c in config["columns"]],
                               config["n_obs"], config["meta"], config["compression"], config["level"],
                               config["adaptive"], config["fsync"], config["prefix"], config["row_bytes"], {},
                               lambda: known)
        views = [_Arrays(shared.arrays(k)) for k in range(shared.slots)]
        import numpy.ma  # noqa: F401 - pyarrow's first pa.array(ndarray) imports it (~13 ms): now, not in the first chunk
        say(ready=True)
        closing, shared_at = False, []
        while True:
            try:
                header, arrays = unpack(_next_message(inbox, wake_fd, parent, shared.asleep))
            except EOFError:  # the game process died (or cut a message short): leave the file for repair
                break
            if header["kind"] == "close":
                closing = True
                break
            if "known" in header:  # sent when it changed
                encoder.notes.update(header["notes"])
                known.clear()  # a key dropped since (its type changed) is not in new files
                known.update({k: (np.dtype(d), tuple(s)) for k, (d, s) in header["known"].items()})
            info = {k: (arrays[2 * i], arrays[2 * i + 1]) for i, k in enumerate(header["info"])}
            slot = header["slot"]
            if not _copied(shared, header.get("copied", 0), parent):
                break  # the game process died before this chunk's frames were copied: the file stays for repair
            shared_at = header.get("shared_info", shared_at)  # sent when it changed
            if shared_at:
                info.update(_shared_info(views[slot].arena, shared_at, config["chunk_steps"], header["lo"], header["hi"]))
            final = encoder.write(views[slot], header["lo"], header["hi"], header["starts"], header["ends"], info,
                                  header["rotate"], header["fill_s"])
            if final is not None:
                say(file=str(final))
            if header["kind"] == "chunk":
                shared.done[0] += 1  # the game loop may reuse the slot
                os.eventfd_write(done_fd, 1)  # and wakes up if it waits for one
        encoder.abort()  # the game process died before closing: the file stays .partial, for repair (closed: no file)
        if closing:
            say(closed=True)  # every file is finished: the game process need not wait for this process to exit
        outbox.close()
        shared.release()
        os._exit(0)  # everything is on disk and closed: skip the interpreter's teardown (~80 ms with pyarrow)
    except BaseException as exc:  # noqa: BLE001 - reported to the game process, which raises it
        if encoder is not None:
            encoder.abort()
        try:
            say(error=f"{type(exc).__name__}: {exc}")
        except OSError:
            pass
        sys.exit(1)
