"""The realistic image world: images as users have them, made offline once and restored in seconds.

What ``make_world(engine, registry)`` leaves on an engine (names under the local registry ``127.0.0.1:<port>``):

* two **base images** of a few MiB of incompressible (random) content, ``base/debian:12`` (with the host's
  ``busybox-static``, so containers can run) and ``base/alpine:3.20``;
* **runtimes** built on a base (``runtime/python:3.12`` with two layers, ``runtime/node:20``) and **applications**
  built on the runtimes (``apps/web:1.0``, ``apps/web:1.1`` = ``apps/web:latest`` = ``mirror/web:1.1``,
  ``apps/api:2.0``) or on the other base (``apps/worker:1``). Their Dockerfiles add empty layers too (``ENV``,
  ``LABEL``, ``CMD``), so the history has entries without a layer.
  All of them are built, pushed to the registry, removed, and **pulled back**: no ``Parent``, real
  ``RepoDigests``, base layers shared between images that know nothing of each other. One pulled image also has
  a short local name (``web:prod``), as operators retag what they run.
* **CI leftovers**, built locally with the classic builder on a pulled runtime: ``ci/build:latest`` built twice
  (the first build is now **dangling**), each build leaving its **intermediate images** (untagged parents on the
  graph-driver stores, dangling images on the containerd store); a **stopped container** on the dangling build
  and one on ``apps/api:2.0``.

Making it takes half a minute per engine; ``WorldEngine`` makes it once, keeps a golden copy of the data-root and
restores it (stop the daemon, copy the data-root back, start it) in a few seconds, with the same image and
container IDs every time. The pytest fixtures ``world`` (session, one per engine kind) and ``fresh_world`` (restored
for the test) live in ``tests/conftest.py``; the demo and the benchmark use the same functions.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.harness.engines import Engine, engine_spec
from tests.harness.images import BUSYBOX, ImageFactory

KiB = 1024
MiB = 1024 * KiB


def random_bytes(seed: str, size: int) -> bytes:
    """``size`` incompressible bytes, the same for the same seed (image IDs stay stable between sessions)."""
    return random.Random(seed).randbytes(size)


@dataclass(frozen=True)
class Layered:
    """One image of the world: built ``FROM`` another (or scratch) with these files, then pushed and pulled."""

    ref: str  # repository:tag under the registry
    base: str  # "scratch" or the ref of another Layered image
    files: tuple  # ((path in image, seed, size), ...): one COPY (one layer) each
    extra_tags: tuple = ()  # more repository:tag names pushed for the same image


PULLED = (
    Layered("base/debian:12", "scratch", (("/rootfs/blob", "debian-12", 4 * MiB),)),
    Layered("base/alpine:3.20", "scratch", (("/rootfs/blob", "alpine-3.20", 3 * MiB),)),
    Layered("runtime/python:3.12", "base/debian:12",
            (("/usr/lib/python", "python-3.12", 2 * MiB), ("/usr/lib/python-extra", "python-extra", 96 * KiB))),
    Layered("runtime/node:20", "base/debian:12", (("/usr/lib/node", "node-20", 1536 * KiB),)),
    Layered("apps/web:1.0", "runtime/python:3.12", (("/app/web", "web-1.0", 512 * KiB),)),
    Layered("apps/web:1.1", "runtime/python:3.12", (("/app/web", "web-1.1", 768 * KiB),),
            extra_tags=("apps/web:latest", "mirror/web:1.1")),
    Layered("apps/api:2.0", "runtime/node:20", (("/app/api", "api-2.0", 1 * MiB),)),
    Layered("apps/worker:1", "base/alpine:3.20", (("/app/worker", "worker-1", 256 * KiB),)),
)
LOCAL_TAGS = {"web:prod": "apps/web:1.1"}  # short local names for pulled images
CI_REPO = "ci/build:latest"
CI_BUILDS = 2


@dataclass
class World:
    """What ``make_world`` made: references and IDs (full ``sha256:`` form) by role."""

    kind: str
    registry: str  # 127.0.0.1:<port>
    ids: dict = field(default_factory=dict)  # short name ("apps/web:1.1", "ci/build#1", ...) -> image ID
    references: dict = field(default_factory=dict)  # short name -> the reference as the engine lists it
    dangling: list = field(default_factory=list)  # IDs of the dangling CI builds
    intermediates: list = field(default_factory=list)  # IDs of the builder's intermediate images
    containers: dict = field(default_factory=dict)  # container ID -> image ID (all stopped)

    def ref(self, name: str) -> str:
        """The listed reference for a world name (``apps/web:1.1`` -> ``127.0.0.1:5000/apps/web:1.1``)."""
        return self.references[name]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "World":
        return cls(**json.loads(text))


def _dockerfile(image: Layered, base_ref: str) -> str:
    lines = [f"FROM {base_ref}", f"LABEL org.example.image={image.ref}"]
    for index, (path, _seed, _size) in enumerate(image.files):
        lines.append(f"COPY f{index} {path}")
    lines.append(f"ENV IMAGE_NAME={image.ref}")
    if image.base == "scratch":
        lines.append('CMD ["/bin/busybox", "sleep", "3600"]')
    return "\n".join(lines) + "\n"


def push(engine: Engine, name: str, tag: str) -> None:
    """Push ``name:tag`` from ``engine``; a failure the registry streams back is raised."""
    for chunk in engine.api.push(name, tag=tag, stream=True, decode=True):
        if "error" in chunk:
            raise RuntimeError(f"push of {name}:{tag} failed on {engine.kind}: {chunk['error']}")


def pull(engine: Engine, name: str, tag: str) -> None:
    """Pull ``name:tag`` onto ``engine``; a failure the engine streams back is raised."""
    for chunk in engine.api.pull(name, tag=tag, stream=True, decode=True):
        if "error" in chunk:
            raise RuntimeError(f"pull of {name}:{tag} failed on {engine.kind}: {chunk['error']}")


def split_ref(ref: str) -> tuple[str, str]:
    """``repo:tag`` -> ``(repo, tag)`` (the registry's port stays in the repository)."""
    repo, _sep, tag = ref.rpartition(":")
    return repo, tag


def make_world(engine: Engine, registry) -> World:
    """Build, push and pull the world on a clean ``engine`` (see the module docstring)."""
    factory = ImageFactory(engine)
    api = engine.api
    world = World(kind=engine.kind, registry=registry.host)
    host = registry.host
    pushed = []
    for image in PULLED:
        base_ref = image.base if image.base == "scratch" else f"{host}/{image.base}"
        files = {f"f{i}": random_bytes(seed, size) for i, (_path, seed, size) in enumerate(image.files)}
        if image.base == "scratch" and image.ref == "base/debian:12":
            files["busybox"] = BUSYBOX.read_bytes()
        dockerfile = _dockerfile(image, base_ref)
        if "busybox" in files:
            dockerfile = dockerfile.replace("COPY f0", "COPY busybox /bin/busybox\nCOPY f0", 1)
        image_id = factory.build(dockerfile, files, tag=f"{host}/{image.ref}")
        for ref in (image.ref, *image.extra_tags):
            repo, tag = split_ref(ref)
            api.tag(image_id, f"{host}/{repo}", tag, force=True)
            push(engine, f"{host}/{repo}", tag)
            pushed.append(ref)
    engine.reset()  # nothing local is left: every image below comes back from the registry
    for ref in pushed:
        repo, tag = split_ref(ref)
        pull(engine, f"{host}/{repo}", tag)
        world.references[ref] = f"{host}/{ref}"
        world.ids[ref] = api.inspect_image(f"{host}/{ref}")["Id"]
    for short, target in LOCAL_TAGS.items():
        repo, tag = split_ref(short)
        api.tag(world.ids[target], repo, tag, force=True)
        world.references[short] = short
        world.ids[short] = world.ids[target]

    # CI leftovers: the same Dockerfile built twice on a pulled runtime; the first build loses its tag
    before = {image["Id"] for image in api.images(all=True)}
    builds = []
    for run in range(1, CI_BUILDS + 1):
        dockerfile = (f"FROM {host}/runtime/python:3.12\nLABEL ci.run={run}\n"
                      f"COPY dist /app/dist\nENV BUILD={run}\nCOPY conf /app/conf\n")
        files = {"dist": random_bytes(f"ci-dist-{run}", 384 * KiB), "conf": random_bytes(f"ci-conf-{run}", 8 * KiB)}
        builds.append(factory.build(dockerfile, files, tag=CI_REPO))
        world.ids[f"ci/build#{run}"] = builds[-1]
    world.references[CI_REPO] = CI_REPO
    world.ids[CI_REPO] = builds[-1]
    world.dangling = builds[:-1]
    after = {image["Id"] for image in api.images(all=True)}
    world.intermediates = sorted(after - before - set(builds))

    host_config = api.create_host_config(network_mode="none")
    for image_id in (builds[0], world.ids["apps/api:2.0"]):
        container = api.create_container(image_id, command=["/bin/busybox", "true"], host_config=host_config)
        world.containers[container["Id"]] = image_id
    return world


class RestorableEngine:
    """A private engine whose data-root can be saved once and restored before every destructive run.

    The data-root lives on tmpfs (``/dev/shm``) unless ``on_disk`` is set, so restoring is a memory copy.
    """

    def __init__(self, kind: str = "legacy", on_disk: bool = False, prefix: str = "jdw-"):
        self.kind = kind
        parent = "/tmp" if on_disk or not os.path.isdir("/dev/shm") else "/dev/shm"
        self.base = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        self.data = self.base / "data"
        self.golden = self.base / "golden"
        self.data.mkdir()
        self.engine: Engine | None = None
        self.tmpfs = parent == "/dev/shm"

    def start(self) -> Engine:
        """The harness engine, with our data-root (the last ``--data-root`` given to dockerd wins)."""
        self.engine = Engine(engine_spec(self.kind), extra_args=("--data-root", str(self.data))).start()
        return self.engine

    def _halt(self) -> None:
        """Stop dockerd without the harness's container clean-up, so the data-root stays as it is."""
        engine = self.engine
        if engine is None:
            return
        engine.terminate(timeout=60)
        engine.stop()  # the process is gone: only closes the client and removes the exec-root and socket
        self.engine = None
        _unmount_below(str(self.base))

    def save(self) -> Engine:
        """Keep the current state as the golden copy; returns the restarted engine."""
        self._halt()
        shutil.rmtree(self.golden, ignore_errors=True)
        subprocess.run(["cp", "-a", str(self.data), str(self.golden)], check=True)
        return self.start()

    def restore(self) -> Engine:
        """Back to the golden copy (a fresh dockerd on the restored data-root)."""
        self._halt()
        shutil.rmtree(self.data, ignore_errors=True)
        subprocess.run(["cp", "-a", str(self.golden), str(self.data)], check=True)
        return self.start()

    def wipe(self) -> Engine:
        """An empty engine."""
        self._halt()
        shutil.rmtree(self.data, ignore_errors=True)
        shutil.rmtree(self.golden, ignore_errors=True)
        self.data.mkdir()
        return self.start()

    def close(self) -> None:
        self._halt()
        shutil.rmtree(self.base, ignore_errors=True)


class WorldEngine(RestorableEngine):
    """An engine holding the realistic world: ``build(registry)`` once, ``restore()`` before each destructive use."""

    def __init__(self, kind: str = "legacy", on_disk: bool = False):
        super().__init__(kind, on_disk, prefix=f"jdw-{kind[:3]}-")
        self.world: World | None = None

    def build(self, registry) -> World:
        engine = self.engine or self.start()
        self.world = make_world(engine, registry)
        (self.base / "world.json").write_text(self.world.to_json())
        self.save()
        return self.world


def _unmount_below(prefix: str) -> None:
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
