"""``_engine.bulk_calls`` without an engine: transport choice and failures without an answer."""

from __future__ import annotations

import socket
import tempfile
import threading
from pathlib import Path

import docker
import pytest
import requests

from ansible_collections.janitor.docker.plugins.module_utils import _engine


def test_tcp_and_tls_clients_use_the_sdk():
    client = docker.APIClient(base_url="tcp://127.0.0.1:9", version="1.41")
    calls = _engine.bulk_calls(client, 4)
    assert type(calls).__name__ == "_SDKCalls" and calls.client is client
    calls.close()
    client.close()


def test_objects_that_are_not_sdk_clients_are_used_as_they_are():
    class Fake:
        def remove_image(self, image, force=False, noprune=False):
            return [{"Untagged": image, "force": force, "noprune": noprune}]

    calls = _engine.bulk_calls(Fake(), 2)
    assert calls.remove_image("a:1", force=True) == [{"Untagged": "a:1", "force": True, "noprune": False}]


def _serve(path, behaviour):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    accepted = []

    def loop():
        while True:
            try:
                conn, _address = server.accept()
            except OSError:
                return
            accepted.append(conn)
            if behaviour == "close":
                conn.recv(65536)
                conn.close()

    threading.Thread(target=loop, daemon=True).start()
    return server, accepted


@pytest.mark.parametrize(("behaviour", "expected", "words"), [
    ("close", requests.exceptions.ConnectionError, "closed"),
    ("silent", requests.exceptions.Timeout, "timed out"),
])
def test_failures_without_an_answer_are_the_sdk_exceptions(behaviour, expected, words):
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        path = Path(tmp) / "engine.sock"
        server, accepted = _serve(path, behaviour)
        client = docker.APIClient(base_url=f"unix://{path}", version="1.41", timeout=1)
        calls = _engine.bulk_calls(client, 2)
        try:
            assert type(calls).__name__ == "_UnixCalls"
            with pytest.raises(expected) as info:
                calls.remove_image("app:1")
            assert _engine.is_connection_error(info.value)
            message = _engine.lost_connection_error(client, info.value, "removing image app:1").message
            assert message.startswith("removing image app:1: ") and words in message.lower()
        finally:
            calls.close()
            client.close()
            server.close()
            for conn in accepted:
                conn.close()


def test_missing_socket_is_a_connection_error():
    client = docker.APIClient(base_url="unix:///nonexistent/janitor.sock", version="1.41", timeout=1)
    calls = _engine.bulk_calls(client, 1)
    with pytest.raises(requests.exceptions.ConnectionError):
        calls.inspect_image("app:1")
    calls.close()
    client.close()
