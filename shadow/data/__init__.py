"""Data-migration verification: compare a legacy table with its migrated copy.

`shadow data diff` (docs/data.md): `dburl` (which database), `side` with
`postgres` / `sqlite` (what each database answers, hashing pushed down as SQL),
`kinds` (what a value is compared as, its canonical text), `plan` (columns, renames,
casts), `diff` (segments, checksums, bisection), `rows` (pairing in DuckDB, the
comparators on each differing row), `record` (the run in the store).
"""
