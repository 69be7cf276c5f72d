"""Image mounts (``--mount type=image,source=IMG,target=/x``, Docker 28.0+): a container that mounts an image holds
it like its own image (issue 16, item 9).

What the engines do (Docker 28.5, both stores; observed here, the CLI is the reference): removing the mounted
image's last reference without force is refused ("container ... is using its referenced image"); one of several
tags is untagged; by ID the engine deletes it anyway, which image_remove never does behind a container's back: its
``containers`` policy treats a mounting container like a container of the image. The legacy engine (20.10) has no
image mounts.
"""

from __future__ import annotations

import pytest

from tests.harness.ansible_runner import run_module

pytestmark = pytest.mark.engine


def _mounting(engine, images, *tags, run=False):
    """An image tagged ``tags`` and a container (of busybox) that mounts it by its first tag."""
    image_id = images.simple(*tags, content=f"mounted {tags[0]} {images.unique()}")
    busybox = images.busybox_image()
    args = ["run", "-d"] if run else ["create"]
    proc = engine.cli(*args, "--network", "none", "--mount", f"type=image,source={tags[0]},target=/x", busybox,
                      "/bin/busybox", "sleep", "300", check=False)
    if engine.kind == "legacy":
        return image_id, proc
    assert proc.returncode == 0, proc.stderr
    return image_id, proc.stdout.strip().splitlines()[-1]


def _both(engine, args):
    """Check mode, then the real run: the same result, and check mode changed nothing."""
    full = {"docker_host": engine.url, **args}
    before = engine.state()
    check = run_module("image_remove", full, check_mode=True)
    assert engine.state() == before
    real = run_module("image_remove", full)
    keys = ("failed", "untagged", "deleted", "skipped_images", "containers_removed")
    assert {k: check.get(k) for k in keys} == {k: real.get(k) for k in keys}, (check, real)
    return real


def test_legacy_engine_has_no_image_mounts(clean_engine, images):
    if clean_engine.kind != "legacy":
        pytest.skip("image mounts exist from Docker 28.0")
    _image_id, proc = _mounting(clean_engine, images, "mnt/legacy:1")
    assert proc.returncode != 0 and "image" in proc.stderr.lower(), proc


def _mount_engine(engine):
    if engine.kind == "legacy":
        pytest.skip("the legacy engine (20.10) has no image mounts")


def test_mounted_image_last_tag_is_refused_like_docker_rmi(clean_engine, images):
    _mount_engine(clean_engine)
    image_id, container = _mounting(clean_engine, images, "mnt/one:1")
    before = clean_engine.state()
    # the reference: docker rmi refuses
    proc = clean_engine.cli("rmi", "mnt/one:1", check=False)
    assert proc.returncode != 0 and "is using its referenced image" in proc.stderr
    assert clean_engine.state() == before
    # images entries default to containers=fail, like docker rmi: the task fails, naming the container
    result = _both(clean_engine, {"images": ["mnt/one:1"]})
    assert result.failed and container[:12] in result["msg"] and image_id in result["msg"]
    assert clean_engine.state() == before
    # containers=skip: left, reported with its container
    result = _both(clean_engine, {"images": ["mnt/one:1"], "containers": "skip"})
    assert [(s["image"], s["reason"], s["containers"]) for s in result["skipped_images"]] == [
        (image_id, "container", [container])]
    assert clean_engine.state() == before
    # by ID the engine would delete it (no conflict on either store): image_remove does not pass over the container
    result = _both(clean_engine, {"images": [image_id], "containers": "skip"})
    assert result["deleted"] == [] and result["skipped_images"][0]["reason"] == "container"
    assert clean_engine.state() == before


def test_one_of_two_tags_of_a_mounted_image_is_untagged(clean_engine, images):
    _mount_engine(clean_engine)
    image_id, _container = _mounting(clean_engine, images, "mnt/two:1", "mnt/two:2")
    result = _both(clean_engine, {"images": ["mnt/two:1"]})
    assert not result.failed and result["untagged"] == ["mnt/two:1"] and result["deleted"] == []
    proc = clean_engine.cli("rmi", "mnt/two:2", check=False)  # the engine agrees that the last one is held
    assert proc.returncode != 0 and "is using its referenced image" in proc.stderr
    assert image_id in clean_engine.state()["images"]


def test_containers_remove_removes_the_mounting_container_first(clean_engine, images):
    _mount_engine(clean_engine)
    image_id, container = _mounting(clean_engine, images, "mnt/rm:1")
    result = _both(clean_engine, {"images": ["mnt/rm:1"], "containers": "remove"})
    assert result["containers_removed"] == [container] and result["deleted"] == [image_id]
    state = clean_engine.state()
    assert image_id not in state["images"] and container not in state["containers"]


def test_running_container_mount_is_never_passed_over(clean_engine, images):
    _mount_engine(clean_engine)
    image_id, container = _mounting(clean_engine, images, "mnt/run:1", run=True)
    result = _both(clean_engine, {"images": ["mnt/run:1"], "containers": "remove", "force": True})
    assert result["skipped_images"][0]["reason"] == "running_container" and result["deleted"] == []
    assert image_id in clean_engine.state()["images"] and container in clean_engine.state()["containers"]


def test_all_leaves_a_mounted_image(clean_engine, images):
    """all: true leaves a mounted image (reason container), like docker image prune -a on the graph-driver store;
    the containerd store's prune -a deletes it (it checks only the containers' own images), which we do not
    follow: a container would lose its mount's image."""
    _mount_engine(clean_engine)
    image_id, container = _mounting(clean_engine, images, "mnt/all:1")
    result = _both(clean_engine, {"all": True, "exclude": ["janitor-busybox"]})
    assert not result.failed
    assert [(s["image"], s["reason"], s["containers"]) for s in result["skipped_images"]] == [
        (image_id, "container", [container])]
    assert image_id in clean_engine.state()["images"]
    clean_engine.cli("image", "prune", "-a", "-f")
    kept = image_id in clean_engine.state()["images"]
    assert kept is (clean_engine.kind != "containerd")
