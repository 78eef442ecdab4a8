"""``python -m trajarena.cli ...`` (and ``torchrun --nproc_per_node N -m trajarena.cli train-bc ...``): the ``trajarena`` command."""

from trajarena.cli import main

main()
