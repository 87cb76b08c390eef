"""Local web status page and Prometheus metrics."""
