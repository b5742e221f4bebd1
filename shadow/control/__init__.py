"""Route by route cutover: flag stores, sticky canaries, fallback decisions, rollback.

`flags` (the stores: a local file by default, Redis for a fleet) and `watch` (a
cached, polled view of them) are read by the proxy and the worker; `bucket` and
`routing` decide per request who answers; `rollback` (in the worker) judges the
routes the candidate serves through the outcome SQL and writes the flags back;
`notify` tells the team. See docs/control.md.
"""
