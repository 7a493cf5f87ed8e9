"""``python -m bridge`` is the same as the ``amq-bridge`` command."""

from bridge.cli import main

raise SystemExit(main())
