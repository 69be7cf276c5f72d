# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Apply a Plan against the engine and report what the engine confirmed.

Steps of one group (images linked by parent relations, and the containers removed for them) run in plan order;
groups run concurrently on a bounded thread pool. The result is built from the engine's answers with the same
``_result.build`` check mode uses on the predicted answers:

* 404 (the image or container is already gone): nothing is reported as ours, the run goes on;
* 409 (someone changed the image since the snapshot): the image is re-read and reported under ``skipped_images``;
* an answer lost or unreadable after the request reached the engine: the request is not sent again; what it did
  is read back from the engine's state (``_read_back``) and reported with a warning;
* no answer within ``timeout``: the request is not sent again and not read back (the engine may still be at it);
  no new step starts, and the message says that the result lists only what the engine confirmed;
* any other error: no new step starts, the task fails, and the result still lists what was done.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.janitor.docker.plugins.module_utils import _planner, _references, _result
from ansible_collections.janitor.docker.plugins.module_utils._errors import (
    AnswerLostError,
    EngineAPIError,
    EngineUnreachableError,
    ExecutionError,
    JanitorError,
    shown,
)
from ansible_collections.janitor.docker.plugins.module_utils._transport import bulk_calls

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


def _familiar(reference):
    """The familiar form of a reference (``docker.io/library/a:1`` -> ``a:1``); as it is when it is none
    (``<none>:<none>`` in a listing)."""
    try:
        return _references.familiar(reference)
    except JanitorError:
        return reference


def _action(step):
    if step.action == "remove_container":
        return f"removing container {step.target[:12]}"
    return f"removing image {step.target}"


class _Run:
    def __init__(self, engine, calls, plan):
        self.engine = engine
        self.calls = calls  # the per-image requests (``_transport.bulk_calls``)
        self.plan = plan
        self.answers = {}
        self.races = []
        self.errors = []
        self.notes = []  # warnings for the operator
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self._holders = None

    def _send(self, step):
        if step.action == "remove_container":
            self.calls.remove_container(step.target)
            return _result.Answer(step, removed=True)
        extra = {"platforms": step.platforms} if step.platforms else {}
        entries = self.calls.remove_image(step.target, force=step.force, noprune=step.noprune, **extra)
        if not _result.Answer.well_formed(entries):
            # the engine took the request, but what it did cannot be read from this answer: read it back
            raise AnswerLostError(f"{_action(step)}: the Docker daemon at {getattr(self.engine, 'host', '')} answered "
                                  f"{shown(entries)}, not the list of Untagged and Deleted entries a Docker "
                                  f"daemon sends")
        return _result.Answer.from_entries(step, entries)

    def _gone(self, image_id):
        """True when the engine says the image no longer exists."""
        try:
            self.calls.inspect_image(image_id)
        except EngineAPIError as exc:
            return exc.status == 404
        except Exception:  # noqa: BLE001 - only a clear "not found" answer counts as gone
            return False
        return False

    def _reread(self, step, message):
        """A ``skipped_images`` entry for an image whose removal met a conflict the plan did not expect."""
        entry = {"image": step.image_id, "references": [], "reason": _reason(message), "containers": [],
                 "detail": f"changed since the snapshot: {message}"}
        try:
            data = self.calls.inspect_image(step.image_id)
            entry["references"] = list(data.get("RepoTags") or []) + list(data.get("RepoDigests") or [])
            if entry["reason"] == _planner.REASON_REPOSITORIES:
                entry["reason"] = _planner.several_references_reason(entry["references"])
            entry["containers"] = sorted(c["Id"] for c in self.engine.containers(all=True)
                                         if c.get("ImageID") == step.image_id)
        except Exception:  # noqa: BLE001 - the entry stays useful without the re-read
            pass
        return entry

    def _holder(self, reference):
        """The image that held ``reference`` in the snapshot."""
        if self._holders is None:
            self._holders = {_familiar(ref): image.id for image in self.plan.snapshot.images
                             for ref in image.references}
        return self._holders.get(_familiar(reference))

    def _platform_read_back(self, step):
        """The manifests of a ``platforms`` step (containerd store) whose content the engine no longer holds.

        Such a DELETE keeps the image and its names: the image's inspect (``?manifests=1``) still lists the removed
        variant's manifest, with ``Available: false``. A manifest the image no longer lists cannot tell what the
        request did: ``JanitorError``."""
        data = self.engine.image_manifests(step.image_id) or {}
        available = {m.get("ID"): bool(m.get("Available")) for m in data.get("Manifests") or ()}
        unlisted = [digest for digest in step.deleted if digest not in available]
        if unlisted:
            raise JanitorError(f"image {step.image_id} no longer lists the manifest {', '.join(unlisted)} of "
                               f"{step.platform}, so whether its content was removed cannot be told")
        return [digest for digest in step.deleted if not available[digest]]

    def _read_back(self, step, lost):
        """The step's outcome read from the engine's state, after its answer was lost or unreadable.

        Only what the plan predicted for the step is looked for: a predicted untag happened if the reference no
        longer names the image that held it, a predicted deletion if the image is no longer listed, a predicted
        removal of a platform's content (containerd store) if the image's manifest of that platform is no longer
        available. Released layers cannot be read back and are not reported. Raises ``JanitorError`` (which ends
        the run) when the state cannot be read, or shows that the request was not carried out. References are
        compared in their familiar form: the engine's answers and its listing may spell them differently.
        """
        try:
            if step.action == "remove_container":
                listed = {c.get("Id") for c in self.engine.containers(all=True) or ()}
                answer = _result.Answer(step, removed=step.target not in listed)
                done = answer.removed
            elif step.platform:
                answer = _result.Answer(step, deleted=self._platform_read_back(step))
                done = bool(answer.deleted)
            else:
                now, listed = {}, set()
                for image in self.engine.images(all=True) or ():
                    listed.add(image.get("Id"))
                    for ref in list(image.get("RepoTags") or ()) + list(image.get("RepoDigests") or ()):
                        now[_familiar(ref)] = image.get("Id")
                untagged = [ref for ref in step.untagged
                            if now.get(_familiar(ref)) != (self._holder(ref) or step.image_id)]
                deleted = [value for value in step.deleted if value in self.plan.image_ids and value not in listed]
                answer = _result.Answer(step, untagged=untagged, deleted=deleted)
                done = bool(untagged or deleted)
        except JanitorError as exc:
            raise JanitorError(f"{lost.message}; reading the engine back to learn what it did failed too: "
                               f"{exc.message}") from exc
        if not done:
            raise JanitorError(f"{lost.message}; the engine's state shows that it was not carried out")
        if step.platform:
            what = (f"removed the {step.platform} content (manifest {', '.join(answer.deleted)}) of image "
                    f"{step.image_id}, which stays")
        else:
            what = ", ".join([f"untagged {ref}" for ref in answer.untagged] + [f"deleted {i}" for i in answer.deleted]
                             + ([f"removed container {step.target[:12]}"] if answer.removed else []))
        with self.lock:
            self.notes.append(f"{lost.message}; its outcome was read back from the engine's state: {what}"
                              + ("" if step.action == "remove_container" or step.platform else
                                 " (layers it released, if any, are not in deleted_layers)"))
        return answer

    def run_group(self, steps):
        blocked = set()
        for step in steps:
            if self.stop.is_set():
                return
            if step.image_id in blocked:
                continue
            try:
                try:
                    answer = self._send(step)
                except AnswerLostError as exc:
                    answer = self._read_back(step, exc)
            except EngineAPIError as exc:
                if exc.status == 404:
                    continue
                if step.action == "remove_image" and self._gone(step.image_id):
                    # another client deleted the image while our request ran: the engine may then answer 500
                    # ("unrecognized image ID") instead of 404; it is already gone, not an error and not ours
                    continue
                if exc.status == 409:
                    entry = self._reread(step, exc.explanation or exc.message)
                    with self.lock:
                        self.races.append(entry)
                    blocked.add(step.image_id)
                    continue
                self._fail(exc)
                return
            except EngineUnreachableError as exc:
                error = exc
                if exc.timed_out:
                    # not read back: a daemon this slow may still be at it, and a listing would wait as long again
                    error = EngineUnreachableError(
                        f"{exc.message}; the engine may still carry this request out, so the result lists only what "
                        f"the engine confirmed before, and the next run sees what it did", timed_out=True)
                self._fail(error)
                return
            except JanitorError as exc:
                self._fail(exc)
                return
            except Exception as exc:  # noqa: BLE001 - a failure we did not foresee still ends in a message
                self._fail(JanitorError(f"{_action(step)}: {type(exc).__name__}: {exc}"))
                return
            with self.lock:
                self.answers[step.index] = answer
            self._check_race(step, answer)

    def _check_race(self, step, answer):
        """Warn when the engine deleted another image than the one the step named when the engine was read: another
        client moved the reference to that image between our read and our request."""
        if step.action != "remove_image":
            return
        image_id = answer.image
        if image_id and image_id != step.image_id and image_id not in step.deleted:
            with self.lock:
                self.notes.append(
                    f"removing {step.target} deleted image {image_id}, which is not the image {step.image_id} "
                    f"it named when the engine was read: another client moved {step.target} to {image_id} "
                    f"meanwhile; {image_id} is reported under deleted as the engine answered")

    def _fail(self, error):
        with self.lock:
            self.errors.append(error)
        self.stop.set()


def apply(engine, plan, parallel=4, layers=None, warn=None):
    """Send the plan's steps; returns the module result built from the engine's answers.

    ``layers`` is handed to ``_result.build`` (a ``LayerTable`` or the function that makes it after the run).
    ``warn(text)`` receives what the operator should know (answers read back from the engine's state, tags moved
    by another client). Raises ``ExecutionError`` (with the partial result) when the engine fails in the middle of
    the run.
    """
    groups = plan.groups
    workers = max(1, min(parallel, len(groups)))
    calls = bulk_calls(engine, workers)
    run = _Run(engine, calls, plan)
    try:
        if groups:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(run.run_group, groups))
    finally:
        calls.close()
    for note in run.notes:
        if warn is not None:
            warn(note)
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
