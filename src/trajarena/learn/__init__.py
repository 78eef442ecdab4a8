"""Learning from recordings: scripted agents, rollouts, behavioural cloning and evaluation.

:mod:`~trajarena.learn.agents` (scripted agents, ``make_agent``), :mod:`~trajarena.learn.rollout`
(playing and recording episodes in worker processes), :mod:`~trajarena.learn.policy` and
:mod:`~trajarena.learn.bc` (the BC policy and its training; need torch) and
:mod:`~trajarena.learn.evaluate` (win rates with confidence intervals).
"""
