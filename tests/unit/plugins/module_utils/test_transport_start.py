"""The start of a run on a unix socket: the API version from one ``GET /_ping`` (its ``API-Version`` header), never
``GET /version``; every way that first answer can go wrong ends in a clear message naming the host."""

from __future__ import annotations

import time

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _errors, _transport
from tests.harness.faults import SMALL_STORE, fake_engine


@pytest.fixture
def fake():
    with fake_engine() as daemon:
        yield daemon


def _connect(fake, **params):
    return _transport.connect(dict({"docker_host": fake.url, "timeout": 5}, **params))


def _refused(fake, kind=_errors.JanitorError, **params):
    with pytest.raises(kind) as info:
        _connect(fake, **params).close()
    message = info.value.message
    assert fake.url in message and "Traceback" not in message, message
    return info.value


@pytest.mark.parametrize("api_version", ["1.41", "1.47", "1.51"])
def test_auto_takes_the_api_version_from_one_ping(fake, api_version):
    fake.API_VERSION = api_version
    engine = _connect(fake, api_version="auto")
    try:
        assert engine.api_version == api_version
        assert fake.log == [("GET", "/_ping", 200)]  # no GET /version
        assert len(engine.images(all=True)) == 3
    finally:
        engine.close()
    assert fake.log[-1][1].startswith(f"/v{api_version}/images/json?all=1")


def test_a_run_starts_with_a_ping_and_never_asks_the_version(fake):
    from tests.harness.ansible_runner import run_module
    result = run_module("image_remove", {"images": ["app1:1"], "docker_host": fake.url}, check_mode=True)
    assert not result.get("failed"), result
    assert fake.log[0] == ("GET", "/_ping", 200)
    assert not [path for _method, path, _status in fake.log if path.split("?")[0].endswith("/version")], fake.log


def test_version_is_asked_only_when_called(fake):
    engine = _connect(fake)
    try:
        assert engine.version()["Version"] == "20.10.24"
    finally:
        engine.close()
    assert [path for _method, path, _status in fake.log] == ["/_ping", "/v1.41/version"]


def test_an_explicit_api_version_is_pinged_at_that_version(fake):
    fake.API_VERSION = "1.47"
    engine = _connect(fake, api_version="1.43")
    try:
        assert engine.api_version == "1.43"
        engine.containers(all=True)
    finally:
        engine.close()
    assert [path for _method, path, _status in fake.log] == ["/v1.43/_ping", "/v1.43/containers/json?all=1"]


def test_an_explicit_api_version_newer_than_the_daemon_is_refused(fake):
    error = _refused(fake, api_version="1.43")
    assert "too old for the requested api_version" in error.message and "Maximum supported API version is 1.41" \
        in error.message


@pytest.mark.parametrize("api_version", ["auto", "1.41"])
def test_a_daemon_older_than_the_oldest_supported_api(fake, api_version):
    fake.API_VERSION, fake.VERSION = "1.40", "19.03.15"
    error = _refused(fake, api_version=api_version)
    if api_version == "auto":
        # what is known from the ping: its API version and the Server header dockerd sends
        for fragment in ("speaks API 1.40", "Docker/19.03.15", "older than 1.41 (Docker 20.10)"):
            assert fragment in error.message, error.message
    else:
        assert "too old for the requested api_version" in error.message


def test_an_answer_without_api_version_is_not_a_docker_daemon(fake):
    fake.api_header = False
    error = _refused(fake)
    assert "not a Docker daemon" in error.message and "API-Version" in error.message


@pytest.mark.parametrize("status", [301, 404, 500])
def test_a_ping_answered_with_another_status_than_2xx_is_not_a_docker_daemon(fake, status):
    fake.fail["/_ping"] = (status, "page not found")
    error = _refused(fake)
    assert "not a Docker daemon" in error.message and f"status {status}" in error.message
    assert not isinstance(error, _errors.EngineAPIError)


def test_a_stalled_ping_times_out_within_about_the_timeout(fake):
    fake.stall = "/_ping"
    started = time.monotonic()
    error = _refused(fake, kind=_errors.EngineUnreachableError, timeout=1)
    assert "did not answer in time" in error.message
    assert time.monotonic() - started < 2.5
    # what was asked, the daemon and the timeout are named, and the error says it timed out
    assert error.timed_out and "(timeout=1 s)" in error.message and fake.url in error.message
    assert error.message.startswith("checking the daemon's API version (GET /_ping)")


@pytest.mark.parametrize("faults", [
    {"interim": ["102 Processing", "100 Continue"]},
    {"stray": b"\r\n"},
    {"close_after": 1},
    {"connection_header": "keep-alive, close"},
])
def test_faults_on_the_ping_leave_the_next_answers_right(fake, faults):
    for name, value in faults.items():
        setattr(fake, name, value)
    engine = _connect(fake)
    try:
        assert engine.api_version == "1.41"
        assert [image["Id"] for image in engine.images(all=True)] == list(SMALL_STORE)
    finally:
        engine.close()
    assert [path for _method, path, _status in fake.log] == ["/_ping", "/v1.41/images/json?all=1"]
