"""trajarena: record game experience into safe trajectory files and learn from it."""

__version__ = "0.1.0"
