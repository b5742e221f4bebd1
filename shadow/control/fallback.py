"""When the primary answers instead of the candidate (one attempt, never a retried write).

Safe methods (GET, HEAD, OPTIONS) fall back on any failure: a transport error, a
timeout, a 5xx, or an answer too large to serve. Other methods fall back only
when the candidate cannot have received the request (the connection was
refused, or TLS failed before it was sent); after that a write may have
happened, so the client gets the candidate's answer (its 5xx) or a 502.
"""

from __future__ import annotations

from shadow.config.loader import SAFE_METHODS
from shadow.model import BackendResponse

# How shadow.pipeline.sender.describe_failure names failures that happen before a
# request is on the wire.
NEVER_SENT = ("connection refused", "certificate verify failed", "TLS failed")


def failure(answer: BackendResponse) -> str | None:
    """Why the candidate's answer cannot go to the client as it is (None: it can)."""
    if answer.error is not None or answer.payload is None:
        return answer.error or "no answer"
    if answer.payload.status >= 500:
        return f"status {answer.payload.status}"
    if answer.payload.cut:
        return f"answer over the serving limit ({answer.payload.full_size} bytes)"
    return None


def never_sent(answer: BackendResponse) -> bool:
    """Whether the candidate failed before the request could reach it."""
    return answer.error is not None and answer.error.startswith(NEVER_SENT)


def may_fall_back(method: str, answer: BackendResponse) -> bool:
    """Whether the primary may answer a request the candidate failed (see the docstring)."""
    return method.upper() in SAFE_METHODS or never_sent(answer)
