"""Connection option handling that needs no daemon."""

from __future__ import annotations

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _errors, _transport


def test_argument_spec_matches_community_docker_names():
    spec = _transport.engine_argument_spec(extra=dict(type="str"))
    assert set(spec) == {"docker_host", "tls_hostname", "api_version", "timeout", "ca_path", "client_cert",
                         "client_key", "tls", "validate_certs", "extra"}
    assert spec["docker_host"]["default"] == "unix:///var/run/docker.sock"
    assert spec["docker_host"]["fallback"][1] == ["DOCKER_HOST"]
    assert spec["validate_certs"]["fallback"][1] == ["DOCKER_TLS_VERIFY"]
    assert spec["timeout"]["default"] == 60
    # a copy: changing it must not change the shared spec
    spec["docker_host"]["default"] = "x"
    assert _transport.ENGINE_ARGUMENT_SPEC["docker_host"]["default"] == "unix:///var/run/docker.sock"


def test_no_tls_by_default():
    assert _transport._tls_config({}) is None


def test_verify_without_ca_is_refused(monkeypatch):
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    with pytest.raises(_errors.JanitorError, match="ca_path"):
        _transport._tls_config({"validate_certs": True})


def test_missing_cert_file_is_named(tmp_path):
    missing = tmp_path / "nope.pem"
    with pytest.raises(_errors.JanitorError, match=str(missing)):
        _transport._tls_config({"tls": True, "ca_path": str(missing)})


def test_cert_without_key_is_refused(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(_errors.JanitorError, match="client_key"):
        _transport._tls_config({"tls": True, "client_cert": str(cert)})


def test_cert_path_env_supplies_files(tmp_path, monkeypatch):
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    config = _transport._tls_config({"validate_certs": True})
    assert config.ca_cert == str(tmp_path / "ca.pem")
    assert config.cert == (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))


def test_tcp_becomes_https_with_tls():
    assert _transport._base_url({"docker_host": "tcp://h:2376", "tls": True}) == "https://h:2376"
    assert _transport._base_url({"docker_host": "tcp://h:2375"}) == "tcp://h:2375"


@pytest.mark.parametrize("text, expected", [("1.41", (1, 41)), ("1.9", (1, 9)), ("x", (0,))])
def test_version_tuple(text, expected):
    assert _transport.api_version_tuple(text) == expected


@pytest.mark.parametrize("message, fragment", [
    ("Permission denied", "permission denied"),
    ("Read timed out", "did not answer in time"),
    ("Connection refused", "cannot reach"),
    ("SSL: CERTIFICATE_VERIFY_FAILED", "TLS handshake"),
])
def test_connection_errors_are_explained(message, fragment):
    error = _transport._connection_error("unix:///x.sock", RuntimeError(message))
    assert fragment in error.message and "unix:///x.sock" in error.message
