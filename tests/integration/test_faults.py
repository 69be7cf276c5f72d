"""Faults around the daemon: down before the run, stopped or silent during it, a socket we may not use, API
versions on either side too old or too new. Every one must end in a clear message naming the daemon, never a
traceback, and a run cut short must report what it had already done.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _engine
from tests.harness.engines import Engine, engine_spec
from tests.harness.faults import FakeDaemon, SilentDaemon, StallingProxy, run_python_as

pytestmark = pytest.mark.engine

NOBODY = "65534"

CONNECT_AS_USER = """
import json
from ansible_collections.janitor.docker.plugins.module_utils import _engine
try:
    _engine.connect({"docker_host": %r, "timeout": 10})
    print(json.dumps({"connected": True}))
except _engine.JanitorError as exc:
    print(json.dumps({"error": exc.message, "type": type(exc).__name__}))
"""


def _refused(params, *fragments, kind=_engine.JanitorError, names_host=True):
    with pytest.raises(kind) as info:
        _engine.connect(params).close()
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
    message = _refused({"docker_host": url, "timeout": 5}, "cannot reach", kind=_engine.EngineUnreachableError)
    assert "refused" in message.lower()


def test_no_daemon_at_all():
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        _refused({"docker_host": f"unix://{tmp}/docker.sock", "timeout": 5}, "cannot reach",
                 kind=_engine.EngineUnreachableError)


def test_tcp_port_without_daemon():
    _refused({"docker_host": "tcp://127.0.0.1:1", "timeout": 5}, "cannot reach", kind=_engine.EngineUnreachableError)


def test_socket_without_permission(engine):
    """As an unprivileged user (root would bypass the permission check), the engine's 0660 socket is refused."""
    root = engine.sock.parent
    mode = root.stat().st_mode & 0o7777
    root.chmod(0o755)  # let the user reach the socket itself: its own mode is what must stop them
    try:
        assert engine.sock.stat().st_mode & 0o007 == 0, "the daemon's socket must not be open to others"
        proc = run_python_as(NOBODY, CONNECT_AS_USER % engine.url)
    finally:
        root.chmod(mode)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["type"] == "EngineUnreachableError"
    assert "permission denied" in answer["error"] and engine.url in answer["error"]
    assert "become" in answer["error"]
    assert "Traceback" not in proc.stderr


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
                     kind=_engine.EngineUnreachableError)


def test_daemon_that_stops_answering_after_connecting(engine):
    """The connection succeeds, then the daemon goes silent: the next request times out with a clear error."""
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        with StallingProxy(Path(tmp) / "proxy.sock", engine.sock) as proxy:
            client = _engine.connect({"docker_host": proxy.url, "timeout": 1})
            try:
                proxy.stall()
                with pytest.raises(Exception) as info:
                    client.images(all=True)
                assert _engine.is_connection_error(info.value)
            finally:
                client.close()
