# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The images' layers, read from the engine beside planning: one inspect per image the run does not know yet, on
``parallel`` workers of the transport's ``bulk_calls``, and the history of the few images the space accounting
needs. What to do with an answer is decided here (an image deleted meanwhile is left out, an error is asked once
more, an answer to an inspect by tag stands for the image only when it names it); the requests themselves, and
every failure as an ``_errors`` type, are the transport's (``_transport``).
"""

from __future__ import annotations

import threading

from ansible_collections.janitor.docker.plugins.module_utils._errors import EngineAPIError, JanitorError
from ansible_collections.janitor.docker.plugins.module_utils._transport import bulk_calls


def _root_layers(answer):
    root = answer.get("RootFS")
    return tuple((root if isinstance(root, dict) else {}).get("Layers") or ())


class LayerReader:
    """Every image's ``RootFS.Layers`` (diff IDs), read in a thread of its own from the start of the run, and the
    history of the few images whose per-layer sizes the space freed needs (``histories``).

    ``known`` and ``known_histories`` are what the run already knows (the ``layer_cache``): those images are not
    inspected, those histories not read. ``start()`` sends the inspects of the others (``parallel`` at a time,
    ``inspect_images``); ``layers()`` waits for every image and returns ``{image ID: diff IDs}`` (an image deleted
    meanwhile by another client is left out); ``cancel()`` stops sending, and ``read()`` then gives what was
    read (for the cache). Engine errors come out of ``layers()`` as ``_errors`` exceptions.

    ``names`` (``{image ID: tag}``, ``_references.inspect_names``) inspects those images by a tag, which the
    containerd store finds faster than an ID. An answer stands for the image only when its ``Id`` is the image's:
    a tag another client moved or removed since the listing makes ``inspections()`` ask by ID.
    """

    def __init__(self, engine, image_ids, parallel, known=None, known_histories=None, names=None):
        self.engine = engine
        self.known = dict(known or {})
        self.image_ids = tuple(image_id for image_id in image_ids if image_id not in self.known)
        self.names = dict(names or {})
        self.parallel = max(1, parallel)
        self.known_histories = dict(known_histories or {})
        self.histories_read = {}
        self._stop = threading.Event()
        self._thread = None
        self._answers = ()
        self._error = None
        self._found = None  # what inspections() made of the answers, once

    def start(self):
        if self.image_ids:
            self._thread = threading.Thread(target=self._read, name="janitor-layers", daemon=True)
            self._thread.start()
        return self

    def _read(self):
        calls = bulk_calls(self.engine, self.parallel)
        try:
            asked = calls.inspect_images([self.names.get(image_id, image_id) for image_id in self.image_ids],
                                         stop=self._stop)
            self._answers = [(image_id, answer) for image_id, (_name, answer) in zip(self.image_ids, asked)]
        except Exception as exc:  # noqa: BLE001 - handed to the planning thread in layers()
            self._error = exc
        finally:
            calls.close()

    def read(self):
        """``{image ID: diff IDs}`` of the images inspected so far (after ``cancel()`` or ``layers()``), without
        the ones the engine answered with an error or another image's inspect; never raises."""
        return {image_id: _root_layers(answer) for image_id, answer in self._answers
                if isinstance(answer, dict) and self._stands_for(image_id, answer)}

    def _stands_for(self, image_id, answer):
        """Whether an inspect's answer is the image's: always when asked by ID, by a tag when it names the image."""
        return image_id not in self.names or (isinstance(answer, dict) and answer.get("Id") == image_id)

    def layers(self):
        found = dict(self.known)
        found.update((image_id, _root_layers(answer)) for image_id, answer in self.inspections().items())
        return found

    def inspections(self):
        """``{image ID: its inspect answer}`` for every image still there (waits for all of them): the layers, and
        ``Metadata.LastTagTime`` for the last use, come from the same one inspect per image. The ``known`` images
        are not among them. Made once: a run that asks again (the pressure options' tag times, then the layers
        before the first removal) gets the same answers, and no image is asked for again."""
        if self._found is not None:
            return dict(self._found)
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            error = self._error
            if not isinstance(error, JanitorError):
                raise JanitorError(f"inspecting the images: {type(error).__name__}: {error}") from error
            error.message = f"inspecting the images: {error.message}"
            error.args = (error.message,)
            raise error
        found = {}
        for image_id, answer in self._answers:
            if not self._stands_for(image_id, answer):
                answer = self._inspected_again(image_id)  # the tag moved or went since the listing
            if isinstance(answer, EngineAPIError) and answer.status != 404:
                answer = self._asked_again(image_id, answer)
            if isinstance(answer, EngineAPIError):
                continue  # a vanished image has no layers to predict
            found[image_id] = answer if isinstance(answer, dict) else {}
        self._found = found
        return dict(found)

    def _asked_again(self, image_id, error):
        """The inspect of an image that answered ``error`` (not a 404), sent once more: an image another client was
        deleting meanwhile gets other errors first (the graph driver answers 500 ``layer does not exist``), then a
        404, which is what the caller leaves out. Any other answer to the second inspect raises ``error``."""
        answer = self._inspected_again(image_id)
        if isinstance(answer, EngineAPIError) and answer.status != 404:
            raise error from answer
        return answer

    def _inspected_again(self, image_id):
        """One more inspect of an image, by ID: its answer, or the ``EngineAPIError`` the engine answered."""
        calls = bulk_calls(self.engine, 1)
        try:
            return calls.inspect_image(image_id)
        except EngineAPIError as exc:
            return exc
        finally:
            calls.close()

    def histories(self, image_ids):
        """``{image ID: the Size of each history entry, newest first}`` for a few images (the per-layer sizes the
        listing does not give); an image deleted meanwhile is left out. Engine errors as ``_errors`` exceptions.
        The ``known_histories`` are not read again; the ones read are kept in ``histories_read``."""
        found = {image_id: self.known_histories[image_id] for image_id in image_ids if image_id in self.known_histories}
        wanted = [image_id for image_id in image_ids if image_id not in found]
        if not wanted:
            return found
        calls = bulk_calls(self.engine, 1)
        try:
            for image_id in wanted:
                try:
                    entries = calls.history(image_id)
                except EngineAPIError as exc:
                    if exc.status == 404:
                        continue
                    raise
                found[image_id] = [entry.get("Size") or 0 for entry in entries or () if isinstance(entry, dict)]
                self.histories_read[image_id] = found[image_id]
        finally:
            calls.close()
        return found

    def cancel(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
