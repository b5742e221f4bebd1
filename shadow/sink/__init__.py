"""`shadow sink`: the target of a mirroring proxy (nginx, Envoy, Istio)."""
