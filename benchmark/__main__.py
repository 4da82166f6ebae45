"""``python -m benchmark``: the ``benchmark`` command (what ``torchrun -m benchmark score ...`` runs)."""

from benchmark.cli import main

raise SystemExit(main())
