# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""When each image was last used, and the ``last_used_state`` file that remembers it between runs.

The engine does not record when an image was last used. What it does tell: the image's creation time, the last
time it was tagged (``Metadata.LastTagTime``: a pull, load, tag or build), and the created, started and finished
times of the containers that exist now. An image a container uses is never removed, so once the container is gone
its use would be forgotten and the image's last use would fall back to its creation; docuum keeps a state file for
that reason, and so do we: per image ID, the last use its containers showed (``last_used``) and when a run last saw a
container on it (``seen``).

A container's use of its image: now while it runs (running, paused, restarting), else the latest of its created,
started and finished times. An image's last use: the latest of its creation, its last tag time, its containers' uses
and the state file's ``last_used``.

The file is JSON, written atomically (a temporary file in the same directory, flushed, then renamed over the old
one), never in check mode. A missing file is the first run; an unreadable one is a warning; both start afresh,
never a failure: the file only improves the order, it never decides alone what is safe to remove.
"""

from __future__ import annotations

from ansible_collections.janitor.docker.plugins.module_utils import _statefile
from ansible_collections.janitor.docker.plugins.module_utils._errors import EngineAPIError, JanitorError
from ansible_collections.janitor.docker.plugins.module_utils._selection import parse_until

STATE_VERSION = 1
_RUNNING = ("running", "paused", "restarting")


def engine_time(text):
    """Epoch seconds for an engine timestamp (``2024-05-01T12:00:00.123456789Z``); None for none or Go's zero
    time (``0001-01-01T00:00:00Z``)."""
    if not text or not isinstance(text, str) or text.startswith("0001-01-01"):
        return None
    try:
        seconds = parse_until(text, 0)
    except JanitorError:
        return None
    return seconds if seconds > 0 else None


def container_use(inspect, now):
    """The last time a container used its image: now while it runs, else its latest created/started/finished."""
    inspect = inspect if isinstance(inspect, dict) else {}
    state = inspect.get("State")
    state = state if isinstance(state, dict) else {}
    if state.get("Running") or state.get("Paused") or state.get("Restarting") or state.get("Status") in _RUNNING:
        return float(now)
    times = [engine_time(inspect.get("Created")), engine_time(state.get("StartedAt")),
             engine_time(state.get("FinishedAt"))]
    times = [t for t in times if t is not None]
    return max(times) if times else None


def tag_times(inspections):
    """{image ID: its ``Metadata.LastTagTime``} from the images' inspect answers (``{image ID: answer}``)."""
    times = {}
    for image_id, answer in inspections.items():
        metadata = answer.get("Metadata") if isinstance(answer, dict) else None
        # an odd value counts as none, as an odd time does (engine_time)
        tagged = engine_time(metadata.get("LastTagTime") if isinstance(metadata, dict) else None)
        if tagged is not None:
            times[image_id] = tagged
    return times


def container_uses(client, snapshot, now):
    """{image ID: the latest use by its containers}, from one inspect per container."""
    uses = {}
    for container in snapshot.containers:
        try:
            data = client.inspect_container(container.id)
        except EngineAPIError as exc:  # a container removed meanwhile counts as used now
            if exc.status != 404:
                raise
            data = {"State": {"Running": True}}
        value = container_use(data, now)
        if value is not None and value > uses.get(container.image_id, 0):
            uses[container.image_id] = value
    return uses


def last_used(snapshot, tag_times, container_uses, remembered):
    """{image ID: epoch seconds of its last use} for every image of the snapshot."""
    out = {}
    for image in snapshot.images:
        value = float(image.created)
        for other in (tag_times.get(image.id), container_uses.get(image.id),
                      (remembered.get(image.id) or {}).get("last_used")):
            if other is not None and other > value:
                value = float(other)
        out[image.id] = value
    return out


def next_state(snapshot, remembered, container_uses, now, deleted=()):
    """The state to write after a run: the images that remain, each with the latest use its containers showed
    (this run's or an earlier one's) and when a run last saw a container on it."""
    gone = set(deleted)
    in_use = {c.image_id for c in snapshot.containers}
    out = {}
    for image in snapshot.images:
        if image.id in gone:
            continue
        entry = dict(remembered.get(image.id) or {})
        use = container_uses.get(image.id)
        if use is not None and use > (entry.get("last_used") or 0):
            entry["last_used"] = use
        if image.id in in_use:
            entry["seen"] = float(now)
        if entry:
            out[image.id] = entry
    return out


def load_state(path):
    """``(images, warning)``: the remembered {image ID: {last_used, seen}}, and why it is empty when the file is
    unreadable or not ours. A missing file is the first run: empty, no warning."""
    data, problem = _statefile.read_json(path)
    if problem is not None:
        return {}, f"last_used_state: {path} cannot be read ({problem}); starting afresh"
    if data is None:
        return {}, None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, dict) or data.get("version") != STATE_VERSION:
        return {}, (f"last_used_state: {path} is not a janitor.docker state file of version {STATE_VERSION}; "
                    f"starting afresh")
    clean = {}
    for image_id, entry in images.items():
        if not isinstance(entry, dict):
            continue
        values = {k: float(v) for k, v in entry.items()
                  if k in ("last_used", "seen") and isinstance(v, (int, float)) and not isinstance(v, bool)}
        if values:
            clean[str(image_id)] = values
    return clean, None


def save_state(path, images):
    """Write the state atomically; returns a warning instead of raising (the images are already removed)."""
    problem = _statefile.write_json(path, {"version": STATE_VERSION, "images": images}, ".last-used-")
    if problem is not None:
        return f"last_used_state: {path} could not be written ({problem}); the next run starts from what it finds"
    return None
