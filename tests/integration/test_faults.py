"""Faults around the daemon: down before the run, stopped or silent during it, a socket we may not use, API
versions on either side too old or too new. Every one must end in a clear message naming the daemon, never a
traceback, and a run cut short must report what it had already done.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _errors, _transport
from tests.harness.ansible_runner import run_module
from tests.harness.engines import Engine, engine_spec
from tests.harness.faults import FakeDaemon, SilentDaemon, StallingProxy, run_module_process
from tests.harness.images import ImageFactory, ImageSpec

pytestmark = pytest.mark.engine

NOBODY = "65534"


def _refused(params, *fragments, kind=_errors.JanitorError, names_host=True):
    with pytest.raises(kind) as info:
        _transport.connect(params).close()
    message = info.value.message
    assert params["docker_host"] in message or not names_host, message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    return message


@pytest.fixture
def private_engine(engine):
    """A fresh private engine of the same kind as ``engine``, which the test may kill."""
    extra = Engine(engine_spec(engine.kind))
    extra.start()
    yield extra
    extra.stop()


# -- before the run -----------------------------------------------------------------------------------------------
def test_daemon_killed_before_the_run(private_engine):
    url = private_engine.url
    private_engine.kill()
    assert Path(url[len("unix://"):]).exists(), "a killed dockerd leaves its socket behind"
    message = _refused({"docker_host": url, "timeout": 5}, "cannot reach", kind=_errors.EngineUnreachableError)
    assert "refused" in message.lower()


def test_no_daemon_at_all():
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        _refused({"docker_host": f"unix://{tmp}/docker.sock", "timeout": 5}, "cannot reach",
                 kind=_errors.EngineUnreachableError)


def test_tcp_port_without_daemon():
    _refused({"docker_host": "tcp://127.0.0.1:1", "timeout": 5}, "cannot reach", kind=_errors.EngineUnreachableError)


# -- API versions -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("api_version", ["1.30", "1.9", "v1.41", "latest", "1.41.0"])
def test_requested_api_version_refused_before_connecting(api_version):
    # an option error: refused before any request, so a daemon that is not even there does not matter
    _refused({"docker_host": "unix:///nonexistent/docker.sock", "api_version": api_version, "timeout": 30},
             "api_version", api_version, names_host=False)


def test_requested_api_version_newer_than_the_daemon(engine):
    _refused({"docker_host": engine.url, "api_version": "1.99", "timeout": 30}, "too old for the requested")


def test_daemon_speaking_an_old_api():
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        with FakeDaemon(Path(tmp) / "old.sock", api_version="1.40", version="19.03.15") as daemon:
            message = _refused({"docker_host": daemon.url, "timeout": 5}, "API 1.40", "19.03.15", "1.41")
            assert "Traceback" not in message


# -- timeouts -----------------------------------------------------------------------------------------------------
def test_daemon_that_never_answers():
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        with SilentDaemon(Path(tmp) / "silent.sock") as daemon:
            _refused({"docker_host": daemon.url, "timeout": 1}, "did not answer in time",
                     kind=_errors.EngineUnreachableError)


def test_daemon_that_stops_answering_after_connecting(engine):
    """The connection succeeds, then the daemon goes silent: the next request times out with a clear error."""
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        with StallingProxy(Path(tmp) / "proxy.sock", engine.sock) as proxy:
            client = _transport.connect({"docker_host": proxy.url, "timeout": 1})
            try:
                proxy.stall()
                started = time.monotonic()
                with pytest.raises(_errors.EngineUnreachableError) as info:
                    client.images(all=True)
                assert info.value.timed_out and "did not answer in time" in info.value.message
                assert proxy.url in info.value.message and time.monotonic() - started < 2.5
            finally:
                client.close()


# -- during the run -----------------------------------------------------------------------------------------------
def _fail_after_first_removal(monkeypatch, fault):
    """Call ``fault()`` right after the first image removal the engine confirmed; returns the confirmed calls.

    Hooks both ways a removal can be sent: the unix-socket connections of ``_transport.bulk_calls`` and the SDK.
    """
    done = []

    def hook(original):
        def remove_image(self, *args, **kwargs):
            answer = original(self, *args, **kwargs)
            done.append(args[0] if args else kwargs.get("image"))
            if len(done) == 1:
                fault()
            return answer
        return remove_image

    monkeypatch.setattr(_transport._SDKCalls, "remove_image", hook(_transport._SDKCalls.remove_image))
    monkeypatch.setattr(_transport._UnixCalls, "remove_image", hook(_transport._UnixCalls.remove_image))
    return done


def _three_images(engine):
    factory = ImageFactory(engine)
    return factory.load([ImageSpec([f"fault-{n}:1"], f"fault-{n}") for n in range(3)])


def _check_partial_result(result, first_id, ids, url):
    assert result.failed, result
    message = result["msg"]
    assert "Traceback" not in message
    assert url in message, message
    assert "before the error" in message, message
    # what was done is returned: exactly the first removal, nothing else claimed
    assert result["deleted"] == [first_id], result
    assert result["untagged"] == [f"fault-{ids.index(first_id)}:1"], result


def test_daemon_stopped_during_the_run(private_engine, monkeypatch):
    ids = _three_images(private_engine)
    done = _fail_after_first_removal(monkeypatch, private_engine.kill)

    result = run_module("image_remove", {"docker_host": private_engine.url, "images": ids, "parallel": 1,
                                         "timeout": 10})

    assert len(done) == 1
    _check_partial_result(result, done[0], ids, private_engine.url)
    assert "lost the connection" in result["msg"] or "cannot reach" in result["msg"], result["msg"]


def test_daemon_stops_answering_during_the_run(clean_engine, monkeypatch, tmp_path):
    ids = _three_images(clean_engine)
    with StallingProxy(tmp_path / "proxy.sock", clean_engine.sock) as proxy:
        done = _fail_after_first_removal(monkeypatch, proxy.stall)
        started = time.monotonic()
        result = run_module("image_remove", {"docker_host": proxy.url, "images": ids, "parallel": 1, "timeout": 1})
        elapsed = time.monotonic() - started
    assert len(done) == 1
    _check_partial_result(result, done[0], ids, proxy.url)
    assert "did not answer in time" in result["msg"] or "timed out" in result["msg"], result["msg"]
    assert elapsed < 30
    # the engine itself is fine: the two images we did not get to are still there
    assert set(clean_engine.state()["images"]) == set(ids) - {done[0]}


# -- the modules, as Ansible runs them -----------------------------------------------------------------------------
MODULE_CASES = {
    "image_remove": {"images": ["fault-nothing:1"]},
    "storage_info": {"daemon_config_path": "/nonexistent/daemon.json", "sysconfig_storage_path": "/nonexistent/x"},
}


@pytest.mark.parametrize("module", sorted(MODULE_CASES))
@pytest.mark.parametrize("fault", ["killed", "silent", "old_daemon", "old_api_version"])
def test_module_reports_connection_faults(engine, tmp_path, module, fault):
    """Each fault through each module: a failed result with a clear message naming the daemon (run in-process: an
    exception escaping the module would fail this test with its traceback)."""
    args = dict(MODULE_CASES[module], timeout=1)
    server = None
    dead = None
    if fault == "killed":
        dead = Engine(engine_spec(engine.kind)).start()
        url = dead.url
        dead.kill()
    elif fault == "silent":
        server = SilentDaemon(tmp_path / "silent.sock")
        url = server.url
    elif fault == "old_daemon":
        server = FakeDaemon(tmp_path / "old.sock", api_version="1.40")
        url = server.url
    else:
        url = engine.url
        args["api_version"] = "1.30"
    try:
        result = run_module(module, dict(args, docker_host=url))
    finally:
        if server is not None:
            server.close()
        if dead is not None:
            dead.stop()
    assert result.failed, result
    assert "Traceback" not in result["msg"]
    # no traceback for Ansible to announce ("An exception occurred during task execution...")
    assert "exception" not in result, result["exception"]
    expected = {"killed": "cannot reach", "silent": "did not answer in time", "old_daemon": "older than 1.41",
                "old_api_version": "api_version=1.30"}[fault]
    assert expected in result["msg"], result["msg"]
    if fault != "old_api_version":
        assert url in result["msg"], result["msg"]
    assert result.get("changed", False) is False


def test_module_as_unprivileged_user(engine, module="image_remove"):
    """The module run as Ansible runs it, in its own process, as a user who may not use the daemon's socket (root
    would bypass the permission check): a failed result that says so and what to do, nothing on stderr."""
    mode = engine.sock.parent.stat().st_mode & 0o7777
    engine.sock.parent.chmod(0o755)  # let the user reach the socket itself: its own mode (0660) must stop them
    try:
        assert engine.sock.stat().st_mode & 0o007 == 0
        result, proc = run_module_process(module, dict(MODULE_CASES[module], docker_host=engine.url), user=NOBODY)
    finally:
        engine.sock.parent.chmod(mode)
    assert result.get("failed") is True, (result, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "permission denied" in result["msg"] and engine.url in result["msg"] and "become" in result["msg"]
