"""Environments: :func:`~trajarena.envs.make.make` and its registry, and the built-in ``duel`` game."""

from trajarena.envs.make import make, raw_env, register, registered_ids

__all__ = ["make", "raw_env", "register", "registered_ids"]
