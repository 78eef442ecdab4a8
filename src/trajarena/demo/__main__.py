"""``python -m trajarena.demo``: run the demo (see :mod:`trajarena.demo.pipeline`)."""

from trajarena.demo.pipeline import main

raise SystemExit(main())
