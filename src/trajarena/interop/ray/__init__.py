"""trajarena on a Ray cluster: record episodes as Ray tasks, read recordings as a Ray Data dataset.

* :func:`record_ray` (:mod:`~trajarena.interop.ray.record`) — ``trajarena record --ray``: episodes
  played as Ray tasks on a cluster (or a local one), each task writing its own files, published
  to a shared folder or a ``pyarrow.fs`` URI (:mod:`~trajarena.interop.ray.destination`), with
  dead workers' episodes re-run and their leftovers removed.
* :func:`read_trajectories` (:mod:`~trajarena.interop.ray.data`) — decoded transitions (or windows)
  as a ``ray.data.Dataset``, split by file or episode like the loader's ranks.

Importing this package never imports Ray; the functions do, and a missing Ray raises
:class:`~trajarena.errors.MissingDependencyError` with ``pip install 'trajarena[ray]'``.
``docs/scaling.md`` has the guarantees, the measured costs and a two-node cluster script.
"""

from trajarena.interop.ray.data import ReadPlan, flatten, nest, plan_read_tasks, read_trajectories
from trajarena.interop.ray.destination import Destination
from trajarena.interop.ray.record import RayRecordSummary, record_ray

__all__ = ["Destination", "RayRecordSummary", "ReadPlan", "flatten", "nest", "plan_read_tasks",
           "read_trajectories", "record_ray"]
