"""``_transport`` and ``_layer_reader`` without a real engine: the unix-socket transport and the layer reader on it,
against a fake daemon that logs what it did."""

from __future__ import annotations

import http.client
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _errors, _layer_reader, _transport
from tests.harness.faults import FakeEngine, SilentDaemon, collections_path


def iid(n):
    return "sha256:" + f"{n:x}" * (64 // len(f"{n:x}")) + "0" * (64 % len(f"{n:x}"))


IMAGES = {iid(n): [f"app{n}:1"] for n in range(1, 11)}


@pytest.fixture
def fake():
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        with FakeEngine(Path(tmp) / "engine.sock", IMAGES) as daemon:
            yield daemon


def _connected(fake, timeout=5):
    return _transport.connect({"docker_host": fake.url, "api_version": "auto", "timeout": timeout})


def test_tcp_and_tls_hosts_use_the_sdk():
    engine = _transport._SDKEngine("tcp://127.0.0.1:9", {"docker_host": "tcp://127.0.0.1:9"}, 5, True, "auto")
    calls = _transport.bulk_calls(engine, 4)
    assert type(calls).__name__ == "_SDKCalls" and calls.engine is engine
    engine.close()


def test_the_unix_socket_path_imports_no_sdk(fake):
    """Importing the Docker SDK costs about 0.3 s: a run on a unix socket must not pay it."""
    code = (f"import sys\nfrom ansible_collections.janitor.docker.plugins.module_utils import _transport\n"
            f"engine = _transport.connect({{'docker_host': {fake.url!r}, 'timeout': 5}})\n"
            f"calls = _transport.bulk_calls(engine, 2)\n"
            f"assert len(engine.images(all=True)) == 10 and calls.inspect_image('app1:1')['Id']\n"
            f"calls.close(); engine.close()\n"
            f"print(sorted(m for m in ('docker', 'requests', 'urllib3') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                          env={"PYTHONPATH": collections_path(), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_reads_and_bulk_calls_over_kept_alive_connections(fake):
    engine = _connected(fake)
    calls = _transport.bulk_calls(engine, 2)
    try:
        assert engine.api_version == "1.41" and engine.version()["Version"] == "20.10.24"
        assert len(engine.images(all=True)) == 10 and engine.containers(all=True) == []
        answers = calls.inspect_images([f"app{n}:1" for n in range(1, 11)] + ["gone:1"])
        assert [answer["Id"] for _name, answer in answers[:10]] == list(IMAGES)
        assert isinstance(answers[10][1], _errors.EngineAPIError) and answers[10][1].status == 404
        assert calls.remove_image("app1:1") == [{"Untagged": "app1:1"}, {"Deleted": iid(1)},
                                                {"Deleted": fake.layers[iid(1)]}]
    finally:
        calls.close()
        engine.close()
    assert fake.connections <= 1 + 2  # the engine's own connection and at most one per worker


def test_error_answers_are_engine_api_errors_with_the_engine_message(fake):
    fake.refuse["app2:1"] = (409, "conflict: unable to remove repository reference \"app2:1\" (must force)")
    engine = _connected(fake)
    calls = _transport.bulk_calls(engine, 1)
    try:
        with pytest.raises(_errors.EngineAPIError) as info:
            calls.remove_image("app2:1")
        assert info.value.status == 409 and "must force" in info.value.explanation
        assert info.value.message.startswith("removing image app2:1: conflict")
        with pytest.raises(_errors.EngineAPIError) as info:
            calls.remove_container("f" * 64)
        assert info.value.status == 404
    finally:
        calls.close()
        engine.close()


@pytest.mark.parametrize("interim", [["100 Continue"], ["102 Processing"], ["103 Early Hints", "100 Continue"]])
def test_interim_answers_are_skipped(fake, interim):
    fake.interim = interim
    engine = _connected(fake)
    calls = _transport.bulk_calls(engine, 1)
    try:
        assert calls.remove_image("app1:1")[0] == {"Untagged": "app1:1"}
        assert calls.inspect_image("app2:1")["Id"] == iid(2)  # the same connection reads the next answer right
    finally:
        calls.close()
        engine.close()
    assert fake.deletes() == ["/v1.41/images/app1:1?force=False&noprune=False"]


def test_connection_keep_alive_close_is_a_close(fake):
    fake.connection_header = "keep-alive, close"
    engine = _connected(fake)
    calls = _transport.bulk_calls(engine, 1)
    try:
        for n in range(1, 6):
            assert calls.inspect_image(f"app{n}:1")["Id"] == iid(n)
    finally:
        calls.close()
        engine.close()
    # never a second request on a connection the daemon said it closes
    assert fake.served == [1] * fake.connections and fake.connections == 6


@pytest.mark.parametrize("after", [1, 3])
def test_a_daemon_closing_each_connection_silently_after_n_answers(fake, after):
    """Every request is answered exactly once: re-sent only when the daemon provably never read it."""
    fake.close_after = after
    engine = _connected(fake)
    calls = _transport.bulk_calls(engine, 2)
    try:
        assert [answer["Id"] for _name, answer in calls.inspect_images([f"app{n}:1" for n in range(1, 11)])] \
            == list(IMAGES)
        for n in range(1, 11):
            calls.remove_image(f"app{n}:1")
    finally:
        calls.close()
        engine.close()
    assert sorted(fake.deleted) == sorted(IMAGES)
    assert len(fake.deletes()) == 10 == len(set(fake.deletes()))  # no DELETE carried out twice


@pytest.mark.parametrize("delay", [0, 0.005])
def test_stray_bytes_after_an_answer_never_shift_later_answers(fake, delay):
    """Bytes after a body (dockerd never sends them) are dropped with their connection or make the next answer
    unreadable; they never become the start of another request's answer."""
    fake.stray, fake.stray_delay = b"\r\n", delay
    engine = _connected(fake)
    calls = _transport.bulk_calls(engine, 1)
    try:
        for n in range(1, 11):
            time.sleep(0.01 if n % 2 else 0)
            try:
                assert calls.inspect_image(f"app{n}:1")["Id"] == iid(n)
            except _errors.AnswerLostError as exc:
                assert "unreadable" in exc.message
    finally:
        calls.close()
        engine.close()


def test_an_answer_that_is_not_json(fake):
    fake.not_json = "/images/app3:1/json"
    engine = _connected(fake)
    calls = _transport.bulk_calls(engine, 1)
    try:
        with pytest.raises(_errors.AnswerLostError) as info:
            calls.inspect_image("app3:1")
    finally:
        calls.close()
        engine.close()
    assert "not JSON" in info.value.message and fake.url in info.value.message and "502 Bad Gateway" in \
        info.value.message


def test_a_stall_ends_in_a_timeout_within_about_the_timeout(fake):
    fake.stall = "/images/app1:1"
    engine = _connected(fake, timeout=1)
    calls = _transport.bulk_calls(engine, 4)
    started = time.monotonic()
    try:
        with pytest.raises(_errors.EngineUnreachableError) as info:
            calls.remove_image("app1:1")
    finally:
        calls.close()
        engine.close()
    assert info.value.timed_out and "did not answer in time" in info.value.message
    assert time.monotonic() - started < 2.5
    assert fake.deletes() == []


def test_python39_socket_timeout_is_a_timeout_not_a_lost_connection(monkeypatch):
    """On Python 3.8/3.9 socket.timeout is an OSError that is not TimeoutError: it must still count as a timeout,
    never as a lost connection (which a read would retry, paying the timeout twice)."""
    assert _transport.socket.timeout in _transport._TIMEOUTS and TimeoutError in _transport._TIMEOUTS

    class Py39Timeout(OSError):
        pass

    monkeypatch.setattr(_transport, "_TIMEOUTS", (Py39Timeout, TimeoutError))
    sent = []

    class StalledConnection:
        sock = object()

        def request(self, method, url):
            sent.append(url)

        def getresponse(self):
            raise Py39Timeout("timed out")

        def close(self):
            pass

    class Connections:
        def take(self, fresh=False):
            return StalledConnection()

    engine = _transport._UnixEngine("unix:///x.sock", "/x.sock", 3)
    with pytest.raises(_errors.EngineUnreachableError) as info:
        engine.request("GET", "/images/a/json", "inspecting image a", Connections())
    assert info.value.timed_out and not isinstance(info.value, _errors.AnswerLostError)
    assert sent == ["/images/a/json"]  # not asked twice


def test_a_daemon_that_never_answers(tmp_path):
    with SilentDaemon(tmp_path / "silent.sock") as daemon:
        started = time.monotonic()
        with pytest.raises(_errors.EngineUnreachableError) as info:
            _transport.connect({"docker_host": daemon.url, "timeout": 1})
    assert "did not answer in time" in info.value.message and daemon.url in info.value.message
    assert time.monotonic() - started < 2.5


def test_layer_reader_leaves_out_vanished_images(fake):
    engine = _connected(fake)
    try:
        found = _layer_reader.LayerReader(engine, [iid(1), "sha256:" + "e" * 64, iid(3)], 2).start().layers()
    finally:
        engine.close()
    assert found == {iid(1): (fake.layers[iid(1)],), iid(3): (fake.layers[iid(3)],)}


def _inspected(fake):
    """The image names the fake daemon's inspects asked for, in order."""
    return [path.split("/images/", 1)[1].rsplit("/json", 1)[0] for method, path, _status in fake.log
            if method == "GET" and path.endswith("/json") and "/images/" in path and "/images/json" not in path]


def test_layer_reader_inspects_by_the_names_given_and_answers_by_image_id(fake):
    names = {iid(1): "app1:1", iid(2): "app2:1"}
    engine = _connected(fake)
    try:
        reader = _layer_reader.LayerReader(engine, [iid(1), iid(2), iid(3)], 2, names=names).start()
        found = reader.layers()
    finally:
        engine.close()
    assert found == {iid(n): (fake.layers[iid(n)],) for n in (1, 2, 3)}
    assert sorted(_inspected(fake)) == sorted(["app1:1", "app2:1", iid(3)])
    assert reader.read() == found


def test_layer_reader_asks_by_id_when_a_tag_moved_or_went_after_the_listing(fake):
    """Another client moved ``app1:1`` to image 5 and removed ``app2:1`` after the listing: the answers by tag are
    image 5's inspect and a 404, so both images are asked for again by ID, and their own layers are returned. The
    layer cache gets only answers that stand for their image (the moved tag's answer does not)."""
    fake.images[iid(5)].append("app1:1")
    fake.images[iid(1)].remove("app1:1")
    fake.images[iid(2)].remove("app2:1")
    engine = _connected(fake)
    try:
        reader = _layer_reader.LayerReader(engine, [iid(1), iid(2), iid(3)], 2,
                                           names={iid(1): "app1:1", iid(2): "app2:1"}).start()
        found = reader.layers()
    finally:
        engine.close()
    assert found == {iid(n): (fake.layers[iid(n)],) for n in (1, 2, 3)}
    assert sorted(_inspected(fake)) == sorted(["app1:1", "app2:1", iid(3), iid(1), iid(2)])
    assert reader.read() == {iid(3): (fake.layers[iid(3)],)}
    # asked again (the pressure options read the tag times, then the layers): the same answers, nothing re-sent
    assert reader.layers() == found and set(reader.inspections()) == set(found)
    assert len(_inspected(fake)) == 5


def test_layer_reader_leaves_out_an_image_gone_with_its_tag(fake):
    del fake.images[iid(2)]
    engine = _connected(fake)
    try:
        found = _layer_reader.LayerReader(engine, [iid(1), iid(2)], 2, names={iid(2): "app2:1"}).start().layers()
    finally:
        engine.close()
    assert found == {iid(1): (fake.layers[iid(1)],)}
    assert sorted(_inspected(fake)) == sorted([iid(1), "app2:1", iid(2)])


class _DeletingMeanwhile:
    """An engine on which another client is deleting ``deleting``: its inspect answers 500 ``layer does not exist``
    once, then ``then`` (404: gone; 500: still that error)."""

    def __init__(self, deleting, then):
        self.deleting = deleting
        self.then = then
        self.asked = []

    def inspect_image(self, image):
        self.asked.append(image)
        if image != self.deleting:
            return {"Id": image, "RootFS": {"Type": "layers", "Layers": ["sha256:" + image[7:][::-1]]}}
        if self.asked.count(image) == 1:
            raise _errors.EngineAPIError(f"inspecting image {image}: layer does not exist", status=500,
                                         explanation="layer does not exist")
        status, text = self.then
        raise _errors.EngineAPIError(f"inspecting image {image}: {text}", status=status, explanation=text)

    def close(self):
        pass


def test_layer_reader_leaves_out_an_image_deleted_meanwhile_that_first_answered_an_error():
    engine = _DeletingMeanwhile(iid(2), (404, f"No such image: {iid(2)}"))
    reader = _layer_reader.LayerReader(engine, [iid(1), iid(2), iid(3)], 2).start()
    found = reader.layers()
    assert found == {iid(1): ("sha256:" + iid(1)[7:][::-1],), iid(3): ("sha256:" + iid(3)[7:][::-1],)}
    assert engine.asked.count(iid(2)) == 2
    assert reader.layers() == found and engine.asked.count(iid(2)) == 2  # not asked a third time


def test_layer_reader_raises_an_error_that_stays_when_asked_again():
    engine = _DeletingMeanwhile(iid(2), (500, "layer does not exist"))
    with pytest.raises(_errors.EngineAPIError) as info:
        _layer_reader.LayerReader(engine, [iid(1), iid(2)], 2).start().layers()
    assert info.value.status == 500 and "layer does not exist" in info.value.message
    assert engine.asked.count(iid(2)) == 2


def test_layer_reader_reports_a_lost_engine_as_our_error(fake):
    engine = _connected(fake, timeout=1)
    fake.stall = "/images/"
    reader = _layer_reader.LayerReader(engine, list(IMAGES), 2).start()
    try:
        with pytest.raises(_errors.EngineUnreachableError) as info:
            reader.layers()
    finally:
        reader.cancel()
        engine.close()
    assert info.value.message.startswith("inspecting the images: inspecting image sha256:")
    assert "did not answer in time" in info.value.message


def test_inspects_stop_when_asked(fake):
    engine = _connected(fake)
    calls = _transport.bulk_calls(engine, 2)
    stop = threading.Event()
    stop.set()
    try:
        assert calls.inspect_images(list(IMAGES), stop=stop) == []
    finally:
        calls.close()
        engine.close()


def test_an_idle_connection_the_daemon_closed_is_replaced_not_reused(fake):
    fake.close_after = 1
    engine = _connected(fake)
    calls = _transport.bulk_calls(engine, 1)
    try:
        assert calls.inspect_image("app1:1")["Id"] == iid(1)
        time.sleep(0.1)  # the daemon has closed the idle connection by now
        assert calls.inspect_image("app2:1")["Id"] == iid(2)
    finally:
        calls.close()
        engine.close()
    gets = [path for method, path, _status in fake.log if method == "GET" and "/images/app" in path]
    assert gets == ["/v1.41/images/app1:1/json", "/v1.41/images/app2:1/json"]


def test_interim_answer_reader_is_http_client():
    assert issubclass(_transport._Response, http.client.HTTPResponse)


def test_the_real_run_reads_each_image_layers_before_deleting_it(fake):
    from tests.harness.ansible_runner import run_module
    result = run_module("image_remove", {"images": [f"app{n}:1" for n in range(1, 11)], "docker_host": fake.url,
                                         "parallel": 3})
    assert not result.get("failed"), result
    assert len(result["deleted"]) == 10 and result["msg"].startswith("untagged 10, deleted 10, kept 0, ")
    position = {}
    for index, (method, path, _status) in enumerate(fake.log):
        position.setdefault((method, path.rsplit("/images/", 1)[-1].split("?")[0]), index)
    deletes = [(index, path) for index, (method, path, _status) in enumerate(fake.log) if method == "DELETE"]
    for index, path in deletes:
        name = path.rsplit("/images/", 1)[-1].split("?")[0]
        image_id = next(i for i, tags in IMAGES.items() if name in tags)
        assert position[("GET", f"{image_id}/json")] < index, (name, fake.log)
