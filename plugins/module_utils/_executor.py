# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Apply a Plan against the engine and report what the engine confirmed.

Steps of one group (images linked by parent relations, and the containers removed for them) run in plan order;
groups run concurrently on a bounded thread pool. The result is built from the engine's answers with the same
``_result.build`` check mode uses on the predicted answers:

* 404 (the image or container is already gone): nothing is reported as ours, the run goes on;
* 409 (someone changed the image since the snapshot): the image is re-read and reported under ``skipped_images``;
* any other error: no new step starts, the task fails, and the result still lists what was done.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.janitor.docker.plugins.module_utils import _planner, _result
from ansible_collections.janitor.docker.plugins.module_utils._engine import (
    api_error,
    bulk_calls,
    is_api_error,
    is_connection_error,
    lost_connection_error,
    status_of,
)
from ansible_collections.janitor.docker.plugins.module_utils._errors import ExecutionError, JanitorError

_REASONS = (
    ("dependent child images", _planner.REASON_CHILDREN),
    ("running container", _planner.REASON_RUNNING),
    ("multiple repositories", _planner.REASON_REPOSITORIES),
    ("container", _planner.REASON_CONTAINER),
)


def _reason(message):
    lowered = message.lower()
    for needle, reason in _REASONS:
        if needle in lowered:
            return reason
    return "conflict"


def _reread(client, calls, step, message):
    """A ``skipped_images`` entry for an image whose removal met a conflict the plan did not expect."""
    entry = {"image": step.image_id, "references": [], "reason": _reason(message), "containers": [],
             "detail": f"changed since the snapshot: {message}"}
    try:
        data = calls.inspect_image(step.image_id)
        entry["references"] = list(data.get("RepoTags") or []) + list(data.get("RepoDigests") or [])
        entry["containers"] = sorted(c["Id"] for c in client.containers(all=True)
                                     if c.get("ImageID") == step.image_id)
    except Exception:  # noqa: BLE001 - the entry stays useful without the re-read
        pass
    return entry


class _Run:
    def __init__(self, client, calls, plan):
        self.client = client
        self.calls = calls  # the per-image requests (``_engine.bulk_calls``)
        self.plan = plan
        self.answers = {}
        self.races = []
        self.errors = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def _send(self, step):
        if step.action == "remove_container":
            self.calls.remove_container(step.target)
            return _result.Answer(step, removed=True)
        entries = self.calls.remove_image(step.target, force=step.force, noprune=step.noprune)
        return _result.Answer.from_entries(step, entries)

    def _gone(self, image_id):
        """True when the engine says the image no longer exists."""
        try:
            self.calls.inspect_image(image_id)
        except Exception as exc:  # noqa: BLE001 - only a clear "not found" answer counts as gone
            return is_api_error(exc) and status_of(exc) == 404
        return False

    def run_group(self, steps):
        blocked = set()
        for step in steps:
            if self.stop.is_set():
                return
            if step.image_id in blocked:
                continue
            try:
                answer = self._send(step)
            except Exception as exc:  # noqa: BLE001 - sorted out below
                status = status_of(exc) if is_api_error(exc) else None
                if status == 404:
                    continue
                if status is not None and step.action == "remove_image" and self._gone(step.image_id):
                    # another client deleted the image while our request ran: the engine may then answer 500
                    # ("unrecognized image ID") instead of 404; it is already gone, not an error and not ours
                    continue
                if status == 409:
                    message = str(getattr(exc, "explanation", "") or exc)
                    entry = _reread(self.client, self.calls, step, message)
                    with self.lock:
                        self.races.append(entry)
                    blocked.add(step.image_id)
                    continue
                action = (f"removing container {step.target[:12]}" if step.action == "remove_container"
                          else f"removing image {step.target}")
                if is_api_error(exc):
                    error = api_error(exc, action)
                elif is_connection_error(exc):
                    error = lost_connection_error(self.client, exc, action)
                else:
                    error = JanitorError(f"{action}: {exc}")
                with self.lock:
                    self.errors.append(error)
                self.stop.set()
                return
            with self.lock:
                self.answers[step.index] = answer


def apply(client, plan, parallel=4, layers=None):
    """Send the plan's steps; returns the module result built from the engine's answers.

    Raises ``ExecutionError`` (with the partial result) when the engine fails in the middle of the run.
    """
    groups = plan.groups
    workers = max(1, min(parallel, len(groups)))
    calls = bulk_calls(client, workers)
    run = _Run(client, calls, plan)
    try:
        if groups:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(run.run_group, groups))
    finally:
        calls.close()
    answers = [run.answers[index] for index in sorted(run.answers)]
    raced = {entry["image"] for entry in run.races}
    skipped = [entry for entry in plan.skipped if entry["image"] not in raced] + run.races
    if run.errors:
        result = _result.build(plan, answers, skipped, layers)
        first = run.errors[0]
        done = (f"{len(result['untagged'])} reference(s) untagged, {len(result['deleted'])} image(s) deleted and "
                f"{len(result['containers_removed'])} container(s) removed before the error")
        raise ExecutionError(f"{first.message} ({done})", result)
    return _result.build(plan, answers, skipped, layers)


def differences(predicted, actual, layers_predicted=True):
    """Keys whose values differ between the plan's prediction and the real result (a race, or a model gap)."""
    keys = ("untagged", "deleted", "containers_removed") + (("deleted_layers",) if layers_predicted else ())
    return {key: {"predicted": predicted[key], "actual": actual[key]} for key in keys
            if predicted[key] != actual[key]}
