"""The ``layer_cache`` file (``_layer_cache``) and a run that uses it, against a fake daemon that logs its requests."""

from __future__ import annotations

import json
import os
import tempfile
from collections import namedtuple
from pathlib import Path

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _layer_cache, _layer_reader, _transport
from tests.harness.ansible_runner import run_module
from tests.harness.faults import FakeEngine

Image = namedtuple("Image", "id size manifests", defaults=((),))
NOW = 1_800_000_000.0


def iid(n):
    return "sha256:" + f"{n:064x}"


def diff(n):
    return "sha256:" + f"{n:064x}"[::-1]


def test_a_missing_file_is_a_cold_start(tmp_path):
    cache = _layer_cache.LayerCache.load(str(tmp_path / "none.json"))
    assert cache.entries == {} and cache.warning is None


@pytest.mark.parametrize("text, words", [
    ("{not json", ["cannot be read"]),
    (json.dumps({"version": 9, "images": {}}), ["not a janitor.docker layer cache of version 1"]),
    (json.dumps([1, 2]), ["not a janitor.docker layer cache of version 1"]),
])
def test_an_unreadable_file_is_a_warning_naming_it(tmp_path, text, words):
    path = tmp_path / "layers.json"
    path.write_text(text)
    cache = _layer_cache.LayerCache.load(str(path))
    assert cache.entries == {}
    for word in words + [str(path), "every image is inspected"]:
        assert word in cache.warning


def test_entries_that_are_not_well_formed_are_ignored(tmp_path):
    good = {"size": 10, "layers": [diff(1)], "seen": NOW}
    images = {
        iid(1): good,
        iid(2): dict(good, size=True),
        iid(3): dict(good, size=-1),
        iid(4): dict(good, layers=["sha256:short"]),
        iid(5): dict(good, layers=diff(1)),
        iid(6): dict(good, history=[1, "2"]),
        iid(7): dict(good, seen="yesterday"),
        "sha256:nothex": good,
        iid(8): dict(good, history=[0, 5]),
    }
    path = tmp_path / "layers.json"
    path.write_text(json.dumps({"version": 1, "images": images}))
    cache = _layer_cache.LayerCache.load(str(path))
    assert sorted(cache.entries) == [iid(1), iid(8)] and cache.warning is None
    assert cache.entries[iid(8)]["history"] == (0, 5)


def test_an_entry_is_used_only_while_the_listed_size_is_the_same():
    cache = _layer_cache.LayerCache("x", {iid(1): {"size": 10, "layers": (diff(1),), "seen": NOW, "history": (4, 6)},
                                          iid(2): {"size": 20, "layers": (diff(2),), "seen": NOW}})
    listed = [Image(iid(1), 10), Image(iid(2), 21), Image(iid(3), 30)]
    assert cache.layers(listed) == {iid(1): (diff(1),)}
    assert cache.histories(listed) == {iid(1): (4, 6)}


def test_save_keeps_what_the_run_knows_and_drops_what_no_run_listed_for_30_days(tmp_path):
    path = str(tmp_path / "sub" / "layers.json")
    old = NOW - _layer_cache.KEEP_UNSEEN - 1
    cache = _layer_cache.LayerCache(path, {
        iid(1): {"size": 10, "layers": (diff(1),), "seen": old, "history": (10,)},  # listed again: kept, seen now
        iid(2): {"size": 20, "layers": (diff(2),), "seen": old},  # not listed for 30 days: dropped
        iid(3): {"size": 30, "layers": (diff(3),), "seen": NOW - 86400},  # not listed (removed): kept
        iid(4): {"size": 40, "layers": (diff(4),), "seen": NOW - 86400},  # listed with another size: replaced
    })
    listed = [Image(iid(1), 10), Image(iid(4), 41), Image(iid(5), 50), Image(iid(6), 60)]
    layers = {iid(1): (diff(1),), iid(4): (diff(40),), iid(5): (diff(5),)}  # iid(6): not read (cancelled)
    assert cache.save(listed, layers, {iid(5): [0, 50], iid(4): [None]}, NOW) is None
    again = _layer_cache.LayerCache.load(path)
    assert again.warning is None
    assert again.entries == {
        iid(1): {"size": 10, "layers": (diff(1),), "seen": NOW, "history": (10,)},
        iid(3): {"size": 30, "layers": (diff(3),), "seen": NOW - 86400},
        iid(4): {"size": 41, "layers": (diff(40),), "seen": NOW},
        iid(5): {"size": 50, "layers": (diff(5),), "seen": NOW, "history": (0, 50)},
    }
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert os.listdir(tmp_path / "sub") == ["layers.json"]  # no temporary file left


def test_at_most_keep_unlisted_entries_of_images_the_run_did_not_list_are_kept(tmp_path):
    path = str(tmp_path / "layers.json")
    extra = _layer_cache.KEEP_UNLISTED + 50
    removed = {iid(1000 + n): {"size": 1, "layers": (diff(n),), "seen": NOW - 3600 - n} for n in range(extra)}
    listed = [Image(iid(1), 10)]
    cache = _layer_cache.LayerCache(path, dict(removed, **{iid(1): {"size": 10, "layers": (diff(1),), "seen": NOW}}))
    assert cache.save(listed, {iid(1): (diff(1),)}, {}, NOW) is None
    kept = set(_layer_cache.LayerCache.load(path).entries)
    # the listed image, and the KEEP_UNLISTED seen last (the smallest n: seen most recently)
    assert kept == {iid(1)} | {iid(1000 + n) for n in range(_layer_cache.KEEP_UNLISTED)}


def test_a_run_that_learns_nothing_new_writes_nothing(tmp_path):
    path = tmp_path / "layers.json"
    listed = [Image(iid(1), 10), Image(iid(2), 20)]
    layers = {iid(1): (diff(1),), iid(2): (diff(2),)}
    assert _layer_cache.LayerCache(str(path)).save(listed, layers, {}, NOW) is None
    cache = _layer_cache.LayerCache.load(str(path))
    path.write_text("untouched")  # a write would replace it
    assert cache.save(listed, layers, {}, NOW + 3600) is None
    assert path.read_text() == "untouched"
    # a new history, or a day later (seen moves on), is written
    assert cache.save(listed, layers, {iid(2): [20]}, NOW + 3600) is None
    assert _layer_cache.LayerCache.load(str(path)).entries[iid(2)]["history"] == (20,)
    path.write_text("untouched")
    assert cache.save(listed, layers, {}, NOW + _layer_cache.SEEN_REFRESH) is None
    entries = _layer_cache.LayerCache.load(str(path)).entries
    assert {entry["seen"] for entry in entries.values()} == {NOW + _layer_cache.SEEN_REFRESH}


def test_an_unreadable_file_is_written_afresh_even_when_nothing_is_new(tmp_path):
    path = tmp_path / "layers.json"
    path.write_text("{")
    cache = _layer_cache.LayerCache.load(str(path))
    assert cache.warning and cache.save([], {}, {}, NOW) is None
    assert json.loads(path.read_text()) == {"version": 1, "images": {}}


def test_a_failed_write_is_a_warning(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = _layer_cache.LayerCache(str(blocker / "layers.json"))
    warning = cache.save([Image(iid(1), 1)], {iid(1): (diff(1),)}, {}, NOW)
    assert str(blocker / "layers.json") in warning and "could not be written" in warning


class _Engine:
    """An engine that answers inspects and histories and records them."""

    def __init__(self):
        self.asked = []

    def inspect_image(self, image):
        self.asked.append(("inspect", image))
        return {"Id": image, "RootFS": {"Layers": [diff(int(image[7:], 16))]}}

    def history(self, image):
        self.asked.append(("history", image))
        return [{"Size": 7}, {"Size": 0}]

    def close(self):
        pass


def test_the_layer_reader_inspects_only_what_it_does_not_know():
    engine = _Engine()
    reader = _layer_reader.LayerReader(engine, [iid(1), iid(2), iid(3)], 2, known={iid(2): (diff(99),)},
                                       known_histories={iid(1): (5,)}).start()
    assert reader.layers() == {iid(1): (diff(1),), iid(2): (diff(99),), iid(3): (diff(3),)}
    assert reader.read() == {iid(1): (diff(1),), iid(3): (diff(3),)}
    assert reader.histories([iid(1), iid(3)]) == {iid(1): (5,), iid(3): [7, 0]}
    assert sorted(engine.asked) == [("history", iid(3)), ("inspect", iid(1)), ("inspect", iid(3))]
    assert reader.histories_read == {iid(3): [7, 0]}


def test_a_reader_that_knows_every_image_sends_nothing():
    engine = _Engine()
    reader = _layer_reader.LayerReader(engine, [iid(1)], 2, known={iid(1): (diff(1),)}).start()
    assert reader.layers() == {iid(1): (diff(1),)} and reader.inspections() == {}
    reader.cancel()
    assert engine.asked == []


# -- a run with the cache, against a fake daemon ---------------------------------------------------------------

IMAGES = {"sha256:" + f"{n:x}" * 64: [f"app{n}:1"] for n in range(1, 8)}


@pytest.fixture
def fake():
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        with FakeEngine(Path(tmp) / "engine.sock", IMAGES) as daemon:
            yield daemon


def _inspects(fake):
    return sorted(path.split("/images/", 1)[1][:-len("/json")] for method, path, _status in fake.log
                  if method == "GET" and path.split("?")[0].endswith("/json") and "/images/sha256:" in path)


def _run(fake, cache, check=True, **extra):
    args = dict({"images": ["app1:1", "app2:1"], "docker_host": fake.url, "layer_cache": str(cache)}, **extra)
    result = run_module("image_remove", args, check_mode=check)
    assert not result.get("failed"), result
    return result


def _same(result):
    return {key: value for key, value in result.items() if key not in ("warnings", "invocation")}


def test_a_warm_run_inspects_no_image_the_cache_knows_and_predicts_the_same(fake, tmp_path):
    cache = tmp_path / "layers.json"
    cold = _run(fake, cache)
    assert _inspects(fake) == sorted(IMAGES)
    written = json.loads(cache.read_text())
    assert written["version"] == 1
    assert {image_id: entry["layers"] for image_id, entry in written["images"].items()} == \
        {image_id: [fake.layers[image_id]] for image_id in IMAGES}
    fake.log.clear()
    warm = _run(fake, cache)
    assert _inspects(fake) == []
    assert _same(warm) == _same(cold) and warm["space_reclaimed"] == 2000 and warm["deleted_layers"]


def test_an_entry_with_another_size_is_inspected_again(fake, tmp_path):
    cache = tmp_path / "layers.json"
    _run(fake, cache)
    data = json.loads(cache.read_text())
    data["images"][iid_of("app2:1")]["size"] = 999
    cache.write_text(json.dumps(data))
    fake.log.clear()
    _run(fake, cache)
    assert _inspects(fake) == [iid_of("app2:1")]
    assert json.loads(cache.read_text())["images"][iid_of("app2:1")]["size"] == 1000


def iid_of(tag):
    return next(image_id for image_id, tags in IMAGES.items() if tag in tags)


def test_a_real_run_with_a_warm_cache_deletes_without_inspecting(fake, tmp_path):
    cache = tmp_path / "layers.json"
    predicted = _run(fake, cache)
    fake.log.clear()
    real = _run(fake, cache, check=False)
    assert _inspects(fake) == []
    assert real["deleted"] == predicted["deleted"] and real["space_reclaimed"] == predicted["space_reclaimed"]
    assert sorted(fake.deleted) == sorted(iid_of(tag) for tag in ("app1:1", "app2:1"))
    # the deleted images' entries stay (the same image pulled again is known)
    assert iid_of("app1:1") in json.loads(cache.read_text())["images"]


def test_unused_for_inspects_every_image_for_its_tag_time(fake, tmp_path):
    cache = tmp_path / "layers.json"
    _run(fake, cache)
    fake.log.clear()
    result = _run(fake, cache, images=None, filters={"reference": "app1"}, unused_for="1d")
    assert _inspects(fake) == sorted(IMAGES)
    assert result["deleted"] == [iid_of("app1:1")]


def test_an_unreadable_cache_is_a_warning_and_is_written_afresh(fake, tmp_path):
    cache = tmp_path / "layers.json"
    cache.write_text("{")
    result = _run(fake, cache)
    assert any(str(cache) in warning and "cannot be read" in warning for warning in result["warnings"])
    assert set(json.loads(cache.read_text())["images"]) == set(IMAGES)


def test_a_relative_cache_path_fails_before_connecting(fake, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_module("image_remove", {"images": ["app1:1"], "docker_host": fake.url, "layer_cache": "layers.json"})
    assert result.get("failed") and "layer_cache: 'layers.json' is not an absolute path" in result["msg"]
    assert fake.log == [] and not (tmp_path / "layers.json").exists()


def test_runs_writing_the_same_file_at_once_leave_one_whole_file(tmp_path):
    """Two runs on one host (two engines, or two playbooks) may write the file at the same moment: the last
    rename wins, and the file is always one run's whole file, never a mix, with no temporary file left."""
    import threading

    path = str(tmp_path / "layers.json")
    errors = []

    def writer(k):
        for round_no in range(20):
            listed = [Image(iid(100 * k + n), n + 1) for n in range(30)]
            warning = _layer_cache.LayerCache(path).save(
                listed, {image.id: (diff(100 * k + n),) for n, image in enumerate(listed)}, {}, NOW + round_no)
            if warning:
                errors.append(warning)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    cache = _layer_cache.LayerCache.load(path)
    assert cache.warning is None and len(cache.entries) == 30
    owners = {int(image_id[7:], 16) // 100 for image_id in cache.entries}
    assert len(owners) == 1  # one writer's whole file
    assert os.listdir(tmp_path) == ["layers.json"]


def test_an_entry_is_used_only_while_the_same_manifests_are_present(tmp_path):
    """The containerd store: an index keeps its ID when one platform's content is swapped for another's of the same
    size, and its layers change; the manifests present tell the two apart."""
    amd, arm = iid(0xA), iid(0xB)
    path = str(tmp_path / "layers.json")
    cache = _layer_cache.LayerCache(path)
    assert cache.save([Image(iid(1), 10, (arm,))], {iid(1): (diff(1),)}, {}, NOW) is None
    cache = _layer_cache.LayerCache.load(path)
    assert cache.entries[iid(1)]["manifests"] == (arm,)
    assert cache.layers([Image(iid(1), 10, (arm,))]) == {iid(1): (diff(1),)}
    assert cache.layers([Image(iid(1), 10, (amd,))]) == {}
    assert cache.layers([Image(iid(1), 10, (amd, arm))]) == {}
    assert cache.layers([Image(iid(1), 10)]) == {}
    # read again with the other platform: replaced
    assert cache.save([Image(iid(1), 10, (amd,))], {iid(1): (diff(2),)}, {}, NOW + 60) is None
    again = _layer_cache.LayerCache.load(path)
    assert again.layers([Image(iid(1), 10, (amd,))]) == {iid(1): (diff(2),)}


def test_the_listing_gives_the_manifests_present_on_the_containerd_store_only():
    from ansible_collections.janitor.docker.plugins.module_utils import _snapshot

    present = {"ID": iid(0xA), "Available": True}
    absent = {"ID": iid(0xB), "Available": False}

    class Client:
        def __init__(self, driver_type, api_version):
            self.api_version = api_version
            self.info_answer = {"DriverStatus": [["driver-type", driver_type]]}
            self.asked = []

        def info(self):
            return self.info_answer

        def images(self, all=False, manifests=False):  # pylint: disable=redefined-builtin
            self.asked.append(manifests)
            return [{"Id": iid(1), "Size": 5, "Manifests": [absent, present] if manifests else None}]

        def containers(self, all=False):  # pylint: disable=redefined-builtin
            return []

    containerd = Client("io.containerd.snapshotter.v1", "1.51")
    snapshot = _snapshot.read(containerd)
    assert containerd.asked == [True] and snapshot.images[0].manifests == (iid(0xA),)
    # the listing no longer waits for the store kind: it always asks, and a graph-driver store keeps no manifests
    graph_driver = Client("overlay2", "1.51")
    assert _snapshot.read(graph_driver).images[0].manifests == () and graph_driver.asked == [True]


@pytest.mark.parametrize("api_version, sent", [("1.41", False), ("1.46", False), ("1.47", True), ("1.51", True)])
def test_the_listing_asks_for_manifests_from_api_1_47_on(fake, api_version, sent):
    fake.API_VERSION = api_version
    engine = _transport.connect({"docker_host": fake.url, "api_version": "auto", "timeout": 5})
    try:
        engine.images(all=True, manifests=True)
        engine.images(all=True)
    finally:
        engine.close()
    listings = [path for method, path, _status in fake.log if path.split("?")[0].endswith("/images/json")]
    assert [path.endswith("&manifests=1") for path in listings] == [sent, False], listings
