"""Differential tests: image_remove against ``docker rmi`` on randomly generated image graphs.

Hypothesis draws a small graph (loaded images, images built on top of them, tags in a few repositories, maybe a
stopped container) and a list of names to remove (tags, IDs, ID prefixes, a name that does not exist) with or
without force. With ``intermediates`` every image is built the way CI builds are, with the classic builder
(``FROM parent``, ``COPY``, ``LABEL``), so each build leaves an untagged intermediate image between an image and
its parent. The graph is built, ``docker rmi [-f] <name>`` is run for each name in the order image_remove sends
them (children before their parents; the CLI does the same, one name after another) and the outcome recorded; then
the engine is reset, the identical graph is built again and image_remove runs on it, first in check mode, then for
real. Compared:

* the engine's state afterwards (every image with its references, every container);
* the references untagged, the images and layers deleted;
* the errors: a name the CLI could not find is in ``not_found``; a name the CLI refused (a conflict) is an image
  in ``skipped``; a name the CLI found gone because an earlier name had already removed it is no error for us;
* check mode against the real run: the same result.

Built images get new IDs on every build, so images are compared by their node in the generated graph (the
intermediate of node ``n``'s build is node ``INTERMEDIATE + n``).

The order matters on the containerd image store: its parent walk reads the whole chain of Parent links first and
prunes nothing when an ancestor is already gone, so ``docker rmi r:a r:b`` (parent first) leaves the intermediate
of ``r:b``'s build behind, and ``docker rmi r:b r:a`` does not. image_remove always sends children first
(``test_containerd_order_of_builder_chains`` pins both orders).

Where the module differs from ``docker rmi`` by design, the expectation says so: with ``force`` the CLI deletes an
image a stopped container uses and leaves the container pointing at nothing; image_remove does that only with
``containers=remove``, removing the container first, so there the containers are compared separately.
"""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.ansible_runner import run_module
from tests.harness.images import ImageSpec

pytestmark = pytest.mark.engine

REPOS = ("diff-a", "diff-b", "team/diff-c")
TAGS = ("1", "2", "latest")
REFS = [f"{repo}:{tag}" for repo in REPOS for tag in TAGS]
MISSING = "diff-missing:1"
INTERMEDIATE = 100  # node number of a build's intermediate image: INTERMEDIATE + the node built
HEX64 = re.compile(r"sha256:([0-9a-f]{64})")


@st.composite
def scenarios(draw):
    roots = draw(st.integers(1, 3))
    children = draw(st.integers(0, 2))
    parents = [None] * roots + [draw(st.integers(0, roots + k - 1)) for k in range(children)]
    count = len(parents)
    refs = draw(st.lists(st.sampled_from(REFS), unique=True, max_size=5))
    owners = {ref: draw(st.integers(0, count - 1)) for ref in refs}
    containers = draw(st.lists(st.integers(0, count - 1), unique=True, max_size=1))
    force = draw(st.booleans())
    targets = draw(st.lists(st.integers(0, count - 1), unique=True, min_size=1, max_size=3))
    names = []
    for node in targets:  # each node is named at most once, in one of its forms
        own = sorted(ref for ref, owner in owners.items() if owner == node)
        forms = ["id", "prefix"] + [("ref", ref) for ref in own]
        names.append((node, draw(st.sampled_from(forms))))
    if draw(st.booleans()):
        names.insert(draw(st.integers(0, len(names))), (None, ("ref", MISSING)))
    return {"parents": parents, "owners": owners, "containers": containers, "names": names, "force": force,
            "intermediates": draw(st.booleans())}


class Built:
    """One build of a scenario: node index <-> image ID, and the container IDs."""

    def __init__(self, engine, factory, scenario):
        self.engine = engine
        engine.reset()
        parents = scenario["parents"]
        roots = [i for i, parent in enumerate(parents) if parent is None]
        self.ids = {}
        if scenario.get("intermediates"):
            for i, parent in enumerate(parents):  # parents come before their children
                base = "scratch" if parent is None else self.ids[parent]
                self.ids[i] = factory.build(f"FROM {base}\nCOPY g /g\nLABEL diff.node={i}\n",
                                            {"g": f"diff-node-{i}".encode()})
                self.ids[INTERMEDIATE + i] = engine.api.inspect_image(self.ids[i])["Parent"]
        else:
            loaded = factory.load([ImageSpec([], f"diff-node-{i}") for i in roots])
            self.ids.update(zip(roots, loaded))
            for i, parent in enumerate(parents):
                if parent is not None:
                    self.ids[i] = factory.child(self.ids[parent], f"diff-node-{i}")
        for ref, owner in scenario["owners"].items():
            factory.tag(self.ids[owner], ref)
        self.containers = {factory.stopped_container(self.ids[i]): i for i in scenario["containers"]}
        self.node_of = {image_id: node for node, image_id in self.ids.items()}

    def name(self, entry):
        node, form = entry
        if form == "id":
            return self.ids[node]
        if form == "prefix":
            return self.ids[node].split(":", 1)[1][:12]
        return form[1]

    def norm(self, text):
        """Image IDs inside a reference or an ID list, replaced by their node."""
        def node(match):
            full = match.group(0)
            return f"<node {self.node_of[full]}>" if full in self.node_of else full

        return HEX64.sub(node, text)

    def state(self):
        state = self.engine.state()
        images = {self.node_of.get(i, i): sorted(self.norm(r) for r in refs) for i, refs in state["images"].items()}
        containers = {self.containers.get(c, c): self.node_of.get(i, i) for c, i in state["containers"].items()}
        return images, containers


def _module_order(scenario):
    """The indexes of the names in the order image_remove sends them: deeper images (children) first, then as given
    (each node is named once)."""
    parents = scenario["parents"]

    def depth(node):
        return 0 if node is None or parents[node] is None else depth(parents[node]) + 1

    return sorted(range(len(scenario["names"])), key=lambda index: (-depth(scenario["names"][index][0]), index))


def _reference_run(built, scenario):
    """``docker rmi`` for each name in image_remove's order: untagged, deleted (nodes) and released layers, and the
    errors (by the name's index)."""
    untagged, deleted, layers, errors = set(), set(), set(), {}
    for index in _module_order(scenario):
        entry = scenario["names"][index]
        args = ["rmi"] + (["-f"] if scenario["force"] else []) + [built.name(entry)]
        proc = built.engine.cli(*args, check=False)
        for line in proc.stdout.splitlines():
            kind, _sep, value = line.partition(": ")
            if kind == "Untagged":
                untagged.add(built.norm(value))
            elif kind == "Deleted":
                (deleted if value in built.node_of else layers).add(built.norm(value))
        if proc.returncode != 0:
            errors[index] = proc.stderr.strip()
    return untagged, deleted, layers, errors


def _policy(scenario):
    if not scenario["containers"]:
        return "fail"
    return "remove" if scenario["force"] else "skip"


def _comparable(result, built):
    return {
        "untagged": sorted(built.norm(r) for r in result["untagged"]),
        "deleted": sorted(built.norm(i) for i in result["deleted"]),
        "deleted_layers": sorted(result["deleted_layers"]),
        "containers_removed": sorted(built.containers[c] for c in result["containers_removed"]),
        "skipped": sorted((built.norm(s["image"]), s["reason"]) for s in result["skipped_images"]),
        "not_found": sorted(result["not_found"]),
        "changed": result["changed"],
    }


def _check(engine, factory, scenario):
    # the reference: docker rmi on one build of the graph
    ref_build = Built(engine, factory, scenario)
    ref_untagged, ref_deleted, ref_layers, ref_errors = _reference_run(ref_build, scenario)
    ref_images, ref_containers = ref_build.state()
    ref_deleted_nodes = {n for n in range(len(scenario["parents"])) if n not in ref_images}

    # ours: image_remove on an identical build, check mode first
    build = Built(engine, factory, scenario)
    before_images, _before_containers = build.state()
    names = [build.name(entry) for entry in scenario["names"]]
    args = {"docker_host": engine.url, "images": names, "force": scenario["force"],
            "containers": _policy(scenario), "parallel": 2}
    predicted = run_module("image_remove", args, check_mode=True)
    assert not predicted.failed, predicted
    assert build.state()[0] == before_images, "check mode changed the engine"
    result = run_module("image_remove", args)
    assert not result.failed, result
    ours = _comparable(result, build)
    images, containers = build.state()

    context = {"scenario": scenario, "names": names, "cli_errors": ref_errors, "result": ours}
    # the same images, with the same references, are left
    assert images == ref_images, context
    assert ours["untagged"] == sorted(ref_untagged), context
    assert ours["deleted"] == sorted(ref_deleted), context
    # containers: the CLI's -f leaves a stopped container on a deleted image; containers=remove removes it first
    orphaned = sorted(c for c, image in ref_containers.items() if image not in ref_images)
    if orphaned:
        # ...so the image's layers, which the orphaned container still holds after the CLI, are released too
        assert set(ours["deleted_layers"]) >= ref_layers, context
    else:
        assert ours["deleted_layers"] == sorted(ref_layers), context
    assert ours["containers_removed"] == orphaned, context
    assert {c: i for c, i in containers.items() if c not in orphaned} == \
        {c: i for c, i in ref_containers.items() if c not in orphaned}, context
    # the same errors: a name that matches nothing is not found (docker rmi -f says nothing about it)...
    assert ours["not_found"] == [MISSING for node, _form in scenario["names"] if node is None], context
    # ...and a name the engine refused is skipped, unless the image went anyway: image_remove orders the names
    # (children before their parents), so a parent the CLI met first, while its child still existed, goes with
    # the child's prune in both runs, with an error only in the CLI's
    conflicts = {scenario["names"][index][0] for index, text in ref_errors.items()
                 if scenario["names"][index][0] is not None and "conflict" in text} - ref_deleted_nodes
    skipped_nodes = {int(image.split()[1].rstrip(">")) for image, _reason in ours["skipped"]
                     if image.startswith("<node ")}
    assert conflicts <= skipped_nodes, context
    for index, text in ref_errors.items():
        node = scenario["names"][index][0]
        if node is not None and "conflict" not in text:
            # the only other error the CLI may meet: the image went with an earlier name (a child's prune)
            assert "No such image" in text and node in ref_deleted_nodes, context
    # check mode said exactly what the real run did
    check = _comparable(predicted, build)
    assert check == ours, {"check": check, "real": ours, **context}


@settings(max_examples=int(os.environ.get("JANITOR_DIFF_EXAMPLES", "6")), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario=scenarios())
def test_image_remove_matches_docker_rmi(engine, images_for, scenario):
    _check(engine, images_for(engine), scenario)


@pytest.mark.parametrize("scenario", [
    # an image in two repositories named by ID, without and with force, next to a missing name
    {"parents": [None], "owners": {"diff-a:1": 0, "diff-b:1": 0}, "containers": [],
     "names": [(None, ("ref", MISSING)), (0, "id")], "force": False},
    {"parents": [None], "owners": {"diff-a:1": 0, "diff-b:1": 0}, "containers": [],
     "names": [(0, "id")], "force": True},
    # a stopped container on the last tag, without and with force
    {"parents": [None], "owners": {"diff-a:1": 0}, "containers": [0], "names": [(0, ("ref", "diff-a:1"))],
     "force": False},
    {"parents": [None], "owners": {"diff-a:1": 0}, "containers": [0], "names": [(0, "prefix")], "force": True},
    # a parent named by ID while its child exists (classic: conflict; containerd: deleted)
    {"parents": [None, 0], "owners": {"diff-a:1": 1}, "containers": [], "names": [(0, "id")], "force": False},
    # issue 16: classic-builder chains (each build leaves an intermediate image): A <- B tagged in one repository,
    # both tags named; and A <- B <- C (untagged), D a child of B, E alone, forced, C named by ID
    {"parents": [None, 0], "owners": {"diff-a:1": 0, "diff-a:2": 1}, "containers": [],
     "names": [(0, ("ref", "diff-a:1")), (1, ("ref", "diff-a:2"))], "force": False, "intermediates": True},
    {"parents": [None, 0, 1, 1, None], "owners": {"diff-a:1": 0, "diff-b:1": 1, "diff-b:2": 3, "team/diff-c:1": 4},
     "containers": [], "names": [(0, ("ref", "diff-a:1")), (1, ("ref", "diff-b:1")), (2, "id"),
                                 (4, ("ref", "team/diff-c:1"))], "force": True, "intermediates": True},
])
def test_image_remove_matches_docker_rmi_fixed_cases(engine, images_for, scenario):
    _check(engine, images_for(engine), scenario)


CONTAINER_REMOVED_FOR_NOTHING = {
    "parents": [None, 0], "owners": {}, "containers": [0], "names": [(0, "id")], "force": True}


def test_container_is_not_removed_for_an_image_that_stays(engine, images_for):
    """Found by the random search: a parent image used by a stopped container, named by ID with force and
    containers=remove. The classic store refuses to delete a parent (child images, which force does not override),
    and docker rmi -f changes nothing; image_remove removed the container and then failed to delete the image, so a
    container nobody needed removed was gone (fixed in the planner). The containerd store deletes such a parent,
    so there both agree."""
    _check(engine, images_for(engine), CONTAINER_REMOVED_FOR_NOTHING)


BUILDER_PAIR = {"parents": [None, 0], "owners": {"diff-a:1": 0, "diff-a:2": 1}, "containers": [], "names": [],
                "force": False, "intermediates": True}


def test_containerd_order_of_builder_chains(engine, images_for):
    """Where the order of the names changes what the engine leaves: A <- B built with the classic builder, tagged
    diff-a:1 and diff-a:2. Parent first, the containerd store answers "Deleted" for A but keeps it listed dangling
    (it has a child) and its parent walk deletes A's intermediate; then B's Parent chain has a gap (A's
    intermediate is gone), so B's walk prunes nothing: A and B's intermediate stay. Child first, B's walk takes
    B's intermediate and A's walk A's. The graph-driver stores leave nothing either way. image_remove sends
    children first, so it leaves what ``docker rmi diff-a:2 diff-a:1`` leaves."""
    factory = images_for(engine)
    left = {}
    for order in (("diff-a:1", "diff-a:2"), ("diff-a:2", "diff-a:1")):
        built = Built(engine, factory, BUILDER_PAIR)
        engine.cli("rmi", *order)
        left[order] = sorted(built.state()[0])
    built = Built(engine, factory, BUILDER_PAIR)
    result = run_module("image_remove", {"docker_host": engine.url, "images": ["diff-a:1", "diff-a:2"]})
    assert not result.failed, result
    assert sorted(built.state()[0]) == left[("diff-a:2", "diff-a:1")] == []
    assert sorted(built.norm(i) for i in result["deleted"]) == sorted(f"<node {n}>" for n in (0, 1, 100, 101))
    if engine.kind == "containerd":
        assert left[("diff-a:1", "diff-a:2")] == [0, INTERMEDIATE + 1]
    else:
        assert left[("diff-a:1", "diff-a:2")] == []
