"""The on-disk trajectory format and nothing else.

From the bottom up: spaces as JSON (:mod:`~trajarena.format.spaces`), their values as flat columns
(:mod:`~trajarena.format.leaves`), the schema, codec helpers and limits (:mod:`~trajarena.format.schema`)
and the files' JSON documents (:mod:`~trajarena.format.metadata`). Writing: the game loop's chunk buffers
(:mod:`~trajarena.format.chunks`) under the writer's thread and files
(:mod:`~trajarena.format.writer`). Reading: a file's checked index of chunks and episodes
(:mod:`~trajarena.format.index`) under the reader of episodes and steps
(:mod:`~trajarena.format.reader`) and whole-column access with the decoded-column cache
(:mod:`~trajarena.format.columns`); verify and repair (:mod:`~trajarena.format.integrity`) on top.
This package imports only :mod:`trajarena.errors` and :mod:`trajarena.settings` from the rest of
the library.
"""

from trajarena.format.discover import find_files
from trajarena.format.index import index_file
from trajarena.format.integrity import RepairReport, VerifyReport, repair, verify
from trajarena.format.reader import TrajectoryReader, open_trajectories
from trajarena.format.writer import TrajectoryWriter

__all__ = ["RepairReport", "TrajectoryReader", "TrajectoryWriter", "VerifyReport", "find_files", "index_file",
           "open_trajectories", "repair", "verify"]
