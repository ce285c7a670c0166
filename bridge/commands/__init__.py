"""The `cdc-bridge` command line: one module per command, and the config reference generator."""
