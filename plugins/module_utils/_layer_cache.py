# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The ``layer_cache`` file: each image's layers, remembered between runs so that a run inspects only the images
it has not seen before.

``space_reclaimed`` needs every image's ``RootFS.Layers``, and no endpoint lists them with the images: a run sends
one inspect per image. On the containerd image store each inspect costs more the more images there are (about
14 ms at 300 images, 11 s for 1000), so the inspects are most of a dry run's time. An image's layers cannot change
while its ID stays the same: the ID is the digest of its config (classic store), which lists the layers' digests,
or of its manifest or index (containerd store), which names them. An entry is used only while the engine lists the
image with the same ID, the same ``Size`` and (on the containerd store) the same manifests present: an index keeps
its ID when a platform's content is pulled into it or removed from it, and its layers (the best platform's) can
then change while its size stays the same (one platform swapped for another of the same size), so the entry is
read again.

An entry: ``{"size": listed Size, "layers": [diff IDs, base first], "manifests": [the IDs of the manifests whose
content is present] (containerd store), "history": [per-entry sizes, newest first] (only for the few images whose
history a run read), "seen": epoch seconds of the last run that listed it}``.
Entries no run has listed for ``KEEP_UNSEEN`` seconds are dropped; a removed image's entry stays until then (the
same image pulled again is known), the ``KEEP_UNLISTED`` most recently seen of them at most, so that a host that
builds and removes new images all day keeps a file that loads in milliseconds.

The file is the module's own cache, not the engine's state: it is written in check mode too (a dry run warms it),
and only when a run learned something (a new image, a history) or a day after an entry's ``seen``
(``SEEN_REFRESH``), so a warm run writes nothing. A missing file is a cold start; an unreadable one, or an entry
that is not well formed, is ignored (a warning for the file); a failed write is a warning: the cache never fails a
run.
"""

from __future__ import annotations

import re

from ansible_collections.janitor.docker.plugins.module_utils import _statefile

CACHE_VERSION = 1
KEEP_UNSEEN = 30 * 86400
KEEP_UNLISTED = 2000  # at most this many entries of images the run did not list (a CI host builds new IDs all day)
SEEN_REFRESH = 86400  # an entry's ``seen`` is moved on at most once a day, so a run that learns nothing new writes nothing
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _digests(value):
    """Whether ``value`` is a list of ``sha256:`` digests."""
    return isinstance(value, list) and all(isinstance(item, str) and _DIGEST.match(item) for item in value)


def _matches(entry, image):
    """Whether ``entry`` is for the listed ``image`` as it is now: the same listed size and manifests present."""
    return entry["size"] == image.size and entry.get("manifests", ()) == image.manifests


def _entry(value):
    """The entry if it is well formed, else None."""
    if not isinstance(value, dict) or not _count(value.get("size")):
        return None
    layers = value.get("layers")
    if not _digests(layers):
        return None
    history = value.get("history")
    if history is not None and not (isinstance(history, list) and all(_count(size) for size in history)):
        return None
    seen = value.get("seen")
    if not isinstance(seen, (int, float)) or isinstance(seen, bool):
        return None
    manifests = value.get("manifests", [])
    if not _digests(manifests):
        return None
    entry = {"size": value["size"], "layers": tuple(layers), "seen": float(seen)}
    if manifests:
        entry["manifests"] = tuple(manifests)
    if history is not None:
        entry["history"] = tuple(history)
    return entry


class LayerCache:
    """The entries of one ``layer_cache`` file; ``warning`` says why a file that exists was not used."""

    def __init__(self, path, entries=None, warning=None):
        self.path = path
        self.entries = dict(entries or {})
        self.warning = warning

    @classmethod
    def load(cls, path):
        data, problem = _statefile.read_json(path)
        if problem is not None:
            return cls(path, warning=f"layer_cache: {path} cannot be read ({problem}); every image is inspected "
                                     f"and the file written afresh")
        if data is None:
            return cls(path)
        images = data.get("images") if isinstance(data, dict) else None
        if not isinstance(images, dict) or data.get("version") != CACHE_VERSION:
            return cls(path, warning=f"layer_cache: {path} is not a janitor.docker layer cache of version "
                                     f"{CACHE_VERSION}; every image is inspected and the file written afresh")
        entries = {}
        for image_id, value in images.items():
            entry = _entry(value)
            if entry is not None and _DIGEST.match(str(image_id)):
                entries[image_id] = entry
        return cls(path, entries)

    def _valid(self, images):
        """``{image ID: entry}`` for the listed images whose entry has their listed size and manifests."""
        found = {}
        for image in images:
            entry = self.entries.get(image.id)
            if entry is not None and _matches(entry, image):
                found[image.id] = entry
        return found

    def layers(self, images):
        """``{image ID: diff IDs}`` of the listed ``images`` the cache knows."""
        return {image_id: entry["layers"] for image_id, entry in self._valid(images).items()}

    def histories(self, images):
        """``{image ID: history sizes, newest first}`` of the listed ``images`` whose history the cache holds."""
        return {image_id: entry["history"] for image_id, entry in self._valid(images).items() if "history" in entry}

    def save(self, images, layers, histories, now):
        """Write the file: the entries kept, updated with ``layers`` and ``histories`` (what this run knows of the
        listed ``images``), ``seen`` set to ``now`` for every listed image whose ``seen`` is ``SEEN_REFRESH`` old,
        and entries unseen for ``KEEP_UNSEEN`` dropped. Nothing is written when that changes no entry (a warm run
        on a host whose images are known), unless the file was unreadable. A warning if the file could not be
        written, else None."""
        listed = {image.id for image in images}
        unlisted = sorted(((entry["seen"], image_id) for image_id, entry in self.entries.items()
                           if image_id not in listed and now - entry["seen"] <= KEEP_UNSEEN), reverse=True)
        entries = {image_id: entry for image_id, entry in self.entries.items() if image_id in listed}
        entries.update((image_id, self.entries[image_id]) for _seen, image_id in unlisted[:KEEP_UNLISTED])
        for image in images:
            if image.id not in layers:
                continue
            entry = entries.get(image.id)
            if entry is None or not _matches(entry, image) or entry["layers"] != tuple(layers[image.id]):
                entry = {"size": image.size, "layers": tuple(layers[image.id]), "seen": float(now)}
                if image.manifests:
                    entry["manifests"] = tuple(image.manifests)
            elif now - entry["seen"] >= SEEN_REFRESH:
                entry = dict(entry, seen=float(now))
            history = histories.get(image.id)
            if history is not None and all(_count(size) for size in history):
                entry = dict(entry, history=tuple(history))
            entries[image.id] = entry
        if entries == self.entries and self.warning is None:
            return None
        self.entries = entries
        data = {"version": CACHE_VERSION,
                "images": {image_id: {key: list(value) if isinstance(value, tuple) else value
                                      for key, value in entry.items()}
                           for image_id, entry in entries.items()}}
        problem = _statefile.write_json(self.path, data, ".layer-cache-")
        if problem is not None:
            return f"layer_cache: {self.path} could not be written ({problem}); the next run inspects every image"
        return None
