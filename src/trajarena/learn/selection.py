"""Which recorded steps behavioural cloning learns from, and how much each counts.

Two choices sit between the files and the training loop of :mod:`trajarena.learn.bc`, kept here so
any training pipeline can apply them where it draws its batches:

* the loader's **view** of the data (:func:`loader_view`): ``perspective`` (a two-player file's
  sides) and ``mirror`` (the player on the P2 side seen as P1 sees the game), so one policy learns
  from both sides of a fighting game;
* **interventions**: steps where a human took over from the agent in ``trajarena play`` carry
  ``info["is_intervention"]``. They can be the only training data (:func:`select_steps` with
  ``"only"``: DAgger-style corrections) or weigh more in the loss (:func:`step_weights`).

>>> import numpy as np
>>> took_over = np.array([False, True, True, False])
>>> select_steps(took_over, np.arange(4), "only").tolist()
[1, 2]
>>> step_weights(took_over, 4.0).tolist(), step_weights(took_over, 1.0)
([1.0, 4.0, 4.0, 1.0], None)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from trajarena.errors import SettingsError

__all__ = ["INTERVENTIONS", "LOADER_VIEW_OPTIONS", "loader_view", "select_steps", "step_weights"]

#: What ``interventions`` may be: every step, or only those a human took over.
INTERVENTIONS = ("all", "only")
#: The loader options BC passes on (the files, ranks and wrappers it sets itself).
LOADER_VIEW_OPTIONS = ("perspective", "mirror", "cache_dir", "verify_checksums")


def loader_view(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The loader options for BC's data, as plain JSON-able values (they go into the policy file).

    >>> loader_view({"perspective": "both", "mirror": True})
    {'perspective': 'both', 'mirror': True}

    Raises:
        SettingsError: an option BC does not pass on (the valid ones are listed).
    """
    bad = sorted(set(options or {}) - set(LOADER_VIEW_OPTIONS))
    if bad:
        raise SettingsError(f"loader_options takes {', '.join(LOADER_VIEW_OPTIONS)}; got {', '.join(map(repr, bad))}.")
    return {k: (str(v) if k == "cache_dir" else v) for k, v in (options or {}).items()}


def select_steps(intervention: np.ndarray | None, idx: np.ndarray, interventions: str) -> np.ndarray:
    """The steps of ``idx`` to learn from: all of them (``"all"``) or those a human took over (``"only"``).

    Args:
        intervention: per step of the data, True where a human had taken over (None: not recorded).
        idx: step indices (e.g. the training or the validation split).
        interventions: ``"all"`` or ``"only"``.

    Raises:
        SettingsError: an unknown choice, or ``"only"`` when no step of the data is an intervention.
    """
    if interventions not in INTERVENTIONS:
        raise SettingsError(f"interventions must be one of {INTERVENTIONS}, got {interventions!r}.")
    if interventions == "all":
        return idx
    if intervention is None or not intervention.any():
        raise SettingsError("interventions='only', but no recorded step has info['is_intervention'] set; record "
                            "take-overs with `trajarena play duel --p1 policy.pt --record DIR` and the take-over key.")
    return idx[intervention[idx]]


def step_weights(intervention: np.ndarray | None, intervention_weight: float) -> np.ndarray | None:
    """Per-step loss weights: ``intervention_weight`` where a human took over, 1 elsewhere (None: all 1).

    Raises:
        SettingsError: a weight that is not a number > 0.
    """
    if isinstance(intervention_weight, bool) or not isinstance(intervention_weight, int | float) \
            or not intervention_weight > 0:
        raise SettingsError(f"intervention_weight must be a number > 0, got {intervention_weight!r}.")
    if intervention_weight == 1 or intervention is None or not intervention.any():
        return None
    return np.where(intervention, intervention_weight, 1.0).astype(np.float32)
