"""The `shadow` command line: the only package that knows every other one.

Turns `ShadowError` into one line and its exit code (see `shadow.errors`).
"""
