"""`python -m edge ...` is the `face-edge` command."""

from edge.app.cli import main

raise SystemExit(main())
