# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A pure model of the engine's image delete rules: snapshot + requests + policy -> Plan.

No engine calls and no Docker SDK here. ``plan()`` copies the snapshot into a mutable state and simulates, step by
step and in the order the executor will send them, what the engine will answer to each ``DELETE /images/<x>``
(``Untagged`` and ``Deleted`` entries) or which conflict it would raise. What our policy keeps away from the
engine (containers, conflicts the engine would refuse) goes to ``skipped_images`` with a reason.

Each Step carries the answer the model predicts; ``_result.build`` turns those (check mode) or the engine's own
answers (real run) into the module result. Layers are not simulated here: which layers a run releases follows from
which images it deletes (``_layers``), so the plan is made once, without them.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import gc
import json
from dataclasses import dataclass, field

from ansible_collections.janitor.docker.plugins.module_utils._errors import JanitorError
from ansible_collections.janitor.docker.plugins.module_utils._references import find_image
from ansible_collections.janitor.docker.plugins.module_utils._snapshot import CONTAINERD, repository_of

POLICIES = ("fail", "skip", "remove")
REASON_CONTAINER = "container"
REASON_RUNNING = "running_container"
REASON_CHILDREN = "child_images"
REASON_REPOSITORIES = "multiple_repositories"
REASON_TAGS = "multiple_tags"  # the same conflict, all references in one repository (the engine's message still
#                                says "multiple repositories")


@dataclass(frozen=True)
class StoreRules:
    """How one kind of image store differs, as data for the simulation (see docs/image-remove.md; how each
    store resolves a reference is ``_references.ResolutionRules``)."""

    kind: str
    child_conflict: bool  # deleting an image with children is a hard conflict (classic)
    digest_removal_untags_repository: bool  # repo@digest removes every tag of repo on that image (containerd)
    reports_layers: bool  # the answer lists the released layer chain IDs (classic)
    derived_digests: bool  # RepoDigests are <repo>@<id> derived from names, never untagged by themselves
    untag_keeps_parent_listed: bool  # last tag of a parent with children: "Deleted", but it stays listed dangling
    prune_ignores_siblings: bool  # the parent walk does not look at other children (containerd)
    prune_needs_single_name: bool  # the parent walk stops when the deleted image had several names (containerd)
    delete_all_names: bool  # removing an image's last name, or its ID, untags every name and deletes it at once
    #                         (containerd's deleteAll); classic untags one reference, then deletes what has none
    last_reference_conflict: bool  # a container blocks removing an image's single reference; force may untag it
    #                                when others remain (classic); containerd only checks when every name goes
    prune_needs_whole_chain: bool  # the parent walk reads the whole chain of Parent links before deleting; one
    #                                ancestor already gone cancels the walk (containerd's parents() fails)
    image_prune_walks_parents: bool  # ``docker image prune`` deletes through the delete's parent walk (classic);
    #                                  containerd's prune deletes only the images it selected, parents included
    platform_content: bool  # ``platforms`` removes one variant's content (manifest, config, layers) from every image
    #                         that references it, needs force, and keeps the image (containerd); classic: one
    #                         platform, which must be the image's own, and the image is removed as without it


CLASSIC_RULES = StoreRules("classic", child_conflict=True, digest_removal_untags_repository=False,
                           reports_layers=True, derived_digests=False, untag_keeps_parent_listed=False,
                           prune_ignores_siblings=False, prune_needs_single_name=False, delete_all_names=False,
                           last_reference_conflict=True, prune_needs_whole_chain=False,
                           image_prune_walks_parents=True, platform_content=False)
CONTAINERD_RULES = StoreRules("containerd", child_conflict=False, digest_removal_untags_repository=True,
                              reports_layers=False, derived_digests=True, untag_keeps_parent_listed=True,
                              prune_ignores_siblings=True, prune_needs_single_name=True, delete_all_names=True,
                              last_reference_conflict=False, prune_needs_whole_chain=True,
                              image_prune_walks_parents=False, platform_content=True)


def rules_for(store):
    return CONTAINERD_RULES if store == CONTAINERD else CLASSIC_RULES


@dataclass(frozen=True)
class Policy:
    """``containers`` applies to images named in ``images`` (``docker rmi``: fail by default), ``rule_containers``
    to images only ``filters`` or ``all`` selected (``docker image prune``: leave them, reported as skipped)."""

    force: bool = False
    prune: bool = True
    containers: str = "fail"
    rule_containers: str = "skip"

    def containers_for(self, requests):
        """The container policy for one image's requests: explicit ``images`` entries decide when there are any."""
        if any(request.rule == "images" for request in requests):
            return self.containers
        return self.rule_containers


class Conflict(Exception):
    """The engine would answer 409."""

    def __init__(self, reason, message, used=False, hard=False):
        super().__init__(message)
        self.reason = reason
        self.used = used
        self.hard = hard


@dataclass
class _Image:
    id: str
    parent: str
    tags: list
    digests: list

    @property
    def refs(self):
        return self.tags + self.digests


@dataclass
class Step:
    """One request to the engine, with the answer the model predicts."""

    index: int
    action: str  # "remove_image" or "remove_container"
    target: str  # the reference or image ID sent, or the container ID
    image_id: str
    group: int  # steps of one group run in order; groups run concurrently
    force: bool = False
    noprune: bool = False
    given: str = ""
    rule: str = "images"
    untagged: list = field(default_factory=list)
    deleted: list = field(default_factory=list)
    platforms: tuple = ()  # the ``platforms`` query parameter (JSON of each platform), when given
    platform: str = ""  # containerd: the one platform whose content this step removes (``deleted``: its manifest)


@dataclass
class Plan:
    snapshot: object
    rules: StoreRules
    policy: Policy
    steps: list
    skipped: list
    not_found: list
    selected: list  # image IDs selected by the requests, in order
    image_ids: frozenset  # every image ID of the snapshot
    final_state: object = field(default=None, repr=False, compare=False)  # the simulation's _State after the run
    origin: dict = field(default_factory=dict)  # image ID -> (rule, given) of the first request naming it

    @property
    def after(self):
        """The Snapshot the simulation predicts after the run (built on demand: only tests and reruns need it)."""
        return None if self.final_state is None else self.final_state.snapshot(self.snapshot)

    @property
    def groups(self):
        out = {}
        for step in self.steps:
            out.setdefault(step.group, []).append(step)
        return [out[key] for key in sorted(out)]


class _State:
    """A mutable copy of the snapshot the simulation works on."""

    def __init__(self, snapshot, rules):
        self.rules = rules
        self.images = {}
        for image in snapshot.images:
            self.images[image.id] = _Image(image.id, image.parent, list(image.tags), list(image.digests))
        self.containers = {c.id: c for c in snapshot.containers}
        # indexes built once (snapshots of 10,000 images): images and containers are only ever removed from the
        # state and parent links never change, so a lookup filtered by what remains is exact
        self._children = {}
        for image in self.images.values():
            if image.parent:
                self._children.setdefault(image.parent, []).append(image.id)
        self._users = {}
        for container in self.containers.values():
            self._users.setdefault(container.image_id, []).append(container)
        # image mounts hold their image like a container's own image: the engine refuses to remove its last
        # reference without force; by ID it deletes it, but our container policy decides before that
        for image_id, container in mounted_images(snapshot):
            if container not in self._users.setdefault(image_id, []):
                self._users[image_id].append(container)

    def children(self, image_id):
        return [self.images[i] for i in self._children.get(image_id, ()) if i in self.images]

    def clone(self):
        """A copy to try a step on (the indexes are shared: they never change)."""
        other = copy.copy(self)
        other.images = {i: _Image(m.id, m.parent, list(m.tags), list(m.digests)) for i, m in self.images.items()}
        other.containers = dict(self.containers)
        return other

    def adopt(self, other):
        self.images = other.images
        self.containers = other.containers

    def snapshot(self, before):
        """The predicted state as a Snapshot (records of ``before`` with the references that remain)."""
        by_id = before.by_id()
        images = tuple(dataclasses.replace(by_id[i], tags=tuple(image.tags), digests=tuple(image.digests))
                       for i, image in self.images.items())
        return dataclasses.replace(before, images=images, containers=tuple(self.containers.values()),
                                   _by_id=None)

    def containers_of(self, image_id):
        return [c for c in self._users.get(image_id, ()) if c.id in self.containers]

    # -- references ----------------------------------------------------------------------------------------
    def single_reference(self, image):
        """The engine's isSingleReference: at most one tag, and every reference in that tag's repository."""
        if self.rules.derived_digests:
            return len(image.tags) <= 1 and bool(image.tags or image.digests)
        refs = image.refs
        if len(refs) <= 1:
            return len(refs) == 1
        if len(image.tags) > 1:
            return False
        return len({repository_of(ref) for ref in refs}) == 1

    def remove_reference(self, image, ref):
        """Remove ``ref`` from ``image`` as the engine does; returns the references reported as untagged."""
        rules = self.rules
        repo = repository_of(ref)
        untagged = []
        if "@" in ref:
            if rules.digest_removal_untags_repository:
                for tag in [t for t in image.tags if repository_of(t) == repo]:
                    image.tags.remove(tag)
                    untagged.append(tag)
                if ref in image.digests:
                    image.digests.remove(ref)
                if not image.tags and not rules.derived_digests:
                    untagged.append(ref)
            else:
                if ref in image.digests:
                    image.digests.remove(ref)
                untagged.append(ref)
        else:
            if ref in image.tags:
                image.tags.remove(ref)
            untagged.append(ref)
            if not any(repository_of(t) == repo for t in image.tags):
                for digest in [d for d in image.digests if repository_of(d) == repo]:
                    image.digests.remove(digest)
                    if not rules.derived_digests:
                        untagged.append(digest)
        if rules.derived_digests:
            repos = {repository_of(t) for t in image.tags}
            image.digests = [d for d in image.digests if repository_of(d) in repos]
        return untagged

    # -- conflicts ----------------------------------------------------------------------------------------
    def conflict(self, image, hard=True, soft=True, active_reference=True):
        """The engine's checkImageDeleteConflict for ``image`` with the given mask, or None."""
        if hard and self.rules.child_conflict and self.children(image.id):
            return Conflict(REASON_CHILDREN, "image has dependent child images", hard=True)
        users = self.containers_of(image.id)
        running = [c for c in users if c.running]
        if hard and running:
            return Conflict(REASON_RUNNING, f"image is being used by running container {running[0].id[:12]}",
                            used=True, hard=True)
        if soft and active_reference and image.refs:
            return Conflict(several_references_reason(image.refs), "image is referenced in multiple repositories")
        if soft and users:
            return Conflict(REASON_CONTAINER, f"image is being used by stopped container {users[0].id[:12]}",
                            used=True)
        return None

    def delete(self, image, deleted):
        """Remove ``image`` from the state and append its ID (the layers it releases follow from the deleted IDs)."""
        del self.images[image.id]
        deleted.append(image.id)

    # -- the engine's delete paths --------------------------------------------------------------------------
    def delete_helper(self, image, force, prune, quiet, untagged, deleted):
        """classic ``imageDeleteHelper``: conflicts (quiet ones ignored), untag all, delete, prune the parent."""
        conflict = self.conflict(image, hard=True, soft=not force)
        if conflict is not None:
            dangling = not image.refs and not self.children(image.id)
            if quiet and (not dangling or conflict.used):
                return
            raise conflict
        for ref in sorted(image.refs):
            untagged.append(ref)
        image.tags.clear()
        image.digests.clear()
        parent = image.parent
        self.delete(image, deleted)
        if prune and parent and parent in self.images:
            self.delete_helper(self.images[parent], False, True, True, untagged, deleted)

    def containerd_delete_all(self, image, names, force, prune, by_reference, untagged, deleted):
        """containerd ``deleteAll``: untag every name, delete, then walk up the dangling parents."""
        if not force:
            # by reference, the engine drops the active-reference conflict when every name goes
            conflict = self.conflict(image, hard=True, soft=True, active_reference=len(names) > 1 and not by_reference)
        else:
            conflict = self.conflict(image, hard=True, soft=False)
        if conflict is not None and conflict.reason != REASON_CHILDREN:
            raise conflict
        chain = self.parent_chain(image) if prune else []
        untagged.extend(names)
        image.tags.clear()
        image.digests.clear()
        keep_listed = (by_reference and not force and len(names) <= 1 and self.rules.untag_keeps_parent_listed
                       and self.children(image.id))
        if keep_listed:
            deleted.append(image.id)
        else:
            self.delete(image, deleted)
        if not prune:
            return
        if self.rules.prune_needs_single_name and len(names) > 1:
            return
        for candidate in chain:
            if candidate.tags or self.containers_of(candidate.id):
                return
            if not self.rules.prune_ignores_siblings and self.children(candidate.id):
                return
            self.delete(candidate, deleted)

    def parent_chain(self, image):
        """The ancestors the parent walk may delete, nearest first, read before the image goes: the chain stops at
        an ancestor already gone, and with ``prune_needs_whole_chain`` such a gap anywhere above empties it."""
        chain, seen = [], {image.id}
        parent = image.parent
        while parent and parent not in seen:
            candidate = self.images.get(parent)
            if candidate is None:
                return [] if self.rules.prune_needs_whole_chain else chain
            chain.append(candidate)
            seen.add(parent)
            parent = candidate.parent
        return chain

    def remove_by_reference(self, image, ref, force, prune):
        untagged, deleted = [], []
        users = self.containers_of(image.id)
        if self.rules.delete_all_names:
            names = self._names_removed(image, ref)
            if len(names) < len(image.tags):
                untagged = self.remove_reference(image, ref)
                return untagged, deleted
            if users and not force:
                raise Conflict(REASON_RUNNING if any(c.running for c in users) else REASON_CONTAINER,
                               f"unable to delete {ref} (must be forced) - container {users[0].id[:12]} is using "
                               f"its referenced image {image.id[7:19]}", used=True)
            if users:  # forced: the names go, the image stays (dangling) for its containers
                untagged = self.remove_reference(image, ref)
                return untagged, deleted
            self.containerd_delete_all(image, names, force, prune, True, untagged, deleted)
            return untagged, deleted
        if not force and self.single_reference(image) and users:
            raise Conflict(REASON_RUNNING if any(c.running for c in users) else REASON_CONTAINER,
                           f"unable to remove repository reference {ref!r} (must force) - container "
                           f"{users[0].id[:12]} is using its referenced image {image.id[7:19]}", used=True)
        untagged = self.remove_reference(image, ref)
        if image.refs:
            return untagged, deleted
        self.delete_helper(image, force, prune, True, untagged, deleted)
        return untagged, deleted

    def _names_removed(self, image, ref):
        """containerd: the names a reference removal takes away (getSameReferences)."""
        repo = repository_of(ref)
        if "@" in ref:
            return [t for t in image.tags if repository_of(t) == repo]
        return [ref] if ref in image.tags else []

    def remove_by_id(self, image, force, prune):
        untagged, deleted = [], []
        if self.rules.delete_all_names:
            names = list(image.tags)
            self.containerd_delete_all(image, names, force, prune, False, untagged, deleted)
            return untagged, deleted
        if self.single_reference(image):
            conflict = self.conflict(image, hard=True, soft=not force, active_reference=False)
            if conflict is not None:
                raise conflict
            for ref in sorted(image.refs):
                untagged.append(ref)
            image.tags.clear()
            image.digests.clear()
        self.delete_helper(image, force, prune, False, untagged, deleted)
        return untagged, deleted


def several_references_reason(refs):
    """The skip reason for an image the engine will not delete by ID for its references: ``multiple_tags`` when they
    are all in one repository, ``multiple_repositories`` otherwise."""
    return REASON_TAGS if len({repository_of(ref) for ref in refs}) == 1 else REASON_REPOSITORIES


PRUNE_RULES = frozenset(("filters", "all"))  # what selected a request the way ``docker image prune`` selects


def prune_like(requests, state):
    """Images selected by ``filters`` or ``all`` go the way ``docker image prune`` removes them: each reference
    (sorted), the image going with its last one; an image without references by ID. Explicit ``images`` entries
    stay as they are (``docker rmi``)."""
    out = []
    for request in requests:
        image = state.images.get(request.image_id)
        if request.kind == "id" and request.rule in PRUNE_RULES and image is not None and image.refs:
            out.extend(dataclasses.replace(request, kind="reference", target=ref) for ref in sorted(image.refs))
        else:
            out.append(request)
    return out


def _prune_for(request, policy, rules):
    """The parent walk for one request: the ``prune`` option, except for what ``filters`` or ``all`` selected on a
    store whose own image prune does not walk parents (they are selected themselves there)."""
    return policy.prune and (request.rule not in PRUNE_RULES or rules.image_prune_walks_parents)


def mounted_images(snapshot):
    """``(image ID, container)`` for every image mount. The listing names the mount's image as it was given at
    creation (the engine keeps the ID it resolved then, and does not show it): resolved against the snapshot, the
    way the engine resolved it; a name that no longer resolves holds nothing."""
    found = []
    for container in snapshot.containers:
        for name in container.mounts:
            try:
                hit = find_image(snapshot, name)
            except JanitorError:
                hit = None
            if hit is not None:
                found.append((hit[0], container))
    return found


def _ancestry_order(snapshot, requests):
    """Requests ordered so that children come before their ancestors; references before the ID of an image."""
    by_id = snapshot.by_id()
    depth = {}

    def depth_of(image_id, seen=()):
        if image_id in depth:
            return depth[image_id]
        parent = by_id[image_id].parent if image_id in by_id else ""
        value = 0 if not parent or parent not in by_id or parent in seen else depth_of(parent, seen + (image_id,)) + 1
        depth[image_id] = value
        return value

    first_seen = {}
    for index, request in enumerate(requests):
        first_seen.setdefault(request.image_id, index)
    keyed = [(-depth_of(r.image_id), first_seen[r.image_id], 1 if r.kind == "id" else 0, i, r)
             for i, r in enumerate(requests)]
    return [item[-1] for item in sorted(keyed, key=lambda item: item[:4])]


def _groups(snapshot):
    """Union of images connected by parent links: their steps must run in order."""
    parent = {}

    def find(x):
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    for image in snapshot.images:
        parent.setdefault(image.id, image.id)
        if image.parent:
            parent.setdefault(image.parent, image.parent)
            a, b = find(image.id), find(image.parent)
            if a != b:
                parent[a] = b
    return find


def _leaves_references(state, image, target):
    """Would removing ``target`` leave the image other references (tried on a copy)?"""
    scratch = _Image(image.id, image.parent, list(image.tags), list(image.digests))
    state.remove_reference(scratch, target)
    return bool(scratch.refs)


def _forced_untag(state, image, target, policy):
    """``force`` lets the engine untag a reference of an image a container uses when other references remain
    (classic: the engine refuses it without force when the references form one repository)."""
    return (policy.force and state.rules.last_reference_conflict and bool(state.containers_of(image.id))
            and state.single_reference(image) and _leaves_references(state, image, target))


def _affected(state, image, requests, policy):
    """Do the containers of this image stand in the way of these requests (tried on a copy)?

    True when the image would be deleted or lose its last reference, or when the engine would refuse a
    reference removal because of its containers (without ``force``).
    """
    if any(r.kind == "id" for r in requests):
        return True
    scratch = _Image(image.id, image.parent, list(image.tags), list(image.digests))
    for request in requests:
        if request.target not in scratch.refs and "@" not in request.target:
            continue
        if not _leaves_references(state, scratch, request.target):
            return True
        if state.single_reference(scratch) and not _forced_untag(state, scratch, request.target, policy) \
                and state.rules.last_reference_conflict:
            return True
        state.remove_reference(scratch, request.target)
    return False


def _policy_decisions(state, requests, policy):
    """Per image: ``skip`` reason, or the stopped containers to remove first. Raises for ``containers=fail``."""
    per_image = {}
    for request in requests:
        per_image.setdefault(request.image_id, []).append(request)
    skip = {}
    remove = {}
    failures = []
    for image_id, image_requests in per_image.items():
        image = state.images.get(image_id)
        if image is None:
            continue
        users = state.containers_of(image_id)
        if not users or not _affected(state, image, image_requests, policy):
            continue
        running = [c for c in users if c.running]
        reason = REASON_RUNNING if running else REASON_CONTAINER
        mode = policy.containers_for(image_requests)
        if mode == "fail":
            failures.append((image_id, image.refs, users))
        elif mode == "skip" or running:
            skip[image_id] = reason
        else:
            remove[image_id] = [c.id for c in users]
    if failures:
        parts = []
        for image_id, refs, users in failures:
            described = ", ".join(f"{c.id[:12]}{' (' + c.name + ')' if c.name else ''} {c.state or 'stopped'}"
                                  for c in users)
            parts.append(f"{image_id} ({', '.join(refs) or 'untagged'}) is used by container(s) {described}")
        raise JanitorError("images selected for removal are used by containers; nothing was removed: "
                           + "; ".join(parts) + ". Set containers=skip to leave them, or containers=remove to "
                           "remove their stopped containers first (images of running containers are never removed)",
                           images=[f[0] for f in failures])
    return skip, remove


def _skipped_entry(snapshot, image_id, reason, containers=()):
    image = snapshot.by_id().get(image_id)
    return {
        "image": image_id,
        "references": list(image.references) if image else [],
        "reason": reason,
        "containers": sorted(containers),
    }


def _attempt(state, request, force, prune):
    """One request on ``state``; raises Conflict (before changing anything) when the engine would refuse it."""
    image = state.images[request.image_id]
    if request.kind == "id":
        return state.remove_by_id(image, force, prune)
    return state.remove_by_reference(image, request.target, force, prune)


def _without_containers(state, request, force, prune, containers):
    """On a copy without ``containers``: (copy, untagged, deleted) if the image is then deleted, else a Conflict."""
    trial = state.clone()
    for container_id in containers:
        trial.containers.pop(container_id, None)
    try:
        untagged, deleted = _attempt(trial, request, force, prune)
    except Conflict as conflict:
        return conflict
    if request.image_id in trial.images and request.image_id not in deleted:
        return Conflict(REASON_CHILDREN if trial.children(request.image_id) else REASON_CONTAINER,
                        "the image would stay")
    return trial, untagged, deleted


def gc_paused(function):
    """Run ``function`` with the cyclic garbage collector paused (its previous state is restored afterwards).

    Planning allocates a great many small lists and dicts that never form reference cycles, so reference counting
    frees them all; the cyclic collector would only walk the whole snapshot again and again, which took half the
    planning time at 10,000 images.
    """
    @functools.wraps(function)
    def paused(*args, **kwargs):
        enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()
    return paused


@gc_paused
def plan(snapshot, requests, policy=None, rules=None, not_found=(), protected=None):
    """The Plan for removing ``requests`` (one merged, de-duplicated list) from ``snapshot``.

    ``protected``: {image ID: why} of images no step may delete (``exclude``); a plan that would delete one (the
    prune of an untagged parent) is refused with a JanitorError before anything is removed."""
    policy = policy or Policy()
    for value in (policy.containers, policy.rule_containers):
        if value not in POLICIES:
            raise JanitorError(f"containers={value!r} is not valid; valid values: {', '.join(POLICIES)}")
    rules = rules or rules_for(snapshot.store)
    state = _State(snapshot, rules)
    seen = set()
    unique = []
    for request in prune_like(requests, state):
        key = (request.kind, request.target)
        if key not in seen and request.image_id in state.images:
            seen.add(key)
            unique.append(request)
    ordered = _ancestry_order(snapshot, unique)
    selected = _unique(request.image_id for request in unique)
    skip, remove_first = _policy_decisions(state, ordered, policy)
    group_of = _groups(snapshot)
    group_index = {}
    steps = []
    skipped = []
    skipped_ids = set()
    users_by_image = {image_id: [c.id for c in state.containers_of(image_id)] for image_id in selected}

    def group(image_id):
        return group_index.setdefault(group_of(image_id), len(group_index))

    for image_id, reason in skip.items():
        skipped.append(_skipped_entry(snapshot, image_id, reason, users_by_image.get(image_id, ())))
        skipped_ids.add(image_id)
    for request in ordered:
        if request.image_id in skipped_ids:
            continue
        image = state.images.get(request.image_id)
        if image is None:
            continue  # already deleted by an earlier step (a child's prune, or an earlier reference)
        if request.kind == "reference" and request.target not in image.refs and not (
                "@" in request.target and rules.digest_removal_untags_repository
                and any(repository_of(t) == repository_of(request.target) for t in image.tags)):
            continue  # already untagged by an earlier step
        if request.kind == "id":
            force = policy.force and not state.single_reference(image) and bool(image.refs)
        else:
            # containerd: a forced removal of a parent's last name deletes it instead of keeping it listed dangling,
            # as ``docker rmi -f`` does, and as that store's image prune deletes what it selected; with no container
            # on the image, force changes nothing else
            force = _forced_untag(state, image, request.target, policy) or (
                (policy.force or request.rule in PRUNE_RULES) and rules.untag_keeps_parent_listed
                and not state.containers_of(image.id))
        prune = _prune_for(request, policy, rules)
        try:
            if request.kind == "id" and force and request.image_id in remove_first and state.containers_of(
                    request.image_id):
                # a forced delete would pass over stopped containers: they are removed first, explicitly
                raise Conflict(REASON_CONTAINER, "stopped containers use the image")
            untagged, deleted = _attempt(state, request, force, prune)
        except Conflict as conflict:
            outcome = None
            if conflict.reason == REASON_CONTAINER and request.image_id in remove_first:
                # containers=remove: the stopped containers go first, but only if the image then goes too
                outcome = _without_containers(state, request, force, prune, remove_first[request.image_id])
            if outcome is None or isinstance(outcome, Conflict):
                reason = outcome.reason if isinstance(outcome, Conflict) else conflict.reason
                if request.image_id not in skipped_ids:
                    skipped.append(_skipped_entry(snapshot, request.image_id, reason,
                                                  users_by_image.get(request.image_id, ())))
                    skipped_ids.add(request.image_id)
                continue
            trial, untagged, deleted = outcome
            for container_id in remove_first[request.image_id]:
                steps.append(Step(len(steps), "remove_container", container_id, request.image_id,
                                  group(request.image_id)))
            state.adopt(trial)
        steps.append(Step(len(steps), "remove_image", request.target, request.image_id, group(request.image_id),
                          force=force, noprune=not prune, given=request.given, rule=request.rule,
                          untagged=untagged, deleted=deleted))
        if (rules.child_conflict and request.image_id in state.images and not state.images[request.image_id].refs
                and state.children(request.image_id) and request.image_id not in skipped_ids):
            skipped.append(_skipped_entry(snapshot, request.image_id, REASON_CHILDREN))
            skipped_ids.add(request.image_id)
    # a child-images skip recorded for an image a later step deleted after all is no skip
    skipped = [s for s in skipped if not (s["reason"] == REASON_CHILDREN and s["image"] not in state.images)]
    if protected:
        _refuse_protected(steps, protected)
    origin = {}
    for request in unique:
        origin.setdefault(request.image_id, (request.rule, request.given))
    return Plan(snapshot=snapshot, rules=rules, policy=policy, steps=steps, skipped=skipped,
                not_found=list(not_found), selected=selected,
                image_ids=frozenset(image.id for image in snapshot.images),
                final_state=state, origin=origin)


def planned(made, not_found=(), protected=None):
    """``made`` - a plan of the same snapshot, requests, policy and rules, made without them - as ``plan`` returns
    it with ``not_found`` and ``protected``: planning is pure, so a plan a caller already made is not made again."""
    if protected:
        _refuse_protected(made.steps, protected)
    return dataclasses.replace(made, not_found=list(not_found))


def _refuse_protected(steps, protected):
    hit = _unique(image_id for step in steps for image_id in step.deleted if image_id in protected)
    if hit:
        raise JanitorError("the removal would delete images that exclude protects, as untagged parents of removed "
                           "images (prune): " + ", ".join(f"{i} (exclude {protected[i]})" for i in hit)
                           + "; nothing was removed. Set prune: false to keep untagged parents", images=hit)


def _unique(values):
    return list(dict.fromkeys(values))


# -- platforms (DELETE /images/{name}?platforms=, API 1.50) -------------------------------------------------------
PLATFORMS_API = "1.50"
_DEFAULT_VARIANTS = {"arm64": "v8", "amd64": "v1"}


def platform_key(os_name, arch, variant=""):
    """``(os, architecture, variant)`` with the default variants left out (``linux/arm64/v8`` is ``linux/arm64``)."""
    variant = variant or ""
    if _DEFAULT_VARIANTS.get(arch) == variant:
        variant = ""
    return (os_name, arch, variant)


def platform_text(key):
    return "/".join(part for part in key if part)


def platform_json(key):
    """The engine's form of a platform (an OCI platform as JSON)."""
    os_name, arch, variant = key
    return json.dumps({"os": os_name, "architecture": arch, **({"variant": variant} if variant else {})},
                      separators=(",", ":"))


def plan_platforms(snapshot, requests, platforms, images_data, policy, rules, not_found=()):
    """The Plan for ``platforms`` (keys from ``platform_key``) of the images ``requests`` name.

    ``images_data``: {image ID: the engine's inspect of it (with ``Manifests`` on the containerd store)}. The
    graph-driver store holds one platform per image: one platform, the image's own, and the image is removed as
    without ``platforms``. The containerd store removes the variant's content (every manifest of it present, with
    its config and layers) from every image that references it, keeps the image and its names, and needs
    ``force``; each platform is one request, its answer the manifest's ``Deleted``. Every refusal is raised before
    anything is sent."""
    if not rules.platform_content:
        if len(platforms) != 1:
            raise JanitorError(f"platforms: the graph-driver image store ({snapshot.engine_version}) removes one platform "
                               f"at a time, got {len(platforms)}: {', '.join(platform_text(k) for k in platforms)}")
        for request in requests:
            data = images_data.get(request.image_id) or {}
            own = platform_key(data.get("Os") or "", data.get("Architecture") or "", data.get("Variant") or "")
            if own != platforms[0]:
                raise JanitorError(f"platforms: {request.given or request.target} ({request.image_id}) is "
                                   f"{platform_text(own)}, not {platform_text(platforms[0])}; the graph-driver image "
                                   f"store keeps one platform per image and removes an image only for its own")
        result = plan(snapshot, requests, policy, rules, not_found)
        for step in result.steps:
            if step.action == "remove_image":
                step.platforms = (platform_json(platforms[0]),)
        return result
    if not policy.force:
        raise JanitorError("platforms: on the containerd image store removing a platform needs force: true - the "
                           "engine removes that variant's content from every image that references it")
    state = _State(snapshot, rules)
    available = {}  # manifest digest -> present (content shared by digest between images)
    manifests_of = {}
    for image_id, data in images_data.items():
        entries = []
        for manifest in data.get("Manifests") or ():
            if manifest.get("Kind") != "image":
                continue
            shown = (manifest.get("ImageData") or {}).get("Platform") or (manifest.get("Descriptor") or {}).get(
                "platform") or {}
            key = platform_key(shown.get("os") or "", shown.get("architecture") or "", shown.get("variant") or "")
            entries.append((key, manifest["ID"]))
            available[manifest["ID"]] = available.get(manifest["ID"], False) or bool(manifest.get("Available"))
        manifests_of[image_id] = entries
    first = {}
    for request in requests:
        first.setdefault(request.image_id, request)
    unique = list(first.values())
    skip, remove_first = _policy_decisions(state, [dataclasses.replace(r, kind="id") for r in unique], policy)
    steps, skipped = [], []
    for request in unique:
        users = [c.id for c in state.containers_of(request.image_id)]
        if request.image_id in skip:
            skipped.append(_skipped_entry(snapshot, request.image_id, skip[request.image_id], users))
            continue
        for container_id in remove_first.get(request.image_id, ()):
            steps.append(Step(len(steps), "remove_container", container_id, request.image_id, 0))
        for key in platforms:
            listed = [digest for own, digest in manifests_of.get(request.image_id, ()) if own == key]
            if not listed:
                shown = sorted({platform_text(own) for own, _digest in manifests_of.get(request.image_id, ())})
                raise JanitorError(f"platforms: {request.given or request.target} ({request.image_id}) has no "
                                   f"{platform_text(key)} variant (its variants: {', '.join(shown) or 'none'})")
            found = [digest for digest in listed if available.get(digest)]
            if not found:
                continue  # listed, its content already gone (an earlier run, or another image sharing it): done
            available[found[0]] = False
            steps.append(Step(len(steps), "remove_image", request.target, request.image_id, 0, force=True,
                              noprune=not policy.prune, given=request.given, rule=request.rule, deleted=[found[0]],
                              platforms=(platform_json(key),), platform=platform_text(key)))
    return Plan(snapshot=snapshot, rules=rules, policy=policy, steps=steps, skipped=skipped,
                not_found=list(not_found), selected=_unique(r.image_id for r in unique),
                image_ids=frozenset(image.id for image in snapshot.images), final_state=state)
