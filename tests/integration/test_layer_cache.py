"""``image_remove``'s ``layer_cache`` on the realistic world (tests/harness/world.py), on every engine kind.

The file remembers each image's ``RootFS.Layers`` (and the few history size lists a run read), keyed by image ID and
used only while the engine lists the image with the same ``Size``; a run inspects only the images the file does not
know (with ``free_space`` or ``unused_for`` every image, for its last tag time). It is written at the end of every
run, check mode included; an unreadable file or a failed write is a warning, never a failure.

What proves it here: the file equals what ``docker image inspect`` and the listing say; a warm run gives exactly the
cold run's result, and a real run with a warm cache what check mode said and what the engine then shows; an entry
with the listed size but other layers changes the result (so a warm run takes the file's layers and does not inspect
that image), and the same entry with another size, in a file of another version, or with ``free_space`` /
``unused_for``, changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest

from tests.harness.ansible_runner import run_module
from tests.harness.images import ImageSpec, available_manifests, push_platform_index
from tests.harness.world import pull, random_bytes, split_ref

pytestmark = pytest.mark.engine

KiB = 1024
VOLATILE = ("warnings", "invocation", "deprecations")
FAKE_LAYER = "sha256:" + hashlib.sha256(b"janitor.docker layer_cache test: a layer no image has").hexdigest()


def _core(result):
    """The result without what depends on how the run was called (the warnings, the arguments echoed)."""
    assert not result.get("failed"), result.get("msg")
    return {key: value for key, value in result.items() if key not in VOLATILE}


def _run(engine, args, cache=None, check_mode=True):
    args = dict(args, docker_host=engine.url)
    if cache is not None:
        args["layer_cache"] = str(cache)
    return run_module("image_remove", args, check_mode=check_mode)


def _cache_warnings(result):
    return [text for text in result.warning_texts if "layer_cache" in text]


def _listed_sizes(engine):
    """``{image ID: Size}`` of every image the engine lists (``GET /images/json?all=1``)."""
    return {image["Id"]: image["Size"] for image in engine.api.images(all=True)}


def _cli_layers(engine, image_ids):
    """``{image ID: RootFS.Layers}`` as ``docker image inspect`` gives them."""
    image_ids = sorted(image_ids)
    lines = engine.cli("image", "inspect", "--format", "{{.Id}} {{json .RootFS.Layers}}", *image_ids).stdout
    found = {}
    for line in lines.splitlines():
        image_id, layers = line.split(" ", 1)
        found[image_id] = json.loads(layers) or []
    assert set(found) == set(image_ids)
    return found


def _cli_images(engine):
    """``(image IDs, repo:tag references)`` that ``docker image ls -a`` lists."""
    ids, tags = set(), set()
    for line in engine.cli("image", "ls", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}").stdout.splitlines():
        image_id, ref = line.split(" ", 1)
        ids.add(image_id)
        if ref != "<none>:<none>":
            tags.add(ref)
    return ids, tags


def _read(cache):
    data = json.loads(cache.read_text())
    assert data["version"] == 1 and isinstance(data["images"], dict)
    return data["images"]


def _assert_cache_is_the_engines(engine, cache, started):
    """The file has an entry for every image the engine lists, with its listed size and the layers ``docker image
    inspect`` gives; the histories it holds are the engine's; no temporary file is left beside it."""
    entries = _read(cache)
    sizes = _listed_sizes(engine)
    assert set(entries) >= set(sizes), sorted(set(sizes) - set(entries))
    layers = _cli_layers(engine, sizes)
    for image_id, size in sizes.items():
        entry = entries[image_id]
        assert entry["size"] == size, image_id
        assert entry["layers"] == layers[image_id], image_id
        assert started - 1 <= entry["seen"] <= time.time() + 1, image_id
        if "history" in entry:
            assert entry["history"] == [item.get("Size") or 0 for item in engine.api.history(image_id)], image_id
    assert os.listdir(cache.parent) == [cache.name]
    return entries


def _selections(world):
    """Runs that delete on every store: everything no container uses; and named images on shared bases (pulled
    images without Parent links, a CI build with its intermediates)."""
    return [
        {"all": True},
        {"images": [world.ref("apps/web:1.0"), world.ref("runtime/node:20"), world.ref("ci/build:latest"),
                    world.ids["apps/worker:1"]], "force": True, "containers": "skip"},
    ]


# -- 1 and 2: the file after a cold run, a warm run's result --------------------------------------------------
@pytest.mark.parametrize("case", [0, 1])
def test_cold_check_run_writes_every_images_layers_and_a_warm_run_gives_the_same_result(fresh_world, tmp_path, case):
    engine = fresh_world.engine
    args = _selections(fresh_world.world)[case]
    cache = tmp_path / "cache" / "layers.json"  # its directory does not exist yet
    plain = _core(_run(engine, args))
    assert plain["deleted"]
    started = time.time()
    cold = _run(engine, args, cache)
    assert not _cache_warnings(cold), cold.warning_texts  # a missing file is a cold start
    assert _core(cold) == plain
    entries = _assert_cache_is_the_engines(engine, cache, started)
    warm = _run(engine, args, cache)
    assert not _cache_warnings(warm), warm.warning_texts
    assert _core(warm) == plain
    again = _assert_cache_is_the_engines(engine, cache, started)
    assert {image_id: dict(entry, seen=0) for image_id, entry in again.items()} == {
        image_id: dict(entry, seen=0) for image_id, entry in entries.items()}


@pytest.mark.parametrize("case", [0, 1])
def test_real_run_with_a_warm_cache_does_what_check_mode_said(fresh_world, engine_kind, tmp_path, case):
    engine = fresh_world.engine
    args = _selections(fresh_world.world)[case]
    cache = tmp_path / "layers.json"
    started = time.time()
    _run(engine, args, cache)  # warms the file
    check = _run(engine, args, cache)
    predicted = _core(check)
    assert predicted["deleted"]
    ids_before, tags_before = _cli_images(engine)
    layers_before = engine.api.df()["LayersSize"]

    real = _run(engine, args, cache, check_mode=False)
    assert not _cache_warnings(real), real.warning_texts
    result = _core(real)
    for key in ("changed", "untagged", "deleted", "deleted_layers", "space_reclaimed", "images", "msg"):
        assert result[key] == predicted[key], key
    ids_after, tags_after = _cli_images(engine)
    assert set(result["deleted"]) <= ids_before
    assert ids_after == ids_before - set(result["deleted"])
    assert tags_after == tags_before - set(result["untagged"])
    drop = layers_before - engine.api.df()["LayersSize"]
    space = result["space_reclaimed"]
    if engine_kind == "containerd":
        assert abs(space - drop) <= 0.02 * drop + 64 * KiB, (space, drop)  # test_space.py's tolerance
    else:
        assert space == drop
    # the file still holds every image listed before, with its layers (the removed ones stay)
    entries = _read(cache)
    assert ids_before <= set(entries)
    assert all(entries[image_id]["seen"] >= started - 1 for image_id in ids_before)
    # and the next run, on the engine as it is now, is warm and exact
    assert _core(_run(engine, args, cache)) == _core(_run(engine, args))


# -- 3: the file is read, and an entry only counts with the listed size ---------------------------------------
def _poisoned_api_entry(engine, world):
    """``(the apps/api:2.0 entry with the node layer replaced by one no image has, the node layer's chain ID)``.

    apps/api:2.0 is built on runtime/node:20 and stays (a stopped container uses it): deleting runtime/node:20
    frees nothing of the node layer. With that entry, the node layer is no longer held by apps/api:2.0, so a run
    that takes the entry predicts the node layer freed."""
    node, api = world.ids["runtime/node:20"], world.ids["apps/api:2.0"]
    layers = _cli_layers(engine, [node, api])
    below = len(layers[node])
    assert layers[api][:below] == layers[node]
    poisoned = list(layers[api])
    poisoned[below - 1] = FAKE_LAYER
    chain = layers[node][0]
    for diff in layers[node][1:]:
        chain = "sha256:" + hashlib.sha256(f"{chain} {diff}".encode()).hexdigest()
    return poisoned, chain


def _write(cache, images, version=1):
    cache.write_text(json.dumps({"version": version, "images": images}))


def test_warm_run_takes_the_layers_from_the_file_while_the_listed_size_matches(fresh_world, engine_kind, tmp_path):
    engine, world = fresh_world.engine, fresh_world.world
    args = {"images": [world.ref("runtime/node:20")]}
    cache = tmp_path / "layers.json"
    plain = _core(_run(engine, args))
    assert plain["deleted"] == [world.ids["runtime/node:20"]]
    _run(engine, args, cache)
    entries = _read(cache)
    api = world.ids["apps/api:2.0"]
    poisoned, node_chain = _poisoned_api_entry(engine, world)
    sizes = _listed_sizes(engine)
    node_layer = sizes[world.ids["runtime/node:20"]] - sizes[world.ids["base/debian:12"]]
    assert node_layer >= 1024 * KiB  # the node layer: 1.5 MiB of random bytes (and its blob on containerd)

    # the listed size: the entry is taken, apps/api:2.0 is not inspected, and the node layer counts as freed
    _write(cache, dict(entries, **{api: dict(entries[api], layers=poisoned)}))
    taken = _core(_run(engine, args, cache))
    assert taken["deleted"] == plain["deleted"] and taken["untagged"] == plain["untagged"]
    assert taken["space_reclaimed"] == plain["space_reclaimed"] + node_layer, (taken["space_reclaimed"],
                                                                               plain["space_reclaimed"])
    if engine_kind != "containerd":
        assert node_chain not in plain["deleted_layers"] and node_chain in taken["deleted_layers"]
    assert _read(cache)[api]["layers"] == poisoned  # the file trusts itself: the entry is kept as it was

    # another size: the entry is ignored, the image inspected, the result exact, the entry replaced
    _write(cache, dict(entries, **{api: dict(entries[api], layers=poisoned, size=entries[api]["size"] + 1)}))
    ignored = _run(engine, args, cache)
    assert not _cache_warnings(ignored), ignored.warning_texts
    assert _core(ignored) == plain
    assert _read(cache)[api]["layers"] == entries[api]["layers"] and _read(cache)[api]["size"] == sizes[api]


def test_entry_of_a_removed_image_serves_it_pulled_again(fresh_world, engine_kind, tmp_path):
    """A real run removes runtime/node:20 with a warm file; its entry stays; pulled back (the same ID and size), the
    image is known: a node entry whose own layer is one no image has makes deleting it free that layer (the
    engine's layers would not: apps/api:2.0 holds them)."""
    engine, world = fresh_world.engine, fresh_world.world
    node = world.ids["runtime/node:20"]
    args = {"images": [world.ref("runtime/node:20")]}
    cache = tmp_path / "layers.json"
    plain = _core(_run(engine, args))
    _run(engine, args, cache)
    result = _core(_run(engine, args, cache, check_mode=False))
    assert result["deleted"] == [node] and node not in _cli_images(engine)[0]
    entries = _read(cache)
    assert node in entries  # kept after the removal

    pull(engine, *split_ref(world.ref("runtime/node:20")))
    assert _listed_sizes(engine)[node] == entries[node]["size"]
    assert _core(_run(engine, args, cache)) == plain
    poisoned = list(entries[node]["layers"])
    poisoned[-1] = FAKE_LAYER
    _write(cache, dict(entries, **{node: dict(entries[node], layers=poisoned)}))
    taken = _core(_run(engine, args, cache))
    sizes = _listed_sizes(engine)
    assert taken["deleted"] == [node]
    assert taken["space_reclaimed"] == plain["space_reclaimed"] + sizes[node] - sizes[world.ids["base/debian:12"]]


def test_history_sizes_read_are_cached_and_taken_while_the_listed_size_matches(fresh_world, images_for, engine_kind,
                                                                               tmp_path):
    """Two images loaded beside the world share a base layer that is no image's top: deleting one needs the
    other's history (the base layer's size, which no listing gives). The run that reads it keeps it in the file;
    a warm run takes it from there (a changed size in the file changes the result) while the listed size matches."""
    engine = fresh_world.engine
    base = random_bytes("layer-cache-base", 256 * KiB)
    gone, stays = images_for(engine).load([
        ImageSpec(["cache/gone:1"], random_bytes("layer-cache-gone", 64 * KiB), extra_layers=[base]),
        ImageSpec(["cache/stays:1"], random_bytes("layer-cache-stays", 128 * KiB), extra_layers=[base])])
    args = {"images": ["cache/gone:1"]}
    cache = tmp_path / "layers.json"
    plain = _core(_run(engine, args))
    assert plain["deleted"] == [gone] and plain["space_reclaimed"] > 0
    started = time.time()
    assert _core(_run(engine, args, cache)) == plain
    entries = _assert_cache_is_the_engines(engine, cache, started)  # the histories held are the engine's
    assert "history" in entries[stays], entries[stays]
    history = entries[stays]["history"]
    assert len([size for size in history if size]) == 2  # its own layer, newest first, then the base layer
    base_index = max(index for index, size in enumerate(history) if size)
    smaller = list(history)
    smaller[base_index] = history[base_index] // 2

    # the listed size: the history comes from the file, not the engine, and the base layer counts smaller
    _write(cache, dict(entries, **{stays: dict(entries[stays], history=smaller)}))
    taken = _core(_run(engine, args, cache))
    assert taken["deleted"] == plain["deleted"] and taken["untagged"] == plain["untagged"]
    # (the history's sizes are scaled to the listed size of the image: a smaller base means a bigger layer of its own)
    assert taken["space_reclaimed"] > plain["space_reclaimed"], (taken["space_reclaimed"], plain["space_reclaimed"])
    assert _read(cache)[stays]["history"] == smaller

    # another size: the entry is ignored, the history read again, the result exact, the entry replaced
    _write(cache, dict(entries, **{stays: dict(entries[stays], history=smaller, size=entries[stays]["size"] + 1)}))
    assert _core(_run(engine, args, cache)) == plain
    assert _read(cache)[stays] == dict(entries[stays], seen=_read(cache)[stays]["seen"])

    # a real run with the warm file: what check mode said, and the engine's drop
    before = engine.api.df()["LayersSize"]
    result = _core(_run(engine, args, cache, check_mode=False))
    for key in ("changed", "untagged", "deleted", "space_reclaimed", "images", "msg"):
        assert result[key] == plain[key], key
    drop = before - engine.api.df()["LayersSize"]
    assert abs(result["space_reclaimed"] - drop) <= (0.02 * drop + 64 * KiB if engine_kind == "containerd" else 0)
    assert {image["Id"] for image in engine.api.images(all=True)} & {gone, stays} == {stays}


# -- 4: files that cannot be used, a path that cannot be written ------------------------------------------------
@pytest.mark.parametrize("content", ["{not json", "other version"])
def test_unusable_file_is_a_warning_and_written_afresh(fresh_world, tmp_path, content):
    engine, world = fresh_world.engine, fresh_world.world
    args = {"images": [world.ref("runtime/node:20"), world.ref("apps/worker:1")]}
    cache = tmp_path / "layers.json"
    plain = _core(_run(engine, args))
    if content == "other version":
        # well-formed entries that would change the result if they were taken (see the test above)
        _run(engine, args, cache)
        entries = _read(cache)
        api = world.ids["apps/api:2.0"]
        _write(cache, dict(entries, **{api: dict(entries[api], layers=_poisoned_api_entry(engine, world)[0])}),
               version=2)
    else:
        cache.write_text(content)
    started = time.time()
    result = _run(engine, args, cache)
    warnings = _cache_warnings(result)
    assert len(warnings) == 1 and str(cache) in warnings[0], result.warning_texts
    assert _core(result) == plain
    _assert_cache_is_the_engines(engine, cache, started)
    assert not _cache_warnings(_run(engine, args, cache))


def test_unwritable_path_is_a_warning_and_the_run_exact(fresh_world, engine_kind, tmp_path):
    engine, world = fresh_world.engine, fresh_world.world
    args = {"images": [world.ref("runtime/node:20"), world.ref("apps/worker:1"), world.ref("ci/build:latest")],
            "force": True, "containers": "skip"}
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file")
    cache = blocker / "layers.json"
    plain = _core(_run(engine, args))
    check = _run(engine, args, cache)
    warnings = _cache_warnings(check)
    assert len(warnings) == 1 and str(cache) in warnings[0] and "written" in warnings[0], check.warning_texts
    assert _core(check) == plain
    before = engine.api.df()["LayersSize"]
    real = _run(engine, args, cache, check_mode=False)
    warnings = _cache_warnings(real)
    assert len(warnings) == 1 and str(cache) in warnings[0], real.warning_texts
    result = _core(real)
    for key in ("changed", "untagged", "deleted", "space_reclaimed", "images", "msg"):
        assert result[key] == plain[key], key
    assert not set(result["deleted"]) & _cli_images(engine)[0]
    drop = before - engine.api.df()["LayersSize"]
    assert abs(result["space_reclaimed"] - drop) <= (0.02 * drop + 64 * KiB if engine_kind == "containerd" else 0)
    assert blocker.read_text() == "a regular file" and os.listdir(tmp_path) == [blocker.name]


# -- 5: free_space and unused_for inspect every image --------------------------------------------------------
def _pressure_cases(engine):
    used = engine.api.df()["LayersSize"]
    return [
        {"free_space": {"high": "1B", "low": 0}},  # every candidate goes
        {"free_space": {"high": used, "low": used - 3 * 1024 * KiB}},  # the shortest LRU prefix for 3 MiB
        {"unused_for": "1s"},
    ]


@pytest.mark.parametrize("case", [0, 1, 2])
def test_free_space_and_unused_for_with_a_warm_cache_equal_the_run_without(fresh_world, tmp_path, case):
    """The cache holds a wrong apps/api:2.0 entry with the listed size: a plain run would take it (the test above),
    these runs inspect every image for its last tag time and take the engine's layers; the file is refreshed."""
    engine, world = fresh_world.engine, fresh_world.world
    args = _pressure_cases(engine)[case]
    cache = tmp_path / "layers.json"
    plain = _core(_run(engine, args))
    assert world.ids["runtime/node:20"] in plain["deleted"] or case == 1
    assert plain["deleted"]
    started = time.time()
    cold = _run(engine, args, cache)
    assert _core(cold) == plain
    entries = _assert_cache_is_the_engines(engine, cache, started)
    api = world.ids["apps/api:2.0"]
    _write(cache, dict(entries, **{api: dict(entries[api], layers=_poisoned_api_entry(engine, world)[0])}))
    warm = _run(engine, args, cache)
    assert not _cache_warnings(warm), warm.warning_texts
    assert _core(warm) == plain
    assert _read(cache)[api]["layers"] == entries[api]["layers"]  # refreshed from the inspect


# -- 6: the containerd store: an index image gains a platform's content under the same ID -----------------------
INDEX_REPO = "layer-cache/index"
PLATFORMS = ("linux/amd64", "linux/arm64")  # push_platform_index's; the engines run on amd64 hosts


@pytest.mark.parametrize("first", PLATFORMS)
def test_containerd_index_gaining_a_platform_is_read_again(clean_engine, registry, images_for, tmp_path, first):
    """The index of test_platforms.py is pulled for ONE platform (``first``), a check run warms the file, then the
    other platform is pulled into the same index: the image ID stays (the index digest), the listed size changes,
    so the entry is read again. cache/shares:1 is another image with the amd64 platform's layer (its own config,
    so its own manifest): deleting it frees that layer only if the index does not hold it, which is what the
    index's entry says. On the engine (Docker 28.5): one platform lists 19201 bytes, both 38402; the index's
    layers are the host's (amd64) platform's once present, else arm64's.

    The proof that the size is what keeps the entry out: the old entry planted with its OLD size and a layer no
    image has changes nothing (a cache that ignored the size would count the amd64 layer freed), and the same
    planted entry with the NEW size does change the result."""
    engine = clean_engine
    if engine.kind != "containerd":
        pytest.skip("the containerd image store: an image ID there is its index's digest; on the graph-driver "
                    "stores it is the config's digest of the one platform pulled, and another platform is another ID")
    second = next(platform for platform in PLATFORMS if platform != first)
    index_digest = push_platform_index(engine, registry, INDEX_REPO, "v1", PLATFORMS)
    ref = f"{registry.host}/{INDEX_REPO}:v1"
    shares = images_for(engine).load([ImageSpec(["cache/shares:1"], f"{INDEX_REPO} v1 linux/amd64",
                                                labels={"janitor.test": "the index's amd64 layer"})])[0]
    engine.cli("pull", "-q", "--platform", first, ref)
    image_id = engine.api.inspect_image(ref)["Id"]
    assert image_id == index_digest
    assert {arch: ok for (arch, _digest), ok in available_manifests(engine, image_id).items()} == {
        first.split("/")[1]: True, second.split("/")[1]: False}
    selections = [{"images": ["cache/shares:1"]}, {"images": [ref]}, {"all": True}]
    cache = tmp_path / "layers.json"
    for args in selections:  # warm the file with the one-platform index; each run exact
        assert _core(_run(engine, args, cache)) == _core(_run(engine, args))
    old = _read(cache)[image_id]
    old_size, old_layers = _listed_sizes(engine)[image_id], _cli_layers(engine, [image_id])[image_id]
    assert (old["size"], old["layers"]) == (old_size, old_layers)

    engine.cli("pull", "-q", "--platform", second, ref)
    assert engine.api.inspect_image(ref)["Id"] == image_id  # the same image: the index gained content
    assert set(available_manifests(engine, image_id).values()) == {True}
    new_size = _listed_sizes(engine)[image_id]
    new_layers = _cli_layers(engine, [image_id])[image_id]
    assert new_size != old_size, f"the listed size of {image_id} stayed {old_size} when {second} was added"
    amd64_layer = _cli_layers(engine, [shares])[shares][-1]
    assert new_layers == [amd64_layer]  # the host's platform decides the layers once it is present
    assert (old_layers == new_layers) == (first == "linux/amd64")
    plain = [_core(_run(engine, args)) for args in selections]
    assert not plain[0]["deleted_layers"] or amd64_layer not in plain[0]["deleted_layers"]

    # the file as the first runs left it: the entry is read again, every result exact, the entry replaced
    for args, expected in zip(selections, plain):
        warm = _run(engine, args, cache)
        assert not _cache_warnings(warm), warm.warning_texts
        assert _core(warm) == expected
    entry = _read(cache)[image_id]
    assert (entry["size"], entry["layers"]) == (new_size, new_layers)

    # the old entry planted with a layer no image has: at the OLD size it is not taken ...
    entries = _read(cache)
    for args, expected in zip(selections, plain):
        _write(cache, dict(entries, **{image_id: dict(old, layers=[FAKE_LAYER])}))
        warm = _core(_run(engine, args, cache))
        for key in ("space_reclaimed", "deleted", "deleted_layers", "images", "untagged"):
            assert warm[key] == expected[key], key
        assert warm == expected
        entry = _read(cache)[image_id]
        assert (entry["size"], entry["layers"]) == (new_size, new_layers)
    # ... at the NEW size and with the manifests now present it is: the index no longer holds the amd64 layer,
    # deleting cache/shares:1 frees it
    assert entries[image_id]["manifests"] != old["manifests"]
    _write(cache, dict(entries, **{image_id: dict(old, size=new_size, manifests=entries[image_id]["manifests"],
                                                  layers=[FAKE_LAYER])}))
    taken = _core(_run(engine, selections[0], cache))
    assert taken["deleted"] == plain[0]["deleted"] == [shares]
    assert taken["space_reclaimed"] > plain[0]["space_reclaimed"], (taken["space_reclaimed"],
                                                                    plain[0]["space_reclaimed"])
    assert _read(cache)[image_id]["layers"] == [FAKE_LAYER]


def test_containerd_index_swapping_its_platform_keeps_id_and_size(clean_engine, registry, images_for, tmp_path):
    """The index pulled for arm64 only, a check run warms the file; then, with no cached run in between, amd64 is
    pulled into it and arm64 removed (``docker rmi -f --platform linux/arm64``). The ID (the index digest) and the
    listed size (19201 bytes: the two tiny platform images have the same size) are those of the entry, but the
    layers are now amd64's. An entry keyed on ID and size alone was taken, and deleting cache/shares:1 counted the
    amd64 layer freed, which the index still holds; the entry now also holds the manifests present (the listing's
    ``Manifests``), which differ, so the image is inspected again."""
    engine = clean_engine
    if engine.kind != "containerd":
        pytest.skip("the containerd image store: only there does an image ID name an index of platforms")
    ref = f"{registry.host}/{INDEX_REPO}:v1"
    push_platform_index(engine, registry, INDEX_REPO, "v1", PLATFORMS)
    shares = images_for(engine).load([ImageSpec(["cache/shares:1"], f"{INDEX_REPO} v1 linux/amd64",
                                                labels={"janitor.test": "the index's amd64 layer"})])[0]
    engine.cli("pull", "-q", "--platform", "linux/arm64", ref)
    image_id = engine.api.inspect_image(ref)["Id"]
    args = {"images": ["cache/shares:1"]}
    cache = tmp_path / "layers.json"
    assert _core(_run(engine, args, cache)) == _core(_run(engine, args))
    old = _read(cache)[image_id]

    engine.cli("pull", "-q", "--platform", "linux/amd64", ref)
    assert _listed_sizes(engine)[image_id] != old["size"]  # both platforms: another size (the test above)
    engine.cli("rmi", "-f", "--platform", "linux/arm64", ref)
    assert engine.api.inspect_image(ref)["Id"] == image_id
    assert {arch: ok for (arch, _digest), ok in available_manifests(engine, image_id).items()} == {
        "amd64": True, "arm64": False}
    layers = _cli_layers(engine, [image_id, shares])
    assert _listed_sizes(engine)[image_id] == old["size"]  # the same ID, the same listed size ...
    assert layers[image_id] == [layers[shares][-1]] != old["layers"]  # ... other layers
    plain = _core(_run(engine, args))
    warm = _core(_run(engine, args, cache))
    assert warm == plain, (f"layer_cache took a stale entry: {image_id} swapped arm64 for amd64 with listed size "
                           f"{old['size']} before and after, layers {old['layers']} -> {layers[image_id]}; "
                           f"space_reclaimed {warm['space_reclaimed']} with the file, {plain['space_reclaimed']} "
                           f"without")
    entry = _read(cache)[image_id]
    assert entry["layers"] == layers[image_id] and entry["manifests"] != old["manifests"]
