"""Filter selections against ``docker image prune`` (issue 16, item 7 and done-when).

On identical copies of the realistic world (tests/harness/world.py: pulled images with digests and shared base
layers, an image with several tags in one repository and another repository, CI builds with the classic
builder's intermediate images, a dangling build and a tagged image used by stopped containers), ``docker image
prune`` with filters runs on one copy and image_remove with the same selection on the other. What stays must be the
same: the same images with the same references, the same containers. image_remove removes what ``filters`` or
``all`` select the way prune does (each reference, then the image with its last one, without ``force``).

``docker image prune`` is ``filters: {dangling: true, ...}``; ``docker image prune -a`` is ``all: true``. Where
image_remove differs on purpose (docs/selection.md, docs/image-remove.md): ``until`` is the image's creation time
(the containerd store's prune uses the time the image was stored locally; the world was made minutes ago, so the
values here select all or nothing either way), and images in use stay whole (prune -a strips all but one name
of an image in use; no image of the world in use has more than one).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.ansible_runner import run_module

pytestmark = pytest.mark.engine

CASES = {
    "dangling": ([], {"filters": {"dangling": True}}),
    "all": (["-a"], {"all": True}),
    "dangling, label": (["--filter", "label=ci.run=1"], {"filters": {"dangling": True, "label": "ci.run=1"}}),
    "all, label": (["-a", "--filter", "label=org.example.image"], {"all": True, "filters": {"label": "org.example.image"}}),
    "all, label!": (["-a", "--filter", "label!=ci.run"], {"all": True, "filters": {"label!": "ci.run"}}),
    "all, until (all)": (["-a", "--filter", "until=2100-01-01T00:00:00Z"],
                         {"all": True, "filters": {"until": "2100-01-01T00:00:00Z"}}),
    "dangling, until (none)": (["--filter", "until=2001-01-01T00:00:00Z"],
                               {"filters": {"dangling": True, "until": "2001-01-01T00:00:00Z"}}),
}


LABELS = ("ci.run", "ci.run=1", "ci.run=2", "org.example.image", "org.example.image=apps/web:1.1", "nosuch")
# label! with one key: several label! values, or key=value, are where image_remove differs from the engines on
# purpose (docs/selection.md: selected only when none holds; an image without the key is selected)
NOT_LABELS = ("ci.run", "org.example.image", "nosuch")
UNTIL = {"2001-01-01T00:00:00Z": "nothing", "2100-01-01T00:00:00Z": "everything"}


@st.composite
def selections(draw):
    """A random prune: -a or not, label and label! filters from the world's labels, until selecting all or none."""
    every = draw(st.booleans())
    cli, filters = (["-a"] if every else []), {}
    for name, pool, most in (("label", LABELS, 2), ("label!", NOT_LABELS, 1)):
        values = draw(st.lists(st.sampled_from(pool), max_size=most, unique=True))
        if values:
            filters[name] = values
            cli += [arg for value in values for arg in ("--filter", f"{name}={value}")]
    until = draw(st.sampled_from([None, *UNTIL]))
    if until:
        filters["until"] = until
        cli += ["--filter", f"until={until}"]
    options = {"all": True} if every else {}
    if not every:
        filters["dangling"] = True
    if filters:
        options["filters"] = filters
    return cli, options


@pytest.mark.parametrize("case", list(CASES))
def test_filter_selection_leaves_what_docker_image_prune_leaves(fresh_world, case):
    _compare(fresh_world, *CASES[case])


@settings(max_examples=int(os.environ.get("JANITOR_PRUNE_EXAMPLES", "5")), deadline=None, database=None,
          derandomize=os.environ.get("JANITOR_RANDOM_SEEDED", "1") == "1",
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(selection=selections())
def test_random_filter_selections_leave_what_docker_image_prune_leaves(world, selection):
    world.restore()
    _compare(world, *selection)


def _compare(fresh_world, cli_args, options):
    engine = fresh_world.engine
    before = engine.state()
    engine.cli("image", "prune", "-f", *cli_args)
    expected = engine.state()

    engine = fresh_world.restore()
    assert engine.state() == before, "the restored copy is not identical"
    args = {"docker_host": engine.url, **options}
    check = run_module("image_remove", args, check_mode=True)
    assert not check.failed, check
    assert engine.state() == before
    real = run_module("image_remove", args)
    assert not real.failed, real
    after = engine.state()
    assert after == expected, {
        "only after prune": {i: r for i, r in expected["images"].items() if after["images"].get(i) != r},
        "only after image_remove": {i: r for i, r in after["images"].items() if expected["images"].get(i) != r},
        "result": {k: real[k] for k in ("untagged", "deleted", "skipped_images")},
    }
    for key in ("untagged", "deleted", "skipped_images", "containers_removed"):
        assert check[key] == real[key], key
    # what the result says is what happened
    assert set(real["deleted"]) == set(before["images"]) - set(after["images"])
    assert real["changed"] is (after != before)
