# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One read of the engine's images and containers, as plain immutable records.

``read(client)`` makes exactly two list requests (``GET /images/json?all=1`` and ``GET /containers/json?all=1``,
each read again when the store changed under it) plus one ``GET /info``, sent beside the listings; nothing after it
talks to the engine, so selection and planning are pure functions of a ``Snapshot`` and can be tested without a
daemon. The one extra read, each image's layers (for the released layers and the space freed, in check mode and
in the real run), is ``_layer_reader.LayerReader``: it runs beside the planner. This module imports no transport
and no SDK.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from dataclasses import dataclass, field

from ansible_collections.janitor.docker.plugins.module_utils._errors import EngineAPIError, JanitorError, shown

CLASSIC = "classic"
CONTAINERD = "containerd"
NONE_TAG = "<none>:<none>"
NONE_DIGEST = "<none>@<none>"


@dataclass(frozen=True)
class ImageRecord:
    id: str  # "sha256:<64 hex>"
    parent: str = ""  # the parent image ID, "" when none
    tags: tuple = ()  # "repo:tag" as the engine lists them (familiar form: "busybox:latest")
    digests: tuple = ()  # "repo@sha256:<hex>"
    created: int = 0  # seconds since the epoch
    size: int = 0  # bytes, as the engine lists them
    labels: tuple = ()  # sorted (key, value) pairs
    # the IDs of the manifests whose content is on the host, sorted (the containerd store, API 1.47+; else empty):
    # an index keeps its ID when a platform's content is pulled into it or removed from it
    manifests: tuple = ()

    @property
    def references(self):
        return self.tags + self.digests

    @property
    def label_dict(self):
        return dict(self.labels)

    @property
    def dangling(self):
        """No tag (the engine's ``dangling=true``: digests alone do not count as tags)."""
        return not self.tags

    @property
    def repositories(self):
        """The distinct repository names among the references, in first-seen order."""
        seen = []
        for ref in self.references:
            repo = repository_of(ref)
            if repo not in seen:
                seen.append(repo)
        return tuple(seen)


@dataclass(frozen=True)
class ContainerRecord:
    id: str  # full container ID
    image_id: str  # "sha256:<hex>"
    state: str = "exited"  # running, paused, restarting, exited, created, dead, removing
    name: str = ""
    mounts: tuple = ()  # the images it mounts (``--mount type=image``, Docker 28+), as the mount names them

    @property
    def running(self):
        return self.state in ("running", "paused", "restarting")


@dataclass(frozen=True)
class Snapshot:
    images: tuple = ()  # ImageRecord
    containers: tuple = ()  # ContainerRecord
    store: str = CLASSIC  # CLASSIC (graph driver) or CONTAINERD (containerd image store)
    engine_version: str = ""
    api_version: str = ""
    _by_id: dict = field(default=None, compare=False, repr=False)

    def by_id(self):
        """{image ID: ImageRecord}."""
        if self._by_id is None:
            object.__setattr__(self, "_by_id", {image.id: image for image in self.images})
        return self._by_id


@dataclass(frozen=True)
class Request:
    """One thing the user asked to remove, resolved against a snapshot.

    ``kind`` is ``reference`` (a tag or digest reference, removed as ``docker rmi <reference>`` would) or ``id``
    (the whole image, as ``docker rmi <id>``). ``target`` is what is sent to the engine: the reference in the
    engine's familiar form, or the full image ID. ``given`` is what the user wrote; ``rule`` names what selected it
    (``images``, a filter name, ``all``...).
    """

    kind: str
    target: str
    image_id: str
    given: str = ""
    rule: str = "images"


def repository_of(reference):
    """``repo`` of ``repo:tag``, ``repo@digest`` or ``repo:tag@digest`` (a registry port is not a tag)."""
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    return name


class OddAnswer(ValueError):
    """A listing entry of another shape than a Docker daemon's (``read`` names the daemon in its message)."""


def _text(data, key, what, required=False):
    """The string ``data[key]``; empty when it is absent or null (``OddAnswer`` when ``required``)."""
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise OddAnswer(f"{what} without {key}")
        return ""
    if not isinstance(value, str):
        raise OddAnswer(f"{what} with {key}={shown(value)}, not a string")
    return value


def _texts(data, key, what):
    """The strings of the list ``data[key]`` (absent or null: none)."""
    values = data.get(key)
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise OddAnswer(f"{what} with {key}={shown(values)}, not a list of strings")
    return values


def _count(data, key, what):
    """The whole number ``data[key]`` (absent or null: 0)."""
    value = data.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OddAnswer(f"{what} with {key}={shown(value)}, not a number")
    return int(value)


def _clean(values, none_value):
    return tuple(v for v in (values or ()) if v and v != none_value)


def image_from_api(data, manifests=True):
    """An ImageRecord from one entry of ``GET /images/json``; without ``manifests`` (a graph-driver store, whose
    listing has none) its ``manifests`` stay empty whatever the entry holds."""
    what = "an image"
    if not isinstance(data, dict):
        raise OddAnswer(f"{what} listed as {shown(data)}, not a JSON object")
    listed = data.get("Manifests") if manifests else None
    labels = data.get("Labels") or {}
    if not isinstance(labels, dict):
        raise OddAnswer(f"{what} with Labels={shown(labels)}, not an object")
    return ImageRecord(
        id=_text(data, "Id", what, required=True),
        parent=_text(data, "ParentId", what),
        tags=_clean(_texts(data, "RepoTags", what), NONE_TAG),
        digests=_clean(_texts(data, "RepoDigests", what), NONE_DIGEST),
        created=_count(data, "Created", what),
        size=_count(data, "Size", what),
        labels=tuple(sorted(labels.items())),
        manifests=tuple(sorted(str(m.get("ID") or "") for m in (listed if isinstance(listed, list) else ())
                               if isinstance(m, dict) and m.get("Available"))),
    )


def container_from_api(data):
    """A ContainerRecord from one entry of ``GET /containers/json?all=1``."""
    what = "a container"
    if not isinstance(data, dict):
        raise OddAnswer(f"{what} listed as {shown(data)}, not a JSON object")
    names = _texts(data, "Names", what) or [""]
    mounts = data.get("Mounts") or []
    if not isinstance(mounts, (list, tuple)) or not all(isinstance(m, dict) for m in mounts):
        raise OddAnswer(f"{what} with Mounts={shown(mounts)}, not a list of objects")
    return ContainerRecord(
        id=_text(data, "Id", what, required=True),
        image_id=_text(data, "ImageID", what),
        state=_text(data, "State", what),
        name=names[0].lstrip("/"),
        mounts=tuple(m["Name"] for m in mounts if m.get("Type") == "image" and isinstance(m.get("Name"), str)
                     and m["Name"]),
    )


def store_of(info):
    """CONTAINERD when ``GET /info`` shows the containerd snapshotter, else CLASSIC."""
    status = info.get("DriverStatus") if isinstance(info, dict) else None
    for pair in status if isinstance(status, list) else ():
        if isinstance(pair, (list, tuple)) and list(pair) == ["driver-type", "io.containerd.snapshotter.v1"]:
            return CONTAINERD
    return CLASSIC


LISTING_ATTEMPTS = 3


def _vanished(error):
    """A listing answered "not found": something the engine was listing went away under it (another client deleted
    an image while the containerd store walked its content: ``NotFound: content digest sha256:... not found``).
    A listing names no object of its own that could be missing, so it is worth reading again."""
    text = f"{error.explanation} {error.message}".lower()
    return error.status == 404 or (error.status == 500 and "not found" in text)


def _listing(call):
    """One listing, read again (up to ``LISTING_ATTEMPTS`` in all) while the store changes under it."""
    for attempt in range(1, LISTING_ATTEMPTS + 1):
        try:
            return call(all=True)
        except EngineAPIError as error:
            if attempt == LISTING_ATTEMPTS or not _vanished(error):
                raise
            time.sleep(0.05 * attempt)
    return None  # pragma: no cover - the loop returns or raises


class _Aside:
    """``call()`` in a thread of its own; ``result()`` waits for it and returns its answer or raises its error."""

    def __init__(self, call, name):
        self._answer = None
        self._error = None
        self._thread = threading.Thread(target=self._run, args=(call,), name=name, daemon=True)
        self._thread.start()

    def _run(self, call):
        try:
            self._answer = call()
        except BaseException as exc:  # noqa: BLE001 - raised in the calling thread by result()
            self._error = exc

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._answer


def read(client):
    """Read images, containers and the store kind once. ``client`` is an engine of ``_transport``.

    The listing asks for each image's manifests whatever the store (the transport sends ``manifests=1`` from API
    1.47 on; a graph-driver store ignores it and lists the same), so it need not wait for ``GET /info`` (the store
    kind): on an engine that serves concurrent reads (``concurrent_reads``) the info is read in a thread beside the
    listings, else first. Its error, when it fails, is the one raised, as if it had been read first; no thread is
    left running. The ``manifests`` are kept on the containerd store only.
    """
    aside = _Aside(client.info, "janitor-info") if getattr(client, "concurrent_reads", False) else None
    info = client.info() if aside is None else None
    try:
        images = _listing(functools.partial(client.images, manifests=True))
        containers = _listing(client.containers)
    except BaseException:
        if aside is not None:
            aside.result()  # the info's error first, as when it was read before the listings
        raise
    if aside is not None:
        info = aside.result()
    store = store_of(info)
    try:
        for listing, what in ((images, "image"), (containers, "container")):
            if not isinstance(listing, list):
                raise OddAnswer(f"the {what} listing is {type(listing).__name__}, not a list")
        snapshot = Snapshot(
            images=tuple(image_from_api(item, manifests=store == CONTAINERD) for item in images),
            containers=tuple(container_from_api(item) for item in containers),
            store=store,
            engine_version=str(info.get("ServerVersion", "")) if isinstance(info, dict) else "",
            api_version=client.api_version,
        )
    except OddAnswer as exc:
        host = getattr(client, "host", "")
        raise JanitorError(f"reading the images and containers: the Docker daemon at {host} answered with "
                           f"{exc}, which is not what a Docker daemon sends; is docker_host a Docker daemon, or a "
                           f"proxy in front of one that changes its answers?") from exc
    return snapshot
