"""`python -m bridge` is the same as the `cdc-bridge` command."""

from bridge.commands.cli import main

raise SystemExit(main())
