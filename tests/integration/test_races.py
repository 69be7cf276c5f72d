"""Races: another client changes the engine between image_remove's snapshot and its requests.

The race is injected deterministically: ``_snapshot.read`` is wrapped so that, right after the module has read
the engine (and before it plans and sends anything), the test does what the other client would do. Every test
then checks that the task did not fail, that the result does not claim what someone else did, and that nothing
the user did not name was removed (the engine's state after the run is compared with the exact expected state).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _snapshot
from tests.harness.ansible_runner import run_module
from tests.harness.faults import collections_path
from tests.harness.images import ImageSpec

pytestmark = pytest.mark.engine


@pytest.fixture
def race(monkeypatch):
    """``race(action)``: run ``action()`` once, just after the module's snapshot of the engine."""
    original = _snapshot.read
    pending = []

    def read(client):
        snapshot = original(client)
        while pending:
            pending.pop(0)()
        return snapshot

    monkeypatch.setattr(_snapshot, "read", read)
    return pending.append


def _remove(engine, images, **options):
    return run_module("image_remove", {"docker_host": engine.url, "images": images, **options})


def _without(state, *image_ids):
    return {"images": {i: refs for i, refs in state["images"].items() if i not in image_ids},
            "containers": state["containers"]}


def _refs(engine, image_id):
    return engine.state()["images"].get(image_id)


# -- a container appears -----------------------------------------------------------------------------------------
def test_container_created_after_the_snapshot(clean_engine, images, race):
    """Stopped containers appear on an image named by ID and on one named by its last tag: both are skipped with
    the reason and the engine's message, the task goes on, the other image is deleted, nothing else changes."""
    engine = clean_engine
    by_id, by_tag, other, keep = images.load([ImageSpec(["race-id:1"], "race-id"),
                                              ImageSpec(["race-tag:1"], "race-tag"),
                                              ImageSpec(["race-other:1"], "race-other"),
                                              ImageSpec(["race-keep:1"], "race-keep")])
    before = engine.state()
    created = {}
    race(lambda: created.update({image: images.stopped_container(image) for image in (by_id, by_tag)}))

    result = _remove(engine, [by_id, "race-tag:1", "race-other:1"])

    assert not result.failed, result
    assert result["deleted"] == [other]
    assert "race-id:1" not in result["untagged"] and "race-tag:1" not in result["untagged"]
    skipped = {entry["image"]: entry for entry in result["skipped_images"]}
    for image in (by_id, by_tag):
        assert skipped[image]["reason"] == "container", skipped
        assert created[image] in skipped[image]["containers"]
        assert "changed since the snapshot" in skipped[image]["detail"]
    after = engine.state()
    assert after["images"] == _without(before, other)["images"]
    assert after["containers"] == {cid: image for image, cid in created.items()}
    assert keep in after["images"]


def test_running_container_started_after_the_snapshot(clean_engine, images, race):
    engine = clean_engine
    runnable = images.busybox_image("race-run:1")
    other = images.simple("race-other:1")
    before = engine.state()
    started = []
    race(lambda: started.append(images.running_container(runnable)))

    result = _remove(engine, [runnable, other], force=True, containers="remove")

    assert not result.failed, result
    assert result["deleted"] == [other] and result["containers_removed"] == []
    skipped = {entry["image"]: entry for entry in result["skipped_images"]}
    assert skipped[runnable]["reason"] == "running_container", skipped
    assert engine.state()["images"] == _without(before, other)["images"]
    assert started[0] in engine.state()["containers"]


def test_child_image_built_after_the_snapshot(clean_engine, images, race):
    """A child built on a selected image: the classic store refuses to delete the parent; the containerd store
    deletes it and the child keeps working. Either way the child, which nobody named, stays."""
    engine = clean_engine
    parent = images.scratch("race-parent", tag="race-parent:1")
    other = images.simple("race-other:1")
    children = []
    race(lambda: children.append(images.child("race-parent:1", "race-child", tag="race-child:1")))

    result = _remove(engine, [parent, other])

    assert not result.failed, result
    assert other in result["deleted"]
    after = engine.state()["images"]
    assert after.get(children[0]) is not None and "race-child:1" in after[children[0]]
    if engine.containerd_store:
        assert parent in result["deleted"]
    else:
        skipped = {entry["image"]: entry for entry in result["skipped_images"]}
        assert skipped[parent]["reason"] == "child_images", skipped
        assert parent not in result["deleted"] and after.get(parent) is not None


# -- the image goes away -----------------------------------------------------------------------------------------
def test_images_removed_by_someone_else(clean_engine, images, race):
    """Images named by ID, by tag and by ID prefix are deleted by another client, and one named reference is
    untagged by it: already gone, no error, nothing of it reported as ours, nothing else lost."""
    engine = clean_engine
    by_id, by_tag, by_prefix, partly, other, keep = images.load([
        ImageSpec(["race-gone-id:1", "race-gone-id:2"], "race-gone-id"),
        ImageSpec(["race-gone-tag:1"], "race-gone-tag"),
        ImageSpec(["race-gone-prefix:1"], "race-gone-prefix"),
        ImageSpec(["race-partly:1", "race-partly:2"], "race-partly"),
        ImageSpec(["race-other:1"], "race-other"),
        ImageSpec(["race-keep:1"], "race-keep"),
    ])
    before = engine.state()

    def other_client():
        for image in (by_id, by_tag, by_prefix):
            engine.api.remove_image(image, force=True)
        engine.api.remove_image("race-partly:1")

    race(other_client)
    named = [by_id, "race-gone-tag:1", by_prefix.split(":")[1][:12], "race-partly:1", "race-other:1"]

    result = _remove(engine, named, force=True)  # force: an image with two tags named by ID

    assert not result.failed, result
    assert result["deleted"] == [other], result
    assert result["untagged"] == ["race-other:1"]
    assert result["not_found"] == [] and result["skipped_images"] == []
    after = engine.state()
    assert set(after["images"]) == set(before["images"]) - {by_id, by_tag, by_prefix, other}
    assert after["images"][keep] == before["images"][keep]
    assert "race-partly:2" in after["images"][partly]


# -- a tag moves while the images' layers are read ------------------------------------------------------------------
def test_tag_moved_before_the_inspects_reads_the_listed_images_layers(clean_engine, images, race, inspects_asked):
    """The containerd store inspects a tagged image by its tag (``inspect_by_tag``). Another client moves that tag
    to an image with other layers right after the listing: the answer names the other image, so the image is asked
    for again by ID, and the dry run predicts from its own layers what it predicts without the race. The graph
    driver inspects by ID from the start."""
    engine = clean_engine
    listed, other = images.load([ImageSpec(["race-inspect:1"], b"l" * 300_000),
                                 ImageSpec(["race-inspect-other:1"], b"o" * 700_000)])
    unraced = run_module("image_remove", {"docker_host": engine.url, "images": [listed]}, check_mode=True)
    assert not unraced.failed and unraced["deleted"] == [listed] and unraced["space_reclaimed"] > 0, unraced

    asked = inspects_asked
    asked.clear()  # the raced run's inspects only
    race(lambda: images.tag(other, "race-inspect:1"))  # listed keeps no tag: dangling, still there

    raced = run_module("image_remove", {"docker_host": engine.url, "images": [listed]}, check_mode=True)

    assert not raced.failed, raced
    assert raced["deleted"] == [listed], raced
    assert raced["space_reclaimed"] == unraced["space_reclaimed"], (raced, unraced)
    if engine.kind == "containerd":
        assert asked.index("race-inspect:1") < asked.index(listed), asked
        assert other not in asked, asked
    else:
        assert "race-inspect:1" not in asked and listed in asked, asked
    assert engine.state()["images"][listed] == [], "check mode changed nothing; the other client untagged it"


# -- a tag appears -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("force", [False, True])
def test_tags_added_after_the_snapshot(clean_engine, images, race, force):
    """Only what was planned is untagged: a tag added meanwhile stays, and so does its image. Named by ID, the
    image then has several references: the engine refuses the plain delete that was planned (force is only sent
    where the plan needs it), and the image is skipped rather than losing the new tag with the others."""
    engine = clean_engine
    several, last, id_same, id_other = images.load([
        ImageSpec(["race-several:1", "race-several:2"], "race-several"),
        ImageSpec(["race-last:1"], "race-last"),
        ImageSpec(["race-idsame:1"], "race-idsame"),
        ImageSpec(["race-idother:1"], "race-idother"),
    ])
    added = {several: "race-several:new", last: "race-last:new", id_same: "race-idsame:new",
             id_other: "race-elsewhere:new"}
    race(lambda: [images.tag(image, tag) for image, tag in added.items()])

    result = _remove(engine, ["race-several:1", "race-last:1", id_same, id_other], force=force)

    assert not result.failed, result
    assert sorted(result["untagged"]) == ["race-last:1", "race-several:1"], result
    assert result["deleted"] == [], result
    after = engine.state()["images"]
    for image, tag in added.items():
        assert tag in after[image], (tag, after)
    assert "race-several:2" in after[several] and "race-several:1" not in after[several]
    assert "race-idsame:1" in after[id_same] and "race-idother:1" in after[id_other]
    skipped = {entry["image"]: entry for entry in result["skipped_images"]}
    for image, reason in ((id_same, "multiple_tags"), (id_other, "multiple_repositories")):
        assert skipped[image]["reason"] == reason, skipped
        assert "changed since the snapshot" in skipped[image]["detail"]


# -- two runs at once --------------------------------------------------------------------------------------------
LAUNCHER = """
import os, sys, time, runpy
from ansible_collections.janitor.docker.plugins.module_utils import _snapshot
barrier, me = os.environ["RACE_BARRIER"], os.environ["RACE_ME"]
count = int(os.environ["RACE_COUNT"])
del sys.argv[1:]  # AnsibleModule would take an argument for its arguments file
read = _snapshot.read

def read_then_wait(client):
    snapshot = read(client)
    if barrier:
        open(os.path.join(barrier, me), "w").close()
        deadline = time.monotonic() + 30
        while len(os.listdir(barrier)) < count and time.monotonic() < deadline:
            time.sleep(0.005)
    return snapshot

_snapshot.read = read_then_wait
runpy.run_module("ansible_collections.janitor.docker.plugins.modules.image_remove", run_name="__main__")
"""


def _concurrent_runs(engine, args, barrier, count=2):
    """``count`` image_remove processes started together, as two ansible-playbook runs would start them. With a
    ``barrier`` directory, each waits after its snapshot until all have taken theirs: they plan on the same state
    and send their requests at the same time."""
    payload = json.dumps({"ANSIBLE_MODULE_ARGS": {"docker_host": engine.url, **args}})
    env = {"PYTHONPATH": collections_path(), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env=dict(env, RACE_BARRIER=str(barrier or ""), RACE_ME=str(index),
                                       RACE_COUNT=str(count))) for index in range(count)]
    outputs = [None] * count

    def talk(index):
        outputs[index] = procs[index].communicate(payload, timeout=120)

    threads = [threading.Thread(target=talk, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outputs


def test_two_runs_at_once(clean_engine, images, tmp_path, same_snapshot=True):
    """Two cleanup runs of the same rule on one daemon at once: both succeed and, together, remove exactly what one
    run removes (check mode tells what that is); no removal is reported by both."""
    engine = clean_engine
    base = images.scratch("race-two-base", tag="race-two-base:1")
    child = images.child("race-two-base:1", "race-two-child", tag="race-two-child:1")
    *loaded, keep, used = images.load([ImageSpec([f"race-two-{n}:1", f"race-two-{n}:2"], f"race-two-{n}")
                                       for n in range(4)] + [ImageSpec(["race-two-keep:1"], "race-two-keep"),
                                                             ImageSpec(["race-two-used:1"], "race-two-used")])
    images.stopped_container(used)
    names = ["race-two-child:1", "race-two-base:1", "race-two-used:1", "race-two-0:1", "race-two-1:1"] + \
        loaded[2:] + ["race-two-missing:1"]
    args = {"images": names, "containers": "skip", "parallel": 4, "force": True}
    before = engine.state()
    expected = run_module("image_remove", {"docker_host": engine.url, **args}, check_mode=True)
    assert not expected.failed and expected["deleted"], expected

    outputs = _concurrent_runs(engine, args, tmp_path if same_snapshot else None)
    assert all(out.strip() for out, _err in outputs), outputs
    results = [json.loads(out.strip().splitlines()[-1]) for out, _err in outputs]

    for result, (_out, err) in zip(results, outputs):
        assert not result.get("failed"), (result, err)
        assert "Traceback" not in err
    for key in ("untagged", "deleted", "deleted_layers"):
        union = sorted(set(results[0][key]) | set(results[1][key]))
        # When both runs send a request for the same image at once, the engine may answer one of them with an
        # error although that request did untag or delete (the other request removed something it needed on the
        # way); an error answer lists nothing, so neither run reports that part (the image is gone: not an error,
        # not claimed). Nothing is ever reported twice or beyond the plan, and the engine state below is exact.
        assert set(union) <= set(expected[key]), (key, results)
        assert not set(results[0][key]) & set(results[1][key]), (key, results)
    for result in results:
        # a run that read the engine after the other had finished finds nothing left to do: not found, no error
        assert "race-two-missing:1" in result["not_found"] and set(result["not_found"]) <= set(names)
    if same_snapshot:
        assert results[0]["not_found"] == results[1]["not_found"] == ["race-two-missing:1"]
    after = engine.state()
    assert set(after["images"]) == set(before["images"]) - set(expected["deleted"])
    for image_id, refs in after["images"].items():
        assert sorted(set(before["images"][image_id]) - set(expected["untagged"])) == refs
    assert after["containers"] == before["containers"]
    assert keep in after["images"] and used in after["images"]
    assert child not in after["images"] and base not in after["images"]


# -- a tag moves right before its DELETE ---------------------------------------------------------------------------
def test_tag_moved_to_another_image_right_before_its_delete(clean_engine, images, monkeypatch):
    """Another client moves the tag we remove to a new image right before our DELETE of it, so the engine untags it
    there and deletes the new image. What remains possible (no engine API deletes a tag only if it still names a
    given image) is reported exactly: the deleted image under ``deleted`` (not ``deleted_layers``), with a warning
    naming the image and the reference; the image the tag named before stays."""
    from ansible.module_utils.basic import AnsibleModule

    from ansible_collections.janitor.docker.plugins.module_utils import _transport

    engine = clean_engine
    old, new = images.load([ImageSpec(["race-moved:1"], "race-moved-old"),
                            ImageSpec(["race-moved-new:1"], "race-moved-new")])
    original = _transport._UnixCalls.remove_image
    moved = []

    def remove_image(self, image, *args, **kwargs):
        if image == "race-moved:1" and not moved:
            moved.append(image)
            images.tag(new, "race-moved:1")
            engine.cli("rmi", "race-moved-new:1")  # only untags: the new image keeps race-moved:1
        return original(self, image, *args, **kwargs)

    warnings = []
    monkeypatch.setattr(_transport._UnixCalls, "remove_image", remove_image)
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, text, **kwargs: warnings.append(text))

    result = _remove(engine, ["race-moved:1"])

    assert moved and not result.failed, result
    assert result["untagged"] == ["race-moved:1"], result
    assert result["deleted"] == [new], result
    assert new not in result["deleted_layers"] and old not in result["deleted_layers"], result
    assert any(new in text and "race-moved:1" in text and "another client" in text for text in warnings), warnings
    after = engine.state()["images"]
    assert new not in after and old in after and after[old] == [], after
