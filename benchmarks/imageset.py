"""The benchmark's image set, and a private engine that can be put back to the same state in seconds.

The set for ``n`` images is the realistic world of ``tests/harness/world.py`` scaled to ``n`` image IDs
(intermediate build images included); names under ``<reg>`` are the local registry's ``127.0.0.1:<port>``:

* three **base images** of 2 to 4 MiB of incompressible content (``<reg>/base/...``) and three **runtimes** on
  them (``<reg>/runtime/...``, 1 to 2 MiB more), pushed to the local registry and **pulled back**: no
  ``Parent``, real ``RepoDigests``;
* **applications**, each on a runtime or directly on a base, with an own layer of 8 to 64 KiB and one to four
  tags (about 1.75 on average) in ``apps/svc-<k>`` repositories, some also in a ``mirror/...`` repository. One in
  ten is pushed and pulled back too (its first tag is ``<reg>/apps/...``, the others are local names); the rest
  are loaded in one request. Every application shares the base and runtime layers byte for byte (the same diff
  IDs) without any ``Parent``, as pulled images do;
* **CI leftovers**, one chain per 100 images: ``ci/build-<c>`` built twice with the classic builder ``FROM`` a
  pulled runtime (``LABEL`` + ``COPY``, so each build is an intermediate image plus the result, with ``Parent``
  set); the first build is now **dangling** and named by ID in the explicit list, as are the **untagged loaded
  images** (one per 50 images, on a runtime);
* five **stopped containers** (created, never started): one on a dangling CI build, four on applications;
* ten ``keep/...`` images outside the set that every tool must leave alone; half of them share the first base
  layer (a host keeps its own services on the same base), so removing the set does not free that layer.

Every image and container of the set has the label ``janitor.bench=set`` (the keep images ``janitor.bench=keep``),
so the filter rows select exactly the set by label. The explicit list (``references``) names every tag of the set
and the IDs of its untagged images, children before the images they are built on, and removes the whole set.

The classic builds come first, before the bulk load: on the containerd image store every engine operation gets
slower as the image count grows. Making the set takes the engine a while at large ``n``, so it is made once per
``n``: the engine is stopped, its data-root copied aside (the golden copy), and before every destructive run the
engine is stopped, the data-root restored from the golden copy and the engine started again. Every tool sees the
identical state (the same image and container IDs). The data-root lives on tmpfs (``/dev/shm``) unless ``on_disk``
is set, so the numbers measure the software rather than the shared machine's disk.
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
from tests.harness.world import KiB, MiB, RestorableEngine, pull, push, random_bytes, split_ref  # noqa: E402

LABEL_KEY = "janitor.bench"
SET_LABEL = f"{LABEL_KEY}=set"
KEEP_LABEL = f"{LABEL_KEY}=keep"
CONTAINERS = 5
KEEP_IMAGES = 10
KEEP_ON_BASE = 5  # keep images on the first base's layer
SET_LABELS = {LABEL_KEY: "set"}

# (reference, seed, size): one layer of random content each
BASES = (("base/debian:12", "bench-debian-12", 4 * MiB), ("base/alpine:3.20", "bench-alpine-3.20", 3 * MiB),
         ("base/ubi:9", "bench-ubi-9", 2 * MiB))
# (reference, index into BASES, ((seed, size), ...)): the runtime's own layers on its base
RUNTIMES = (("runtime/python:3.12", 0, (("bench-python-3.12", 2 * MiB), ("bench-python-extra", 96 * KiB))),
            ("runtime/node:20", 0, (("bench-node-20", 1536 * KiB),)),
            ("runtime/jre:17", 1, (("bench-jre-17", 1 * MiB),)))
PULLED_EVERY = 10  # one application in ten is pushed and pulled back
CI_BUILDS = 2  # builds per CI chain; all but the last are dangling
CI_IDS_PER_BUILD = 2  # the LABEL step (an intermediate image) and the COPY step (the build's result)


@dataclass
class ImageSet:
    """What was made: the explicit references (children first), the IDs, the containers."""

    n: int
    registry: str = ""
    references: list = field(default_factory=list)  # tags, and IDs for the untagged images
    image_ids: list = field(default_factory=list)  # every ID of the set, intermediate images included
    keep_ids: list = field(default_factory=list)
    containers: list = field(default_factory=list)
    chains: int = 0
    dangling: int = 0  # untagged images named by ID: dangling CI builds and untagged loaded images
    loaded: int = 0  # applications loaded in the bulk request
    pulled: int = 0  # images pushed to the registry and pulled back (bases, runtimes, applications)
    built: int = 0  # image IDs the classic builds made (intermediates included)
    with_digests: int = 0  # images of the set listed with RepoDigests (the containerd store: every named image)
    build_seconds: float = 0.0
    phase_seconds: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {
            "images": len(self.image_ids),
            "references": len(self.references),
            "tags": sum(1 for r in self.references if not r.startswith("sha256:")),
            "untagged_by_id": self.dangling,
            "bases": len(BASES),
            "runtimes": len(RUNTIMES),
            "pulled": self.pulled,
            "with_repo_digests": self.with_digests,
            "build_chains": self.chains,
            "built": self.built,
            "loaded": self.loaded,
            "containers": len(self.containers),
            "keep_images": len(self.keep_ids),
            "keep_images_on_a_set_base": KEEP_ON_BASE,
            "seconds_to_make": round(self.build_seconds, 1),
            "seconds_by_phase": {k: round(v, 1) for k, v in self.phase_seconds.items()},
        }


def _tags_for(i: int) -> list[str]:
    """One to four tags: 50 % one, 30 % two, 15 % three, 5 % four (the fourth in a mirror repository)."""
    repo = f"apps/svc-{i % 40}"
    slot = i % 20
    count = 1 if slot < 10 else 2 if slot < 16 else 3 if slot < 19 else 4
    tags = [f"{repo}:v{i}", f"{repo}:v{i}-stable", f"{repo}:v{i}-rc"][: min(count, 3)]
    if count == 4:
        tags.append(f"mirror/svc-{i % 7}:v{i}")
    return tags


class _Layers:
    """The random content of the shared layers, made once per set."""

    def __init__(self):
        self.base = [random_bytes(seed, size) for _ref, seed, size in BASES]
        self.runtime = [[random_bytes(seed, size) for seed, size in layers] for _ref, _base, layers in RUNTIMES]

    def runtime_stack(self, r: int) -> list[bytes]:
        return [self.base[RUNTIMES[r][1]], *self.runtime[r]]

    def app_stack(self, i: int) -> list[bytes]:
        """Applications on the runtimes, and every fourth directly on the third base."""
        which = i % (len(RUNTIMES) + 1)
        return self.runtime_stack(which) if which < len(RUNTIMES) else [self.base[2]]


def _app_spec(i: int, tags: list[str], layers: _Layers) -> ImageSpec:
    own = random_bytes(f"bench-app-{i}", 8 * KiB + (i * 7919) % (56 * KiB))
    return ImageSpec(tags, own, {**SET_LABELS, "team": f"t{i % 5}"}, EPOCH + timedelta(hours=i),
                     layers.app_stack(i))


def _push_and_pull_back(engine: Engine, refs: list[str]) -> None:
    """Push each ``<reg>/repo:tag``, remove it, and pull it back: no ``Parent``, real ``RepoDigests``."""
    for ref in refs:
        push(engine, *split_ref(ref))
    for ref in refs:
        engine.api.remove_image(ref)
    for ref in refs:
        pull(engine, *split_ref(ref))


def _check_pulled(engine: Engine, pulled: list[str], base_ref: str, app_ref: str | None) -> None:
    """The pulled images have no ``Parent`` and real ``RepoDigests``; a loaded application on ``base_ref`` shares
    its layer (the same diff ID)."""
    for ref in pulled:
        inspected = engine.api.inspect_image(ref)
        if inspected.get("Parent") or not inspected.get("RepoDigests"):
            raise RuntimeError(f"{ref} on {engine.kind}: Parent {inspected.get('Parent')!r}, "
                               f"RepoDigests {inspected.get('RepoDigests')!r}")
    if app_ref is not None:
        app = engine.api.inspect_image(app_ref)["RootFS"]["Layers"]
        base = engine.api.inspect_image(base_ref)["RootFS"]["Layers"]
        if app[:1] != base:
            raise RuntimeError(f"{app_ref} on {engine.kind} does not share the layer of {base_ref}: {app[:1]} {base}")


def make_set(engine: Engine, n: int, registry) -> ImageSet:
    """Make the set for ``n`` on a clean engine, with ``registry`` (a started local registry) for the pulled images.

    See the module docstring."""
    started = time.perf_counter()
    factory = ImageFactory(engine)
    api = engine.api
    host = registry.host
    result = ImageSet(n=n, registry=host)
    chains = max(1, n // 100)
    dangling_loaded = max(1, n // 50)
    apps = n - len(BASES) - len(RUNTIMES) - chains * CI_BUILDS * CI_IDS_PER_BUILD - dangling_loaded
    if apps < CONTAINERS:
        raise ValueError(f"n={n} is too small for the set (at least {n - apps + CONTAINERS})")
    result.chains, result.loaded = chains, apps
    layers = _Layers()
    clock = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.phase_seconds[name] = now - clock
        clock = now

    # 1. bases, runtimes, one application in ten (under the registry's name) and the keep images, in one load;
    #    then the set's part is pushed, removed and pulled back
    base_refs = [f"{host}/{ref}" for ref, _seed, _size in BASES]
    runtime_refs = [f"{host}/{ref}" for ref, _base, _layers in RUNTIMES]
    specs = [ImageSpec([ref], None, {**SET_LABELS, "org.example.image": ref}, EPOCH, [layers.base[b]])
             for b, ref in enumerate(base_refs)]
    specs += [ImageSpec([ref], None, {**SET_LABELS, "org.example.image": ref}, EPOCH + timedelta(days=1),
                        layers.runtime_stack(r)) for r, ref in enumerate(runtime_refs)]
    pulled_apps = list(range(0, apps, PULLED_EVERY))
    app_tags = {i: _tags_for(i) for i in range(apps)}
    for i in pulled_apps:
        app_tags[i][0] = f"{host}/{app_tags[i][0]}"
    pushed = base_refs + runtime_refs + [app_tags[i][0] for i in pulled_apps]
    specs += [_app_spec(i, app_tags[i][:1], layers) for i in pulled_apps]
    specs += [ImageSpec([f"keep/tool-{k}:1"], f"keep {k}", {LABEL_KEY: "keep"}, EPOCH + timedelta(days=k),
                        [layers.base[0]] if k < KEEP_ON_BASE else []) for k in range(KEEP_IMAGES)]
    result.keep_ids = factory.load(specs)[-KEEP_IMAGES:]
    phase("load bases, runtimes, keep images")
    _push_and_pull_back(engine, pushed)
    result.pulled = len(pushed)
    app_ids = {i: api.inspect_image(app_tags[i][0])["Id"] for i in pulled_apps}
    for i in pulled_apps:
        factory.tag(app_ids[i], *app_tags[i][1:])
    phase("push and pull back")

    # 2. CI leftovers: each chain's Dockerfile built twice on a pulled runtime; the first build loses its tag
    before = {image["Id"] for image in api.images(all=True)}
    ci_tags, ci_dangling = [], []
    for c in range(chains):
        builds = []
        runtime = runtime_refs[c % len(RUNTIMES)]
        for run in range(1, CI_BUILDS + 1):
            dockerfile = f"FROM {runtime}\nLABEL ci.chain={c} ci.run={run}\nCOPY dist /app/dist\n"
            files = {"dist": random_bytes(f"bench-ci-{c}-{run}", 16 * KiB + (c * 4099) % (48 * KiB))}
            builds.append(factory.build(dockerfile, files, tag=f"ci/build-{c}:latest"))
        factory.tag(builds[-1], f"ci/build-{c}:{CI_BUILDS}")
        ci_tags += [f"ci/build-{c}:latest", f"ci/build-{c}:{CI_BUILDS}"]
        ci_dangling += builds[:-1]
    built_ids = sorted({image["Id"] for image in api.images(all=True)} - before)
    result.built = len(built_ids)
    if result.built != chains * CI_BUILDS * CI_IDS_PER_BUILD:
        raise RuntimeError(f"the CI builds on {engine.kind} made {result.built} image IDs, expected "
                           f"{chains * CI_BUILDS * CI_IDS_PER_BUILD}")
    phase("classic builds")

    # 3. the bulk: the other applications and the untagged images, in one load
    bulk = [i for i in range(apps) if i not in app_ids]
    untagged = [ImageSpec([], random_bytes(f"bench-untagged-{d}", 8 * KiB), SET_LABELS,
                          EPOCH + timedelta(minutes=d), layers.runtime_stack(d % len(RUNTIMES)))
                for d in range(dangling_loaded)]
    ids = factory.load([_app_spec(i, app_tags[i], layers) for i in bulk] + untagged)
    app_ids.update(zip(bulk, ids))
    untagged_ids = ids[len(bulk):]
    phase("bulk load")

    result.dangling = len(ci_dangling) + len(untagged_ids)
    for i in range(apps):
        result.references.extend(app_tags[i])
    result.references += ci_tags + ci_dangling + untagged_ids + runtime_refs + base_refs
    base_ids = [api.inspect_image(ref)["Id"] for ref in base_refs + runtime_refs]
    result.image_ids = [app_ids[i] for i in range(apps)] + built_ids + untagged_ids + base_ids

    # stopped containers: one on a dangling CI build, the others on applications spread over the set
    targets = [ci_dangling[0]] + [app_ids[(k * apps) // (CONTAINERS - 1)] for k in range(CONTAINERS - 1)]
    for image_id in targets:
        created = api.create_container(image_id, command=["/content.txt"], labels=SET_LABELS,
                                       host_config=api.create_host_config(network_mode="none"))
        result.containers.append(created["Id"])
    listing = {image["Id"]: image for image in api.images(all=True)}
    listed = set(listing)
    missing = set(result.image_ids) - listed
    extra = listed - set(result.image_ids) - set(result.keep_ids)
    if missing or extra or len(set(result.image_ids)) != n or len(result.image_ids) != n:
        raise RuntimeError(f"image set for n={n}: {len(result.image_ids)} IDs, missing {sorted(missing)[:3]}, "
                           f"unexpected {sorted(extra)[:3]}")
    result.with_digests = sum(1 for image_id in result.image_ids
                              if any(d != "<none>@<none>" for d in listing[image_id].get("RepoDigests") or []))
    on_base = [i for i in bulk if i % (len(RUNTIMES) + 1) == len(RUNTIMES)]  # the applications on the third base
    _check_pulled(engine, pushed, base_refs[2], app_tags[on_base[0]][0] if on_base else None)
    phase("containers and check")
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
