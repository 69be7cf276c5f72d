"""The space a removal frees, on the realistic world (tests/harness/world.py), on every engine kind (docs/space.md).

For random selections of the world: ``space_reclaimed`` in check mode equals the real run's, and equals the drop
of the engine's own ``LayersSize`` (``GET /system/df``) within 2 % + 64 KiB; on the graph-driver engines it also
equals what ``docker image prune`` reports as reclaimed when it deletes the same images from an identical copy
of the world.
"""

from __future__ import annotations

import os
import random

import pytest

from ansible_collections.janitor.docker.plugins.module_utils._units import human_size
from tests.harness.ansible_runner import run_module

KiB = 1024
EXAMPLES = int(os.environ.get("JANITOR_SPACE_EXAMPLES", "4"))


def _layers_size(engine):
    return engine.api.df()["LayersSize"]


def _selection(world, seed):
    """1 to 6 entries: world references (tags, local names) and image IDs (dangling builds, intermediates...)."""
    rng = random.Random(seed)
    names = sorted(world.references.values()) + sorted(set(world.ids.values())) + sorted(world.intermediates)
    return rng.sample(names, rng.randint(1, 6))


def _prune_reclaimed(fresh_world, deleted):
    """``docker image prune -a`` on the restored world, with a container on every top-level image that must stay
    (prune leaves images that containers use): what it reclaims, and the images it deleted."""
    engine = fresh_world.restore()
    api = engine.api
    host_config = api.create_host_config(network_mode="none")
    for image in api.images():
        if image["Id"] not in deleted:
            api.create_container(image["Id"], command=["/keep"], host_config=host_config)
    answer = api.prune_images(filters={"dangling": False})
    pruned = {entry["Deleted"] for entry in answer.get("ImagesDeleted") or () if entry.get("Deleted")}
    listed_before = set(fresh_world.world.ids.values()) | set(fresh_world.world.intermediates)
    return answer.get("SpaceReclaimed"), pruned & (listed_before | set(deleted))


def _compare(fresh_world, engine_kind, args):
    engine = fresh_world.restore()
    args = dict(args, docker_host=engine.url)
    predicted = run_module("image_remove", args, check_mode=True)
    assert not predicted.get("failed"), predicted
    before = _layers_size(engine)
    result = run_module("image_remove", args)
    assert not result.get("failed"), result
    drop = before - _layers_size(engine)
    space = result["space_reclaimed"]
    assert predicted["space_reclaimed"] == space, (args, predicted["deleted"], result["deleted"])
    assert predicted["msg"] == result["msg"]
    assert result["msg"].startswith(f"untagged {len(result['untagged'])}, deleted {len(result['deleted'])}, kept ")
    assert result["msg"].endswith(f", {human_size(space)} reclaimed")
    assert abs(space - drop) <= 0.02 * drop + 64 * KiB, (args, result["deleted"], space, drop)
    if engine_kind != "containerd" and result["deleted"]:
        reclaimed, pruned = _prune_reclaimed(fresh_world, set(result["deleted"]))
        assert pruned == set(result["deleted"]), (args, sorted(pruned), result["deleted"])
        assert space == reclaimed, (args, space, reclaimed)
    return result


@pytest.mark.parametrize("seed", range(EXAMPLES))
def test_space_equals_the_engines_drop_for_random_selections(fresh_world, engine_kind, seed):
    selection = _selection(fresh_world.world, f"{engine_kind}-{seed}")
    _compare(fresh_world, engine_kind, {"images": selection, "force": True, "containers": "skip"})


def test_space_of_a_shared_base_counts_once(fresh_world, engine_kind):
    """Pulled images on the debian base, and the base itself, by ID: only what no other image uses counts."""
    world = fresh_world.world
    names = ["base/debian:12", "runtime/python:3.12", "runtime/node:20", "apps/web:1.0"]
    result = _compare(fresh_world, engine_kind, {"images": [world.ids[n] for n in names], "force": True,
                                                 "containers": "skip"})
    assert set(result["deleted"]) >= {world.ids["apps/web:1.0"], world.ids["runtime/node:20"]}
    # the web layer (512 KiB, with its content on the containerd store); the base, python and node layers stay for
    # the images built on them (listed size minus parent size counted the 4 MiB base once per image)
    assert 512 * KiB <= result["space_reclaimed"] < 2 * 1024 * KiB


def test_space_of_everything_no_container_uses(fresh_world, engine_kind):
    _compare(fresh_world, engine_kind, {"all": True})


def test_each_image_is_inspected_once_by_the_name_its_store_finds_fastest(fresh_world, engine_kind, inspects_asked):
    """The layers of the realistic world (registry names with a port, several tags and repositories, digests,
    dangling builds, intermediates) are read with one inspect per image: on the containerd store a tagged image by
    its first listed tag (``inspect_by_tag``), which must name the listed image so that it is not asked again by
    ID; every other image, and every image on the graph-driver stores, by ID."""
    asked = inspects_asked
    engine = fresh_world.restore()
    listed = engine.api.images(all=True)
    result = run_module("image_remove", {"docker_host": engine.url, "all": True}, check_mode=True)

    assert not result.get("failed") and result["deleted"], result
    assert len(asked) == len(set(asked)) == len(listed), sorted(asked)  # (histories are not inspects)
    expected = []
    for image in listed:
        tags = [tag for tag in image.get("RepoTags") or () if tag != "<none>:<none>"]
        expected.append(tags[0] if tags and engine_kind == "containerd" else image["Id"])
    assert sorted(asked) == sorted(expected)
    if engine_kind == "containerd":
        assert any(":" in name.split("/")[0] for name in asked if not name.startswith("sha256:")), asked
