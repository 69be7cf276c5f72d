"""Offline test images: loaded from archives made here, or built with the classic builder.

Nothing is pulled. Two ways to make images, for two needs:

* ``load()`` writes a ``docker save``-style archive in memory (config, the image's own layer, and any shared layers
  below it, text or bytes) and loads many images in one request. It sets the creation time and labels exactly, and
  is fast on every engine kind. Images whose shared layers have the same content share those layers byte for byte
  (same diff IDs) without any ``Parent``, as pulled images do.
* ``build()`` runs the engine's classic builder on a tiny context (``FROM scratch`` + ``COPY``, or ``FROM`` another
  test image). Only builds give images a ``Parent``, so parent/child chains come from here. Results are cached per
  engine and content, so a test asks for the same build again for free while it still exists.

``busybox_image()`` builds a runnable image from the host's ``busybox-static`` for containers.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)


@dataclass
class ImageSpec:
    """One image to load: its tags, the file content that makes it unique, labels and creation time."""

    tags: list[str] = field(default_factory=list)
    content: str | bytes | None = ""  # the image's own layer: text (encoded as UTF-8) or bytes; None: no own layer
    labels: dict[str, str] = field(default_factory=dict)
    created: datetime = EPOCH
    extra_layers: list[str | bytes] = field(default_factory=list)  # shared base layers, by content (text or bytes)
    platform: str = "linux/amd64"  # os/architecture[/variant] written into the config


def _tar_bytes(files: dict[str, bytes], mode: int = 0o644) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _created_text(created: datetime) -> str:
    return created.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _as_bytes(content: str | bytes) -> bytes:
    return content if isinstance(content, bytes) else content.encode()


def _layer_tar(content: str | bytes, own: bool) -> bytes:
    """One layer: the image's own file ``content.txt``, or a shared layer's file named by its content's hash (the
    same content gives the same layer, byte for byte, in every image and every archive)."""
    data = _as_bytes(content)
    path = "content.txt" if own else f"base-{hashlib.sha1(data).hexdigest()[:8]}.txt"
    return _tar_bytes({path: data})


def save_archive(specs: list[ImageSpec]) -> bytes:
    """A ``docker load`` archive holding every spec (shared layers are stored once)."""
    files: dict[str, bytes] = {}
    manifest = []
    for spec in specs:
        layer_names = []
        diff_ids = []
        own = [] if spec.content is None else [spec.content]
        for index, content in enumerate([*spec.extra_layers, *own]):
            layer = _layer_tar(content, own=index == len(spec.extra_layers))
            digest = hashlib.sha256(layer).hexdigest()
            files[f"{digest}/layer.tar"] = layer
            layer_names.append(f"{digest}/layer.tar")
            diff_ids.append(f"sha256:{digest}")
        created = _created_text(spec.created)
        os_name, arch, *variant = spec.platform.split("/")
        config = {
            "architecture": arch,
            "os": os_name,
            **({"variant": variant[0]} if variant else {}),
            "created": created,
            "config": {"Labels": dict(spec.labels) or None, "Cmd": ["/content.txt"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": created, "created_by": f"janitor test layer {i}"} for i in range(len(diff_ids))],
        }
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        files[config_name] = config_bytes
        manifest.append({"Config": config_name, "RepoTags": list(spec.tags) or None, "Layers": layer_names})
    files["manifest.json"] = json.dumps(manifest).encode()
    return _tar_bytes(files)


class ImageFactory:
    """Makes test images on one engine."""

    def __init__(self, engine):
        self.engine = engine
        self._build_cache: dict[str, str] = {}
        self._counter = 0

    @property
    def api(self):
        return self.engine.api

    def unique(self, prefix: str = "img") -> str:
        self._counter += 1
        return f"{prefix}-{time.time_ns()}-{self._counter}"

    # -- load --------------------------------------------------------------------------------------------------
    def load(self, specs: list[ImageSpec]) -> list[str]:
        """Load the images; returns their IDs in the order of ``specs`` (looked up by their first tag or content)."""
        archive = save_archive(specs)
        for chunk in self.api.load_image(archive):
            if isinstance(chunk, dict) and chunk.get("error"):
                raise RuntimeError(f"load failed on {self.engine.kind}: {chunk['error']}")
        untagged = iter(self._find_untagged([spec for spec in specs if not spec.tags]))
        return [self.api.inspect_image(spec.tags[0])["Id"] if spec.tags else next(untagged) for spec in specs]

    def _find_untagged(self, specs: list[ImageSpec]) -> list[str]:
        """The IDs of loaded untagged images, found by their top layer: among the images without a tag first (one
        inspect each), then among the tagged ones (the same image may have been loaded with a tag before)."""
        if not specs:
            return []
        wanted = []
        for spec in specs:
            own = spec.content is not None
            top = _layer_tar(spec.content if own else spec.extra_layers[-1], own=own)
            wanted.append("sha256:" + hashlib.sha256(top).hexdigest())
        listed = self.api.images(all=True)
        untagged = [image for image in listed
                    if not any(tag != "<none>:<none>" for tag in image.get("RepoTags") or [])]
        by_layer: dict[str, str] = {}
        for group in (untagged, [image for image in listed if image not in untagged]):
            for image in group:
                layers = self.api.inspect_image(image["Id"])["RootFS"].get("Layers") or []
                if layers:
                    by_layer.setdefault(layers[-1], image["Id"])
            if all(layer in by_layer for layer in wanted):
                break
        ids = []
        for spec, layer in zip(specs, wanted):
            if layer not in by_layer:
                raise LookupError(f"loaded untagged image with content {spec.content!r:.60} not found")
            ids.append(by_layer[layer])
        return ids

    def simple(self, *tags: str, content: str | None = None, labels=None, created: datetime = EPOCH) -> str:
        """One loaded image with the given tags; returns its ID."""
        spec = ImageSpec(list(tags), content if content is not None else self.unique("c"), dict(labels or {}), created)
        return self.load([spec])[0]

    # -- build -------------------------------------------------------------------------------------------------
    def build(self, dockerfile: str, files: dict[str, bytes] | None = None, tag: str | None = None,
              labels: dict | None = None) -> str:
        """Build with the classic builder; returns the image ID. Cached per engine while the image exists."""
        files = dict(files or {})
        key = hashlib.sha256(
            json.dumps([dockerfile, sorted((k, hashlib.sha256(v).hexdigest()) for k, v in files.items()),
                        sorted((labels or {}).items())]).encode()
        ).hexdigest()
        cached = self._build_cache.get(key)
        if cached and self._exists(cached):
            if tag:
                self.tag(cached, tag)
            return cached
        files["Dockerfile"] = dockerfile.encode()
        context = _tar_bytes(files, mode=0o755)
        image_id = None
        log = []
        for chunk in self.api.build(fileobj=io.BytesIO(context), custom_context=True, tag=tag, labels=labels,
                                    rm=True, forcerm=True, decode=True, network_mode="none"):
            log.append(chunk)
            if "error" in chunk:
                raise RuntimeError(f"build failed on {self.engine.kind}: {chunk['error']}")
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
        if image_id is None:
            for chunk in log:
                text = chunk.get("stream", "")
                if text.startswith("Successfully built "):
                    image_id = self.api.inspect_image(text.split()[-1])["Id"]
        if image_id is None:
            raise RuntimeError(f"build on {self.engine.kind} gave no image ID: {log}")
        self._build_cache[key] = image_id
        return image_id

    def scratch(self, content: str, tag: str | None = None, labels: dict | None = None) -> str:
        """``FROM scratch`` + ``COPY`` of one small file."""
        return self.build("FROM scratch\nCOPY f /f\n", {"f": content.encode()}, tag=tag, labels=labels)

    def child(self, parent: str, content: str, tag: str | None = None, labels: dict | None = None) -> str:
        """An image built ``FROM parent`` (the parent must be tagged or an ID); gets ``Parent`` set."""
        return self.build(f"FROM {parent}\nCOPY g /g\n", {"g": content.encode()}, tag=tag, labels=labels)

    def busybox_image(self, tag: str = "janitor-busybox:latest") -> str:
        """A runnable image from the host's busybox-static."""
        return self.build(
            'FROM scratch\nCOPY busybox /bin/busybox\nCMD ["/bin/busybox", "sleep", "3600"]\n',
            {"busybox": BUSYBOX.read_bytes()}, tag=tag,
        )

    def _exists(self, image_id: str) -> bool:
        try:
            self.api.inspect_image(image_id)
            return True
        except Exception:  # noqa: BLE001 - docker.errors.NotFound, mostly
            return False

    # -- tags and containers -----------------------------------------------------------------------------------
    def tag(self, image: str, *refs: str) -> None:
        for ref in refs:
            repo, _sep, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
            self.api.tag(image, repo, tag or "latest", force=True)

    def stopped_container(self, image: str) -> str:
        """A container that exists but does not run (created, never started)."""
        return self.api.create_container(
            image, command=["/bin/busybox", "true"], host_config=self.api.create_host_config(network_mode="none")
        )["Id"]

    def running_container(self, image: str) -> str:
        cid = self.api.create_container(
            image, command=["/bin/busybox", "sleep", "3600"],
            host_config=self.api.create_host_config(network_mode="none"),
        )["Id"]
        self.api.start(cid)
        return cid


INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")


def push_platform_index(engine, registry, repo: str, tag: str, platforms=("linux/amd64", "linux/arm64")) -> str:
    """An image index of tiny single-layer images, one per platform, pushed to the local registry as
    ``<registry>/<repo>:<tag>``, made offline: each platform's image is loaded, pushed under a tag of its own and
    removed; the index listing their manifests is PUT to the registry by hand (no buildx, no ``docker manifest``).
    Returns the index digest."""
    import urllib3

    factory = ImageFactory(engine)
    http = urllib3.PoolManager()
    base = f"http://{registry.host}/v2/{repo}/manifests"
    entries = []
    for platform in platforms:
        part = f"{tag}-{platform.replace('/', '-')}"
        image_id = factory.load([ImageSpec([f"{registry.host}/{repo}:{part}"], f"{repo} {tag} {platform}",
                                           platform=platform)])[0]
        for chunk in engine.api.push(f"{registry.host}/{repo}", tag=part, stream=True, decode=True):
            if "error" in chunk:
                raise RuntimeError(f"push of {repo}:{part} failed: {chunk['error']}")
        answer = http.request("GET", f"{base}/{part}", headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if answer.status != 200:
            raise RuntimeError(f"reading back {repo}:{part}: {answer.status} {answer.data[:200]!r}")
        os_name, arch, *variant = platform.split("/")
        entries.append({"mediaType": answer.headers["Content-Type"], "size": len(answer.data),
                        "digest": "sha256:" + hashlib.sha256(answer.data).hexdigest(),
                        "platform": {"os": os_name, "architecture": arch, **({"variant": variant[0]} if variant else {})}})
        engine.api.remove_image(image_id, force=True)
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": entries}).encode()
    answer = http.request("PUT", f"{base}/{tag}", body=index, headers={"Content-Type": INDEX_TYPE})
    if answer.status not in (200, 201):
        raise RuntimeError(f"PUT of the index {repo}:{tag}: {answer.status} {answer.data[:200]!r}")
    return "sha256:" + hashlib.sha256(index).hexdigest()


def pulled_index(engine, registry, repo: str, second_name: str):
    """``setup()`` -> (reference, image ID): pushes the two-platform index of ``push_platform_index`` once as
    ``<registry>/<repo>:v1``; each ``setup()`` resets the engine, pulls the index (on the containerd store the arm64
    variant too, so both are present) and gives it ``second_name``: the same IDs and manifest digests every time."""
    push_platform_index(engine, registry, repo, "v1")
    ref = f"{registry.host}/{repo}:v1"

    def setup():
        engine.reset()
        engine.cli("pull", "-q", ref)
        if engine.kind == "containerd":
            engine.cli("pull", "-q", "--platform", "linux/arm64", ref)
        engine.cli("tag", ref, second_name)
        return ref, engine.api.inspect_image(ref)["Id"]

    return setup


def available_manifests(engine, image_id: str) -> dict:
    """``{(architecture, manifest digest): available}`` of an image's platform manifests, as the engine lists them
    (``GET /images/{id}/json?manifests=1``: the containerd store; the graph-driver store lists none; a loaded image's
    manifest names no platform: architecture ``""``)."""
    api = engine.api
    data = api._result(api._get(api._url("/images/{0}/json", image_id), params={"manifests": 1}), True)  # noqa: SLF001
    return {((m["Descriptor"].get("platform") or {}).get("architecture", ""), m["ID"]): m["Available"]
            for m in data.get("Manifests") or () if m.get("Kind") == "image"}
