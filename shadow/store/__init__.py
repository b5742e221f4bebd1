"""The DuckDB store: the single batching writer, the versioned schema and its
migrations, the row declarations, and the one outcome definition every reader uses.

Imports nothing of shadow's but `errors` and `config` (for accepted entries).
"""
