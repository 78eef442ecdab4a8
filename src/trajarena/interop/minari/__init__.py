"""Minari in and out: :func:`export_minari` (trajectory files → a Minari dataset) and :func:`import_minari`.

Needs the ``minari`` extra (``pip install 'trajarena[minari]'``: Minari with its HDF5 and Arrow
storages, and Pillow, which Minari's storages import). No jax: datasets are written from whole
episodes with ``minari.create_dataset_from_buffers``, not with Minari's ``DataCollector``.
"""

from trajarena.interop.minari.exporter import env_spec_of, export_minari
from trajarena.interop.minari.importer import import_minari

__all__ = ["env_spec_of", "export_minari", "import_minari"]
