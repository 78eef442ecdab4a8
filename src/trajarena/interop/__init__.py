"""Ways in and out of trajarena: importers, exporters and bridges to other tools.

Each is a module built on the public decoded API (:class:`~trajarena.replay.dataset.TrajectoryDataset`,
the replay env, :class:`~trajarena.format.writer.TrajectoryWriter`), with its command in
:mod:`trajarena.cli.exchange`, and its optional dependencies behind an extra:

* :mod:`~trajarena.interop.parquet` — decoded steps as Parquet (DuckDB, polars, pandas, HF ``datasets``, Ray).
* :mod:`~trajarena.interop.minari` — Minari datasets out and in (``[minari]``).
* :mod:`~trajarena.interop.video` — an episode as MP4 or GIF (``[video]``).
* :mod:`~trajarena.interop.ray` — recording on a Ray cluster; decoded transitions as a Ray Data dataset (``[ray]``).
* :mod:`~trajarena.interop.summary` — the summary every conversion returns, progress callbacks.
"""
