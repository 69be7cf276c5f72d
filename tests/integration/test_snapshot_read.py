"""``_snapshot.read`` against each private engine: the image listing is sent with ``manifests=1`` whatever the store
(from API 1.47 on), so it need not wait for ``GET /info``; on a graph-driver store that parameter changes nothing,
and only the containerd store gives each image's manifests."""

from __future__ import annotations

from ansible_collections.janitor.docker.plugins.module_utils import _snapshot, _transport


def _listing(engine, **params):
    """``{image ID: entry}`` of ``GET /images/json?all=1`` with ``params``, through the harness's own SDK client."""
    api = engine.api
    answer = api._result(api._get(api._url("/images/json"), params=dict(all=1, **params)), True)  # noqa: SLF001
    return {entry["Id"]: entry for entry in answer}


def _world(engine, images):
    """A few images as users have them: two tags on one image, a child of it with an older and a newer sibling."""
    base = images.scratch("snapshot base", tag="snapshot/base:1")
    images.tag(base, "snapshot/base:latest")
    images.child("snapshot/base:1", "snapshot child", tag="snapshot/app:1")
    images.simple("snapshot/loaded:1", "snapshot/loaded:2")
    images.stopped_container(images.busybox_image())
    return base


def test_manifests_1_changes_nothing_on_a_graph_driver_listing(clean_engine, images):
    _world(clean_engine, images)
    plain, asked = _listing(clean_engine), _listing(clean_engine, manifests=1)
    assert len(plain) >= 4
    if clean_engine.containerd_store:
        # the containerd store adds each image's Manifests, and nothing else changes
        assert {image_id: {key: value for key, value in entry.items() if key != "Manifests"}
                for image_id, entry in asked.items()} == plain
        assert all(entry.get("Manifests") for entry in asked.values())
    else:
        assert asked == plain
        assert not any("Manifests" in entry for entry in asked.values())


def test_the_snapshot_is_the_listing_with_the_manifests_on_the_containerd_store_only(clean_engine, images):
    _world(clean_engine, images)
    client = _transport.connect({"docker_host": clean_engine.url, "timeout": 30})
    try:
        snapshot = _snapshot.read(client)
    finally:
        client.close()
    asked = _listing(clean_engine, manifests=1)
    assert snapshot.store == (_snapshot.CONTAINERD if clean_engine.containerd_store else _snapshot.CLASSIC)
    assert snapshot.engine_version == clean_engine.version["Version"]
    assert snapshot.api_version == clean_engine.version["ApiVersion"]
    assert {image.id for image in snapshot.images} == set(asked)
    assert len(snapshot.containers) == 1
    for image in snapshot.images:
        if clean_engine.containerd_store:
            expected = sorted(m["ID"] for m in asked[image.id]["Manifests"] if m.get("Available"))
            assert list(image.manifests) == expected and expected, image
        else:
            assert image.manifests == (), image
