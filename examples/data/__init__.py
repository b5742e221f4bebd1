"""A data-migration example: a legacy SQLite database and its migrated PostgreSQL copy.

`build.build_legacy` writes the legacy app's SQLite database from the seeded rows in
`examples/store.py`; `build.migrate` copies it into PostgreSQL the way a migration script
would, with three deliberate slips (`build.SLIPS`) for `shadow data diff` to find.
`postgres.TempPostgres` starts a throwaway PostgreSQL server on 127.0.0.1 to migrate into.
"""
