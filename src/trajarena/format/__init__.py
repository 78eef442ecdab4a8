"""The on-disk trajectory format and nothing else.

Spaces as JSON (:mod:`~trajarena.format.spaces`); the schema, metadata, codec helpers and limits
(:mod:`~trajarena.format.schema`); the writer (:mod:`~trajarena.format.writer`); a file's checked
index of chunks and episodes (:mod:`~trajarena.format.index`); the reader
(:mod:`~trajarena.format.reader`); verify and repair (:mod:`~trajarena.format.integrity`); and
whole-column access with the decoded-column cache (:mod:`~trajarena.format.columns`). This package
imports only :mod:`trajarena.errors` and :mod:`trajarena.settings` from the rest of the library.
"""

from trajarena.format.index import find_files, index_file
from trajarena.format.integrity import RepairReport, VerifyReport, repair, verify
from trajarena.format.reader import TrajectoryReader, open_trajectories
from trajarena.format.writer import TrajectoryWriter

__all__ = ["RepairReport", "TrajectoryReader", "TrajectoryWriter", "VerifyReport", "find_files", "index_file",
           "open_trajectories", "repair", "verify"]
