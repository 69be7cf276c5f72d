"""``platforms``: ``docker rmi --platform`` (API 1.50) with a two-platform image index built offline (issue 16,
item 10).

The index (``push_platform_index``: two tiny single-layer images, linux/amd64 and linux/arm64, and an OCI index
listing them, PUT to the local registry) is pulled; on the containerd store the arm64 variant is pulled too, so
both are present. Each case is set up twice, identically (same IDs, same manifest digests): once for the docker
CLI, the reference, once for image_remove, check mode then the real run.
"""

from __future__ import annotations

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _errors, _transport
from tests.harness.ansible_runner import run_module, warning_texts
from tests.harness.images import available_manifests as _available, pulled_index

pytestmark = pytest.mark.engine

KEYS = ("untagged", "deleted", "deleted_platforms", "skipped_images", "changed")


@pytest.fixture
def indexed(clean_engine, registry):
    """``setup()`` -> (reference of the pulled index, image ID): a clean engine holding the pulled index (and a
    second name for it)."""
    return pulled_index(clean_engine, registry, f"plat/{clean_engine.kind}", "plat/copy:1")


def _run(engine, args):
    full = {"docker_host": engine.url, **args}
    before = engine.state()
    check = run_module("image_remove", full, check_mode=True)
    assert engine.state() == before, "check mode changed the engine"
    real = run_module("image_remove", full)
    assert {k: check.get(k) for k in KEYS} == {k: real.get(k) for k in KEYS}, (check, real)
    return real


def test_bad_platform_values_fail_before_connecting(engine):
    for value in ("linux", "Linux/AMD64", "linux/amd64/v1/x", ""):
        result = run_module("image_remove", {"docker_host": "unix:///nonexistent/docker.sock", "images": ["x:1"],
                                             "platforms": [value]})
        assert result.failed and repr(value) in result["msg"] and "os/architecture" in result["msg"], result
    result = run_module("image_remove", {"docker_host": "unix:///nonexistent/docker.sock", "all": True,
                                         "platforms": ["linux/amd64"]})
    assert result.failed and "needs images" in result["msg"]


def test_below_api_1_50_fails_clearly(clean_engine, images):
    if clean_engine.kind != "legacy":
        pytest.skip("the legacy engine speaks API 1.41")
    images.simple("plat/old:1")
    result = run_module("image_remove", {"docker_host": clean_engine.url, "images": ["plat/old:1"],
                                         "platforms": ["linux/amd64"]})
    assert result.failed and "1.50" in result["msg"] and "1.41" in result["msg"], result
    assert "plat/old:1" in [t for refs in clean_engine.state()["images"].values() for t in refs]


def test_containerd_removes_a_variant_like_docker_rmi_platform(clean_engine, indexed):
    if clean_engine.kind != "containerd":
        pytest.skip("the containerd image store")
    ref, image_id = indexed()
    arm64 = next(digest for (arch, digest) in _available(clean_engine, image_id) if arch == "arm64")
    # the reference: without force the engine refuses, with force it deletes the variant's manifest
    proc = clean_engine.cli("rmi", "--platform", "linux/arm64", ref, check=False)
    assert proc.returncode != 0 and "force" in proc.stderr
    proc = clean_engine.cli("rmi", "-f", "--platform", "linux/arm64", ref)
    assert proc.stdout.split() == ["Deleted:", arm64]
    cli_state, cli_available = clean_engine.state(), _available(clean_engine, image_id)

    ref, image_id = indexed()
    before = clean_engine.state()
    result = run_module("image_remove", {"docker_host": clean_engine.url, "images": [ref],
                                         "platforms": ["linux/arm64"]})
    assert result.failed and "force" in result["msg"] and clean_engine.state() == before
    result = _run(clean_engine, {"images": [ref], "platforms": ["linux/arm64/v8"], "force": True})
    assert result["deleted_platforms"] == [{"image": image_id, "platform": "linux/arm64", "manifest": arm64}]
    assert (result["untagged"], result["deleted"], result["changed"]) == ([], [], True)
    assert clean_engine.state() == cli_state == before  # the image and its names stay
    assert _available(clean_engine, image_id) == cli_available
    assert [ok for (arch, _d), ok in cli_available.items() if arch == "arm64"] == [False]
    # the other name shares the content: nothing left to do, on either name; a rerun changes nothing
    again = _run(clean_engine, {"images": [ref, "plat/copy:1"], "platforms": ["linux/arm64"], "force": True})
    assert again["changed"] is False and again["deleted_platforms"] == []
    # a variant the index does not list fails before anything is removed
    result = run_module("image_remove", {"docker_host": clean_engine.url, "images": [ref], "force": True,
                                         "platforms": ["linux/amd64", "linux/s390x"]})
    assert result.failed and "linux/s390x" in result["msg"] and "linux/amd64" in result["msg"]
    assert [ok for (arch, _d), ok in _available(clean_engine, image_id).items() if arch == "amd64"] == [True]


def _lose_platform_answers(monkeypatch, carry_out):
    """Every DELETE with ``platforms`` loses its answer, after the engine carried it out (``carry_out``) or before
    it reached the engine; returns the targets of those requests."""
    lost = []

    def hook(original):
        def remove_image(self, image, force=False, noprune=False, platforms=()):
            if not platforms:
                return original(self, image, force=force, noprune=noprune)
            if carry_out:
                original(self, image, force=force, noprune=noprune, platforms=platforms)
            lost.append(image)
            raise _errors.AnswerLostError(f"removing image {image}: the answer was lost (test)")
        return remove_image

    monkeypatch.setattr(_transport._SDKCalls, "remove_image", hook(_transport._SDKCalls.remove_image))
    monkeypatch.setattr(_transport._UnixCalls, "remove_image", hook(_transport._UnixCalls.remove_image))
    return lost


def test_containerd_a_lost_answer_is_read_back_from_the_manifests(clean_engine, indexed, monkeypatch):
    """The engine removed the variant but its answer was lost: the image's manifests show it (the arm64 manifest is
    listed, no longer available; the image and its names stay), so the result is the one the answer would have
    given, with a warning. Not carried out: the manifest is still available, the task fails saying so."""
    if clean_engine.kind != "containerd":
        pytest.skip("the containerd image store")
    ref, image_id = indexed()
    args = {"images": [ref], "platforms": ["linux/arm64"], "force": True}
    answered = _run(clean_engine, args)
    answered_state, answered_available = clean_engine.state(), _available(clean_engine, image_id)

    ref, image_id = indexed()
    lost = _lose_platform_answers(monkeypatch, carry_out=True)
    result = run_module("image_remove", {"docker_host": clean_engine.url, **args})
    assert not result.failed and lost == [ref], result
    assert {k: result.get(k) for k in KEYS} == {k: answered.get(k) for k in KEYS}
    assert clean_engine.state() == answered_state and _available(clean_engine, image_id) == answered_available
    (warning,) = warning_texts(result)
    assert "read back" in warning and "linux/arm64" in warning and answered["deleted_platforms"][0]["manifest"] in warning

    ref, image_id = indexed()
    before, available = clean_engine.state(), _available(clean_engine, image_id)
    monkeypatch.undo()
    _lose_platform_answers(monkeypatch, carry_out=False)
    result = run_module("image_remove", {"docker_host": clean_engine.url, **args})
    assert result.failed and "not carried out" in result["msg"] and result["deleted_platforms"] == [], result
    assert clean_engine.state() == before and _available(clean_engine, image_id) == available


def test_graph_driver_store_takes_the_image_own_platform(clean_engine, indexed):
    if clean_engine.kind != "classic":
        pytest.skip("the graph-driver store of Docker 28.5")
    ref, image_id = indexed()
    proc = clean_engine.cli("rmi", "--platform", "linux/arm64", ref, check=False)
    assert proc.returncode != 0 and "does not match" in proc.stderr
    proc = clean_engine.cli("rmi", "--platform", "linux/amd64,linux/arm64", ref, check=False)
    assert proc.returncode != 0 and "multiple platforms" in proc.stderr
    proc = clean_engine.cli("rmi", "--platform", "linux/amd64", ref, "plat/copy:1")
    cli_state = clean_engine.state()
    cli_lines = sorted(proc.stdout.splitlines())

    ref, image_id = indexed()
    before = clean_engine.state()
    for platforms, words in ((["linux/arm64"], ("linux/amd64", "not linux/arm64")),
                             (["linux/amd64", "linux/arm64"], ("one platform",))):
        result = run_module("image_remove", {"docker_host": clean_engine.url, "images": [ref],
                                             "platforms": platforms})
        assert result.failed and all(w in result["msg"] for w in words), result
        assert clean_engine.state() == before
    result = _run(clean_engine, {"images": [ref, "plat/copy:1"], "platforms": ["linux/amd64"]})
    assert clean_engine.state() == cli_state
    assert result["deleted"] == [image_id] and result["deleted_platforms"] == []
    cli_untagged = [line for line in cli_lines if line.startswith("Untagged")]
    assert sorted(f"Untagged: {r}" for r in result["untagged"]) == cli_untagged
