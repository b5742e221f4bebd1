"""The live source: the mitmproxy addon, the in-process proxy that runs it, and the
worker process that feeds the pipeline from the addon's queue.

Only this package imports mitmproxy's hooks; it imports `pipeline`, `config`
and `store`, and nothing imports it but the CLI.
"""
