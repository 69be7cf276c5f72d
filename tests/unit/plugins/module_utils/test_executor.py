"""The executor against a fake engine: answers become the result; 404, 409 and daemon errors mid-run."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _errors, _executor, _planner, _references, _result
from ansible_collections.janitor.docker.plugins.module_utils._snapshot import (
    CONTAINERD, ContainerRecord, ImageRecord, Request, Snapshot,
)


def iid(n):
    return "sha256:" + hashlib.sha256(f"image {n}".encode()).hexdigest()


def api_error(status, message, target="img"):
    """The error the transport raises for an error answer to ``DELETE /images/<target>``."""
    return _errors.EngineAPIError(f"removing image {target}: {message}", status=status, explanation=message)


class FakeEngine:
    """Answers what the plan predicts, unless told otherwise for a target; records the calls."""

    def __init__(self, plan, overrides=None, delay=0.0, listing=None, manifests=None):
        self.listing = listing  # what images(all=True) lists
        self.manifests = manifests or {}  # image ID -> what image_manifests answers (or the error it raises)
        self.predicted = {step.target: step for step in plan.steps}
        self.overrides = overrides or {}
        self.calls = []
        self.delay = delay
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def remove_image(self, image, force=False, noprune=False, platforms=()):
        with self.lock:
            self.calls.append(("image", image, force, noprune) + ((platforms,) if platforms else ()))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay)
            override = self.overrides.get(image)
            if isinstance(override, Exception):
                raise override
            if override is not None:
                return override
            step = self.predicted[image]
            return [{"Untagged": r} for r in step.untagged] + [{"Deleted": d} for d in step.deleted]
        finally:
            with self.lock:
                self.active -= 1

    def remove_container(self, container):
        self.calls.append(("container", container))
        override = self.overrides.get(container)
        if isinstance(override, Exception):
            raise override

    def inspect_image(self, image):
        return {"RepoTags": ["raced:1"], "RepoDigests": []}

    def containers(self, all=False):
        return [{"Id": "c" * 64, "ImageID": iid(2)}]

    def images(self, all=False):
        return self.listing

    def image_manifests(self, image):
        answer = self.manifests[image]
        if isinstance(answer, Exception):
            raise answer
        return answer


def make_plan(snapshot, values, **policy):
    resolution = _references.resolve(snapshot, values)
    return _planner.plan(snapshot, resolution.requests, _planner.Policy(**policy), not_found=resolution.not_found)


SNAPSHOT = Snapshot(images=tuple(ImageRecord(iid(n), tags=(f"img{n}:1",), size=10 * n) for n in range(1, 7)))
VALUES = [f"img{n}:1" for n in range(1, 7)]


def test_real_result_equals_the_plan_when_the_engine_agrees():
    plan = make_plan(SNAPSHOT, VALUES)
    engine = FakeEngine(plan)
    assert _executor.apply(engine, plan, parallel=3) == _result.build(plan)
    assert sorted(call[1] for call in engine.calls) == sorted(VALUES)


def test_result_is_built_from_the_answers_not_the_plan():
    plan = make_plan(SNAPSHOT, VALUES)
    extra = "sha256:" + "9" * 64  # a layer the model did not predict
    engine = FakeEngine(plan, overrides={"img1:1": [{"Untagged": "img1:1"}, {"Deleted": iid(1)}, {"Deleted": extra}]})
    result = _executor.apply(engine, plan)
    assert result["deleted_layers"] == [extra]
    assert _executor.differences(_result.build(plan), result) == {
        "deleted_layers": {"predicted": [], "actual": [extra]}}


def test_not_found_is_already_gone_and_not_ours():
    plan = make_plan(SNAPSHOT, VALUES)
    engine = FakeEngine(plan, overrides={"img2:1": api_error(404, "No such image: img2:1")})
    result = _executor.apply(engine, plan)
    assert iid(2) not in result["deleted"] and "img2:1" not in result["untagged"]
    assert len(result["deleted"]) == 5 and result["changed"] is True


def test_conflict_is_reread_and_reported_as_skipped():
    plan = make_plan(SNAPSHOT, VALUES)
    message = "conflict: unable to remove repository reference \"img2:1\" (must force) - container cccccccccccc is using"
    engine = FakeEngine(plan, overrides={"img2:1": api_error(409, message)})
    result = _executor.apply(engine, plan)
    (entry,) = result["skipped_images"]
    assert entry["image"] == iid(2) and entry["reason"] == "container"
    assert entry["references"] == ["raced:1"] and entry["containers"] == ["c" * 64]
    assert message in entry["detail"]
    assert len(result["deleted"]) == 5


def test_daemon_error_mid_run_fails_and_returns_what_was_done():
    plan = make_plan(SNAPSHOT, VALUES)
    engine = FakeEngine(plan, overrides={"img3:1": api_error(500, "driver failed removing layer", "img3:1")})
    with pytest.raises(_errors.ExecutionError) as info:
        _executor.apply(engine, plan, parallel=1)
    message = info.value.message
    assert "img3:1" in message and "driver failed removing layer" in message
    result = info.value.result
    assert result["untagged"] == ["img1:1", "img2:1"] and result["deleted"] == sorted([iid(1), iid(2)])
    assert result["changed"] is True
    assert [c[1] for c in engine.calls] == ["img1:1", "img2:1", "img3:1"]  # no new step after the error


def test_connection_lost_mid_run():
    plan = make_plan(SNAPSHOT, VALUES[:2])
    lost = _errors.EngineUnreachableError("removing image img2:1: lost the connection to the Docker daemon")
    engine = FakeEngine(plan, overrides={"img2:1": lost})
    with pytest.raises(_errors.ExecutionError) as info:
        _executor.apply(engine, plan, parallel=1)
    assert "lost the connection" in info.value.message
    assert info.value.result["deleted"] == [iid(1)]


def _listing(snapshot, without=()):
    return [{"Id": image.id, "RepoTags": list(image.tags), "RepoDigests": list(image.digests)}
            for image in snapshot.images if image.id not in without]


def test_a_lost_answer_is_read_back_from_the_engine():
    """The engine deleted img2 but its answer was lost: the result says so (from the engine's state) and warns."""
    plan = make_plan(SNAPSHOT, VALUES[:3])
    lost = _errors.AnswerLostError("removing image img2:1: the answer was lost")
    engine = FakeEngine(plan, overrides={"img2:1": lost}, listing=_listing(SNAPSHOT, without={iid(1), iid(2)}))
    warnings = []
    result = _executor.apply(engine, plan, parallel=1, warn=warnings.append)
    assert result == _result.build(plan)
    (warning,) = warnings
    assert "img2:1" in warning and "read back" in warning and iid(2) in warning


def test_a_lost_answer_of_a_request_not_carried_out_fails_with_the_exact_result():
    plan = make_plan(SNAPSHOT, VALUES[:3])
    lost = _errors.AnswerLostError("removing image img2:1: the answer was lost")
    engine = FakeEngine(plan, overrides={"img2:1": lost}, listing=_listing(SNAPSHOT, without={iid(1)}))
    with pytest.raises(_errors.ExecutionError) as info:
        _executor.apply(engine, plan, parallel=1)
    assert "not carried out" in info.value.message and "img2:1" in info.value.message
    assert info.value.result["deleted"] == [iid(1)] and info.value.result["untagged"] == ["img1:1"]


def test_a_tag_moved_to_another_image_reports_what_the_engine_deleted():
    """Another client moved img1:1 to a new image just before our DELETE: the engine untagged it and deleted the
    new image. That image is reported under deleted (not deleted_layers), with a warning naming it."""
    plan = make_plan(SNAPSHOT, VALUES[:2])
    new = "sha256:" + "7" * 64
    layer = "sha256:" + "8" * 64
    engine = FakeEngine(plan, overrides={"img1:1": [{"Untagged": "img1:1"}, {"Deleted": new}, {"Deleted": layer}]})
    warnings = []
    result = _executor.apply(engine, plan, parallel=1, warn=warnings.append)
    assert result["deleted"] == sorted([new, iid(2)]) and result["deleted_layers"] == [layer]
    assert result["untagged"] == ["img1:1", "img2:1"]
    (warning,) = warnings
    assert new in warning and "img1:1" in warning and iid(1) in warning


def _platform_case(single_manifest):
    """A containerd-store plan removing the linux/arm64 content of two images: app:1 (an index of amd64 and arm64)
    and tool:1, an index too, or a single arm64 manifest whose digest is the image's ID (``single_manifest``)."""
    arm_app, amd_app = "sha256:" + "a1" * 32, "sha256:" + "a2" * 32
    tool = iid(2)
    arm_tool = tool if single_manifest else "sha256:" + "b1" * 32
    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=("app:1",)), ImageRecord(tool, tags=("tool:1",))),
                        store=CONTAINERD)

    def data(*manifests):
        return {"Manifests": [{"ID": digest, "Kind": "image", "Available": ok,
                               "Descriptor": {"platform": {"os": "linux", "architecture": arch}}}
                              for arch, digest, ok in manifests]}

    before = {iid(1): data(("amd64", amd_app, True), ("arm64", arm_app, True)), tool: data(("arm64", arm_tool, True))}
    requests = [Request("reference", "app:1", iid(1), given="app:1"), Request("reference", "tool:1", tool, given="tool:1")]
    plan = _planner.plan_platforms(snapshot, requests, (("linux", "arm64", ""),), before, _planner.Policy(force=True),
                                   _planner.CONTAINERD_RULES)
    assert [(step.target, step.deleted) for step in plan.steps] == [("app:1", [arm_app]), ("tool:1", [arm_tool])]
    after = {iid(1): data(("amd64", amd_app, True), ("arm64", arm_app, False)),
             tool: data(("arm64", arm_tool, False))}
    return plan, after, arm_tool


@pytest.mark.parametrize("single_manifest", [False, True])
def test_a_lost_answer_to_a_platforms_delete_is_read_back_from_the_manifests(single_manifest):
    """The containerd store kept the image and its names and marked the variant's manifest unavailable: the result
    lists the removed platform as the answer would have (deleted_platforms), with a warning."""
    plan, after, arm_tool = _platform_case(single_manifest)
    lost = _errors.AnswerLostError("removing image tool:1: the answer was lost")
    engine = FakeEngine(plan, overrides={"tool:1": lost}, listing=_listing(plan.snapshot), manifests=after)
    warnings = []
    result = _executor.apply(engine, plan, parallel=1, warn=warnings.append)
    assert result == _result.build(plan)
    assert {"image": iid(2), "platform": "linux/arm64", "manifest": arm_tool} in result["deleted_platforms"]
    assert len(result["deleted_platforms"]) == 2
    assert (result["deleted"], result["untagged"], result["changed"]) == ([], [], True)
    (warning,) = warnings
    assert "tool:1" in warning and "read back" in warning and "linux/arm64" in warning and arm_tool in warning
    assert "deleted_layers" not in warning
    assert ("image", "tool:1", True, False, ('{"os":"linux","architecture":"arm64"}',)) in engine.calls


def test_a_lost_answer_to_a_platforms_delete_not_carried_out_fails():
    plan, after, arm_tool = _platform_case(False)
    after[iid(2)]["Manifests"][0]["Available"] = True  # the content is still there
    lost = _errors.AnswerLostError("removing image tool:1: the answer was lost")
    engine = FakeEngine(plan, overrides={"tool:1": lost}, listing=_listing(plan.snapshot), manifests=after)
    with pytest.raises(_errors.ExecutionError) as info:
        _executor.apply(engine, plan, parallel=1)
    assert "not carried out" in info.value.message and "tool:1" in info.value.message
    assert [entry["image"] for entry in info.value.result["deleted_platforms"]] == [iid(1)]
    assert arm_tool not in str(info.value.result["deleted_platforms"])


@pytest.mark.parametrize("answer, words", [
    (_errors.EngineAPIError("inspecting image x: No such image", status=404), ["failed too", "No such image"]),
    ({"Manifests": []}, ["no longer lists the manifest", "linux/arm64", "cannot be told"]),
])
def test_a_lost_answer_to_a_platforms_delete_that_cannot_be_read_back_fails_clearly(answer, words):
    plan, after, arm_tool = _platform_case(False)
    after[iid(2)] = answer
    lost = _errors.AnswerLostError("removing image tool:1: the answer was lost")
    engine = FakeEngine(plan, overrides={"tool:1": lost}, listing=_listing(plan.snapshot), manifests=after)
    with pytest.raises(_errors.ExecutionError) as info:
        _executor.apply(engine, plan, parallel=1)
    assert all(word in info.value.message for word in ["tool:1", "the answer was lost", *words]), info.value.message
    assert len(info.value.result["deleted_platforms"]) == 1 and arm_tool not in str(info.value.result)


def test_parallel_runs_groups_concurrently_and_keeps_dependent_steps_in_order():
    chain = Snapshot(images=(
        ImageRecord(iid(1), tags=("p:1",)),
        ImageRecord(iid(2), parent=iid(1), tags=("c:1",)),
        ImageRecord(iid(3), parent=iid(2), tags=("g:1",)),
        *[ImageRecord(iid(n), tags=(f"solo{n}:1",)) for n in range(4, 10)],
    ))
    values = ["p:1", "c:1", "g:1"] + [f"solo{n}:1" for n in range(4, 10)]
    plan = make_plan(chain, values)
    engine = FakeEngine(plan, delay=0.05)
    result = _executor.apply(engine, plan, parallel=4)
    assert result == _result.build(plan)
    order = [c[1] for c in engine.calls if c[1] in ("p:1", "c:1", "g:1")]
    assert order == ["g:1", "c:1", "p:1"]
    assert 1 < engine.max_active <= 4


def test_containers_removed_before_their_image():
    snapshot = Snapshot(images=(ImageRecord(iid(1), tags=("a:1",)),),
                        containers=(ContainerRecord("d" * 64, iid(1), "exited"),))
    plan = make_plan(snapshot, ["a:1"], containers="remove")
    engine = FakeEngine(plan)
    result = _executor.apply(engine, plan)
    assert engine.calls[0] == ("container", "d" * 64)
    assert result["containers_removed"] == ["d" * 64] and result["deleted"] == [iid(1)]
    # a container already gone is not ours
    engine = FakeEngine(plan, overrides={"d" * 64: api_error(404, "No such container")})
    result = _executor.apply(engine, plan)
    assert result["containers_removed"] == [] and result["deleted"] == [iid(1)]
