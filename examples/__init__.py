"""Example backends for trying shadow: a Next.js-style legacy and its FastAPI rewrite."""
