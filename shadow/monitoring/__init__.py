"""Live monitoring: Prometheus metrics of the proxy and its worker, health, status."""
