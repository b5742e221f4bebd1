"""The candidate backend (the FastAPI rewrite, with deliberate migration slips)."""
