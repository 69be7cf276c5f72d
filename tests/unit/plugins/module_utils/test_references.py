"""Reference grammar, Docker Hub normalisation and resolution against a snapshot (pure, no engine)."""

from __future__ import annotations

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _references
from ansible_collections.janitor.docker.plugins.module_utils._errors import JanitorError
from ansible_collections.janitor.docker.plugins.module_utils._snapshot import (
    CONTAINERD,
    ImageRecord,
    Snapshot,
)

DIGEST = "sha256:" + "ab" * 32
ID_A = "sha256:" + "a1" * 32
ID_B = "sha256:" + "a2" * 32
ID_C = "sha256:" + "c3" * 32
ID_HEXNAME = "sha256:" + "de" * 32


def snap(store="classic"):
    return Snapshot(images=(
        ImageRecord(ID_A, tags=("busybox:latest", "busybox:1.36"), digests=(f"busybox@{DIGEST}",)),
        ImageRecord(ID_B, tags=("localhost:5000/team/app:1.2", "quay.io/org/tool:2")),
        ImageRecord(ID_C, tags=("abc:latest",)),  # a name that is also hex
        ImageRecord(ID_HEXNAME, tags=()),
    ), store=store)


@pytest.mark.parametrize("value, familiar", [
    ("busybox", "busybox:latest"),
    ("library/busybox", "busybox:latest"),
    ("docker.io/library/busybox", "busybox:latest"),
    ("docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox:1.36", "busybox:1.36"),
    ("docker.io/team/app", "team/app:latest"),
    ("team/app:v1", "team/app:v1"),
    ("localhost:5000/team/app:1.2", "localhost:5000/team/app:1.2"),
    ("localhost/app", "localhost/app:latest"),
    ("quay.io/org/tool:2", "quay.io/org/tool:2"),
    ("a-b/c__d.e", "a-b/c__d.e:latest"),
    (f"busybox@{DIGEST}", f"busybox@{DIGEST}"),
    (f"busybox:1.36@{DIGEST}", f"busybox@{DIGEST}"),
    (f"localhost:5000/team/app:1.2@{DIGEST}", f"localhost:5000/team/app@{DIGEST}"),
    ("Example.com/app:1", "Example.com/app:1"),  # an upper-case first component is a host
])
def test_normalised_familiar_form(value, familiar):
    assert _references.parse(value, default_tag="latest").familiar() == familiar


@pytest.mark.parametrize("value, why", [
    ("", "empty"),
    ("   ", "empty"),
    ("Busybox", "lower-case"),
    ("team/App:1", "lower-case"),
    ("a//b:1", "malformed path component"),
    ("a b", "white space"),
    ("app:", "malformed tag"),
    ("app:-x", "malformed tag"),
    ("app:" + "x" * 129, "malformed tag"),
    ("app@sha256:abc", "malformed digest"),
    ("app@md5:" + "a" * 32, "malformed digest"),
    ("app@sha256:" + "A" * 64, "malformed digest"),
    ("-app", "malformed path component"),
    ("app_", "malformed path component"),
    (":1", "empty name"),
    ("bad_host:5000x/app", "malformed"),
])
def test_malformed_references_name_the_value_and_the_forms(value, why):
    with pytest.raises(JanitorError) as info:
        _references.validate([value])
    assert repr(value) in info.value.message
    assert why in info.value.message
    assert "valid forms" in info.value.message


@pytest.mark.parametrize("store, value, found", [
    ("classic", "c", True), ("classic", "c3", True), ("classic", "sha256:c3", True), ("classic", "c3c", True),
    ("containerd", "c", False), ("containerd", "c3", False), ("containerd", "sha256:c3c", False),
    ("containerd", "c3c3", True), ("containerd", "sha256:c3c3", True),
])
def test_each_store_has_its_id_prefix_rule(store, value, found):
    """The graph-driver store takes any hex prefix (1 to 64), the containerd image service 4 to 64; a shorter one
    is a name there, and a gone name is not_found, never an error (a rerun stays green)."""
    snapshot = Snapshot(images=(ImageRecord(ID_C, tags=("app:1",)),), store=store)
    resolution = _references.resolve(snapshot, [value])
    if found:
        assert [(r.kind, r.target) for r in resolution.requests] == [("id", ID_C)]
    else:
        assert (resolution.requests, resolution.not_found) == ((), (value,))


@pytest.mark.parametrize("store", ["classic", "containerd"])
def test_hex_name_that_prefixes_its_own_image_id_is_a_request_by_id(store):
    """``docker rmi c3c3c3`` where ``c3c3c3:latest`` names the image whose ID starts with c3c3c3: the engine finds
    the image by its name, then treats the string as an ID (isImageIDPrefix) and deletes the whole image."""
    snapshot = Snapshot(images=(ImageRecord(ID_C, tags=("app:1", "c3c3c3:latest")),), store=store)
    (request,) = _references.resolve(snapshot, ["c3c3c3"]).requests
    assert (request.kind, request.target) == ("id", ID_C)
    # with its tag it is a name
    (request,) = _references.resolve(snapshot, ["c3c3c3:latest"]).requests
    assert (request.kind, request.target) == ("reference", "c3c3c3:latest")
    # the module's tag option makes the engine get c3c3c3:1, a name
    snapshot = Snapshot(images=(ImageRecord(ID_C, tags=("app:1", "c3c3c3:1")),), store=store)
    (request,) = _references.resolve(snapshot, ["c3c3c3"], default_tag="1").requests
    assert (request.kind, request.target) == ("reference", "c3c3c3:1")


def test_hex_name_that_prefixes_another_image_id():
    """Image A named ``c3c3c3:latest``, B's ID starts with c3c3c3: the graph driver takes the name, the containerd
    image service finds both and answers "ambiguous reference"."""
    images = (ImageRecord(ID_A, tags=("c3c3c3:latest",)), ImageRecord(ID_C, tags=("b:1",)))
    (request,) = _references.resolve(Snapshot(images=images), ["c3c3c3"]).requests
    assert (request.kind, request.target, request.image_id) == ("reference", "c3c3c3:latest", ID_A)
    with pytest.raises(JanitorError) as info:
        _references.resolve(Snapshot(images=images, store=CONTAINERD), ["c3c3c3"])
    assert "'c3c3c3'" in info.value.message and "ambiguous" in info.value.message
    assert "as a name and an ID prefix" in info.value.message
    assert info.value.details["candidates"] == [ID_A, ID_C]
    # below the containerd prefix length the name alone counts
    images = (ImageRecord(ID_A, tags=("c3c:latest",)), ImageRecord(ID_C, tags=("b:1",)))
    (request,) = _references.resolve(Snapshot(images=images, store=CONTAINERD), ["c3c"]).requests
    assert (request.kind, request.target) == ("reference", "c3c:latest")


def test_containerd_tag_with_digest_must_match_and_untags_only_that_tag():
    image_id = "sha256:" + "5e" * 32
    images = (ImageRecord(image_id, tags=("reg/comb:v1", "reg/comb:v2", "comb-local:1"),
                          digests=(f"reg/comb@{image_id}",)),)
    containerd = Snapshot(images=images, store=CONTAINERD)
    (request,) = _references.resolve(containerd, [f"reg/comb:v1@{image_id}"]).requests
    assert (request.kind, request.target) == ("reference", "reg/comb:v1")
    assert _references.resolve(containerd, [f"reg/comb:nosuch@{image_id}"]).not_found == (
        f"reg/comb:nosuch@{image_id}",)
    # the graph driver ignores the tag: the digest decides
    (request,) = _references.resolve(Snapshot(images=images), [f"reg/comb:nosuch@{image_id}"]).requests
    assert (request.kind, request.target) == ("reference", f"reg/comb@{image_id}")


def test_invalid_default_tag():
    with pytest.raises(JanitorError) as info:
        _references.validate(["app"], default_tag="bad tag")
    assert "'bad tag'" in info.value.message


@pytest.mark.parametrize("value, kind, target, image_id", [
    (ID_A, "id", ID_A, ID_A),
    (ID_A[7:], "id", ID_A, ID_A),
    ("busybox", "reference", "busybox:latest", ID_A),
    ("docker.io/library/busybox:1.36", "reference", "busybox:1.36", ID_A),
    (f"library/busybox@{DIGEST}", "reference", f"busybox@{DIGEST}", ID_A),
    (f"busybox:whatever@{DIGEST}", "reference", f"busybox@{DIGEST}", ID_A),
    ("localhost:5000/team/app:1.2", "reference", "localhost:5000/team/app:1.2", ID_B),
    ("a1a1a1", "id", ID_A, ID_A),
    ("sha256:a1a1", "id", ID_A, ID_A),
    ("abc", "reference", "abc:latest", ID_C),  # hex, but a name first
    ("c3c3", "id", ID_C, ID_C),
    ("dede", "id", ID_HEXNAME, ID_HEXNAME),
])
def test_resolution(value, kind, target, image_id):
    resolution = _references.resolve(snap(), [value])
    assert resolution.not_found == ()
    (request,) = resolution.requests
    assert (request.kind, request.target, request.image_id, request.given) == (kind, target, image_id, value)


def test_tag_option_applies_to_names_without_tag():
    resolution = _references.resolve(snap(), ["busybox", "busybox:latest"], default_tag="1.36")
    assert [r.target for r in resolution.requests] == ["busybox:1.36", "busybox:latest"]


def test_ambiguous_prefix_message():
    images = (ImageRecord("sha256:abc1" + "0" * 60), ImageRecord("sha256:abc2" + "0" * 60))
    with pytest.raises(JanitorError) as info:
        _references.resolve(Snapshot(images=images), ["abc"])
    message = info.value.message
    assert "'abc'" in message and "ambiguous" in message and "as an ID prefix;" in message
    assert images[0].id in message and images[1].id in message
    assert info.value.details["candidates"] == [images[0].id, images[1].id]


def test_not_found_is_reported_not_an_error():
    resolution = _references.resolve(snap(), ["nothing:1", "busybox", "fff000", "sha256:" + "0" * 64, "nothing:1"])
    assert [r.target for r in resolution.requests] == ["busybox:latest"]
    assert resolution.not_found == ("nothing:1", "fff000", "sha256:" + "0" * 64)


def test_errors_come_before_any_result():
    with pytest.raises(JanitorError):
        _references.resolve(snap(), ["busybox", "nothing", "Bad"])


def test_duplicates_are_merged():
    resolution = _references.resolve(snap(), ["busybox", "docker.io/library/busybox:latest", ID_A, ID_A[7:19]])
    assert [(r.kind, r.target) for r in resolution.requests] == [("reference", "busybox:latest"), ("id", ID_A)]


def test_merge_keeps_first_source_order():
    first = _references.resolve(snap(), ["busybox", "abc"]).requests
    second = _references.resolve(snap(), ["abc", ID_B]).requests
    merged = _references.merge(first, second)
    assert [r.target for r in merged] == ["busybox:latest", "abc:latest", ID_B]


def test_containerd_digest_of_any_repository_of_the_image():
    image_id = "sha256:" + "5e" * 32
    snapshot = Snapshot(images=(ImageRecord(image_id, tags=("localhost:5000/x:1", "x:1"), digests=(f"x@{image_id}",)),),
                        store=CONTAINERD)
    (request,) = _references.resolve(snapshot, [f"localhost:5000/x@{image_id}"]).requests
    assert (request.kind, request.target, request.image_id) == ("reference", f"localhost:5000/x@{image_id}", image_id)
    # the classic store has no such derived digests
    classic = Snapshot(images=snapshot.images)
    assert _references.resolve(classic, [f"localhost:5000/x@{image_id}"]).not_found == (f"localhost:5000/x@{image_id}",)


def test_the_containerd_store_inspects_tagged_images_by_a_tag_and_the_graph_driver_by_id():
    images = (ImageRecord(ID_A, tags=("app:1", "app:latest"), digests=(f"app@{ID_A}",)),
              ImageRecord(ID_B, digests=(f"app@{ID_B}",)), ImageRecord(ID_C))
    assert _references.inspect_names(Snapshot(images=images, store=CONTAINERD)) == {ID_A: "app:1"}
    assert _references.inspect_names(Snapshot(images=images)) == {}
