"""The planner alone, on synthetic snapshots (no engine): how the pure layers scale.

The snapshot looks like a large build host: ``images`` images with one to three tags in a few hundred
repositories, one in ten a child of another (parent/child chains), one in fifty untagged, and ``containers``
containers on a fifth of the images (one in ten running). Two cases are timed, each the best of ``repeat``:

* ``list``: every image's references given explicitly: ``_references.resolve`` + ``merge``, then
  ``_planner.plan`` and ``_result.build(plan)`` with ``containers=skip``;
* ``filter``: ``_selection.Selection`` with a label filter matching every image, then the same planning with
  ``force=true`` (the filter selects whole images by ID; some are tagged in several repositories).

``plan`` is what the target counts; resolution and selection are reported beside it.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _id(kind: str, i: int) -> str:
    return "sha256:" + hashlib.sha256(f"{kind} {i}".encode()).hexdigest()


def synthetic_snapshot(images: int, containers: int):
    """A Snapshot of ``images`` images and ``containers`` containers (deterministic)."""
    from ansible_collections.janitor.docker.plugins.module_utils import _snapshot

    records = []
    for i in range(images):
        parent = _id("image", i - 1 - (i % 7)) if i % 10 == 9 and i >= 8 else ""
        tags = () if i % 50 == 49 else tuple(f"repo-{i % 300}/app:{i}-{k}" for k in range(1 + i % 3))
        records.append(_snapshot.ImageRecord(
            id=_id("image", i), parent=parent, tags=tags, digests=(), created=1_600_000_000 + i,
            size=1000 + i, labels=(("janitor.bench", "synthetic"),)))
    users = max(1, images // 5)
    conts = tuple(
        _snapshot.ContainerRecord(id=_id("container", c)[7:], image_id=_id("image", (c * 7) % users * 5 % images),
                                  state="running" if c % 10 == 0 else "exited", name=f"c{c}")
        for c in range(containers))
    return _snapshot.Snapshot(images=tuple(records), containers=conts, store=_snapshot.CLASSIC,
                              engine_version="synthetic", api_version="1.41")


def _best(fn, repeat):
    best = None
    value = None
    for _round in range(repeat):
        started = time.perf_counter()
        value = fn()
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return best, value


def run(images: int = 10_000, containers: int = 5_000, repeat: int = 3, budget: float = 120.0) -> dict:
    """Timings in seconds. A case whose first try takes longer than ``budget`` is not repeated."""
    from ansible_collections.janitor.docker.plugins.module_utils import _planner, _references, _result, _selection

    started = time.perf_counter()
    snapshot = synthetic_snapshot(images, containers)
    make_seconds = time.perf_counter() - started
    values = [ref for image in snapshot.images for ref in image.references] + [
        image.id for image in snapshot.images if not image.references]
    list_policy = _planner.Policy(force=False, prune=True, containers="skip")
    filter_policy = _planner.Policy(force=True, prune=True, containers="skip")  # whole images by ID need force
    rules = _planner.rules_for(snapshot.store)
    out = {"images": images, "containers": containers, "references": len(values),
           "snapshot_seconds": round(make_seconds, 4)}

    def resolve():
        resolution = _references.resolve(snapshot, values)
        return _references.merge(resolution.requests)

    def select():
        return _selection.Selection({"filters": {"label": "janitor.bench=synthetic"}}).resolve(snapshot).requests

    for case, make_requests, policy in (("list", resolve, list_policy), ("filter", select, filter_policy)):
        resolve_seconds, requests = _best(make_requests, 1)
        first_started = time.perf_counter()
        plan = _planner.plan(snapshot, requests, policy, rules)
        first = time.perf_counter() - first_started
        tries = repeat if first * repeat < budget else 1
        plan_seconds, plan = _best(lambda: _planner.plan(snapshot, requests, policy, rules), tries - 1) \
            if tries > 1 else (first, plan)
        plan_seconds = min(plan_seconds, first)
        result_seconds, result = _best(lambda: _result.build(plan), 1)
        out[case] = {
            "requests": len(requests),
            "select_or_resolve_seconds": round(resolve_seconds, 4),
            "plan_seconds": round(plan_seconds, 4),
            "result_seconds": round(result_seconds, 4),
            "planner_seconds": round(plan_seconds + result_seconds, 4),
            "steps": len(plan.steps),
            "deleted": len(result["deleted"]),
            "skipped": len(result.get("skipped_images", result.get("skipped")) or ()),  # the key's newer name first
        }
    return out


if __name__ == "__main__":
    import json

    sys.path.insert(0, str(REPO / ".cache" / "collections"))

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    c = int(sys.argv[2]) if len(sys.argv) > 2 else n // 2
    print(json.dumps(run(n, c), indent=2))
