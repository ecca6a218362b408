"""Read-back: records rebuilt from OTLP JSON files or a Jaeger query service."""
