"""The read side besides the HTML report: the CI gate (`check`), Parquet export,
rule suggestions from stored differences (`rules suggest`) and `accept`.

Every figure comes from `shadow.store.outcomes`; nothing here writes the store.
"""
