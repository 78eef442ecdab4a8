"""Learning from recordings: scripted agents, rollouts, behavioural cloning and evaluation.

:mod:`~trajarena.learn.agents` (scripted agents, ``make_agent``), :mod:`~trajarena.learn.rollout`
(playing and recording episodes in worker processes), :mod:`~trajarena.learn.network` (observation
encoding and the network), :mod:`~trajarena.learn.policy` (the BC policy, its file and agent) and
:mod:`~trajarena.learn.bc` (training; the last three need torch to run a network),
:mod:`~trajarena.learn.selection` (which steps BC learns from: the loader's view, human interventions)
and :mod:`~trajarena.learn.evaluate` (win rates with confidence intervals).
"""
