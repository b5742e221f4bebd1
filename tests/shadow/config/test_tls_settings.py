"""shadow.config.tls: the one parser of TLS settings per backend."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from shadow.config.loader import parse_config
from shadow.config.tls import BackendTls, check, effective, parse_tls_section
from shadow.errors import ConfigError


def test_config_sections_and_command_line_merge() -> None:
    config = parse_config(
        {"tls": {"candidate": {"ca": "ca.pem", "http2": True}, "primary": {"keep_host": True}}}
    )
    tls = effective(config.tls, {"candidate": BackendTls(insecure=True)})
    assert tls["candidate"] == BackendTls(ca="ca.pem", insecure=True, http2=True)
    assert tls["primary"] == BackendTls(keep_host=True)
    assert tls["secondary"] == BackendTls()
    assert tls["candidate"].options() == {"ca": "ca.pem", "insecure": True, "http2": True}


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ({"tls": 3}, "'tls' must be a table"),
        ({"tls": {"backend": {}}}, "unknown [tls.backend]"),
        ({"tls": {"candidate": {"cafile": "x"}}}, "unknown key 'cafile'"),
        ({"tls": {"candidate": {"ca": 1}}}, "'ca' must be a file path"),
        ({"tls": {"candidate": {"insecure": "yes"}}}, "'insecure' must be true or false"),
    ],
)
def test_bad_sections_are_one_line(section: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_tls_section(section, "shadow.toml")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_files_are_checked_up_front(tmp_path: Path) -> None:
    ca = trustme.CA()
    good = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(good))
    check(BackendTls(ca=str(good)), "candidate")  # loads: no error
    with pytest.raises(ConfigError, match="no such file"):
        check(BackendTls(ca=str(tmp_path / "missing.pem")), "candidate")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot load"):
        check(BackendTls(ca=str(junk)), "candidate")
    with pytest.raises(ConfigError, match="--primary-key needs --primary-cert"):
        check(BackendTls(key=str(junk)), "primary")
    leaf = ca.issue_cert("client.test")
    cert, key = tmp_path / "c.pem", tmp_path / "c.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    check(BackendTls(cert=str(cert), key=str(key)), "candidate")
    with pytest.raises(ConfigError, match="cannot load"):
        check(BackendTls(cert=str(cert), key=str(junk)), "candidate")


def test_config_file_paths_are_found_beside_it(tmp_path: Path) -> None:
    from shadow.config.loader import load_config

    conf = tmp_path / "conf" / "shadow.toml"
    conf.parent.mkdir()
    conf.write_text('[tls.candidate]\nca = "certs/ca.pem"\ncert = "/abs/client.pem"\n')
    tls = load_config(str(conf)).tls["candidate"]
    assert tls.ca == str(tmp_path / "conf" / "certs" / "ca.pem")
    assert tls.cert == "/abs/client.pem"
