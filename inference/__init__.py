"""The generation engine, its backends, token streams and MoE telemetry."""
