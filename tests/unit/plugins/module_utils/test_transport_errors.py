"""Connection errors and TLS settings of _transport that need no daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _errors, _transport

HOST = "tcp://127.0.0.1:2376"
TLS = {"validate_certs": True, "ca_path": "/etc/ca.pem", "client_cert": "/etc/cert.pem", "client_key": "/etc/key.pem"}


@pytest.mark.parametrize("text, fragments", [
    ("Client sent an HTTP request to an HTTPS server.", ["only speaks TLS", "tls=true"]),
    ("[X509: KEY_VALUES_MISMATCH] key values mismatch", ["/etc/key.pem", "/etc/cert.pem", "not the key"]),
    ("[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required", ["client certificate"]),
    ("[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate", ["client certificate"]),
    ("EOF occurred in violation of protocol (_ssl.c:2427)", ["TLS handshake", "/etc/cert.pem"]),
    ("certificate verify failed: Hostname mismatch, certificate is not valid for '127.0.0.1'", ["tls_hostname"]),
    ("certificate verify failed: unable to get local issuer certificate", ["not signed by the CA", "/etc/ca.pem"]),
])
def test_tls_failures_are_explained(text, fragments):
    message = _transport._connection_error(HOST, RuntimeError(text), TLS).message
    assert HOST in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("option", ["ca_path", "client_cert", "client_key"])
def test_pem_text_in_a_path_option_is_not_repeated(option, tmp_path):
    files = {}
    for name in ("ca_path", "client_cert", "client_key"):
        files[name] = str(tmp_path / f"{name}.pem")
        Path(files[name]).write_text("x")
    pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"
    params = dict(TLS, **files)
    params[option] = pem
    with pytest.raises(_errors.JanitorError) as info:
        _transport._tls_config(params)
    assert option in info.value.message
    assert "MIGHAgEA" not in info.value.message and "PRIVATE KEY" not in info.value.message


@pytest.mark.parametrize("api_version", ["1.30", "1.40", "one", "1.41.2", "v1.41"])
def test_bad_api_versions_are_refused_before_connecting(api_version):
    with pytest.raises(_errors.JanitorError, match="api_version"):
        _transport.connect({"docker_host": "unix:///nonexistent.sock", "api_version": api_version})


def test_environment_ca_bundle_does_not_replace_ca_path(tmp_path, monkeypatch):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    import docker

    client = docker.APIClient(base_url="https://127.0.0.1:1", version="1.41",
                              tls=_transport._tls_config({"validate_certs": True, "ca_path": str(ca)}))
    _transport._pin_tls_settings(client)
    settings = client.merge_environment_settings("https://127.0.0.1:1/version", {}, False, None, None)
    assert settings["verify"] == str(ca)
    unverified = docker.APIClient(base_url="https://127.0.0.1:1", version="1.41",
                                  tls=_transport._tls_config({"tls": True}))
    _transport._pin_tls_settings(unverified)
    assert unverified.merge_environment_settings("https://127.0.0.1:1/", {}, False, None, None)["verify"] is False


def _sdk_engine():
    return _transport._SDKEngine("tcp://127.0.0.1:9", {"docker_host": "tcp://127.0.0.1:9"}, 7, True, "auto")


def test_sdk_failures_become_our_errors():
    """tcp/TLS/ssh hosts go through the SDK: its exceptions come out as the same _errors types as on a unix socket."""
    import docker.errors
    import requests

    engine = _sdk_engine()
    response = requests.Response()
    response.status_code = 409
    cases = {
        "api": docker.errors.APIError("409 Conflict", response=response, explanation="image is in use"),
        "timeout": requests.exceptions.ReadTimeout("read timed out"),
        "refused": requests.exceptions.ConnectionError("NewConnectionError: Connection refused"),
        "lost": requests.exceptions.ConnectionError("RemoteDisconnected('Remote end closed connection')"),
        "not_json": ValueError("Expecting value: line 1 column 1 (char 0)"),
    }
    errors = {}
    for name, exc in cases.items():
        def fail(exc=exc):
            raise exc
        with pytest.raises(_errors.JanitorError) as info:
            engine.call(fail, "removing image a:1")
        errors[name] = info.value
    engine.close()
    assert isinstance(errors["api"], _errors.EngineAPIError) and errors["api"].status == 409
    assert errors["api"].message == "removing image a:1: image is in use"
    assert errors["timeout"].timed_out and "did not answer in time" in errors["timeout"].message
    refused = errors["refused"]
    assert isinstance(refused, _errors.EngineUnreachableError) and not isinstance(refused, _errors.AnswerLostError)
    assert "cannot reach" in errors["refused"].message
    assert isinstance(errors["lost"], _errors.AnswerLostError) and "lost the connection" in errors["lost"].message
    assert isinstance(errors["not_json"], _errors.AnswerLostError) and "not JSON" in errors["not_json"].message
    for error in errors.values():
        assert error.message.startswith("removing image a:1: ") and "Traceback" not in error.message


@pytest.mark.parametrize("answer", [b"{}", b"[]", b'{"ApiVersion": null, "Version": "x"}', b'"1.41"'])
def test_a_tcp_server_whose_version_answer_names_no_api_version_is_not_a_docker_daemon(answer):
    """The SDK path (tcp://) reads the API version from GET /version: an answer without ApiVersion is a clear error
    naming the host, never a traceback (it was a KeyError)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            body = answer if self.path.endswith("/version") else b"OK"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = f"tcp://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(_errors.JanitorError) as info:
            _transport.connect({"docker_host": host, "timeout": 5})
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert f"the server at {host} is not a Docker daemon" in info.value.message
    assert "names no API version" in info.value.message


def test_an_ssh_host_without_paramiko_names_the_missing_package(monkeypatch):
    """The Docker SDK reaches ssh:// hosts through paramiko; without it the SDK says "Install paramiko package": the
    error names the package, where to install it and the other ways to reach the daemon."""
    import docker
    import docker.errors

    def refuse(*args, **kwargs):
        raise docker.errors.DockerException("Install paramiko package to enable ssh:// support")

    monkeypatch.setattr(docker, "APIClient", refuse)
    with pytest.raises(_errors.SDKMissingError) as info:
        _transport.connect({"docker_host": "ssh://janitor@127.0.0.1:22", "timeout": 5})
    message = info.value.message
    assert "ssh://janitor@127.0.0.1:22 is an ssh:// host" in message and "install paramiko" in message
    assert "tcp://" in message and "unix socket" in message
