# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Steps or engine answers -> the module result (untagged, deleted, layers, space, images, diff) and its one-line
summary (``summary``: the module's ``msg``).

``build(plan)`` reports the answers the plan predicts (check mode); ``build(plan, answers, skipped)`` the answers the
engine gave (the real run). Both go through the same code, so check mode and the real run cannot drift apart.
Released layers are computed once, from the deleted image IDs and the layer table (``_layers``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.janitor.docker.plugins.module_utils._layers import LayerTable
from ansible_collections.janitor.docker.plugins.module_utils._planner import gc_paused
from ansible_collections.janitor.docker.plugins.module_utils._references import split_domain
from ansible_collections.janitor.docker.plugins.module_utils._snapshot import repository_of
from ansible_collections.janitor.docker.plugins.module_utils._units import human_size

RESULT_KEYS = ("changed", "untagged", "deleted", "deleted_layers", "containers_removed", "skipped_images", "not_found",
               "space_reclaimed", "images", "diff", "deleted_platforms")


@dataclass
class Answer:
    """What the engine answered to one step: the ``Untagged`` and ``Deleted`` values of DELETE /images, in the
    engine's order (``Deleted`` holds image IDs and, on the classic store, released layers), or ``removed`` for a
    container. ``image`` is the first ``Deleted`` value: the engine lists the image it deleted before the layers
    it released, so that value is an image even when the snapshot does not know it (another client moved the
    removed tag to a new image)."""

    step: object
    untagged: list = field(default_factory=list)
    deleted: list = field(default_factory=list)
    removed: bool = False
    image: str = ""

    @staticmethod
    def well_formed(entries):
        """True for what a DELETE /images answer holds: a list of objects whose ``Untagged`` and ``Deleted`` values,
        where present, are strings, and at least one of them (the engine names what it did)."""
        return isinstance(entries, list) and all(
            isinstance(entry, dict) and all(isinstance(entry.get(key) or "", str) for key in ("Untagged", "Deleted"))
            for entry in entries) and any(entry.get("Untagged") or entry.get("Deleted") for entry in entries)

    @classmethod
    def from_entries(cls, step, entries):
        """The Answer for the engine's list of ``{"Untagged": ...}`` and ``{"Deleted": ...}`` entries."""
        untagged, deleted = [], []
        for entry in entries or ():
            if not isinstance(entry, dict):
                continue
            if entry.get("Untagged"):
                untagged.append(entry["Untagged"])
            if entry.get("Deleted"):
                deleted.append(entry["Deleted"])
        return cls(step, untagged=untagged, deleted=deleted, image=deleted[0] if deleted else "")


def predicted_answers(plan):
    """The answers the plan's steps predict."""
    return [Answer(step, removed=True) if step.action == "remove_container"
            else Answer(step, untagged=step.untagged, deleted=step.deleted) for step in plan.steps]


def apply_answers(snapshot, rules, untagged, deleted, only=None):
    """{image ID: sorted references} after the answered untags and deletions, for the images they touched
    (only the images in ``only`` when given: the result lists no others)."""
    images = snapshot.images if only is None else [image for image in snapshot.images if image.id in only]
    refs = {image.id: list(image.references) for image in images}
    owner = {}
    for image in images:
        for ref in image.references:
            owner.setdefault(ref, image.id)
    changed = set()
    for ref in untagged:
        image_id = owner.get(ref)
        if image_id is None or image_id not in refs:
            continue
        changed.add(image_id)
        refs[image_id] = [r for r in refs[image_id] if r != ref]
        if "@" not in ref:
            repo = repository_of(ref)
            remaining_tags = [r for r in refs[image_id] if "@" not in r and repository_of(r) == repo]
            if rules.derived_digests and not remaining_tags:
                refs[image_id] = [r for r in refs[image_id] if repository_of(r) != repo]
    if rules.derived_digests:
        for image in images:
            if image.id in changed and image.digests:
                refs[image.id] = rederive_digest(refs[image.id], image.digests[0].split("@", 1)[1])
    for image_id in deleted:
        refs.pop(image_id, None)
    return refs


def rederive_digest(refs, digest):
    """The containerd store lists one ``<repo>@<digest>``, for the repository whose full name sorts last; when its
    repository loses its last tag, the listing shows the digest under the next one."""
    tags = [r for r in refs if "@" not in r]
    if not tags or any("@" in r for r in refs):
        return refs
    repo = max((repository_of(t) for t in tags), key=lambda name: "/".join(split_domain(name)))
    return refs + [f"{repo}@{digest}"]


def accounting_sets(plan, deleted, containers_removed=()):
    """``(deleted, remaining, container_images)`` for the layer table: the images deleted, the snapshot's images
    that remain, and the images of the containers that remain (their writable layers keep the image's layers)."""
    deleted_set = set(deleted)
    removed = set(containers_removed)
    remaining = [image_id for image_id in plan.image_ids if image_id not in deleted_set]
    container_images = {c.image_id for c in plan.snapshot.containers if c.id not in removed}
    return sorted(deleted_set), remaining, container_images


def predicted_sets(plan):
    """``accounting_sets`` for what the plan predicts."""
    deleted, containers_removed = set(), set()
    for step in plan.steps:
        if step.action == "remove_container":
            containers_removed.add(step.target)
        else:
            deleted.update(value for value in step.deleted if value in plan.image_ids)
    return accounting_sets(plan, deleted, containers_removed)


def _released_layers(plan, layers, sets, reported, predicted):
    """The layer chain IDs the run releases: the engine's own list in a real run on a store that reports them,
    otherwise the layers of the deleted images that no remaining image or container needs."""
    if not plan.rules.reports_layers:
        return []
    if not predicted or layers is None:
        return reported
    return sorted(layers.released(*sets))


@gc_paused
def build(plan, answers=None, skipped=None, layers=None):
    """The module result: from the plan's predicted answers (``answers`` None: check mode) or the engine's.

    ``skipped`` defaults to the plan's; ``layers`` is the snapshot's ``LayerTable`` with the sizes ``space()`` needs,
    or a function that makes it for the ``accounting_sets`` of the run (called only when images were deleted; the
    module reads the histories the table lacks for those sets there), or None: the layers are then taken from the
    ``Parent`` links (``LayerTable.from_parents``).
    """
    predicted = answers is None
    if predicted:
        answers = predicted_answers(plan)
    if skipped is None:
        skipped = plan.skipped
    snapshot = plan.snapshot
    by_id = snapshot.by_id()
    untagged, deleted, reported, containers_removed, platforms = [], [], [], [], []
    image_ids = plan.image_ids
    for answer in answers:
        if answer.step.action == "remove_container":
            if answer.removed:
                containers_removed.append(answer.step.target)
            continue
        if answer.step.platform:  # containerd: one platform's content; the image and its names stay
            platforms.extend({"image": answer.step.image_id, "platform": answer.step.platform, "manifest": value}
                             for value in answer.deleted)
            continue
        untagged.extend(answer.untagged)
        for value in answer.deleted:
            (deleted if value in image_ids or value == answer.image else reported).append(value)
    untagged = sorted(set(untagged))
    deleted = sorted(set(deleted))
    containers_removed = sorted(set(containers_removed))
    sets = accounting_sets(plan, [i for i in deleted if i in by_id], containers_removed)
    if callable(layers):
        layers = layers(sets) if deleted else None
    released = _released_layers(plan, layers, sets, sorted(set(reported)), predicted)
    deleted_set = set(deleted)
    # an image created after the snapshot (a moved tag) is not in the table: its size is not known
    space = (layers if layers is not None else LayerTable.from_parents(snapshot)).space(*sets) if deleted else 0
    selected_set = set(plan.selected)
    touched = list(plan.selected) + [i for i in deleted if i not in selected_set and i in by_id]
    after = apply_answers(snapshot, plan.rules, untagged, deleted, only=set(touched))
    untagged_set = set(untagged)
    skipped_ids = {entry["image"] for entry in skipped}
    images = []
    for image_id in plan.selected:
        image = by_id[image_id]
        if image_id in deleted_set:
            action = "deleted"
        elif any(ref in untagged_set for ref in image.references):
            action = "untagged"
        elif image_id in skipped_ids:
            action = "skipped"
        else:
            action = "unchanged"
        images.append({"id": image_id, "references": list(image.references), "size": image.size, "action": action})
    diff = {
        "before": {"images": {i: sorted(by_id[i].references) for i in touched}},
        "after": {"images": {i: sorted(after[i]) for i in touched if i in after}},
    }
    return {
        "changed": bool(untagged or deleted or containers_removed or platforms),
        "untagged": untagged,
        "deleted": deleted,
        "deleted_layers": released,
        "containers_removed": containers_removed,
        "skipped_images": sorted(skipped, key=lambda s: (s["image"], s["reason"])),
        "not_found": list(plan.not_found),
        "space_reclaimed": space,
        "images": images,
        "diff": diff,
        "deleted_platforms": sorted(platforms, key=lambda e: (e["image"], e["platform"], e["manifest"])),
    }


_KEPT_WORDS = (
    ("in use", ("container", "running_container")),
    ("child images", ("child_images",)),
    ("multiple repositories", ("multiple_repositories",)),
    ("excluded", ("excluded",)),
    ("keep_latest", ("keep_latest",)),
)


def summary(result):
    """The one-line ``msg`` of a result (after ``_selection.annotate``): ``untagged 4, deleted 1, kept 2 (1 in use,
    1 excluded), 1.049 MB reclaimed``. Counts of references untagged and images deleted; the selected images left
    in place (skipped, or kept by ``exclude`` or ``keep_latest``) by why; containers removed and references not
    found when there are any; the space in decimal units (``_units.human_size``), as the docker CLI writes it."""
    reasons = [entry.get("reason") or "" for entry in result.get("images") or ()
               if entry.get("action") in ("skipped", "kept")]
    details = []
    for words, names in _KEPT_WORDS:
        count = sum(1 for reason in reasons if reason in names)
        if count:
            details.append(f"{count} {words}")
    others = len(reasons) - sum(int(part.split(" ", 1)[0]) for part in details)
    if others:
        details.append(f"{others} other")
    parts = [f"untagged {len(result.get('untagged') or ())}", f"deleted {len(result.get('deleted') or ())}",
             f"kept {len(reasons)}" + (f" ({', '.join(details)})" if details else "")]
    if result.get("containers_removed"):
        parts.append(f"removed {len(result['containers_removed'])} container(s)")
    if result.get("not_found"):
        parts.append(f"{len(result['not_found'])} not found")
    parts.append(f"{human_size(result.get('space_reclaimed') or 0)} reclaimed")
    return ", ".join(parts)
