"""``_snapshot.read`` on a unix socket: ``GET /info`` on a connection of its own beside the listings, and every
failure of either side raised as when the info was read first (same message, same type, no thread left)."""

from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _errors, _snapshot, _transport
from tests.harness.faults import SMALL_STORE, fake_engine
from tests.harness.faults import image_id as iid


IMAGES = SMALL_STORE


@pytest.fixture
def fake():
    with fake_engine(IMAGES) as daemon:
        yield daemon


def _read(fake, timeout=5):
    engine = _transport.connect({"docker_host": fake.url, "timeout": timeout})
    try:
        return _snapshot.read(engine)
    finally:
        engine.close()


def _no_thread_left():
    assert not [thread.name for thread in threading.enumerate() if thread.name == "janitor-info"]


def _paths(fake):
    return [path.split("?")[0] for _method, path, _status in fake.log]


def test_the_info_is_read_beside_the_listings(fake):
    fake.delay["/info"] = 0.3  # the daemon takes its time over the info: the listings do not wait for it
    engine = _transport.connect({"docker_host": fake.url, "timeout": 5})
    try:
        snapshot = _snapshot.read(engine)
        # the info on a connection of its own; afterwards one idle connection is kept, the other one closed
        assert fake.connections == 2 and len(engine._connections._idle) == 1  # pylint: disable=protected-access
    finally:
        engine.close()
    assert [image.id for image in snapshot.images] == list(IMAGES)
    assert snapshot.engine_version == "20.10.24" and snapshot.store == _snapshot.CLASSIC
    assert _paths(fake) == ["/_ping", "/v1.41/images/json", "/v1.41/containers/json", "/v1.41/info"]
    _no_thread_left()


def test_the_engine_keeps_at_most_one_idle_connection_after_two_threads():
    engine = _transport._UnixEngine("unix:///x.sock", "/x.sock", 5)  # pylint: disable=protected-access
    pool = engine._connections  # pylint: disable=protected-access
    closed = []

    class Connection:
        sock = object()

        def close(self):
            closed.append(self)

    first, second = Connection(), Connection()
    pool.give_back(first)
    pool.give_back(second)
    assert pool._idle == [first] and closed == [second]  # pylint: disable=protected-access


@pytest.mark.parametrize("api_version, sent", [("1.41", False), ("1.46", False), ("1.47", True), ("1.51", True)])
def test_the_listing_asks_for_manifests_on_every_store_from_api_1_47_on(fake, api_version, sent):
    fake.API_VERSION = api_version
    snapshot = _read(fake)
    listings = [path for _method, path, _status in fake.log if path.split("?")[0].endswith("/images/json")]
    assert [path.endswith("&manifests=1") for path in listings] == [sent], listings
    assert snapshot.store == _snapshot.CLASSIC and all(image.manifests == () for image in snapshot.images)


@pytest.mark.parametrize("delay", [0, 0.2])
def test_an_info_that_fails_while_the_listings_succeed(fake, delay):
    fake.fail["/info"] = (500, "info broke")
    fake.delay["/info"] = delay
    with pytest.raises(_errors.EngineAPIError) as info:
        _read(fake)
    assert info.value.message == "reading the daemon's info: info broke" and info.value.status == 500
    _no_thread_left()


def test_listings_that_fail_while_the_info_succeeds(fake):
    fake.fail["/containers/json"] = (500, "listing broke")
    fake.delay["/info"] = 0.2
    with pytest.raises(_errors.EngineAPIError) as info:
        _read(fake)
    assert info.value.message == "listing the containers: listing broke" and info.value.status == 500
    assert "/v1.41/info" in _paths(fake)  # waited for: no request left in flight
    _no_thread_left()


def test_when_both_fail_the_info_error_is_raised_as_when_it_was_read_first(fake):
    fake.fail["/info"] = (500, "info broke")
    fake.fail["/images/json"] = (500, "listing broke")
    with pytest.raises(_errors.EngineAPIError) as info:
        _read(fake)
    assert info.value.message == "reading the daemon's info: info broke"
    _no_thread_left()


def test_a_stalled_info_ends_in_a_timeout_within_about_the_timeout(fake):
    fake.stall = "/info"
    started = time.monotonic()
    with pytest.raises(_errors.EngineUnreachableError) as info:
        _read(fake, timeout=1)
    assert info.value.timed_out and "reading the daemon's info" in info.value.message
    assert fake.url in info.value.message and time.monotonic() - started < 2.5
    _no_thread_left()


def test_a_module_run_whose_info_fails(fake):
    from tests.harness.ansible_runner import run_module
    fake.fail["/info"] = (500, "info broke")
    result = run_module("image_remove", {"images": ["app1:1"], "docker_host": fake.url}, check_mode=True)
    assert result.failed and "reading the daemon's info: info broke" in result["msg"], result
    assert "exception" not in result and "Traceback" not in result["msg"]
    assert fake.deletes() == [] and result.get("changed", False) is False


def test_an_engine_without_concurrent_reads_reads_the_info_first():
    """The SDK engine (and a test's fake engine) reads one request after the other, the info first."""
    asked = []

    class Client:
        api_version = "1.51"

        def info(self):
            asked.append("info")
            return {"ServerVersion": "28.5.2", "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]}

        def images(self, all=False, manifests=False):  # pylint: disable=redefined-builtin
            asked.append(("images", all, manifests))
            return [{"Id": iid(1), "Manifests": [{"ID": iid(9), "Available": True}]}]

        def containers(self, all=False):  # pylint: disable=redefined-builtin
            asked.append(("containers", all))
            return []

    snapshot = _snapshot.read(Client())
    assert asked == ["info", ("images", True, True), ("containers", True)]
    assert snapshot.store == _snapshot.CONTAINERD and snapshot.images[0].manifests == (iid(9),)
    assert _transport._SDKEngine.concurrent_reads is False and _transport._UnixEngine.concurrent_reads is True


def test_an_odd_listing_entry_is_named_in_a_short_message():
    """An entry of another shape fails with the field and its value, the value cut to 120 characters."""
    entry = {"Id": "sha256:" + "1" * 64, "RepoTags": [f"app:{n}" for n in range(500)] + [7]}
    with pytest.raises(_snapshot.OddAnswer) as info:
        _snapshot.image_from_api(entry)
    message = str(info.value)
    assert message.startswith("an image with RepoTags=['app:0', 'app:1'")
    assert message.endswith("..., not a list of strings")
    assert len(message) < 200
    with pytest.raises(_snapshot.OddAnswer, match="a container without Id"):
        _snapshot.container_from_api({"Names": ["/web"]})
