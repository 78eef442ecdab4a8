"""``duel``: the built-in two-player fighting game (pure numpy), its CPU AI and its Gymnasium env.

>>> from trajarena.envs.duel import DuelEnv, N_MOVES, N_ATTACKS
>>> DuelEnv().action_space, N_MOVES, N_ATTACKS
(MultiDiscrete([9 8]), 9, 8)
"""

from trajarena.envs.duel.env import (
    ATTACK_NAMES,
    INFO_FLAGS,
    MOVE_NAMES,
    N_ATTACKS,
    N_DISCRETE,
    N_MOVES,
    N_SINGLE_ATTACKS,
    DuelEnv,
    action_space_for,
    discrete_to_multi,
    multi_to_discrete,
)
from trajarena.envs.duel.game import MAX_HEALTH, N_STAGES, ROUND_TIME

__all__ = [
    "ATTACK_NAMES", "INFO_FLAGS", "MAX_HEALTH", "MOVE_NAMES", "N_ATTACKS", "N_DISCRETE", "N_MOVES",
    "N_SINGLE_ATTACKS", "N_STAGES", "ROUND_TIME", "DuelEnv", "action_space_for", "discrete_to_multi", "multi_to_discrete",
]
