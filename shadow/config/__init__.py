"""Configuration: the TOML file (rules, routes, accepted differences), endpoint
routing, and routes read from OpenAPI documents and Next.js trees.

Imports only `comparators` and `errors`; everything else may import it.
"""
