"""The realistic image world is what it claims to be, on every engine kind (tests/harness/world.py)."""

from __future__ import annotations

from tests.harness.world import CI_REPO, LOCAL_TAGS, PULLED

SHARED_BASE = "base/debian:12"


def _inspect(engine, image_id):
    return engine.api.inspect_image(image_id)


def test_pulled_images_have_no_parent_real_digests_and_share_base_layers(fresh_world):
    engine, world = fresh_world.engine, fresh_world.world
    base_layers = _inspect(engine, world.ids[SHARED_BASE])["RootFS"]["Layers"]
    sharing = 0
    for image in PULLED:
        data = _inspect(engine, world.ids[image.ref])
        assert not data.get("Parent"), image.ref
        repo = f"{world.registry}/{image.ref.rsplit(':', 1)[0]}"
        assert any(d.startswith(repo + "@sha256:") for d in data["RepoDigests"]), (image.ref, data["RepoDigests"])
        if data["RootFS"]["Layers"][:len(base_layers)] == base_layers:
            sharing += 1
    assert sharing >= 5  # the base itself, two runtimes and three app images: none of them knows the base by Parent
    web = _inspect(engine, world.ids["apps/web:1.1"])
    assert {f"{world.registry}/apps/web:1.1", f"{world.registry}/apps/web:latest", f"{world.registry}/mirror/web:1.1",
            *LOCAL_TAGS} <= set(web["RepoTags"])


def test_base_layers_are_mib_of_incompressible_content(fresh_world):
    engine, world = fresh_world.engine, fresh_world.world
    sizes = [entry["Size"] for entry in engine.api.history(world.ids[SHARED_BASE])]
    assert max(sizes) >= 4 * 1024 * 1024
    df = engine.api.df()
    assert df["LayersSize"] >= 15 * 1024 * 1024  # 16.5 MB of layers (twice that with the content store)


def test_ci_leftovers_dangling_builds_intermediates_and_stopped_containers(fresh_world):
    engine, world = fresh_world.engine, fresh_world.world
    dangling = {image["Id"] for image in engine.api.images(filters={"dangling": True})}
    assert set(world.dangling) <= dangling
    assert world.ids[CI_REPO] not in dangling
    listed = {image["Id"]: image for image in engine.api.images(all=True)}
    assert world.intermediates and set(world.intermediates) <= set(listed)
    for image_id in world.intermediates:
        assert not [t for t in listed[image_id].get("RepoTags") or [] if t != "<none>:<none>"]
    # hidden parents: `docker images` does not list them, `docker images -a` does (observed on all three kinds)
    assert not set(world.intermediates) & dangling
    containers = {c["Id"]: c for c in engine.api.containers(all=True)}
    assert set(containers) == set(world.containers)
    for container_id, image_id in world.containers.items():
        assert containers[container_id]["ImageID"] == image_id
        assert containers[container_id]["State"] in ("created", "exited")
    assert set(world.containers.values()) == {world.dangling[0], world.ids["apps/api:2.0"]}


def test_restore_gives_back_the_same_world(fresh_world):
    engine = fresh_world.engine
    before = engine.state()
    engine.api.remove_container(next(iter(fresh_world.world.containers)), force=True)
    engine.api.remove_image(fresh_world.world.references["web:prod"])
    assert engine.state() != before
    assert fresh_world.restore().state() == before
