"""Benchmarks of cdc-bridge: `python -m bench` (see bench/README.md)."""
