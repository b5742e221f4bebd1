"""The legacy backend (Next.js API routes, transliterated to Starlette)."""
