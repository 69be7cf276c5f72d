"""TLS to a private daemon on 127.0.0.1 started with --tlsverify and certificates made here with openssl.

The TLS specifics do not depend on the image store, so one engine kind is enough: legacy when it is selected,
else the first selected kind.
"""

from __future__ import annotations

import json

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.janitor.docker.plugins.module_utils import _errors, _transport
from tests.harness.ansible_runner import run_module, run_playbook
from tests.harness.engines import EngineUnavailable, selected_kinds
from tests.harness.pki import make_pki, tls_engine

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_daemon(request, pki):
    kinds = selected_kinds(request.config.getoption("--engines"))
    kind = "legacy" if "legacy" in kinds else kinds[0]
    try:
        engine, port = tls_engine(kind, pki)
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    yield engine, port
    engine.stop()


def _verified(pki, host, **extra):
    params = {"docker_host": host, "validate_certs": True, "ca_path": str(pki.ca), "client_cert": str(pki.client_cert),
              "client_key": str(pki.client_key), "api_version": "auto", "timeout": 20}
    params.update(extra)
    return params


def _connect(params):
    client = _transport.connect(params)
    try:
        return client.version()["ApiVersion"], client.api_version
    finally:
        client.close()


def _refused(pki, params, *fragments):
    with pytest.raises(_errors.JanitorError) as info:
        _connect(params)
    message = info.value.message
    assert params["docker_host"] in message, message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    for secret in pki.secrets():
        assert secret not in message
    assert "Traceback" not in message
    return message


@pytest.mark.parametrize("api_version", ["auto", "1.41"])
def test_verified_connection_with_client_certificate(pki, tls_daemon, api_version):
    engine, port = tls_daemon
    engine_api, used = _connect(_verified(pki, f"tcp://localhost:{port}", api_version=api_version))
    assert engine_api == engine.version["ApiVersion"]
    assert used == (engine_api if api_version == "auto" else "1.41")


def test_address_not_in_certificate_is_refused(pki, tls_daemon):
    _engine_, port = tls_daemon
    message = _refused(pki, _verified(pki, f"tcp://127.0.0.1:{port}"), "TLS")
    assert "127.0.0.1" in message


@pytest.mark.parametrize("api_version", ["auto", "1.41"])
def test_tls_hostname_names_the_certificate(pki, tls_daemon, api_version):
    # the URL says 127.0.0.1, which the certificate does not name; tls_hostname says which name to expect
    engine, port = tls_daemon
    params = _verified(pki, f"tcp://127.0.0.1:{port}", tls_hostname="janitor-daemon.test", api_version=api_version)
    engine_api, _used = _connect(params)
    assert engine_api == engine.version["ApiVersion"]


def test_wrong_tls_hostname_is_refused(pki, tls_daemon):
    _engine_, port = tls_daemon
    _refused(pki, _verified(pki, f"tcp://localhost:{port}", tls_hostname="elsewhere.test"), "TLS")


def test_wrong_ca_is_refused(pki, tls_daemon):
    _engine_, port = tls_daemon
    message = _refused(pki, _verified(pki, f"tcp://localhost:{port}", ca_path=str(pki.other_ca)), "TLS")
    assert "certificate" in message.lower()


def test_missing_client_certificate_is_refused(pki, tls_daemon):
    _engine_, port = tls_daemon
    params = _verified(pki, f"tcp://localhost:{port}", client_cert=None, client_key=None)
    _refused(pki, params, "client certificate")


def test_client_certificate_of_another_ca_is_refused(pki, tls_daemon):
    _engine_, port = tls_daemon
    params = _verified(pki, f"tcp://localhost:{port}", client_cert=str(pki.other_client_cert),
                       client_key=str(pki.other_client_key))
    _refused(pki, params, "client certificate")


def test_key_that_does_not_match_the_certificate_is_refused(pki, tls_daemon):
    _engine_, port = tls_daemon
    params = _verified(pki, f"tcp://localhost:{port}", client_key=str(pki.other_client_key))
    message = _refused(pki, params, "client_key")
    assert str(pki.other_client_key) in message  # the path is named, the content never


def test_tls_without_verification_still_needs_the_client_certificate(pki, tls_daemon):
    engine, port = tls_daemon
    params = _verified(pki, f"tcp://127.0.0.1:{port}", validate_certs=False, tls=True, ca_path=None)
    assert _connect(params)[0] == engine.version["ApiVersion"]


def test_plain_http_to_the_tls_port_is_explained(pki, tls_daemon):
    _engine_, port = tls_daemon
    _refused(pki, {"docker_host": f"tcp://127.0.0.1:{port}", "timeout": 20}, "tls")


def test_docker_environment_variables(pki, tls_daemon, monkeypatch):
    """DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and DOCKER_TLS_HOSTNAME, through the modules' argument spec."""
    engine, port = tls_daemon
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(pki.cert_dir))
    monkeypatch.setenv("DOCKER_TLS_HOSTNAME", "janitor-daemon.test")
    result = ArgumentSpecValidator(_transport.engine_argument_spec()).validate({})
    assert not [str(e) for e in result.errors]
    params = result.validated_parameters
    assert params["validate_certs"] is True and params["tls_hostname"] == "janitor-daemon.test"
    assert _connect(params)[0] == engine.version["ApiVersion"]
    # without the hostname, the address is not in the certificate
    monkeypatch.delenv("DOCKER_TLS_HOSTNAME")
    params = ArgumentSpecValidator(_transport.engine_argument_spec()).validate({}).validated_parameters
    _refused(pki, params, "TLS")


def test_key_content_given_as_path_is_never_echoed(pki, tmp_path):
    """A private key pasted into client_key (a path option) is refused without repeating it."""
    params = {"docker_host": "tcp://127.0.0.1:1", "validate_certs": True, "ca_path": str(pki.ca),
              "client_cert": str(pki.client_cert), "client_key": pki.client_key.read_text(), "timeout": 5}
    with pytest.raises(_errors.JanitorError) as info:
        _transport.connect(params)
    message = info.value.message
    assert "client_key" in message
    for secret in pki.secrets():
        assert secret not in message
    assert "PRIVATE KEY" not in message


# -- the modules over TLS: no secret in results or logs --------------------------------------------------------------
def _tls_args(pki, port):
    return {"docker_host": f"tcp://127.0.0.1:{port}", "tls_hostname": "janitor-daemon.test", "validate_certs": True,
            "ca_path": str(pki.ca), "client_cert": str(pki.client_cert), "client_key": str(pki.client_key),
            "timeout": 20}


def _no_secret(pki, text):
    for secret in pki.secrets():
        assert secret not in text
    assert "PRIVATE KEY" not in text


def test_modules_over_tls_return_no_secret(pki, tls_daemon):
    engine, port = tls_daemon
    from tests.harness.images import ImageFactory  # noqa: PLC0415 - only this test builds images

    image = ImageFactory(engine).simple("tls-victim:1")
    info = run_module("storage_info", _tls_args(pki, port))
    assert not info.failed, info
    assert info["storage"]["source"] == "daemon"
    removed = run_module("image_remove", dict(_tls_args(pki, port), images=["tls-victim:1"]))
    assert not removed.failed, removed
    assert removed["deleted"] == [image]
    for result in (info, removed):
        text = json.dumps(result)
        _no_secret(pki, text)
        assert str(pki.client_key) in text  # the path is shown (in the invocation), never the content


def test_failures_over_tls_return_no_secret(pki, tls_daemon):
    _engine_, port = tls_daemon
    for override in ({"client_key": str(pki.other_client_key)}, {"ca_path": str(pki.other_ca)},
                     {"client_cert": None, "client_key": None}):
        result = run_module("image_remove", dict(_tls_args(pki, port), images=["x:1"], **override))
        assert result.failed, result
        _no_secret(pki, json.dumps(result))


def test_playbook_output_holds_no_secret(pki, tls_daemon, tmp_path):
    """The whole output of ansible-playbook -vvv (module arguments, the result of a TLS failure) holds no key
    content. (Successful runs over TLS are checked in-process above.)"""
    _engine_, port = tls_daemon
    playbook = tmp_path / "tls.yml"
    args = _tls_args(pki, port)
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "module_defaults": {"group/janitor.docker.docker": args},
        "tasks": [
            {"name": "wrong key", "ignore_errors": True,
             "janitor.docker.image_remove": {"images": ["tls-nothing:1"], "client_key": str(pki.other_client_key)}},
        ],
    }]))
    run = run_playbook(playbook, args=("-vvv",))
    assert run.rc == 0, run.stdout[-3000:]
    assert "is not the key of client_cert" in run.task("wrong key")["msg"]
    _no_secret(pki, run.stdout + run.proc.stderr)
    _no_secret(pki, json.dumps(run.results))


@pytest.mark.parametrize("module", ["image_remove", "storage_info"])
@pytest.mark.parametrize("option", ["client_key", "client_cert", "ca_path"])
def test_pasted_pem_is_refused_and_never_returned(pki, tls_daemon, module, option):
    """A private key (or certificate) pasted where its path belongs: refused, and neither the message nor the
    invocation in the result repeats it."""
    _engine_, port = tls_daemon
    args = dict(_tls_args(pki, port))
    args[option] = pki.client_key.read_text()
    result = run_module(module, args)
    assert result.failed and option in result["msg"], result
    _no_secret(pki, json.dumps(result))
