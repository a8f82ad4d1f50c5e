"""`python -m coldbrew` runs the CLI."""

from coldbrew.cli import main

raise SystemExit(main())
