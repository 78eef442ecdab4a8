"""Where a distributed recording's files go: a folder, or a ``pyarrow.fs`` filesystem URI.

The writer needs a local disk (it appends chunks, holds an ``flock`` and renames ``.partial`` to
``.arrow``), so a recording task writes into a staging folder of its own on its node, closes its
recorder (every file finished) and then *publishes* each file with :meth:`Destination.publish`.
What a reader of the destination can see depends on what the filesystem offers:

* **A folder** — a local path, a folder of a shared filesystem (NFS, Lustre, ...) mounted at the
  same path on every node, a ``file://`` URI, or any pyarrow filesystem that can rename (HDFS,
  ``SubTreeFileSystem`` over those): the file is copied to ``<name>.uploading`` in the
  destination, then renamed to ``<name>``. The rename is atomic, so a reader sees the whole file
  or nothing; ``*.uploading`` names are not trajectory files to any trajarena reader.
* **An object store** (``s3://``, ``gs://``, ``abfs://``): there is no rename (a "move" is a copy),
  so the file is uploaded under its final key in one streamed put. S3 (``PutObject`` or a multipart
  upload), GCS (a resumable upload) and Azure (a committed block list) make an object visible only
  once its upload is complete, so readers again see the whole file or nothing. An upload cut by a
  dying worker leaves no object; S3 keeps the parts of an incomplete multipart upload (billed,
  invisible) until a bucket lifecycle rule aborts them.

Every published name starts with the attempt's prefix (see :mod:`~trajarena.interop.ray.record`),
so :meth:`Destination.remove` can take back what a dead attempt published, by listing the folder.

>>> import tempfile
>>> dest = Destination.of(tempfile.mkdtemp())
>>> dest.kind, dest.atomic_put
('local', False)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from trajarena.errors import RecordingError, SettingsError

__all__ = ["OBJECT_STORES", "UPLOADING", "Destination"]

#: pyarrow filesystem types with no rename: a file is uploaded under its final key in one put.
OBJECT_STORES = ("s3", "gcs", "abfs")
#: suffix of a file being copied into a folder destination (renamed away when complete).
UPLOADING = ".uploading"
_BLOCK = 8 << 20


def _base(fs: pafs.FileSystem) -> pafs.FileSystem:
    """The filesystem under any ``SubTreeFileSystem`` layers."""
    while isinstance(fs, pafs.SubTreeFileSystem):
        fs = fs.base_fs
    return fs


@dataclass(frozen=True)
class Destination:
    """A folder on a pyarrow filesystem that finished trajectory files are published to (picklable).

    Attributes:
        filesystem: the ``pyarrow.fs.FileSystem``.
        path: the folder on it ("" for the root of a ``SubTreeFileSystem``).
        uri: how to show it (the path of a local folder, else the URI given).

    >>> import tempfile
    >>> sub = pafs.SubTreeFileSystem(tempfile.mkdtemp(), pafs.LocalFileSystem())
    >>> Destination.of("runs/a", filesystem=sub).uri
    'subtree:runs/a'
    """

    filesystem: Any
    path: str
    uri: str

    @classmethod
    def of(cls, out: str | os.PathLike, filesystem: Any = None) -> Destination:
        """A destination from a local path, a ``scheme://`` URI, or a path on a given pyarrow filesystem.

        Raises:
            SettingsError: a URI whose scheme pyarrow does not know, or ``filesystem`` not a pyarrow one.
            RecordingError: the filesystem cannot be reached (e.g. no credentials or no network).
        """
        text = os.fspath(out)
        if filesystem is not None:
            if not isinstance(filesystem, pafs.FileSystem):
                raise SettingsError(f"filesystem must be a pyarrow.fs.FileSystem, got {type(filesystem).__name__}.")
            return cls(filesystem, text.rstrip("/"), f"{filesystem.type_name}:{text or '/'}")
        if "://" not in text:
            path = os.path.abspath(text)
            return cls(pafs.LocalFileSystem(), path, path)
        try:
            fs, path = pafs.FileSystem.from_uri(text)
        except pa.ArrowInvalid as exc:
            raise SettingsError(f"cannot record to {text!r}: {exc}. Give a folder, or a URI that pyarrow.fs "
                                "knows (file://, s3://, gs://, abfs://, hdfs://).") from exc
        except OSError as exc:
            raise RecordingError(f"cannot reach the destination {text!r}: {exc}") from exc
        local = isinstance(fs, pafs.LocalFileSystem)
        return cls(fs, path.rstrip("/") if not local else path, path if local else text.rstrip("/"))

    @property
    def kind(self) -> str:
        """The filesystem type: ``"local"``, ``"s3"``, ``"gcs"``, ``"abfs"``, ``"hdfs"``, ..."""
        return _base(self.filesystem).type_name

    @property
    def atomic_put(self) -> bool:
        """True for object stores: one put under the final name (no rename); False: copy, then rename."""
        return self.kind in OBJECT_STORES

    def _key(self, name: str) -> str:
        return f"{self.path}/{name}" if self.path else name

    def location(self, name: str) -> str:
        """Where a published file is, as a user would name it (a local path, or a URI)."""
        return os.path.join(self.path, name) if isinstance(self.filesystem, pafs.LocalFileSystem) \
            else f"{self.uri.rstrip('/')}/{name}"

    def prepare(self) -> None:
        """Create the folder (object stores have no folders: nothing to do)."""
        if self.atomic_put:
            return
        try:
            self.filesystem.create_dir(self.path, recursive=True)
        except OSError as exc:
            raise RecordingError(f"cannot create the destination folder {self.uri}: {exc}. "
                                 "Choose a folder you can write to.") from exc

    def publish(self, local: str | os.PathLike, fsync: bool = False) -> tuple[str, int]:
        """Copy a finished local file into the destination under its own name; its location and size.

        Folders: copied to ``<name>.uploading``, then renamed (``fsync``: flushed to disk first, on
        local filesystems). Object stores: one put under the final key.
        """
        local = Path(local)
        final = self._key(local.name)
        target = final if self.atomic_put else final + UPLOADING
        with open(local, "rb") as src, self.filesystem.open_output_stream(target) as dst:
            while block := src.read(_BLOCK):
                dst.write(block)
        if not self.atomic_put:
            if fsync and (path := self._local_path(target)) is not None:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self.filesystem.move(target, final)
        return self.location(local.name), local.stat().st_size

    def _local_path(self, key: str) -> str | None:
        """The path on this machine's disk of a key of a local filesystem (else None)."""
        fs, parts = self.filesystem, [key]
        while isinstance(fs, pafs.SubTreeFileSystem):
            parts.insert(0, fs.base_path)
            fs = fs.base_fs
        return os.path.join(*parts) if isinstance(fs, pafs.LocalFileSystem) else None

    def names(self) -> list[str]:
        """The names in the folder (not recursive; none when it does not exist)."""
        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=False)
        return sorted(i.base_name for i in self.filesystem.get_file_info(selector) if i.type == pafs.FileType.File)

    def remove(self, prefix: str) -> list[str]:
        """Delete every file whose name starts with ``prefix`` (what a dead attempt published); their locations."""
        if not prefix:
            raise SettingsError("Destination.remove needs a non-empty prefix (it would delete every file).")
        gone = []
        for name in self.names():
            if name.startswith(prefix):
                try:
                    self.filesystem.delete_file(self._key(name))
                except FileNotFoundError:
                    continue
                gone.append(self.location(name))
        return gone

