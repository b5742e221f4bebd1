"""The addon's TLS options: per backend (`shadow_<leg>_ca`, ...) and for clients.

The primary's settings become mitmproxy's own upstream options (it is mitmproxy
that talks to the primary); the secondary's and candidate's go to the worker
that sends the copies. The clients' side: `shadow_listen_cert`/`_key` is the
certificate the proxy shows to clients that connect with TLS.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from typing import Any

from shadow.config.tls import LEGS, BackendTls, check
from shadow.errors import ConfigError

logger = logging.getLogger(__name__)

_SWITCHES = ("insecure", "keep_host", "http2")
_FILES = ("ca", "cert", "key")


def add_options(loader: Any) -> None:
    """Register shadow_<leg>_{ca,cert,key,insecure,keep_host,http2} and the listen pair."""
    for leg in LEGS:
        loader.add_option(
            f"shadow_{leg}_ca", str, "", f"CA bundle (PEM) trusted for the {leg}'s certificate."
        )
        loader.add_option(
            f"shadow_{leg}_cert", str, "",
            f"Client certificate (PEM; may hold the key too) presented to the {leg} (mTLS).",
        )  # fmt: skip
        loader.add_option(f"shadow_{leg}_key", str, "", f"Key of shadow_{leg}_cert.")
        loader.add_option(
            f"shadow_{leg}_insecure", bool, False,
            f"Do not verify the {leg}'s certificate (logged, and recorded in the run).",
        )  # fmt: skip
        loader.add_option(
            f"shadow_{leg}_keep_host", bool, False,
            f"Send the client's Host header (and TLS name) to the {leg}, for name-routing "
            "ingresses.",
        )  # fmt: skip
        if leg != "primary":  # mitmproxy speaks to the primary as the client does
            loader.add_option(
                f"shadow_{leg}_http2", bool, False, f"Send the copies to the {leg} over HTTP/2."
            )
    loader.add_option(
        "shadow_listen_cert", str, "",
        "Certificate (PEM) shown to clients that connect with TLS (default: mitmproxy's own CA).",
    )  # fmt: skip
    loader.add_option("shadow_listen_key", str, "", "Key of shadow_listen_cert.")


def read(opts: Any) -> dict[str, BackendTls]:
    """The addon options' TLS settings per leg (only what was set), checked."""
    out = {}
    for leg in LEGS:
        values: dict[str, Any] = {}
        for name in _FILES:
            value = getattr(opts, f"shadow_{leg}_{name}")
            if value:
                values[name] = os.path.expanduser(value)
        for name in _SWITCHES:
            if getattr(opts, f"shadow_{leg}_{name}", False):
                values[name] = True
        out[leg] = BackendTls(**values)
    return out


def announce(tls: dict[str, BackendTls]) -> None:
    """Say loudly what is not verified: a skipped check must never go unnoticed."""
    for leg, settings in tls.items():
        check(settings, leg)
        if settings.insecure:
            logger.warning(
                f"shadow: TLS certificates of the {leg} are NOT verified (insecure_{leg})"
            )


TEMP_FILES: list[str] = []  # combined PEMs of this process, removed by `remove_temp_files`


def _pem_pair(cert: str, key: str, confdir: str, name: str) -> str:
    """A PEM holding certificate and key (mitmproxy wants both in one file).

    A new file of this process only (0600 from its creation: it holds a private key),
    removed when the proxy stops.
    """
    if not key:
        return cert
    os.makedirs(confdir, exist_ok=True)
    try:
        with open(cert, "rb") as c, open(key, "rb") as k:
            data = c.read(1 << 20) + b"\n" + k.read(1 << 20)
        fd, path = tempfile.mkstemp(prefix=f"shadow-{name}-", suffix=".pem", dir=confdir)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read or combine {cert} and {key}: {exc}") from None
    TEMP_FILES.append(path)
    return path


def remove_temp_files() -> None:
    """Remove the combined PEMs (copies of private keys) this process wrote."""
    while TEMP_FILES:
        with contextlib.suppress(OSError):
            os.remove(TEMP_FILES.pop())


def mitmproxy_updates(
    primary: BackendTls, listen_cert: str, listen_key: str, confdir: str
) -> dict[str, Any]:
    """mitmproxy option values for the primary's TLS and the clients' certificate."""
    updates: dict[str, Any] = {}
    if primary.ca:
        updates["ssl_verify_upstream_trusted_ca"] = primary.ca
    if primary.insecure:
        updates["ssl_insecure"] = True
    if primary.cert:
        updates["client_certs"] = _pem_pair(
            primary.cert, primary.key or "", confdir, "primary-client"
        )
    if primary.keep_host:
        updates["keep_host_header"] = True
    if listen_cert:
        if listen_key:
            check(BackendTls(cert=listen_cert, key=listen_key), "listen")
        updates["certs"] = ["*=" + _pem_pair(listen_cert, listen_key, confdir, "listen")]
    return updates
