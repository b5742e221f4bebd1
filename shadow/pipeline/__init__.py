"""Everything after a source: send the copy (and to the secondary), pair it with the
primary's answer, compare (`evaluate`), redact, shape rows and hand them to the store.

Imports `comparators`, `config` and `store`; used by `live` and `sources.replay`.
"""
