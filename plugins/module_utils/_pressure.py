# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Disk pressure: ``free_space`` thresholds and ``unused_for``, the least-recently-used order, and the shortest
prefix of that order that brings the measure down to ``low``.

Pure: the options are validated before connecting (``_pressure_options``), and ``choose()`` works on a snapshot,
the last-use times (``_last_used``), a measure read once, and a ``freed(image_ids) -> bytes`` function from the
layer accounting. Nothing is measured twice: how many images go is decided by the accounting's prediction, as
kubelet's image GC decides by the sizes it knows (docuum measures again after every deletion instead).

Choices where kubelet and docuum differ (see docs/disk-pressure.md):

* ``used`` of the filesystem is its size minus the space available (``f_bavail``), like kubelet: reserved blocks
  count as used. Thresholds in percent are of the filesystem's size.
* The LRU order is by last use; a parent is never used later than its children (docuum), so children come first;
  ties go to the older image, then the smaller ID; a parent that ties with its child still comes after it.
* With ``free_space``, ``unused_for`` narrows the candidates (a minimum idle time, like kubelet's
  ``imageMinimumGCAge`` measured from the last use); alone, it selects every candidate idle for that long.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ansible_collections.janitor.docker.plugins.module_utils._planner import plan
from ansible_collections.janitor.docker.plugins.module_utils._snapshot import Request, repository_of

RULE_FREE_SPACE = "free_space"
RULE_UNUSED_FOR = "unused_for"


# -- candidates -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """An image the selection offers, with the references that must go for it to be deleted."""

    image_id: str
    references: tuple  # empty: an untagged image, removed by ID


def needed_references(image):
    """The references whose removal deletes ``image``: every tag, and the digests of repositories without a tag
    (a repository's digests go with its last tag)."""
    tag_repos = {repository_of(t) for t in image.tags}
    return tuple(image.tags) + tuple(d for d in image.digests if repository_of(d) not in tag_repos)


def candidates(snapshot, requests, kept, given):
    """``(candidates, kept)``: the images ``requests`` (from the selection) offer whole, except those a container
    uses; images the selection offers only in part (a ``reference`` filter that leaves other references) stay and
    are added to ``kept`` with reason ``other_references``; images used by containers with reason ``container``."""
    by_id = snapshot.by_id()
    used = {}
    for container in snapshot.containers:
        used.setdefault(container.image_id, []).append(container.id)
    asked = {}
    for request in requests:
        asked.setdefault(request.image_id, set()).add(request.target if request.kind == "reference" else None)
    out = []
    kept = list(kept)
    for image_id, targets in asked.items():
        image = by_id.get(image_id)
        if image is None:
            continue
        entry = {"id": image_id, "references": list(image.references), "rule": RULE_FREE_SPACE, "given": given}
        if image_id in used:
            kept.append(dict(entry, reason="container", containers=sorted(used[image_id])))
            continue
        needed = needed_references(image)
        if None not in targets and not set(needed) <= targets:
            kept.append(dict(entry, reason="other_references"))
            continue
        out.append(Candidate(image_id, needed))
    return out, kept


def requests_for(snapshot, chosen, rule, given):
    """The Requests that delete the ``chosen`` candidates: their references (an untagged one by ID)."""
    out = []
    for candidate in chosen:
        if candidate.references:
            out.extend(Request("reference", ref, candidate.image_id, given=given, rule=rule)
                       for ref in candidate.references)
        else:
            out.append(Request("id", candidate.image_id, candidate.image_id, given=given, rule=rule))
    return out


def planned_freed(snapshot, offered, policy, rules, accounting, rule, given):
    """``freed(candidate_ids) -> bytes`` for ``choose``: the planner's own outcome for those candidates' requests
    (the images it deletes, untagged parents included), in the layer ``accounting`` (``freed(deleted_ids)``)."""
    by_id = {c.image_id: c for c in offered}
    made = {}  # the last two plans, by their candidates: the final plan of the chosen ones is among them

    def freed(candidate_ids, requests=None):
        """``requests``: those of ``candidate_ids`` when the caller has them."""
        if not candidate_ids:
            return 0
        if requests is None:
            requests = requests_for(snapshot, [by_id[i] for i in candidate_ids], rule, given)
        planned = plan(snapshot, requests, policy, rules)
        made[tuple(candidate_ids)] = planned
        while len(made) > 2:
            del made[next(iter(made))]
        return accounting.freed(deleted_by(planned))

    freed.made = made
    return freed


class LayerSpace:
    """``freed(deleted) -> bytes`` in the accounting of ``space_reclaimed``: the layer table of ``_layers``
    (each released layer once), reading the few image histories a set needs, each once."""

    def __init__(self, snapshot, table, read_histories):
        self.table = table
        self.read_histories = read_histories
        self.image_ids = [image.id for image in snapshot.images]
        self.container_images = {c.image_id for c in snapshot.containers}
        self.read = set()

    def freed(self, deleted):
        sets, released = self.read_missing(deleted)
        return self.table.space(*sets, released=released)

    def read_missing(self, deleted):
        """Read the histories ``freed(deleted)`` needs; ``(the sets, their released layers)``."""
        deleted = set(deleted)
        sets = (sorted(deleted), [i for i in self.image_ids if i not in deleted], self.container_images)
        released = self.table.released(*sets)  # the layers alone decide it: the histories read do not change it
        wanted = [i for i in self.table.missing(*sets, released=released) if i not in self.read]
        if wanted:
            self.read.update(wanted)
            self.table = self.table.with_histories(self.read_histories(wanted))
        return sets, released

    def read_for_prefixes(self, released, deleted_at, never):
        """The table with the histories that the prefixes of one order need, read (each once); ``released``:
        {chain ID: the position that releases it}, ``deleted_at``: {image ID: the position that deletes it}
        (``never`` for an image that stays).

        ``freed`` for the whole order reads only the images that stay after all of it; a layer that every image
        holding it leaves (a base the order empties) is then estimated. A shorter prefix keeps an image on that
        layer, so its own ``freed`` reads that image's history, and the layer counts its real size. A sum over
        the prefixes counts each layer with one size: for a layer that some prefix counts while an image on it
        stays, the history of the image on it that stays longest (fewest layers, then smallest ID, on a tie).
        Once read, ``space()`` counts it for every set, so each prefix's own ``freed`` agrees. A layer that only
        deleted images hold in every prefix that counts it stays estimated, as each prefix's ``freed`` does."""
        table = self.table
        tops = table._tops()
        parents = table.parents()
        first = {}  # chain ID: the first position from which a prefix counts it (it or a layer on it released)
        for chain, at in released.items():
            for counted in (chain, parents.get(chain)):
                if counted is not None and at < first.get(counted, never):
                    first[counted] = at
        holders = table.holders()
        wanted = set()
        for chain, at in first.items():
            if chain in tops or table._located(chain) is not None:
                continue
            staying = [image_id for image_id in holders.get(chain, ()) if image_id in table.totals]
            if not staying:
                continue
            longest = min(staying, key=lambda i: (-deleted_at.get(i, never), len(table.chains[i]), i))
            if deleted_at.get(longest, never) > at:  # a prefix keeps it on the chain: that prefix reads it
                wanted.add(longest)
        wanted = sorted(wanted - self.read)
        if wanted:
            self.read.update(wanted)
            self.table = table.with_histories(self.read_histories(wanted))
        return self.table


class PrefixFreed:
    """``freed(prefix) -> bytes`` for the prefixes of one LRU order, from one plan and one accounting.

    The first question ``choose`` asks is about the whole order: that plan (every candidate, in the order) is made
    once, and each step's deletions are credited to the candidate whose request made it (an untagged parent the
    store prunes with its last child, to the last of its children). The layer
    table's ``space()`` is a sum over the released layers and the deleted images (``LayerTable.shares``), and a
    layer is released at the position of the last of its images, so every prefix's space is one running sum.
    ``exact(prefix)`` checks a prefix against a plan and ``space()`` of its own; when the steps come out of order,
    or a check fails, ``fallback`` (``planned_freed``: a plan and a ``space()`` per question) answers instead.
    """

    def __init__(self, snapshot, offered, policy, rules, space, rule, given):
        self.snapshot = snapshot
        self.by_id = {c.image_id: c for c in offered}
        self.policy = policy
        self.rules = rules
        self.space = space
        self.rule = rule
        self.given = given
        self.fallback = planned_freed(snapshot, offered, policy, rules, space, rule, given)
        self.order = None
        self.running = None
        self.requests = []  # the order's requests; those of order[:k] are requests[:cuts[k]]
        self.cuts = [0]

    def __call__(self, prefix):
        if not prefix:
            return 0
        if self.running is None or len(prefix) > len(self.order) or prefix[-1] != self.order[len(prefix) - 1]:
            self.order = list(prefix)
            self.running = self._running(self.order)
        if self.running is False:
            return self.fallback(prefix)
        return self.running[len(prefix)]

    def _plan(self, ids):
        self.requests = requests_for(self.snapshot, [self.by_id[i] for i in ids], self.rule, self.given)
        self.cuts = [0]
        for image_id in ids:
            self.cuts.append(self.cuts[-1] + max(1, len(self.by_id[image_id].references)))
        return plan(self.snapshot, self.requests, self.policy, self.rules)

    def requests_of(self, prefix):
        """``requests_for`` the candidates of ``prefix``: a slice of the order's when it is a prefix of it."""
        if self.order is not None and len(prefix) < len(self.cuts) and list(prefix) == self.order[:len(prefix)]:
            return self.requests[:self.cuts[len(prefix)]]
        return requests_for(self.snapshot, [self.by_id[i] for i in prefix], self.rule, self.given)

    def _running(self, order):
        position = {image_id: index for index, image_id in enumerate(order)}
        deleted_at = {}
        pruned = []
        for step in self._plan(order).steps:
            index = position.get(step.image_id)
            if index is None:
                return False
            for image_id in step.deleted:
                if image_id not in deleted_at:
                    deleted_at[image_id] = index
                    if image_id != step.image_id:
                        pruned.append(image_id)
        if pruned and not self.rules.prune_ignores_siblings:
            # an untagged parent goes with the last of its children: in a prefix, when the last of them is in it
            children = {}
            for image in self.snapshot.images:
                if image.parent:
                    children.setdefault(image.parent, []).append(image.id)
            for image_id in reversed(pruned):  # parents were pruned after their children
                below = [deleted_at[c] for c in children.get(image_id, ()) if c in deleted_at]
                deleted_at[image_id] = max([deleted_at[image_id]] + below)
        space = self.space
        space.read_missing(deleted_at)  # the histories the whole set needs
        table = space.table
        never = len(order)
        release = {}
        for image in self.snapshot.images:
            at = deleted_at.get(image.id, never)
            for chain in table.chains.get(image.id, ()):
                release[chain] = max(release.get(chain, -1), at)
        for image_id in space.container_images:
            for chain in table.chains.get(image_id, ()):
                release[chain] = never
        released = {chain: at for chain, at in release.items() if at < never}
        table = space.read_for_prefixes(released, deleted_at, never)
        per_chain, per_image = table.shares(released, deleted_at)
        added = [0] * (len(order) + 1)
        for chain, at in released.items():
            added[at + 1] += per_chain[chain]
        for image_id, at in deleted_at.items():
            added[at + 1] += per_image.get(image_id, 0)
        running = [0] * (len(order) + 1)
        for index in range(1, len(order) + 1):
            running[index] = running[index - 1] + added[index]
        running = [max(0, value) for value in running]
        if running[-1] != space.freed(deleted_at):
            return False
        return running

    def plan_of(self, candidate_ids):
        """The plan already made for the requests of ``candidate_ids`` (by a check or the fallback), or None."""
        return self.fallback.made.get(tuple(candidate_ids))

    def exact(self, prefix):
        """Whether the running sum's answer for ``prefix`` is what its own plan and ``space()`` give."""
        if not prefix or self.running is False:
            return True
        return self(prefix) == self.fallback(prefix, self.requests_of(prefix))


def deleted_by(planned):
    """The image IDs a plan deletes."""
    return {image_id for step in planned.steps for image_id in step.deleted}


# -- order ------------------------------------------------------------------------------------------------------
def lru_order(snapshot, image_ids, last_used):
    """``image_ids`` least recently used first.

    A parent's last use is at least its children's (a child in use uses its parent's layers), so parents follow
    their children; ties go to the older image, then the smaller ID, and a parent tied with a child still waits for
    it: the classic store refuses to delete an image that has children.
    """
    by_id = snapshot.by_id()
    wanted = set(image_ids)
    effective = {image_id: last_used.get(image_id, by_id[image_id].created) for image_id in wanted}
    children = {}
    for image_id in wanted:
        parent = by_id[image_id].parent
        if parent in wanted:
            children.setdefault(parent, []).append(image_id)
    # propagate children's last use up the chains (depth first from each leaf; chains are short)
    for image_id in wanted:
        value = effective[image_id]
        parent = by_id[image_id].parent
        seen = {image_id}
        while parent in wanted and parent not in seen and effective[parent] < value:
            effective[parent] = value
            seen.add(parent)
            parent = by_id[parent].parent
    ordered = sorted(wanted, key=lambda i: (effective[i], by_id[i].created, i))
    if not children:
        return ordered, effective
    waiting = {parent: len(kids) for parent, kids in children.items()}
    held = set()
    out = []

    def emit(image_id):
        out.append(image_id)
        parent = by_id[image_id].parent
        if parent in waiting:
            waiting[parent] -= 1
            if waiting[parent] == 0 and parent in held:
                held.discard(parent)
                emit(parent)

    for image_id in ordered:
        if waiting.get(image_id, 0) > 0:
            held.add(image_id)
        else:
            emit(image_id)
    out.extend(i for i in ordered if i in held)  # only with a parent cycle, which the engine never makes
    return out, effective


def freeable(snapshot, rules, image_ids):
    """The images of ``image_ids`` that can be deleted: on a store that refuses to delete a parent with children,
    not an image with a child that stays (the child is not among them)."""
    if not rules.child_conflict:
        return set(image_ids)
    by_id = snapshot.by_id()
    wanted = set(image_ids)
    children = {}
    for image in snapshot.images:
        if image.parent:
            children.setdefault(image.parent, []).append(image.id)
    changed = True
    while changed:
        changed = False
        for image_id in list(wanted):
            if any(child not in wanted for child in children.get(image_id, ())):
                wanted.discard(image_id)
                changed = True
    return {i for i in wanted if i in by_id}


# -- the choice -------------------------------------------------------------------------------------------------
@dataclass
class Measure:
    """One reading: ``used`` and ``total`` bytes (``total`` None for the images measure), where."""

    measure: str
    used: int
    total: int = None
    path: str = ""


@dataclass
class Choice:
    """What the pressure options remove: ``chosen`` Candidates in LRU order, the result's ``free_space``, the
    ``last_used`` time of each chosen image, warnings, and the images kept (``kept``)."""

    chosen: list
    free_space: dict = None
    last_used: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    kept: list = field(default_factory=list)
    plan: object = None  # the plan of ``requests_for(chosen)`` when choosing made it (``_planner.planned``)


def choose(snapshot, pressure, offered, last_used, rules, measure=None, freed=None):
    """The candidates to remove for ``pressure`` (see the module docstring).

    ``offered``: Candidates (no image a container uses). ``last_used``: {image ID: epoch seconds}. ``measure``: a
    Measure (with ``free_space``). ``freed(candidate_ids) -> bytes``: what removing those candidates frees - the
    planner's outcome (with the untagged parents the store deletes with them) in the layer accounting.
    """
    by_id = snapshot.by_id()
    offered_by_id = {c.image_id: c for c in offered}
    ids = set(offered_by_id)
    kept = []
    given = pressure.describe()
    if pressure.unused_before is not None:
        idle = {i for i in ids if last_used.get(i, by_id[i].created) <= pressure.unused_before}
        for image_id in sorted(ids - idle):
            kept.append({"id": image_id, "references": list(by_id[image_id].references), "rule": RULE_UNUSED_FOR,
                         "given": given, "reason": "recently_used",
                         "last_used": iso_time(last_used.get(image_id, by_id[image_id].created))})
        ids = idle
    deletable = freeable(snapshot, rules, ids)
    for image_id in sorted(ids - deletable):
        kept.append({"id": image_id, "references": list(by_id[image_id].references),
                     "rule": RULE_FREE_SPACE if pressure.free_space else RULE_UNUSED_FOR, "given": given,
                     "reason": "child_images"})
    order, effective = lru_order(snapshot, deletable, last_used)
    result = None
    warnings = []
    if pressure.free_space is None:
        chosen_ids = order
    else:
        high, low = pressure.free_space.bounds(measure.total)
        used = measure.used
        result = {"measure": measure.measure, "path": measure.path, "total": measure.total, "high": high, "low": low,
                  "used_before": used, "used_after": used, "target_met": True}
        if used < high:
            chosen_ids = []
        else:
            count = _shortest_prefix(order, used - low, freed)
            chosen_ids = order[:count]
            after = used - (freed(chosen_ids) if chosen_ids else 0)
            result["used_after"] = after
            result["target_met"] = after <= low
            if after > low:
                warnings.append(
                    f"free_space: removing every eligible image ({len(chosen_ids)}) brings the {measure.measure} "
                    f"measure from {used} to {after} bytes, above low ({low} bytes); the rest is used by containers, "
                    f"protected (exclude, keep_latest, filters) or not in the selection")
    chosen = [offered_by_id[i] for i in chosen_ids]
    return Choice(chosen=chosen, free_space=result, warnings=warnings, kept=kept,
                  last_used={i: iso_time(effective.get(i, last_used.get(i, 0))) for i in chosen_ids})


def choose_checked(snapshot, pressure, offered, last_used, rules, measure, freed):
    """``choose`` with a ``PrefixFreed``; the chosen prefix and the one an image shorter are checked against plans
    of their own, and a failed check chooses again with a plan per question."""
    choice = choose(snapshot, pressure, offered, last_used, rules, measure=measure, freed=freed)
    ids = [c.image_id for c in choice.chosen]
    if freed is not None and not (freed.exact(ids) and freed.exact(ids[:-1])):
        choice = choose(snapshot, pressure, offered, last_used, rules, measure=measure, freed=freed.fallback)
    if freed is not None:
        choice.plan = freed.plan_of([c.image_id for c in choice.chosen])
    return choice


def _shortest_prefix(order, need, freed_by):
    """The smallest ``k`` with ``freed_by(order[:k]) >= need`` (``len(order)`` when none is enough).

    What removing more images frees never shrinks, so a binary search finds it with log2(n) accountings.
    """
    if need <= 0:
        return 0
    lo, hi = 1, len(order)
    if hi == 0 or freed_by(order) < need:
        return len(order)
    while lo < hi:
        mid = (lo + hi) // 2
        if freed_by(order[:mid]) >= need:
            hi = mid
        else:
            lo = mid + 1
    return lo


def iso_time(seconds):
    """``2024-05-01T12:00:00Z`` for epoch seconds (whole seconds, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))
