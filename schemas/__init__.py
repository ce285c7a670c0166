"""Avro schemas shipped with cdc-bridge (installed as the `bridge.schemas` package)."""
