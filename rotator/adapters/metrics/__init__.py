"""Prometheus: the metric families, per-key series and the /metrics listener."""
