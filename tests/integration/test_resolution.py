"""How each engine resolves what ``images`` names (issue 16, items 1-5), with the docker CLI as the reference.

Every case is built twice on a clean engine (loaded images have the same IDs every time): the module runs on one
copy (check mode, the real run, the rerun), ``docker rmi`` on the other, and the two final states must be equal.
Where the CLI answers with an error, the module fails or reports ``not_found`` as stated in the case, and
nothing changes.
"""

from __future__ import annotations

import pytest

from ansible_collections.janitor.docker.plugins.module_utils._result import RESULT_KEYS
from tests.harness.ansible_runner import run_module
from tests.harness.images import ImageSpec

CONTENT = "janitor resolution "


def load(images, *tags, content="one"):
    """A loaded image with fixed content: the same ID every time on the same engine."""
    return images.load([ImageSpec(list(tags), CONTENT + content)])[0]


def module(engine, values, check=False, **options):
    return run_module("image_remove", {"docker_host": engine.url, "images": values, **options}, check_mode=check)


def run_twice(engine, values, rerun=True, **options):
    """Check mode, the real run and the rerun (which must change nothing); check mode equals the real run on
    every key."""
    before = engine.state()
    check = module(engine, values, check=True, **options)
    assert not check.failed, check
    assert engine.state() == before, "check mode changed the engine"
    real = module(engine, values, **options)
    assert not real.failed, real
    for key in RESULT_KEYS:
        if key == "diff":
            continue  # only in diff mode
        assert check[key] == real[key], (key, check[key], real[key])
    if not rerun:
        return real, None
    again = module(engine, values, **options)
    assert not again.failed, again
    assert (again["changed"], again["untagged"], again["deleted"]) == (False, [], []), again
    return real, again


def images_after(engine):
    return engine.state()["images"]


def versus_cli(engine, setup, values, rerun=True, **options):
    """The module on one copy of ``setup()``'s state, ``docker rmi [-f] <values>`` on another: (module result,
    rerun, CLI answer, the module's final images, the CLI's final images)."""
    engine.reset()
    setup()
    real, again = run_twice(engine, values, rerun=rerun, **options)
    ours = images_after(engine)
    engine.reset()
    setup()
    cli = engine.rmi(*(["-f"] if options.get("force") else []), *values)
    return real, again, cli, ours, images_after(engine)


def hex_of(image_id, length):
    return image_id[len("sha256:"):len("sha256:") + length]


def test_hex_name_that_is_a_prefix_of_its_own_image_id(clean_engine, images):
    """Item 1: ``app:1`` and ``<6 hex of its ID>:latest``; ``docker rmi <6hex>`` finds the image by the name, then
    treats the request as by ID: 409 "referenced in multiple repositories". The module skips it the same way, and
    its rerun does not delete the image through the prefix."""
    image = load(images, "app:1")
    name = hex_of(image, 6)

    def setup():
        load(images, "app:1")
        images.tag(image, f"{name}:latest")

    real, again, (rc, _untagged, _deleted, stderr), ours, theirs = versus_cli(clean_engine, setup, [name])
    assert rc != 0 and "multiple repositories" in stderr
    assert ours == theirs and {"app:1", f"{name}:latest"} <= set(ours[image])
    assert (real["changed"], real["untagged"], real["deleted"]) == (False, [], [])
    assert [(s["image"], s["reason"]) for s in real["skipped_images"]] == [(image, "multiple_repositories")]
    assert again["skipped_images"] == real["skipped_images"]
    # forced, the request by ID deletes the image with both names, as docker rmi -f does
    real, _again, (rc, untagged, deleted, _err), ours, theirs = versus_cli(clean_engine, setup, [name], force=True)
    assert rc == 0 and ours == theirs and image not in ours
    assert sorted(real["untagged"]) == sorted(untagged) and real["deleted"] == [image] and image in deleted
    # with its tag, it is a name: only that tag goes, as with the CLI
    real, _again, (rc, untagged, _deleted, _err), ours, theirs = versus_cli(clean_engine, setup, [f"{name}:latest"])
    assert rc == 0 and real["untagged"] == untagged == [f"{name}:latest"] and ours == theirs


@pytest.mark.parametrize("length", [1, 2, 3, 4])
@pytest.mark.parametrize("form", ["hex", "sha256"])
def test_each_store_has_its_id_prefix_rule(clean_engine, images, length, form):
    """Item 2: the graph-driver store takes an ID prefix of any length (moby's digest set), the containerd image
    service 4 to 64 hex characters; shorter, it is a name (``No such image: <hex>:latest``): not_found."""
    image = load(images, "prefix:1")
    value = hex_of(image, length) if form == "hex" else "sha256:" + hex_of(image, length)

    def setup():
        load(images, "prefix:1")

    real, _again, (rc, untagged, deleted, stderr), ours, theirs = versus_cli(clean_engine, setup, [value])
    assert ours == theirs
    if clean_engine.containerd_store and length < 4:
        assert rc != 0 and "No such image" in stderr
        assert (real["changed"], real["not_found"]) == (False, [value])
    else:
        assert rc == 0 and image in deleted
        assert (real["untagged"], real["deleted"]) == (untagged, [image])


@pytest.fixture
def combined(clean_engine, images, registry):
    """Item 3's image: ``<registry>/reg/comb:v1`` (pushed), ``:v2`` and ``comb-local:1``; returns (setup, repository,
    digest)."""
    found = {}

    def setup():
        image = load(images, "comb-local:1", content="combined")
        pushed = registry.push(clean_engine, image, "reg/comb", "v1")
        images.tag(image, pushed[: -len(":v1")] + ":v2")
        repository = pushed[: -len(":v1")]
        digest = next(d for d in clean_engine.api.inspect_image(image)["RepoDigests"] if d.startswith(repository + "@"))
        found.update(repository=repository, digest=digest.split("@", 1)[1])

    clean_engine.reset()
    setup()
    return setup, found["repository"], found["digest"]


@pytest.mark.parametrize("tag", ["v1", "nosuch", None])
def test_tag_and_digest(clean_engine, combined, tag):
    """Item 3: ``repo:tag@digest``. containerd: the tag must be one of the image's names and only that tag goes
    (else "No such image"); the graph-driver store ignores the tag, the digest decides."""
    setup, repository, digest = combined
    value = f"{repository}:{tag}@{digest}" if tag else f"{repository}@{digest}"
    real, _again, (rc, untagged, _deleted, stderr), ours, theirs = versus_cli(clean_engine, setup, [value])
    assert ours == theirs
    if clean_engine.containerd_store and tag == "nosuch":
        assert rc != 0 and "No such image" in stderr
        assert (real["changed"], real["not_found"]) == (False, [value])
        return
    assert rc == 0 and real["changed"] and real["deleted"] == []
    if clean_engine.containerd_store:
        assert real["untagged"] == untagged == ([f"{repository}:{tag}"] if tag else
                                                [f"{repository}:v1", f"{repository}:v2"])
    else:
        # the engine echoes what it was sent; the module names the digest reference it removed
        assert real["untagged"] == [f"{repository}@{digest}"] and len(untagged) == 1


def test_hex_name_that_is_a_prefix_of_another_image_id(clean_engine, images):
    """Item 4: image A tagged ``<6 hex of B's ID>:latest``. The graph-driver store takes the name (A loses it); the
    containerd image service finds A by name and B by ID prefix and answers "ambiguous reference": the module
    fails before changing anything."""
    image_b = load(images, "b:1", content="b")
    name = hex_of(image_b, 6)

    def setup():
        image_a = load(images, "a:1", content="a")
        load(images, "b:1", content="b")
        images.tag(image_a, f"{name}:latest")

    clean_engine.reset()
    setup()
    if clean_engine.containerd_store:
        before = clean_engine.state()
        result = module(clean_engine, [name])
        assert result.failed and "ambiguous" in result["msg"] and repr(name) in result["msg"]
        assert image_b in result["candidates"]
        assert clean_engine.state() == before
        rc, _untagged, _deleted, stderr = clean_engine.rmi(name)
        assert rc != 0 and "ambiguous reference" in stderr and clean_engine.state() == before
        return
    real, _again, (rc, untagged, _deleted, _err), ours, theirs = versus_cli(clean_engine, setup, [name], rerun=False)
    assert rc == 0 and real["untagged"] == untagged == [f"{name}:latest"] and ours == theirs
    # the name gone, the same string is B's ID prefix: a second docker rmi deletes B, and so does the rerun
    rc, untagged, deleted, _err = clean_engine.rmi(name)
    assert rc == 0 and untagged == ["b:1"] and image_b in deleted
    theirs = images_after(clean_engine)
    clean_engine.reset()
    setup()
    module(clean_engine, [name])
    again = module(clean_engine, [name])
    assert (again["untagged"], again["deleted"]) == (["b:1"], [image_b]) and images_after(clean_engine) == theirs


def test_a_gone_short_name_is_not_found_on_the_rerun(clean_engine, images):
    """Item 5: ``images: [db]`` removes ``db:latest``; the rerun reports ``not_found`` like any other gone name
    (``docker rmi db`` answers "No such image: db:latest")."""
    image = load(images, "db:latest", content="db")
    if hex_of(image, 2) == "db":
        pytest.skip("the image's own ID starts with db")
    real, again = run_twice(clean_engine, ["db"])
    assert (real["untagged"], real["deleted"]) == (["db:latest"], [image])
    assert again["not_found"] == ["db"]
    rc, _untagged, _deleted, stderr = clean_engine.rmi("db")
    assert rc != 0 and "No such image: db:latest" in stderr


def test_a_gone_hex_name_can_match_another_image_id(clean_engine, images):
    """The documented caveat: once a hex-looking name is gone, the same string can name another image by its ID
    prefix, as ``docker rmi`` would (any length on the graph-driver store, 4 or more on containerd)."""
    other = load(images, "other:1", content="other")
    for length in (1, 4):
        name = hex_of(other, length)

        def setup():
            load(images, f"{name}:latest", content="named")
            load(images, "other:1", content="other")

        clean_engine.reset()
        setup()
        named = [i for i in images_after(clean_engine) if i != other][0]
        if hex_of(named, length) == name:
            continue  # both IDs start alike: a different case (ambiguous)
        first = module(clean_engine, [f"{name}:latest"])
        assert not first.failed and first["deleted"] == [named], first
        ours = module(clean_engine, [name])
        assert not ours.failed, ours
        state = images_after(clean_engine)
        clean_engine.reset()
        setup()
        clean_engine.rmi(f"{name}:latest")
        rc, untagged, deleted, _err = clean_engine.rmi(name)
        assert state == images_after(clean_engine)
        if clean_engine.containerd_store and length < 4:
            assert rc != 0 and ours["not_found"] == [name] and other in state
        else:
            assert rc == 0 and ours["deleted"] == [other] and other in deleted and ours["untagged"] == untagged


def test_an_id_prefix_of_several_images_fails_clearly(clean_engine, images):
    """Two images whose IDs share their first 3 hex characters. The graph-driver store answers "No such image" to
    ``docker rmi <3hex>`` (its ID index refuses an ambiguous prefix and the name does not exist); the module fails
    on purpose instead, naming both images, before anything changes (docs/image-remove.md, "Resolution"). On the
    containerd image store 3 characters are no ID prefix: not found for both."""
    from tests.integration.test_image_remove import colliding_ids

    prefix, candidates = colliding_ids(images, clean_engine)
    before = clean_engine.state()
    result = module(clean_engine, [prefix])
    rc, _untagged, _deleted, stderr = clean_engine.rmi(prefix)
    assert rc != 0 and "No such image" in stderr and clean_engine.state() == before
    if clean_engine.containerd_store:
        assert not result.failed and result["not_found"] == [prefix]
        return
    assert result.failed and "ambiguous" in result["msg"] and all(c in result["msg"] for c in candidates)
    assert result["candidates"] == candidates
