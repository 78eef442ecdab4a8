"""Run DIAMBRA Arena scripts on trajarena by changing only their imports.

=============================================================  ===============================================================
DIAMBRA                                                         trajarena
=============================================================  ===============================================================
``import diambra.arena`` (2.2)                                  ``from trajarena.interop.diambra.compat import diambra``
``from diambra.arena import EnvironmentSettings, ...``          ``from trajarena.interop.diambra.compat.v22 import ...``
``from diambra.arena.utils.diambra_data_loader import ...``     ``from trajarena.interop.diambra.compat.v22 import DiambraDataLoader``
``import diambra.arena`` (2.1, ``ImitationLearning``)           ``from trajarena.interop.diambra.compat import diambra21 as diambra``
=============================================================  ===============================================================

:mod:`~trajarena.interop.diambra.compat.v22` mirrors DIAMBRA 2.2 (``make``, its settings dataclasses,
``SpaceTypes``, ``Roles``, ``DiambraDataLoader``); :mod:`~trajarena.interop.diambra.compat.v21` mirrors
2.1's ``ImitationLearning`` (gym 0.21 API). They exist for old scripts; new code uses
``trajarena.make`` and ``trajarena.ImitationLearning``, which take DIAMBRA's settings names too.

>>> diambra.arena.SpaceTypes.MULTI_DISCRETE, diambra21.arena.ImitationLearning.__name__
(2, 'ImitationLearning')
"""

from types import SimpleNamespace

from trajarena.interop.diambra.compat import v21, v22

#: Stands for the ``diambra`` package of a DIAMBRA 2.2 script: ``diambra.arena.make(...)``.
diambra = SimpleNamespace(arena=v22)
#: Stands for the ``diambra`` package of a DIAMBRA 2.1 script: ``diambra.arena.ImitationLearning(...)``.
diambra21 = SimpleNamespace(arena=v21)

__all__ = ["diambra", "diambra21", "v21", "v22"]
