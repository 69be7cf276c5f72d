"""The pure model of the engine's delete rules: fixed cases per store kind, and random graphs (hypothesis)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.janitor.docker.plugins.module_utils import _planner, _references, _result
from ansible_collections.janitor.docker.plugins.module_utils._layers import LayerTable, chain_ids
from ansible_collections.janitor.docker.plugins.module_utils._errors import JanitorError
from ansible_collections.janitor.docker.plugins.module_utils._snapshot import (
    CLASSIC,
    CONTAINERD,
    ContainerRecord,
    ImageRecord,
    Snapshot,
    repository_of,
)

STORES = (CLASSIC, CONTAINERD)


def iid(n):
    return "sha256:" + hashlib.sha256(f"image {n}".encode()).hexdigest()


def dig(n):
    return "sha256:" + hashlib.sha256(f"digest {n}".encode()).hexdigest()


def run(snapshot, values, layers=None, **policy):
    resolution = _references.resolve(snapshot, values)
    plan = _planner.plan(snapshot, resolution.requests, _planner.Policy(**policy), not_found=resolution.not_found)
    return plan, _result.build(plan, layers=None if layers is None else LayerTable.from_diff_ids(layers))


def stopped(n, image):
    return ContainerRecord(id=f"{n:064x}", image_id=image, state="exited", name=f"c{n}")


def running(n, image):
    return ContainerRecord(id=f"{n:064x}", image_id=image, state="running", name=f"r{n}")


# -- fixed cases -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("store", STORES)
def test_three_tags_removed_one_by_one(store):
    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=("a:1", "a:2", "b:1"), size=10),), store=store)
    _plan, first = run(snapshot, ["a:1"])
    assert (first["untagged"], first["deleted"], first["images"][0]["action"]) == (["a:1"], [], "untagged")
    _plan, both = run(snapshot, ["a:1", "a:2"])
    assert (both["untagged"], both["deleted"]) == (["a:1", "a:2"], [])
    _plan, all_three = run(snapshot, ["a:1", "a:2", "b:1"])
    assert (all_three["untagged"], all_three["deleted"]) == (["a:1", "a:2", "b:1"], [iid(1)])
    assert all_three["space_reclaimed"] == 10
    assert all_three["diff"] == {"before": {"images": {iid(1): ["a:1", "a:2", "b:1"]}}, "after": {"images": {}}}


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("tags, reason", [(("a:1", "b:1"), "multiple_repositories"), (("a:1", "a:2"), "multiple_tags")])
def test_id_with_several_tags_needs_force(store, tags, reason):
    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=tags),), store=store)
    plan, result = run(snapshot, [iid(1)])
    assert plan.steps == [] and not result["changed"]
    assert result["skipped_images"] == [{"image": iid(1), "references": list(tags), "reason": reason,
                                         "containers": []}]
    plan, result = run(snapshot, [iid(1)], force=True)
    assert plan.steps[0].force is True
    assert (result["untagged"], result["deleted"], result["skipped_images"]) == (sorted(tags), [iid(1)], [])


def test_classic_tag_removal_takes_the_repository_digests():
    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=("r/x:1", "y:1"), digests=(f"r/x@{dig(1)}",)),))
    _plan, result = run(snapshot, ["r/x:1"])
    assert result["untagged"] == ["r/x:1", f"r/x@{dig(1)}"]
    assert result["diff"]["after"]["images"] == {iid(1): ["y:1"]}


def test_classic_digest_removal_untags_only_the_digest():
    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=("r/x:1", "r/x:2"), digests=(f"r/x@{dig(1)}",)),))
    _plan, result = run(snapshot, [f"r/x@{dig(1)}"])
    assert (result["untagged"], result["deleted"]) == ([f"r/x@{dig(1)}"], [])


def test_containerd_digest_removal_untags_every_tag_of_the_repository():
    image = ImageRecord(iid(1), tags=("r/x:1", "r/x:2", "y:1"), digests=(f"y@{iid(1)}",))
    snapshot = Snapshot(images=(image,), store=CONTAINERD)
    _plan, result = run(snapshot, [f"r/x@{iid(1)}"])
    assert (result["untagged"], result["deleted"]) == (["r/x:1", "r/x:2"], [])
    _plan, result = run(snapshot, [f"r/x@{iid(1)}", "y:1"])
    assert (result["untagged"], result["deleted"]) == (["r/x:1", "r/x:2", "y:1"], [iid(1)])


def test_containerd_listing_moves_its_one_digest_to_the_repository_that_sorts_last():
    """Observed on 28.5: the one listed ``<repo>@<id>`` is the remaining repository whose full name sorts last."""
    image = ImageRecord(iid(1), tags=("a/b:1", "b:1", "localhost:5000/a:1", "quay.io/x/y:1", "zz:1"),
                        digests=(f"quay.io/x/y@{iid(1)}",))
    snapshot = Snapshot(images=(image,), store=CONTAINERD)
    _plan, result = run(snapshot, ["quay.io/x/y:1"])
    assert result["diff"]["after"]["images"] == {
        iid(1): sorted(["a/b:1", "b:1", "localhost:5000/a:1", f"localhost:5000/a@{iid(1)}", "zz:1"])}
    _plan, result = run(snapshot, ["quay.io/x/y:1", "localhost:5000/a:1"])
    assert result["diff"]["after"]["images"] == {iid(1): ["a/b:1", "b:1", "zz:1", f"zz@{iid(1)}"]}
    _plan, result = run(snapshot, ["b:1"])  # the listed digest's repository keeps its tag: nothing moves
    assert result["diff"]["after"]["images"] == {
        iid(1): sorted(["a/b:1", "localhost:5000/a:1", "quay.io/x/y:1", f"quay.io/x/y@{iid(1)}", "zz:1"])}


def parent_child(store):
    return Snapshot(images=(
        ImageRecord(iid(1), tags=("p:1",), size=100),
        ImageRecord(iid(2), parent=iid(1), tags=("c:1",), size=150),
    ), store=store)


def test_classic_parent_by_id_is_blocked_by_its_child():
    plan, result = run(parent_child(CLASSIC), [iid(1)], force=True)
    assert plan.steps == []
    assert result["skipped_images"][0]["reason"] == "child_images"


def test_classic_parent_by_tag_is_untagged_and_kept():
    _plan, result = run(parent_child(CLASSIC), ["p:1"])
    assert (result["untagged"], result["deleted"]) == (["p:1"], [])
    assert result["skipped_images"] == [{"image": iid(1), "references": ["p:1"], "reason": "child_images", "containers": []}]
    assert result["images"][0]["action"] == "untagged"


@pytest.mark.parametrize("store", STORES)
def test_child_then_parent(store):
    plan, result = run(parent_child(store), ["p:1", "c:1"])
    assert [s.target for s in plan.steps] == ["c:1", "p:1"]  # the child first
    assert result["deleted"] == sorted([iid(1), iid(2)])
    assert result["skipped_images"] == []
    assert result["space_reclaimed"] == 150  # 50 added by the child + 100 of the parent
    assert len({s.group for s in plan.steps}) == 1


@pytest.mark.parametrize("store", STORES)
def test_untagged_parent_is_pruned(store):
    snapshot = Snapshot(images=(ImageRecord(iid(1)), ImageRecord(iid(2), parent=iid(1), tags=("c:1",))), store=store)
    _plan, result = run(snapshot, ["c:1"])
    assert result["deleted"] == sorted([iid(1), iid(2)])
    _plan, result = run(snapshot, ["c:1"], prune=False)
    assert result["deleted"] == [iid(2)]


def test_classic_prune_stops_at_a_parent_with_another_child():
    snapshot = Snapshot(images=(ImageRecord(iid(1)), ImageRecord(iid(2), parent=iid(1), tags=("c:1",)),
                                ImageRecord(iid(3), parent=iid(1), tags=("d:1",))))
    _plan, result = run(snapshot, ["c:1"])
    assert result["deleted"] == [iid(2)]


def test_containerd_parent_by_id_is_deleted_despite_its_child():
    _plan, result = run(parent_child(CONTAINERD), [iid(1)])
    assert (result["untagged"], result["deleted"], result["skipped_images"]) == (["p:1"], [iid(1)], [])


def test_containerd_parent_by_tag_is_reported_deleted_and_stays_listed():
    plan, result = run(parent_child(CONTAINERD), ["p:1"])
    assert (result["untagged"], result["deleted"]) == (["p:1"], [iid(1)])
    assert iid(1) in plan.after.by_id() and plan.after.by_id()[iid(1)].tags == ()


def builder_chain(store, gone=()):
    """Classic-builder images: 1 (a:1) <- 2 (the intermediate of b's build) <- 3 (b:1)."""
    images = (ImageRecord(iid(1), tags=("a:1",)), ImageRecord(iid(2), parent=iid(1)),
              ImageRecord(iid(3), parent=iid(2), tags=("b:1",)))
    return Snapshot(images=tuple(i for i in images if i.id not in gone), store=store)


@pytest.mark.parametrize("store", STORES)
def test_intermediate_goes_with_its_child_when_the_chain_is_whole(store):
    _plan, result = run(builder_chain(store), ["b:1"])
    assert result["deleted"] == sorted([iid(2), iid(3)])


def test_containerd_parent_walk_needs_every_ancestor():
    """containerd reads the whole Parent chain before deleting; an ancestor already gone (a:1 deleted earlier,
    which that store allows despite its child) cancels the walk: the intermediate stays. classic walks up to the
    gap."""
    _plan, result = run(builder_chain(CONTAINERD, gone=(iid(1),)), ["b:1"])
    assert result["deleted"] == [iid(3)]
    _plan, result = run(builder_chain(CLASSIC, gone=(iid(1),)), ["b:1"])
    assert result["deleted"] == sorted([iid(2), iid(3)])
    # in one run, a:1 named with b:1: children first, so the chain is whole when b:1 goes
    _plan, result = run(builder_chain(CONTAINERD), ["a:1", "b:1"])
    assert result["deleted"] == sorted([iid(1), iid(2), iid(3)])


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("state", ["exited", "running"])
def test_container_policies(store, state):
    container = ContainerRecord(id="f" * 64, image_id=iid(1), state=state, name="web")
    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=("a:1",)), ImageRecord(iid(2), tags=("b:1",))),
                        containers=(container,), store=store)
    with pytest.raises(JanitorError) as info:
        run(snapshot, ["a:1", "b:1"])
    assert iid(1) in info.value.message and "f" * 12 in info.value.message and "web" in info.value.message
    reason = "running_container" if state == "running" else "container"
    plan, result = run(snapshot, ["a:1", "b:1"], containers="skip")
    assert result["skipped_images"] == [{"image": iid(1), "references": ["a:1"], "reason": reason, "containers": ["f" * 64]}]
    assert result["deleted"] == [iid(2)] and result["untagged"] == ["b:1"]
    plan, result = run(snapshot, ["a:1", "b:1"], containers="remove")
    if state == "running":
        assert result["skipped_images"][0]["reason"] == "running_container" and result["containers_removed"] == []
        assert result["deleted"] == [iid(2)]
    else:
        assert [s.action for s in plan.steps][0] == "remove_container"
        assert result["containers_removed"] == ["f" * 64]
        assert result["deleted"] == sorted([iid(1), iid(2)]) and result["skipped_images"] == []


@pytest.mark.parametrize("store", STORES)
def test_one_of_several_tags_of_a_used_image_is_allowed(store):
    container = ContainerRecord(id="f" * 64, image_id=iid(1), state="running")
    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=("a:1", "a:2")),), containers=(container,), store=store)
    _plan, result = run(snapshot, ["a:1"])
    assert result["untagged"] == ["a:1"] and result["skipped_images"] == []


def test_classic_released_layers_need_rootfs():
    snapshot = Snapshot(images=(
        ImageRecord(iid(1), tags=("p:1",)),
        ImageRecord(iid(2), parent=iid(1), tags=("c:1",)),
        ImageRecord(iid(3), tags=("other:1",)),
    ))
    layers = {iid(1): ("sha256:" + "1" * 64,), iid(2): ("sha256:" + "1" * 64, "sha256:" + "2" * 64),
              iid(3): ("sha256:" + "1" * 64, "sha256:" + "3" * 64)}
    chains = chain_ids(layers[iid(2)])
    assert chains[0] == "sha256:" + "1" * 64
    assert chains[1] == "sha256:" + hashlib.sha256(f"sha256:{'1' * 64} sha256:{'2' * 64}".encode()).hexdigest()
    _plan, result = run(snapshot, ["c:1", "p:1"], layers=layers)
    assert result["deleted_layers"] == [chains[1]]  # the base layer stays for other:1
    plan, result = run(snapshot, ["c:1", "p:1", "other:1"], layers=layers)
    assert result["deleted_layers"] == sorted(set(chains) | set(chain_ids(layers[iid(3)])))


def test_container_keeps_layers_of_a_force_deleted_image():
    container = stopped(1, iid(1))
    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=("a:1",)),), containers=(container,))
    _plan, result = run(snapshot, ["a:1"], layers={iid(1): (dig(1),)}, containers="remove")
    assert result["deleted_layers"] == [dig(1)]


def test_policy_value_is_checked():
    with pytest.raises(JanitorError) as info:
        _planner.plan(Snapshot(), [], _planner.Policy(containers="nuke"))
    assert "'nuke'" in info.value.message and "fail, skip, remove" in info.value.message


# -- random graphs -----------------------------------------------------------------------------------------------
REPOS = ("r0", "r1", "lh:5000/r2")
TAGS = ("t0", "t1")


@st.composite
def graphs(draw):
    store = draw(st.sampled_from(STORES))
    count = draw(st.integers(1, 7))
    free_tags = [f"{r}:{t}" for r in REPOS for t in TAGS]
    images = []
    for n in range(count):
        parent = draw(st.sampled_from([""] + [img.id for img in images]))
        tags = tuple(t for t in free_tags if draw(st.booleans()) and draw(st.booleans()))
        free_tags = [t for t in free_tags if t not in tags]
        digests = ()
        if store == CLASSIC:
            repos = sorted({repository_of(t) for t in tags})
            digests = tuple(f"{r}@{dig(n)}" for r in repos if draw(st.booleans()))
        else:
            digests = tuple(f"{r}@{iid(n)}" for r in sorted({repository_of(t) for t in tags})[:1])
        images.append(ImageRecord(iid(n), parent=parent, tags=tags, digests=digests, size=draw(st.integers(0, 99))))
    containers = []
    for n, image in enumerate(images):
        state = draw(st.sampled_from(["none", "none", "exited", "running"]))
        if state != "none":
            containers.append(ContainerRecord(id=f"{n:064x}", image_id=image.id, state=state))
    snapshot = Snapshot(images=tuple(images), containers=tuple(containers), store=store)
    names = [ref for img in images for ref in img.references] + [img.id for img in images] + ["missing:1"]
    values = draw(st.lists(st.sampled_from(names), max_size=8))
    policy = _planner.Policy(force=draw(st.booleans()), prune=draw(st.booleans()),
                             containers=draw(st.sampled_from(["skip", "remove"])))
    layers = {img.id: (dig(f"layer {img.parent}"), dig(f"layer {img.id}")) if img.parent else (dig(f"layer {img.id}"),)
              for img in images}
    return snapshot, values, policy, layers


def plan_for(snapshot, values, policy, layers):
    resolution = _references.resolve(snapshot, values)
    return _planner.plan(snapshot, resolution.requests, policy, not_found=resolution.not_found)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_random_graph_invariants(case):
    snapshot, values, policy, layers = case
    plan = plan_for(snapshot, values, policy, layers)
    result = _result.build(plan, layers=LayerTable.from_diff_ids(layers))
    by_id = snapshot.by_id()
    running_images = {c.image_id for c in snapshot.containers if c.running}
    resolution = _references.resolve(snapshot, values)
    asked_refs = {r.target for r in resolution.requests if r.kind == "reference"}
    asked_ids = {r.image_id for r in resolution.requests if r.kind == "id"}
    asked_images = {r.image_id for r in resolution.requests}

    # never delete an image a running container uses, never remove a running container
    assert not running_images & set(result["deleted"])
    running_ids = {c.id for c in snapshot.containers if c.running}
    assert not running_ids & set(result["containers_removed"])
    # a stopped container is removed only with containers=remove, for an image it was asked to remove
    if policy.containers != "remove":
        assert result["containers_removed"] == []
    # never lose a reference not asked for
    for ref in result["untagged"]:
        owner = next(img for img in snapshot.images if ref in img.references)
        repo = repository_of(ref)
        assert (ref in asked_refs or owner.id in asked_ids
                or any(repository_of(a) == repo and a in owner.references for a in asked_refs)), ref
    # deleted images were asked for, or untagged in the snapshot (a pruned parent)
    for image_id in result["deleted"]:
        assert image_id in asked_images or not by_id[image_id].references, image_id
    # skipped images keep their references (containerd: the tags; its digests are derived from them, and one goes
    # unreported with its repository's last tag)
    after = plan.after.by_id()

    def refs(image):
        return set(image.tags if snapshot.store == CONTAINERD else image.references)

    for entry in result["skipped_images"]:
        if entry["reason"] in ("container", "running_container"):
            assert refs(after[entry["image"]]) >= refs(by_id[entry["image"]]) - set(result["untagged"])
        if entry["reason"] in ("multiple_repositories", "multiple_tags"):
            assert refs(after[entry["image"]]) >= refs(by_id[entry["image"]]) - set(
                result["untagged"]) and set(after[entry["image"]].references)
    # every result key is there, and changed is consistent
    assert set(_result.RESULT_KEYS) <= set(result)
    assert result["changed"] == bool(plan.steps)
    # idempotency: planning on the predicted state changes nothing
    again = plan_for(plan.after, values, policy, layers)
    assert again.steps == [], [(s.action, s.target) for s in again.steps]
    assert _result.build(again)["changed"] is False


@settings(max_examples=150, deadline=None, database=None)
@given(graphs())
def test_random_graph_fail_policy_changes_nothing_or_raises(case):
    snapshot, values, policy, layers = case
    policy = _planner.Policy(force=policy.force, prune=policy.prune, containers="fail")
    try:
        plan = plan_for(snapshot, values, policy, layers)
    except JanitorError as exc:
        assert "nothing was removed" in exc.message
        return
    used = {c.image_id for c in snapshot.containers}
    assert not used & set(_result.build(plan)["deleted"])


@pytest.mark.parametrize("store", STORES)
def test_containers_are_not_removed_when_the_image_would_stay(store):
    snapshot = Snapshot(images=(
        ImageRecord(iid(1), tags=("p:1",)),
        ImageRecord(iid(2), parent=iid(1), tags=("c:1",)),
    ), containers=(stopped(1, iid(1)),), store=store)
    plan, result = run(snapshot, [iid(1)], containers="remove", force=True)
    if store == CLASSIC:  # the child keeps the parent: its container stays too
        assert result["containers_removed"] == [] and plan.steps == []
        assert result["skipped_images"][0]["reason"] == "child_images"
    else:
        assert result["containers_removed"] == [f"{1:064x}"] and result["deleted"] == [iid(1)]


@pytest.mark.parametrize("store", STORES)
def test_forced_id_removal_removes_stopped_containers_first(store):
    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=("a:1", "b:1")),), containers=(stopped(1, iid(1)),),
                        store=store)
    plan, result = run(snapshot, [iid(1)], containers="remove", force=True)
    assert [s.action for s in plan.steps] == ["remove_container", "remove_image"]
    assert result["containers_removed"] == [f"{1:064x}"] and result["deleted"] == [iid(1)]
    _plan, result = run(snapshot, [iid(1)], containers="skip", force=True)
    assert result["deleted"] == [] and result["skipped_images"][0]["reason"] == "container"


def test_force_untags_one_reference_of_an_image_a_container_uses():
    """classic: tag and digest of one repository count as one reference; the engine wants force to untag."""
    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=("r/x:1",), digests=(f"r/x@{dig(1)}",)),),
                        containers=(stopped(1, iid(1)),))
    plan, result = run(snapshot, [f"r/x@{dig(1)}"], containers="skip", force=True)
    assert plan.steps[0].force is True
    assert (result["untagged"], result["deleted"], result["skipped_images"]) == ([f"r/x@{dig(1)}"], [], [])
    _plan, result = run(snapshot, [f"r/x@{dig(1)}"], containers="skip")
    assert result["untagged"] == [] and result["skipped_images"][0]["reason"] == "container"


# -- the cyclic garbage collector is paused while planning, and always restored -------------------------------
def test_planning_pauses_the_cyclic_collector_and_restores_it(monkeypatch):
    import gc

    seen = []
    original = _planner._State.__init__

    def spy(self, *args, **kwargs):
        seen.append(gc.isenabled())
        original(self, *args, **kwargs)

    monkeypatch.setattr(_planner._State, "__init__", spy)
    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=("a:1",)),),
                        containers=(stopped(1, iid(1)),))
    assert gc.isenabled()
    plan, result = run(snapshot, ["a:1"], containers="skip")
    assert seen == [False] and gc.isenabled() and result["skipped_images"]
    with pytest.raises(JanitorError):
        run(snapshot, ["a:1"])  # containers=fail raises from inside the planner
    assert gc.isenabled()
    gc.disable()
    try:
        run(snapshot, ["a:1"], containers="skip")
        assert not gc.isenabled()  # a caller that paused it keeps it paused
    finally:
        gc.enable()


def test_image_mounts_are_read_from_the_listing():
    from ansible_collections.janitor.docker.plugins.module_utils._snapshot import container_from_api

    record = container_from_api({"Id": "c" * 64, "ImageID": iid(9), "State": "exited", "Names": ["/m"], "Mounts": [
        {"Type": "image", "Name": "mnt:1", "Source": "/var/lib/docker/overlay2/x/merged", "Destination": "/x"},
        {"Type": "volume", "Name": "data", "Destination": "/data"}]})
    assert record.mounts == ("mnt:1",)
    assert container_from_api({"Id": "d" * 64, "Mounts": None}).mounts == ()


@pytest.mark.parametrize("store", STORES)
def test_a_mounting_container_holds_the_image_like_its_own(store):
    container = ContainerRecord(id="c" * 64, image_id=iid(9), state="exited", name="m", mounts=("mnt:1",))
    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=("mnt:1", "mnt:2")), ImageRecord(iid(9), tags=("bb:1",))),
                        containers=(container,), store=store)
    _plan, result = run(snapshot, ["mnt:1"])  # one of two tags: allowed
    assert result["untagged"] == ["mnt:1"]
    with pytest.raises(JanitorError, match="c" * 12):
        run(snapshot, [iid(1)])
    _plan, result = run(snapshot, [iid(1)], containers="skip", force=True)
    assert result["deleted"] == [] and result["skipped_images"][0]["containers"] == ["c" * 64]
    plan, result = run(snapshot, ["mnt:1", "mnt:2"], containers="remove")
    assert result["containers_removed"] == ["c" * 64] and result["deleted"] == [iid(1)]
    gone = ContainerRecord(id="e" * 64, image_id=iid(9), mounts=("nosuch:1", "bad name"))
    snapshot = Snapshot(images=snapshot.images, containers=(gone,), store=store)
    _plan, result = run(snapshot, [iid(1)], force=True)
    assert result["deleted"] == [iid(1)]


@pytest.mark.parametrize("store", STORES)
def test_all_removes_each_reference_like_image_prune(store):
    """all/filters: each reference, then the image with its last one, without force (docker image prune -a)."""
    from ansible_collections.janitor.docker.plugins.module_utils._snapshot import Request

    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=("web:1.5", "web:latest")),
                                ImageRecord(iid(2), tags=("a:1", "b:1"))), store=store)
    requests = [Request("id", iid(1), iid(1), given="all", rule="all"), Request("id", iid(2), iid(2), rule="all")]
    plan = _planner.plan(snapshot, requests, _planner.Policy())
    result = _result.build(plan)
    # force only on the containerd store, where it deletes a parent's last name instead of keeping it listed, as
    # that store's prune deletes what it selected; no container uses these images
    forced = store == CONTAINERD
    expected = [("web:1.5", forced), ("web:latest", forced), ("a:1", forced), ("b:1", forced)]
    assert [(s.target, s.force) for s in plan.steps] == expected
    assert result["deleted"] == sorted([iid(1), iid(2)]) and result["skipped_images"] == []
    assert {s.rule for s in plan.steps} == {"all"}


def _index_data(*platforms_available):
    return {"Manifests": [{"ID": dig(arch), "Kind": "image", "Available": ok,
                           "Descriptor": {"platform": {"os": "linux", "architecture": arch}}}
                          for arch, ok in platforms_available] + [{"ID": dig("att"), "Kind": "attestation"}]}


def test_containerd_platform_removal_needs_force_and_shares_content():
    from ansible_collections.janitor.docker.plugins.module_utils._snapshot import Request

    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=("a:1",)), ImageRecord(iid(2), tags=("b:1",))),
                        store=CONTAINERD)
    data = {iid(1): _index_data(("amd64", True), ("arm64", True)), iid(2): _index_data(("arm64", True))}
    requests = [Request("reference", "a:1", iid(1), given="a:1"), Request("reference", "b:1", iid(2), given="b:1")]
    arm = (_planner.platform_key("linux", "arm64", "v8"),)
    with pytest.raises(JanitorError, match="force"):
        _planner.plan_platforms(snapshot, requests, arm, data, _planner.Policy(), _planner.CONTAINERD_RULES)
    plan = _planner.plan_platforms(snapshot, requests, arm, data, _planner.Policy(force=True),
                                   _planner.CONTAINERD_RULES)
    result = _result.build(plan)
    # b:1 shares the arm64 manifest: gone with a:1's request, nothing more to send
    assert [(s.target, s.platform, s.deleted) for s in plan.steps] == [("a:1", "linux/arm64", [dig("arm64")])]
    assert result["deleted_platforms"] == [{"image": iid(1), "platform": "linux/arm64", "manifest": dig("arm64")}]
    assert result["deleted"] == [] and result["changed"] is True
    assert plan.steps[0].platforms == ('{"os":"linux","architecture":"arm64"}',)
    with pytest.raises(JanitorError, match="linux/s390x.*linux/amd64, linux/arm64"):
        _planner.plan_platforms(snapshot, requests[:1], (("linux", "s390x", ""),), data, _planner.Policy(force=True),
                                _planner.CONTAINERD_RULES)


def test_classic_platform_is_the_image_own():
    from ansible_collections.janitor.docker.plugins.module_utils._snapshot import Request

    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=("a:1",)),), store=CLASSIC)
    data = {iid(1): {"Os": "linux", "Architecture": "amd64", "Variant": None}}
    requests = [Request("reference", "a:1", iid(1), given="a:1")]
    amd = ("linux", "amd64", "")
    plan = _planner.plan_platforms(snapshot, requests, (amd,), data, _planner.Policy(), _planner.CLASSIC_RULES)
    assert _result.build(plan)["deleted"] == [iid(1)] and plan.steps[0].platforms
    with pytest.raises(JanitorError, match="one platform"):
        _planner.plan_platforms(snapshot, requests, (amd, ("linux", "arm64", "")), data, _planner.Policy(),
                                _planner.CLASSIC_RULES)
    with pytest.raises(JanitorError, match="is linux/amd64, not linux/arm64"):
        _planner.plan_platforms(snapshot, requests, (("linux", "arm64", ""),), data, _planner.Policy(),
                                _planner.CLASSIC_RULES)


@pytest.mark.parametrize("store", STORES)
def test_a_plan_made_before_is_the_plan_with_not_found_and_protected(store):
    snapshot = Snapshot(images=(ImageRecord(iid(1)), ImageRecord(iid(2), parent=iid(1), tags=("c:1",))), store=store)
    requests = _references.resolve(snapshot, ["c:1"]).requests
    made = _planner.plan(snapshot, requests)
    again = _planner.planned(made, not_found=["gone:1"])
    assert again == _planner.plan(snapshot, requests, not_found=["gone:1"])
    assert again.not_found == ["gone:1"] and made.not_found == []
    with pytest.raises(JanitorError) as info:  # the untagged parent goes with c:1: an exclude refuses it
        _planner.planned(made, protected={iid(1): "base"})
    with pytest.raises(JanitorError) as direct:
        _planner.plan(snapshot, requests, protected={iid(1): "base"})
    assert info.value.message == direct.value.message
