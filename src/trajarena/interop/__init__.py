"""Ways in and out of trajarena: importers, exporters and bridges to other tools (DIAMBRA, Minari, Parquet, Ray)."""
