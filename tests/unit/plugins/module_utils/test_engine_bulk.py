"""``_engine.bulk_calls`` without an engine: transport choice and failures without an answer."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path

import docker
import pytest
import requests

from ansible_collections.janitor.docker.plugins.module_utils import _engine, _errors


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


def _listen(path, handle):
    """A unix-socket server at ``path`` that hands each connection, with its number (0 first), to ``handle``."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)

    def loop():
        number = 0
        while True:
            try:
                conn, _address = server.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn, number), daemon=True).start()
            number += 1

    threading.Thread(target=loop, daemon=True).start()
    return server


def _serve(path, behaviour):
    accepted = []

    def handle(conn, _number):
        accepted.append(conn)
        if behaviour == "close":
            conn.recv(65536)
            conn.close()

    return _listen(path, handle), accepted


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


# -- pipelined inspects: the HTTP answer reader, and what happens when the connection breaks --------------------------
def _answer(raw):
    import io

    return _engine._read_answer(io.BufferedReader(io.BytesIO(raw)))


def test_answer_with_a_length():
    raw = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{"a": 1}\nHTTP/1.1'
    assert _answer(raw) == (200, "OK", b'{"a": 1}\n', False)


def test_chunked_answer_with_extensions_and_trailers():
    raw = (b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;name=x\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
    assert _answer(raw) == (404, "Not Found", b"hello world", False)


def test_connection_close_and_answers_without_body():
    assert _answer(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n") == (204, "No Content", b"", True)
    assert _answer(b"HTTP/1.0 200 OK\r\n\r\nrest of the stream") == (200, "OK", b"rest of the stream", True)


@pytest.mark.parametrize("raw", [
    b"",
    b"SSH-2.0-OpenSSH\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Len",
], ids=["nothing", "not-http", "short-body", "short-chunk", "interim", "cut-headers"])
def test_broken_answers_are_protocol_errors(raw):
    with pytest.raises(ValueError):
        _answer(raw)


def _inspect_server(path, answer_count, log):
    """A unix-socket server whose first connection answers ``answer_count`` requests and hangs up; the others
    answer everything."""

    def serve(conn, number):
        limit = answer_count if number == 0 else None
        with conn, conn.makefile("rb") as reader:
            answered = 0
            while True:
                line = reader.readline()
                if not line:
                    return
                target = line.split()[1].decode()
                while reader.readline() not in (b"\r\n", b""):
                    pass
                if answered == limit:
                    return  # hang up with requests in flight
                log.append(target)
                name = target.split("/images/", 1)[1].rsplit("/json", 1)[0]
                if name.startswith("gone"):
                    body = b'{"message": "No such image: ' + name.encode() + b'"}'
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                else:
                    body = b'{"Id": "%s", "RootFS": {"Layers": ["sha256:%s"]}}' % (name.encode(), name.encode())
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
                                 % (len(body), body))
                answered += 1

    return _listen(path, serve)


@pytest.mark.parametrize("answer_count", [1000, 50, 0])
def test_pipelined_inspects_survive_a_broken_connection(answer_count):
    """Whatever the pipelined connection did not answer is asked again one by one; order and errors are kept."""
    names = [f"gone{n}" if n % 7 == 3 else f"img{n}" for n in range(150)]
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        path = Path(tmp) / "engine.sock"
        log = []
        server = _inspect_server(path, answer_count, log)
        client = docker.APIClient(base_url=f"unix://{path}", version="1.41", timeout=5)
        calls = _engine.bulk_calls(client, 2)
        try:
            answers = calls.inspect_images(names)
        finally:
            calls.close()
            client.close()
            server.close()
    assert [name for name, _answer in answers] == names
    for name, answer in answers:
        if name.startswith("gone"):
            assert isinstance(answer, docker.errors.ImageNotFound) and answer.response.status_code == 404
            assert f"No such image: {name}" in str(answer)
        else:
            assert answer == {"Id": name, "RootFS": {"Layers": [f"sha256:{name}"]}}
    # every image was asked at least once, and none more than twice (pipelined, then once more)
    asked = [target.split("/images/", 1)[1].rsplit("/json", 1)[0] for target in log]
    assert set(asked) == set(names) and max(asked.count(name) for name in names) <= 2


def test_pipelined_inspects_stop_when_asked():
    stop = threading.Event()
    stop.set()
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        path = Path(tmp) / "engine.sock"
        log = []
        server = _inspect_server(path, 1000, log)
        client = docker.APIClient(base_url=f"unix://{path}", version="1.41", timeout=5)
        calls = _engine.bulk_calls(client, 2)
        try:
            assert calls.inspect_images([f"img{n}" for n in range(100)], stop=stop) == []
            assert _engine._SDKCalls(client, 2).inspect_images(["img1"], stop=stop) == []
        finally:
            calls.close()
            client.close()
            server.close()
    assert log == []


def test_layer_reader_leaves_out_vanished_images():
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        path = Path(tmp) / "engine.sock"
        server = _inspect_server(path, 1000, [])
        client = docker.APIClient(base_url=f"unix://{path}", version="1.41", timeout=5)
        try:
            found = _engine.LayerReader(client, ["img1", "gone2", "img3"], 2).start().layers()
        finally:
            client.close()
            server.close()
    assert found == {"img1": ("sha256:img1",), "img3": ("sha256:img3",)}


def test_layer_reader_reports_a_lost_engine_as_our_error():
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        path = Path(tmp) / "engine.sock"
        server, accepted = _serve(path, "close")
        client = docker.APIClient(base_url=f"unix://{path}", version="1.41", timeout=2)
        reader = _engine.LayerReader(client, ["img1", "img2"], 2).start()
        try:
            with pytest.raises(_errors.EngineUnreachableError) as info:
                reader.layers()
        finally:
            reader.cancel()
            client.close()
            server.close()
            for conn in accepted:
                conn.close()
    assert info.value.message.startswith("inspecting the images: ")


def test_an_idle_connection_the_daemon_closed_is_replaced_not_reused():
    """A kept-alive connection closed by the daemon while idle is noticed before reuse: no request is lost or sent
    twice."""
    requests_seen, connections = [], []

    def answer_once(conn, _number):
        connections.append(conn)
        with conn, conn.makefile("rb") as reader:
            requests_seen.append(reader.readline().split()[1].decode())
            while reader.readline() not in (b"\r\n", b""):
                pass
            body = b'{"Id": "x"}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        # closes without "Connection: close": the client only finds out by looking

    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        path = Path(tmp) / "engine.sock"
        server = _listen(path, answer_once)
        client = docker.APIClient(base_url=f"unix://{path}", version="1.41", timeout=5)
        calls = _engine.bulk_calls(client, 2)
        try:
            assert calls.inspect_image("first") == {"Id": "x"}
            deadline = time.monotonic() + 5
            while len(connections) < 1 or connections[0].fileno() != -1:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(0.05)
            assert calls.inspect_image("second") == {"Id": "x"}
        finally:
            calls.close()
            client.close()
            server.close()
    assert requests_seen == ["/v1.41/images/first/json", "/v1.41/images/second/json"] and len(connections) == 2
