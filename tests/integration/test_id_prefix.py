"""A pure ID-prefix ambiguity: two images whose IDs share their first 4 hex characters, and no name in the way.

4 is the containerd image store's shortest ID prefix (``_references.ResolutionRules.min_prefix``; the graph driver
takes 1), so the same case runs on every store. Nothing is left to chance: an image ID is a digest of what the
archive holds, computed here before loading (the config's digest on the graph driver, the digest of the manifest the
containerd importer writes on the containerd store), so a search over a few hundred image contents finds two that
collide, and only those two are loaded. The search runs again in every session (no hard-coded digests); the loaded
IDs must be the computed ones.

``docker rmi <prefix>`` refuses on every store and changes nothing: the containerd store answers "ambiguous
reference", the graph driver (legacy 20.10 and classic 28.5) "No such image: <prefix>:latest" (``sha256:<prefix>``:
"No such image: sha256:<prefix>"). The module fails before changing anything, in check mode and in a real run, even
with another image named in the same task, naming the prefix and both images (docs/image-remove.md, "Resolution": on
the graph driver it says why where the engine only says "No such image").
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from tests.harness.ansible_runner import run_module
from tests.harness.images import ImageSpec, save_archive

CONTENT = "janitor id prefix "
PREFIX = 4  # the containerd image store's minimum ID prefix (the graph driver's is 1)

# what containerd's archive importer writes for a docker-save archive (core/images/archive/importer.go): a Docker
# schema 2 manifest, the config and the uncompressed layers as the archive holds them, marshalled by Go's
# encoding/json (fields in this order, no spaces)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"


def _descriptor(media_type, data):
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}


def loaded_id(spec, containerd_store):
    """The image ID an engine gives ``spec`` when it loads ``save_archive([spec])``."""
    with tarfile.open(fileobj=io.BytesIO(save_archive([spec]))) as tar:
        entry = json.load(tar.extractfile("manifest.json"))[0]
        config = tar.extractfile(entry["Config"]).read()
        layers = [tar.extractfile(name).read() for name in entry["Layers"]]
    if not containerd_store:
        return "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": _descriptor(DOCKER_CONFIG, config),
                "layers": [_descriptor(DOCKER_LAYER, layer) for layer in layers]}
    return "sha256:" + hashlib.sha256(json.dumps(manifest, separators=(",", ":")).encode()).hexdigest()


def colliding_specs(containerd_store, tries=5000):
    """Two specs whose IDs on this store share their first ``PREFIX`` hex characters: (prefix, specs, IDs)."""
    seen = {}
    for n in range(tries):
        spec = ImageSpec([f"idp-{n}:1"], f"{CONTENT}{n}")
        image_id = loaded_id(spec, containerd_store)
        prefix = image_id[len("sha256:"):len("sha256:") + PREFIX]
        if prefix in seen:
            first, first_id = seen[prefix]
            return prefix, [first, spec], [first_id, image_id]
        seen[prefix] = (spec, image_id)
    raise AssertionError(f"no two of {tries} image IDs share {PREFIX} hex characters")


def module(engine, values, check=False):
    return run_module("image_remove", {"docker_host": engine.url, "images": values}, check_mode=check)


@pytest.fixture
def ambiguous(clean_engine, images):
    """The two colliding images and a third one the same task names, loaded on a clean engine: (prefix, [both IDs],
    bystander ID, setup) - ``setup()`` loads the same three again (same IDs) after a reset."""
    prefix, specs, expected = colliding_specs(clean_engine.containerd_store)
    bystander = ImageSpec(["bystander:1"], CONTENT + "bystander")

    def setup():
        loaded = images.load([*specs, bystander])
        assert loaded[:2] == expected, ("the engine gave other IDs than computed", loaded, expected)
        assert sorted(image["Id"] for image in clean_engine.api.images()) == sorted(loaded)
        return loaded[2]

    bystander_id = setup()
    assert not bystander_id[7:].startswith(prefix)
    return prefix, sorted(expected), bystander_id, setup


@pytest.mark.parametrize("form", ["hex", "sha256"])
def test_an_id_prefix_of_two_images_fails_before_anything_changes(clean_engine, ambiguous, form):
    prefix, candidates, bystander, _setup = ambiguous
    value = prefix if form == "hex" else "sha256:" + prefix
    before = clean_engine.state()
    assert bystander in before["images"] and all(candidate in before["images"] for candidate in candidates)
    for check in (True, False):
        result = module(clean_engine, ["bystander:1", value], check=check)
        assert result.failed, result
        assert "ambiguous" in result["msg"] and repr(value) in result["msg"] and "as an ID prefix;" in result["msg"], result["msg"]
        assert all(candidate in result["msg"] for candidate in candidates), result["msg"]
        assert result["candidates"] == candidates
        assert clean_engine.state() == before, "the module changed the engine before failing"
    # the reference: docker rmi refuses the prefix too, and changes nothing
    rc, untagged, deleted, stderr = clean_engine.rmi(value)
    assert rc != 0 and (untagged, deleted) == ([], []), stderr
    assert clean_engine.state() == before
    if clean_engine.containerd_store:
        assert "Error response from daemon: ambiguous reference" in stderr, stderr
    else:  # moby's digest set refuses an ambiguous prefix as unknown, then the name lookup fails
        assert f"No such image: {value if form == 'sha256' else value + ':latest'}" in stderr, stderr


def test_one_more_character_names_one_image(clean_engine, ambiguous):
    """Where the IDs part, the longer prefix names one image again: the module deletes it as ``docker rmi`` does."""
    prefix, candidates, _bystander, setup = ambiguous
    length = next(n for n in range(PREFIX, 65) if candidates[0][7:7 + n] != candidates[1][7:7 + n])
    value = candidates[0][7:7 + length]
    assert value.startswith(prefix)
    result = module(clean_engine, [value])
    assert not result.failed and result["deleted"] == [candidates[0]], result
    ours = clean_engine.state()
    clean_engine.reset()
    setup()
    rc, untagged, deleted, stderr = clean_engine.rmi(value)
    assert rc == 0 and candidates[0] in deleted, stderr
    assert result["untagged"] == untagged and clean_engine.state() == ours
