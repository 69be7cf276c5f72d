"""Planning with ``free_space`` on the synthetic snapshot (no engine): the cost of choosing the least recently used
images that bring the measure down to ``low``.

The snapshot is ``planner_bench.synthetic_snapshot`` (10,000 images, 5,000 containers by default). Each image gets
layers as pulled images have them: one of 40 shared bases (tens of MB) under a layer of its own, so removing images
releases a base only with the last image on it. The last uses are spread over a month. Timed, best of ``repeat``:

* ``choose``: what the module does between the selection and the final plan - the candidates, the LRU order, and
  the shortest prefix that reaches ``low`` in the accounting of ``space_reclaimed`` (``_layers.LayerTable``): one
  plan of every candidate in that order gives every prefix's deletions, the table's sum over released layers every
  prefix's space (``_pressure.PrefixFreed``), and the chosen prefix and the one an image shorter are checked
  against plans and ``space()`` of their own (``one_plan`` false: the plan's steps came out of order, a plan per
  probe was used);
* ``plan``: the final plan of the chosen images and its result (``_result.build``), as check mode makes it: the
  module reuses the plan the check of the chosen prefix made (``_planner.planned``).

Target (issue 20): ``choose`` + ``plan`` under 0.5 s at 10,000 images. Reported, not asserted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import planner_bench  # noqa: E402

BASES = 40
MB = 1_000_000


def _diff(kind: str, i: int) -> str:
    return "sha256:" + hashlib.sha256(f"{kind} {i}".encode()).hexdigest()


def synthetic_layers(snapshot):
    """``({image ID: diff IDs}, {image ID: listed Size}, {image ID: history sizes, newest first})``."""
    layers, totals, histories = {}, {}, {}
    for index, image in enumerate(snapshot.images):
        base = index % BASES
        base_size = (20 + base) * MB
        own = 100_000 + (index * 7919) % 5_000_000
        layers[image.id] = (_diff("base", base), _diff("own", index))
        totals[image.id] = base_size + own
        histories[image.id] = [0, own, 0, base_size]
    return layers, totals, histories


def run(images: int = 10_000, containers: int = 5_000, repeat: int = 3, share: float = 0.25) -> dict:
    """Timings in seconds; ``share``: the part of the images' total that must go (used - low)."""
    from ansible_collections.janitor.docker.plugins.module_utils import (
        _layers,
        _planner,
        _pressure,
        _pressure_options,
        _result,
        _selection,
    )

    snapshot = planner_bench.synthetic_snapshot(images, containers)
    layers, totals, histories = synthetic_layers(snapshot)
    now = 1_700_000_000.0
    last_used = {image.id: now - (index * 2654435761 % (30 * 86400)) for index, image in enumerate(snapshot.images)}
    rules = _planner.rules_for(snapshot.store)
    policy = _planner.Policy(force=False, prune=True, containers="skip", rule_containers="skip")
    selection = _selection.Selection({"all": True}, now=now)
    selected = selection.resolve(snapshot)
    table = _layers.LayerTable.from_diff_ids(layers, totals)
    used = table.with_histories(histories).space(
        [image.id for image in snapshot.images], [], set())  # every layer, each once: the images measure
    pressure = _pressure_options.Pressure(free_space=_pressure_options.FreeSpace(_pressure_options.MEASURE_IMAGES, used, used * (1 - share)))
    measure = _pressure.Measure(_pressure_options.MEASURE_IMAGES, used, None, "/var/lib/docker")
    given = pressure.describe()

    def choose():
        offered, _kept = _pressure.candidates(snapshot, selected.requests, selected.kept, given)
        as_read = dataclasses.replace(table, _derived={})  # the table as the module reads it: nothing derived yet
        space = _pressure.LayerSpace(snapshot, as_read, lambda ids: {i: histories[i] for i in ids})
        freed = _pressure.PrefixFreed(snapshot, offered, policy, rules, space, _pressure.RULE_FREE_SPACE, given)
        choice = _pressure.choose_checked(snapshot, pressure, offered, last_used, rules, measure, freed)
        return choice, space, len(offered), freed.running is not False

    def final(choice, space):
        if choice.plan is not None:  # the module reuses the plan the choice's check made (_planner.planned)
            plan = _planner.planned(choice.plan)
        else:
            requests = _pressure.requests_for(snapshot, choice.chosen, _pressure.RULE_FREE_SPACE, given)
            plan = _planner.plan(snapshot, requests, policy, rules)
        return _result.build(plan, layers=space.table)

    choose_seconds, (choice, space, offered, one_plan) = planner_bench._best(choose, repeat)
    plan_seconds, result = planner_bench._best(lambda: final(choice, space), repeat)
    return {
        "images": images, "containers": containers, "candidates": offered, "chosen": len(choice.chosen),
        "one_plan": one_plan, "used_before": used, "low": choice.free_space["low"],
        "used_after": choice.free_space["used_after"], "space_reclaimed": result["space_reclaimed"],
        "choose_seconds": round(choose_seconds, 4), "plan_seconds": round(plan_seconds, 4),
        "total_seconds": round(choose_seconds + plan_seconds, 4), "target_seconds": 0.5,
    }


if __name__ == "__main__":
    import json

    sys.path.insert(0, str(REPO / ".cache" / "collections"))
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    c = int(sys.argv[2]) if len(sys.argv) > 2 else n // 2
    print(json.dumps(run(n, c), indent=2))
