"""Operating a running bridge: metrics, lag, health endpoints, progress line, logs."""
