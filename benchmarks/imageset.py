"""The benchmark's image set, and a private engine that can be put back to the same state in seconds.

The set for ``n`` images (``n`` counts every image ID the set adds, intermediate build images included):

* build chains (classic builder, so ``Parent`` is set): ``FROM scratch`` + ``LABEL`` + ``COPY`` (two IDs: the
  label step and the tagged base), a child ``FROM`` the base with two tags, and a grandchild; four IDs a chain,
  one chain per 100 images;
* a few untagged (dangling) loaded images, named by ID in the explicit list (one per 50 images);
* the rest loaded in one request, with one to four tags (about 1.75 on average), some in a second repository,
  half of them on one of ten shared base layers;
* five stopped containers (created, never started) on loaded images of the set;
* ten ``keep/...`` images outside the set that every tool must leave alone.

Every image and container of the set has the label ``janitor.bench=set`` (the keep images ``janitor.bench=keep``),
so the filter rows select exactly the set by label.

Loading a thousand images takes the engine minutes, so the set is made once per ``n``: the engine is stopped,
its data-root copied aside (the golden copy), and before every destructive run the engine is stopped, the
data-root restored from the golden copy and the engine started again. Every tool sees the identical state
(the same image and container IDs). The data-root lives on tmpfs (``/dev/shm``) unless ``on_disk`` is set, so
the numbers measure the software rather than the shared machine's disk.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.harness.engines import Engine  # noqa: E402
from tests.harness.images import EPOCH, ImageFactory, ImageSpec  # noqa: E402
from tests.harness.world import RestorableEngine  # noqa: E402

LABEL_KEY = "janitor.bench"
SET_LABEL = f"{LABEL_KEY}=set"
KEEP_LABEL = f"{LABEL_KEY}=keep"
CONTAINERS = 5
KEEP_IMAGES = 10


@dataclass
class ImageSet:
    """What was made: the explicit references (in creation order), the IDs, the containers."""

    n: int
    references: list = field(default_factory=list)  # tags, and IDs for the untagged images
    image_ids: list = field(default_factory=list)  # every ID of the set, intermediate images included
    keep_ids: list = field(default_factory=list)
    containers: list = field(default_factory=list)
    chains: int = 0
    dangling: int = 0
    loaded: int = 0
    build_seconds: float = 0.0

    def describe(self) -> dict:
        return {
            "images": len(self.image_ids),
            "references": len(self.references),
            "tags": sum(1 for r in self.references if not r.startswith("sha256:")),
            "untagged_by_id": self.dangling,
            "build_chains": self.chains,
            "loaded": self.loaded,
            "containers": len(self.containers),
            "keep_images": len(self.keep_ids),
            "seconds_to_make": round(self.build_seconds, 1),
        }


def _tags_for(i: int) -> list[str]:
    """One to four tags: 50 % one, 30 % two, 15 % three, 5 % four (the fourth in a mirror repository)."""
    repo = f"bench/svc-{i % 40}"
    slot = i % 20
    count = 1 if slot < 10 else 2 if slot < 16 else 3 if slot < 19 else 4
    tags = [f"{repo}:v{i}", f"{repo}:v{i}-stable", f"{repo}:v{i}-rc"][: min(count, 3)]
    if count == 4:
        tags.append(f"bench/mirror-{i % 7}:v{i}")
    return tags


def make_set(engine: Engine, n: int) -> ImageSet:
    """Build the set for ``n`` on a clean engine (see the module docstring)."""
    started = time.perf_counter()
    factory = ImageFactory(engine)
    api = engine.api
    result = ImageSet(n=n)
    chains = max(1, n // 100)
    dangling = max(1, n // 50)
    loaded = n - 4 * chains - dangling
    if loaded < CONTAINERS:
        raise ValueError(f"n={n} is too small for the set (at least {4 * chains + dangling + CONTAINERS})")
    result.chains, result.dangling, result.loaded = chains, dangling, loaded

    # keep images and the loaded part of the set, in one load request
    specs = [ImageSpec([f"keep/tool-{k}:1"], f"keep {k}", {LABEL_KEY: "keep"}, EPOCH + timedelta(days=k))
             for k in range(KEEP_IMAGES)]
    loaded_specs = []
    for i in range(loaded):
        layers = [f"shared base {i % 10}"] if i % 2 == 0 else []
        loaded_specs.append(ImageSpec(_tags_for(i), f"bench image {i}", {LABEL_KEY: "set", "team": f"t{i % 5}"},
                                      EPOCH + timedelta(hours=i), layers))
    dangling_specs = [ImageSpec([], f"bench dangling {d}", {LABEL_KEY: "set"}, EPOCH + timedelta(minutes=d))
                      for d in range(dangling)]
    ids = factory.load(specs + loaded_specs + dangling_specs)
    result.keep_ids = ids[:KEEP_IMAGES]
    loaded_ids = ids[KEEP_IMAGES:KEEP_IMAGES + loaded]
    dangling_ids = ids[KEEP_IMAGES + loaded:]

    # build chains: base (label step + copy), child (two tags), grandchild
    chain_refs = []
    before_builds = {image["Id"] for image in api.images(all=True)}
    for c in range(chains):
        base_ref, child_ref, grand_ref = f"bench/base-{c}:1", f"bench/app-{c}:1", f"bench/app-{c}:2"
        factory.build(f"FROM scratch\nLABEL {LABEL_KEY}=set bench.chain={c}\nCOPY f /f\n", {"f": f"base {c}".encode()}, tag=base_ref)
        factory.build(f"FROM {base_ref}\nCOPY g /g\n", {"g": f"child {c}".encode()}, tag=child_ref)
        factory.tag(child_ref, f"bench/app-{c}:latest")
        factory.build(f"FROM {child_ref}\nCOPY h /h\n", {"h": f"grandchild {c}".encode()}, tag=grand_ref)
        chain_refs += [base_ref, child_ref, f"bench/app-{c}:latest", grand_ref]
    built_ids = sorted({image["Id"] for image in api.images(all=True)} - before_builds)

    for i, image_id in enumerate(loaded_ids):
        result.references.extend(_tags_for(i))
    result.references.extend(chain_refs)
    result.references.extend(dangling_ids)
    result.image_ids = loaded_ids + built_ids + dangling_ids

    # stopped containers on loaded images spread over the set
    for k in range(CONTAINERS):
        image_id = loaded_ids[(k * loaded) // CONTAINERS]
        created = api.create_container(image_id, command=["/content.txt"], labels={LABEL_KEY: "set"},
                                       host_config=api.create_host_config(network_mode="none"))
        result.containers.append(created["Id"])
    listed = {image["Id"] for image in api.images(all=True)}
    missing = set(result.image_ids) - listed
    extra = listed - set(result.image_ids) - set(result.keep_ids)
    if missing or extra or len(result.image_ids) != n:
        raise RuntimeError(f"image set for n={n}: {len(result.image_ids)} IDs, missing {sorted(missing)[:3]}, "
                           f"unexpected {sorted(extra)[:3]}")
    result.build_seconds = time.perf_counter() - started
    return result


class BenchEngine(RestorableEngine):
    """A private engine whose data-root is saved once per set and restored before every destructive run."""

    def __init__(self, kind: str = "legacy", on_disk: bool = False):
        super().__init__(kind, on_disk, prefix="jdb-")


def leftovers(engine: Engine, image_set: ImageSet) -> dict:
    """What a removal left: set images still listed, keep images gone, containers left."""
    listed = {image["Id"] for image in engine.api.images(all=True)}
    return {
        "images_left": len(listed - set(image_set.keep_ids)),
        "keep_missing": len(set(image_set.keep_ids) - listed),
        "containers_left": len(engine.api.containers(all=True)),
    }
