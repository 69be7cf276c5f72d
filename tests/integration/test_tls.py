"""TLS to a private daemon on 127.0.0.1 started with --tlsverify and certificates made here with openssl.

The TLS specifics do not depend on the image store, so one engine kind is enough for them (``tls_daemon``): legacy
when it is selected, else the first selected kind. Removals over TLS (the Docker SDK's DELETE, with and without
``platforms``) depend on the store: they run once per selected kind (``tls_store``), on ``tls_daemon`` for its own
kind and on a TLS engine started for each other kind, one at a time.
"""

from __future__ import annotations

import contextlib
import json
import re
from urllib.parse import parse_qs, unquote, urlsplit

import docker
import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.janitor.docker.plugins.module_utils import _errors, _transport
from ansible_collections.janitor.docker.plugins.module_utils._result import RESULT_KEYS
from tests.harness.ansible_runner import run_module, run_playbook
from tests.harness.engines import EngineUnavailable, selected_kinds
from tests.harness.images import ImageFactory, ImageSpec, available_manifests, pulled_index
from tests.harness.pki import make_pki, tls_engine

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@contextlib.contextmanager
def _running_tls_engine(kind, pki):
    """``(engine, port)`` of a TLS engine of ``kind``, stopped at the end; the test is skipped when none can start."""
    try:
        engine, port = tls_engine(kind, pki)
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield engine, port
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def tls_daemon(request, pki):
    kinds = selected_kinds(request.config.getoption("--engines"))
    with _running_tls_engine("legacy" if "legacy" in kinds else kinds[0], pki) as started:
        yield started


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


# -- removals over TLS: the Docker SDK's DELETE, compared with the unix socket's (http.client) and the docker CLI ---
def pytest_generate_tests(metafunc):
    if "store_kind" in metafunc.fixturenames:
        metafunc.parametrize("store_kind", selected_kinds(metafunc.config.getoption("--engines")), scope="module")


@pytest.fixture(scope="module")
def tls_store(pki, tls_daemon, store_kind):
    """``(engine, port)``: a TLS engine of ``store_kind`` (its unix socket stays, for the setup and the unix-socket
    runs). ``tls_daemon`` for its own kind; for another kind one started here and stopped before the next kind's."""
    if tls_daemon[0].kind == store_kind:
        yield tls_daemon
        return
    with _running_tls_engine(store_kind, pki) as started:
        yield started


@pytest.fixture
def deletes(monkeypatch):
    """The image DELETEs as sent: ``(transport, path, query)``, ``sdk`` for the SDK's requests over TLS (the URL the
    request went out with), ``unix`` for the unix socket's (the harness's own SDK client, over the unix socket too,
    is left out)."""
    sent = []
    sdk_delete = docker.APIClient._delete  # noqa: SLF001
    unix_request = _transport._UnixEngine.request  # noqa: SLF001

    def note(transport, url):
        parts = urlsplit(url)
        sent.append((transport, unquote(parts.path), parse_qs(parts.query, keep_blank_values=True)))

    def through_sdk(self, url, **kwargs):
        response = sdk_delete(self, url, **kwargs)
        if self.base_url.startswith("https://"):
            note("sdk", response.request.url)
        return response

    def through_unix(self, method, path, action, connections=None):
        if method == "DELETE":
            note("unix", self.prefix + path)
        return unix_request(self, method, path, action, connections)

    monkeypatch.setattr(docker.APIClient, "_delete", through_sdk)
    monkeypatch.setattr(_transport._UnixEngine, "request", through_unix)  # noqa: SLF001
    return sent


def _picture(engine, *image_ids):
    """What docker shows: the images with their names, each given image's platform manifests (available or not,
    the containerd store) and the rows of ``docker image ls --tree`` (API 1.47+; sorted, since images of the same
    age are listed in any order)."""
    state = engine.state()
    manifests = {i: available_manifests(engine, i) for i in image_ids if i in state["images"]}
    tree = None
    if _transport.api_version_tuple(engine.version["ApiVersion"]) >= (1, 47):
        text = re.sub(r"\x1b\[[0-9;]*m", "", engine.cli("image", "ls", "--tree").stdout)
        tree = sorted(" ".join(line.split()) for line in text.splitlines()
                      if line.strip() and not line.startswith("WARNING"))
    return state, manifests, tree


def _check_then_real(engine, args, deletes):
    """Check mode (nothing changes, no DELETE is sent), then the real run, which check mode predicts on every result
    key; returns the real result and the DELETEs it sent."""
    ids = list(engine.state()["images"])
    before = _picture(engine, *ids)
    deletes.clear()
    check = run_module("image_remove", args, check_mode=True)
    assert not check.failed, check
    assert _picture(engine, *ids) == before and deletes == [], "check mode changed the engine"
    real = run_module("image_remove", args)
    assert not real.failed, real
    for key in RESULT_KEYS:
        assert check.get(key) == real.get(key), (key, check.get(key), real.get(key))
    sent = list(deletes)
    deletes.clear()
    return real, sent


def _same_requests(tls_sent, unix_sent):
    """The SDK sent every DELETE the unix socket sent, with the same path and query."""
    assert {t for t, _p, _q in tls_sent} == {"sdk"} and {t for t, _p, _q in unix_sent} == {"unix"}
    assert sorted((p, sorted(q.items())) for _t, p, q in tls_sent) == sorted((p, sorted(q.items()))
                                                                             for _t, p, q in unix_sent)


def _same_result(tls_result, unix_result):
    for key in RESULT_KEYS:
        assert tls_result.get(key) == unix_result.get(key), (key, tls_result.get(key), unix_result.get(key))


def test_removal_by_reference_over_tls(pki, tls_store, store_kind, deletes):
    """Two of three images sharing a base layer, by name: one untagged only (another tag stays), one deleted. Over
    TLS, check mode predicts the real run; the result and what docker shows afterwards are the unix socket's on an
    identical copy and those of ``docker rmi`` on a third."""
    engine, port = tls_store
    specs = [ImageSpec(["tlsrm/a:1", "tlsrm/a:2"], "tls a", extra_layers=["tls base"]),
             ImageSpec(["tlsrm/b:1"], "tls b", extra_layers=["tls base"]),
             ImageSpec(["tlsrm/c:1"], "tls c", extra_layers=["tls base"])]
    names = ["tlsrm/a:1", "tlsrm/b:1"]

    def setup():
        engine.reset()
        return ImageFactory(engine).load(specs)

    ids = setup()
    code, cli_untagged, cli_deleted, stderr = engine.rmi(*names)
    assert code == 0, stderr
    cli = _picture(engine, *ids)

    assert setup() == ids
    unix, unix_sent = _check_then_real(engine, {"docker_host": engine.url, "images": names}, deletes)
    assert _picture(engine, *ids) == cli

    assert setup() == ids
    tls, tls_sent = _check_then_real(engine, dict(_tls_args(pki, port), images=names), deletes)
    assert _picture(engine, *ids) == cli
    _same_result(tls, unix)
    _same_requests(tls_sent, unix_sent)
    assert sorted(tls["untagged"]) == sorted(cli_untagged) == names, (tls, cli_untagged)
    assert tls["deleted"] == [ids[1]] and ids[1] in cli_deleted, (tls, cli_deleted)
    assert tls["changed"] is True and bool(tls["deleted_layers"]) == (store_kind != "containerd"), tls  # documented


def test_platforms_below_api_1_50_over_tls(pki, tls_store, store_kind, deletes):
    """The legacy engine (API 1.41): over TLS the same clear error as over the unix socket, nothing removed."""
    if store_kind != "legacy":
        pytest.skip("the legacy engine speaks API 1.41")
    engine, port = tls_store
    engine.reset()
    ImageFactory(engine).simple("plattls/old:1")
    before = engine.state()
    messages = []
    for args in ({"docker_host": engine.url}, _tls_args(pki, port)):
        result = run_module("image_remove", dict(args, images=["plattls/old:1"], platforms=["linux/amd64"]))
        assert result.failed and "1.50" in result["msg"] and "1.41" in result["msg"], result
        assert engine.state() == before and deletes == []
        messages.append(result["msg"].replace(args["docker_host"], "<host>"))
    assert messages[0] == messages[1]


def test_containerd_platform_over_tls(pki, tls_store, registry, store_kind, deletes):
    """The arm64 variant of the two-platform index, with ``platforms`` over TLS: the SDK's DELETE carries the
    platform as the unix socket's does, check mode predicts the real run, the result is the unix socket's, and
    docker shows what ``docker rmi -f --platform linux/arm64`` leaves (the image and its names stay, the arm64
    manifest is no longer available)."""
    if store_kind != "containerd":
        pytest.skip("the containerd image store")
    engine, port = tls_store
    setup = pulled_index(engine, registry, "plattls/containerd", "plattls/copy:1")
    ref, image_id = setup()
    before = _picture(engine, image_id)
    arm64 = next(digest for (arch, digest) in before[1][image_id] if arch == "arm64")
    proc = engine.cli("rmi", "-f", "--platform", "linux/arm64", ref)
    assert proc.stdout.split() == ["Deleted:", arm64]
    cli = _picture(engine, image_id)
    assert cli != before and cli[0] == before[0]

    args = {"images": [ref], "platforms": ["linux/arm64"], "force": True}
    assert setup() == (ref, image_id)
    unix, unix_sent = _check_then_real(engine, dict(args, docker_host=engine.url), deletes)
    assert _picture(engine, image_id) == cli

    assert setup() == (ref, image_id)
    tls_args = dict(_tls_args(pki, port), **args)
    result = run_module("image_remove", dict(tls_args, api_version="1.41"))
    assert result.failed and "1.50" in result["msg"] and "1.41" in result["msg"], result
    assert _picture(engine, image_id) == before and deletes == []
    tls, tls_sent = _check_then_real(engine, tls_args, deletes)
    assert _picture(engine, image_id) == cli
    _same_result(tls, unix)
    _same_requests(tls_sent, unix_sent)
    ((_sdk, path, query),) = tls_sent
    assert path == f"/v{engine.version['ApiVersion']}/images/{ref}"
    assert query == {"force": ["True"], "noprune": ["False"], "platforms": ['{"os":"linux","architecture":"arm64"}']}
    assert tls["deleted_platforms"] == [{"image": image_id, "platform": "linux/arm64", "manifest": arm64}]
    assert (tls["untagged"], tls["deleted"], tls["changed"]) == ([], [], True)
    # docker itself: the amd64 variant is still there, the arm64 one is not
    assert engine.cli("image", "inspect", "--platform", "linux/amd64", ref).returncode == 0
    assert engine.cli("image", "inspect", "--platform", "linux/arm64", ref, check=False).returncode != 0
    # nothing left to do, on either name
    again = run_module("image_remove", dict(tls_args, images=[ref, "plattls/copy:1"]))
    assert not again.failed and again["changed"] is False and again["deleted_platforms"] == [], again
    assert deletes == [] and _picture(engine, image_id) == cli


def test_graph_driver_platform_over_tls(pki, tls_store, registry, store_kind, deletes):
    """The graph-driver store of Docker 28.5: ``platforms`` names the image's own platform and the image is
    removed as without it; over TLS the SDK's DELETEs carry the platform as the unix socket's do, the result is the
    unix socket's, and docker shows what ``docker rmi --platform linux/amd64`` leaves. Another platform is refused
    before anything is sent."""
    if store_kind != "classic":
        pytest.skip("the graph-driver store of Docker 28.5")
    engine, port = tls_store
    setup = pulled_index(engine, registry, "plattls/classic", "plattls/copy:1")
    ref, image_id = setup()
    names = [ref, "plattls/copy:1"]
    code, cli_untagged, cli_deleted, stderr = engine.rmi("--platform", "linux/amd64", *names)
    assert code == 0 and image_id in cli_deleted, stderr
    cli = _picture(engine)

    args = {"images": names, "platforms": ["linux/amd64"]}
    assert setup() == (ref, image_id)
    unix, unix_sent = _check_then_real(engine, dict(args, docker_host=engine.url), deletes)
    assert _picture(engine) == cli

    assert setup() == (ref, image_id)
    tls_args = dict(_tls_args(pki, port), **args)
    before = _picture(engine, image_id)
    refused = run_module("image_remove", dict(tls_args, platforms=["linux/arm64"]))
    assert refused.failed and "linux/amd64" in refused["msg"] and "not linux/arm64" in refused["msg"], refused
    assert _picture(engine, image_id) == before and deletes == []
    tls, tls_sent = _check_then_real(engine, tls_args, deletes)
    assert _picture(engine) == cli
    _same_result(tls, unix)
    _same_requests(tls_sent, unix_sent)
    assert all(q["platforms"] == ['{"os":"linux","architecture":"amd64"}'] for _t, _p, q in tls_sent), tls_sent
    assert tls["deleted"] == [image_id] and tls["deleted_platforms"] == []
    assert sorted(tls["untagged"]) == sorted(cli_untagged)
