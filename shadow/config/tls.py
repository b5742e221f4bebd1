"""TLS to each backend: which CA to trust, a client certificate, Host and SNI, HTTP/2.

One parser for the three legs (primary, secondary, candidate), whether the values
come from the command line, addon options or `shadow.toml`:

[tls.candidate]
ca = "internal-ca.pem"          # trust this CA bundle (instead of the system's)
cert = "client.pem"             # present this client certificate (mTLS) ...
key = "client.key"              # ... with this key (or put both in `cert`)
insecure = false                # true: do not verify the certificate (logged loudly)
keep_host = false               # send the client's Host header (and SNI) to this backend
http2 = false                   # send the copies as HTTP/2 (candidate, secondary)

The primary's settings become mitmproxy's upstream options (shadow.live.proxy);
the others build the copies' SSL context (shadow.pipeline.sender). `probe` checks
a backend at start and turns a failed handshake into one line naming the option
that fixes it.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlsplit

from shadow.errors import BackendUnreachable, ConfigError

LEGS = ("primary", "secondary", "candidate")
_KEYS = {"ca", "cert", "key", "insecure", "keep_host", "http2"}


@dataclass(frozen=True)
class BackendTls:
    """How to reach one backend. Hashable and picklable (it crosses into the worker)."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False
    keep_host: bool = False
    http2: bool = False

    def merged(self, **overrides: Any) -> BackendTls:
        """These settings with every override that is set (not None/False) on top."""
        changes = {k: v for k, v in overrides.items() if v not in (None, False, "")}
        return replace(self, **changes) if changes else self

    def resolved(self, base: str) -> BackendTls:
        """File paths with ~ expanded and relative ones taken from `base` (a config's dir)."""
        paths: dict[str, Any] = {}
        for name in ("ca", "cert", "key"):
            value = getattr(self, name)
            if value:
                paths[name] = os.path.join(base, os.path.expanduser(value))
        return replace(self, **paths) if paths else self

    def options(self) -> dict[str, Any]:
        """What a run records of it (paths and switches; never key material)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


def effective(
    configured: Mapping[str, BackendTls], overrides: Mapping[str, BackendTls]
) -> dict[str, BackendTls]:
    """Per leg: the config file's settings with the command line's (or addon's) on top."""
    out = {}
    for leg in LEGS:
        base = configured.get(leg, BackendTls())
        extra = overrides.get(leg)
        out[leg] = base.merged(**vars(extra)) if extra is not None else base
    return out


def parse_tls_section(data: Mapping[str, Any], source: str) -> dict[str, BackendTls]:
    """`[tls.<leg>]` tables of a config file; ConfigError (one line) names a bad entry."""
    raw = data.get("tls", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: 'tls' must be a table ([tls.candidate] ...)")
    out: dict[str, BackendTls] = {}
    for leg, table in raw.items():
        where = f"{source}: [tls.{leg}]"
        if leg not in LEGS:
            raise ConfigError(f"{source}: unknown [tls.{leg}] (one of {', '.join(LEGS)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        unknown = set(table) - _KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        for name in ("ca", "cert", "key"):
            if name in table and (not isinstance(table[name], str) or not table[name]):
                raise ConfigError(f"{where}: {name!r} must be a file path")
        for name in ("insecure", "keep_host", "http2"):
            if name in table and not isinstance(table[name], bool):
                raise ConfigError(f"{where}: {name!r} must be true or false")
        out[leg] = BackendTls(**table)
    return out


def check(tls: BackendTls, leg: str) -> None:
    """ConfigError (one line) unless the files load: a CA bundle, a certificate and key."""
    flag = f"--{leg}"
    if tls.key and not tls.cert:
        raise ConfigError(f"{flag}-key needs {flag}-cert too")
    for name in ("ca", "cert", "key"):
        path = getattr(tls, name)
        if path and not os.path.isfile(path):
            raise ConfigError(f"{flag}-{name} {path}: no such file")
    try:
        client_context(tls)
    except FileNotFoundError as exc:
        raise ConfigError(f"{leg} TLS: no such file: {exc.filename or exc}") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        what = "CA bundle" if tls.ca and not tls.cert else "certificate, key or CA bundle"
        detail = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{leg} TLS: cannot load the {what}: {detail}") from None


def client_context(tls: BackendTls) -> ssl.SSLContext:
    """The SSL context for connecting to a backend with these settings."""
    ctx = ssl.create_default_context(cafile=tls.ca) if tls.ca else ssl.create_default_context()
    if tls.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert:
        ctx.load_cert_chain(tls.cert, tls.key)
    ctx.set_alpn_protocols(["h2", "http/1.1"] if tls.http2 else ["http/1.1"])
    return ctx


_UNKNOWN_CA = {18, 19, 20, 21}  # self-signed (leaf, in chain), issuer unknown, leaf alone
_HOSTNAME = {62, 64}  # the name, or the IP address, is not one the certificate covers
_EXPIRED = {9, 10}


def describe_verify_error(exc: ssl.SSLCertVerificationError, leg: str) -> str:
    """What a failed verification means and which option fixes it."""
    message = exc.verify_message or str(exc)
    code = exc.verify_code
    if code in _UNKNOWN_CA:
        return (
            f"certificate verify failed: {message} (unknown CA): pass --{leg}-ca FILE with "
            f"the CA that signed it, or --insecure-{leg} to skip verification"
        )
    if code in _HOSTNAME:
        return (
            f"certificate verify failed: hostname mismatch ({message.rstrip('.')}): use a URL "
            f"with a name "
            f"the certificate covers, or --insecure-{leg}"
        )
    if code in _EXPIRED:
        return f"certificate verify failed: {message}: renew it, or --insecure-{leg}"
    return f"certificate verify failed: {message}: see --{leg}-ca and --insecure-{leg}"


def probe(url: str, leg: str, tls: BackendTls, timeout: float = 3.0) -> None:
    """BackendUnreachable (one line) unless `url` accepts a connection (and TLS, for https).

    For https it completes the handshake and one HEAD request, so that a CA that is
    not trusted, a name that does not match and a client certificate the backend
    demands (TLS 1.3 says so only after the handshake) are all found at start.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BackendUnreachable(f"{leg} {url} is not reachable: {reason}") from None
    with sock:
        if parts.scheme != "https":
            return
        context = client_context(tls)
        if tls.keep_host:
            # Traffic will carry the clients' Host as its TLS name, not this URL's host:
            # check the chain here, the name per request.
            context.check_hostname = False
        handshaken = False
        try:
            with context.wrap_socket(sock, server_hostname=host) as tls_sock:
                handshaken = True
                tls_sock.sendall(
                    f"HEAD / HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode()
                )
                answered = tls_sock.recv(1)
            if not answered and not tls.cert:
                # TLS 1.3 servers that demand a client certificate often just close.
                raise BackendUnreachable(
                    f"{leg} {url}: closed the TLS connection without an answer: the backend "
                    f"may ask for a client certificate: pass --{leg}-cert FILE "
                    f"(and --{leg}-key FILE)"
                )
        except ssl.SSLCertVerificationError as exc:
            raise BackendUnreachable(f"{leg} {url}: {describe_verify_error(exc, leg)}") from None
        except ssl.SSLError as exc:
            reason = exc.reason or str(exc)
            if "CERTIFICATE_REQUIRED" in reason.upper() or "HANDSHAKE_FAILURE" in reason.upper():
                raise BackendUnreachable(
                    f"{leg} {url}: TLS refused ({reason}): the backend may ask for a client "
                    f"certificate: pass --{leg}-cert FILE (and --{leg}-key FILE)"
                ) from None
            raise BackendUnreachable(f"{leg} {url}: TLS failed: {reason}") from None
        except OSError as exc:
            if handshaken and isinstance(exc, TimeoutError):
                return  # a slow answer after a verified handshake: TLS itself is fine
            reason = exc.strerror or type(exc).__name__
            raise BackendUnreachable(f"{leg} {url}: TLS failed: {reason}") from None
