"""Staff dashboard, rollups, hand-off inbox and Prometheus metrics."""
