"""The end-to-end demo behind ``make demo`` (record, clone, evaluate, report); run it as ``python -m trajarena.demo``."""
