"""Released layers and the space they free, from the layer table alone (docs/space.md)."""

from __future__ import annotations

import hashlib

from ansible_collections.janitor.docker.plugins.module_utils._layers import EMPTY_LAYER, LayerTable, align_history


def diff(name):
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


BASE, PY1, PY2, WEB, API = diff("base"), diff("py1"), diff("py2"), diff("web"), diff("api")
# pulled images, no Parent links: base 4 MB; python = base + 2 layers (2 MB, 0.1 MB); web on python; api on base
LAYERS = {"base": (BASE,), "python": (BASE, PY1, PY2), "web": (BASE, PY1, PY2, WEB), "api": (BASE, API)}
TOTALS = {"base": 4_000_000, "python": 6_100_000, "web": 6_600_000, "api": 5_000_000}


def table(layers=None, totals=None):
    return LayerTable.from_diff_ids(LAYERS if layers is None else layers, TOTALS if totals is None else totals)


def test_a_shared_base_is_counted_once():
    layers = table()
    assert layers.space(["web"], ["base", "python", "api"], set()) == 500_000
    assert layers.space(["web", "python"], ["base", "api"], set()) == 2_600_000
    assert layers.space(["web", "python", "api", "base"], [], set()) == 7_600_000  # not 21.7 MB of listed sizes
    assert layers.space(["base"], ["python", "web", "api"], set()) == 0


def test_a_container_keeps_its_image_layers():
    assert table().space(["web", "python"], ["base", "api"], {"web"}) == 0


def test_a_boundary_inside_an_image_that_stays_needs_its_history():
    layers = {"web": (BASE, PY1, PY2, WEB), "py-tools": (BASE, PY1, PY2, API), "other": (BASE,)}
    totals = {"web": 6_600_000, "py-tools": 7_100_000, "other": 4_000_000}
    without = table(layers, totals)
    # only web goes: the python layers stay for py-tools, and py-tools' history gives where they end (no image has
    # the python layers on top)
    assert without.missing(["web"], ["py-tools", "other"], set()) == ["py-tools"]
    history = [1_000_000, 0, 100_000, 2_000_000, 0, 4_000_000]  # newest first, with an entry without a layer
    full = without.with_histories({"py-tools": history})
    assert full.missing(["web"], ["py-tools", "other"], set()) == []
    assert full.space(["web"], ["py-tools", "other"], set()) == 500_000


def test_a_branch_point_only_deleted_images_hold_is_estimated():
    """Both python-based images go and no image has the python layers on top: no image that stays can tell where
    they end, so that point is estimated by layer count (the real run cannot read a deleted image's history)."""
    layers = {"web": (BASE, PY1, PY2, WEB), "py-tools": (BASE, PY1, PY2, API), "other": (BASE,)}
    totals = {"web": 6_600_000, "py-tools": 7_100_000, "other": 4_000_000}
    layers_table = table(layers, totals)
    assert layers_table.missing(["web", "py-tools"], ["other"], set()) == []
    # exact: 3.6 MB; the python layers' end is put at 2/3 of the way from the base to web's top
    assert layers_table.space(["web", "py-tools"], ["other"], set()) == 6_600_000 + 7_100_000 - 5_733_333 - 4_000_000


def test_content_is_shared_in_proportion_between_known_totals():
    """containerd: totals hold compressed blobs besides the layers; a chain inside an image gets its share."""
    layers = {"web": (BASE, PY1, WEB), "tools": (BASE, PY1, API), "base": (BASE,)}
    totals = {"web": 2 * 3_000_000 + 1_000, "tools": 2 * 3_500_000 + 1_000, "base": 2 * 1_000_000 + 500}
    full = table(layers, totals).with_histories({"web": [1_000_000, 1_000_000, 1_000_000]})
    space = full.space(["web", "tools"], ["base"], set())
    assert abs(space - 2 * 3_500_000) < 3_000  # python, web and api layers with their blobs, and two configs


def test_history_alignment():
    assert align_history([30, 0, 20, 10], [diff("a"), diff("b"), diff("c")]) == (10, 20, 30)
    assert align_history([30, 0, 10], [diff("a"), EMPTY_LAYER, diff("c")]) == (10, 0, 30)
    assert align_history([], []) == ()


def test_without_layers_the_parent_links_give_them():
    from ansible_collections.janitor.docker.plugins.module_utils._snapshot import ImageRecord, Snapshot
    snapshot = Snapshot(images=(ImageRecord("p", size=100), ImageRecord("c", parent="p", size=150)))
    layers = LayerTable.from_parents(snapshot)
    assert layers.space(["c"], ["p"], set()) == 50
    assert layers.space(["c", "p"], [], set()) == 150


def test_parents_and_holders_follow_the_chains():
    layers = table()
    chains = layers.chains
    parents = layers.parents()
    assert parents[chains["base"][0]] is None
    assert parents[chains["web"][3]] == chains["web"][2] == chains["python"][2]
    assert parents[chains["api"][1]] == chains["base"][0]
    holders = layers.holders()
    assert holders[chains["base"][0]] == ["base", "python", "web", "api"]  # the table's order
    assert holders[chains["python"][1]] == ["python", "web"]
    assert holders[chains["api"][1]] == ["api"]


def test_what_is_derived_once_stays_right_after_histories_are_added():
    layers = table()
    assert layers.space(["web", "python"], ["base", "api"], set()) == 2_600_000  # derives tops, parents, holders
    full = layers.with_histories({"web": [500_000, 100_000, 2_000_000, 4_000_000]})
    assert full.parents() == table().parents() and full.holders() == table().holders()
    assert full.space(["web", "python"], ["base", "api"], set()) == 2_600_000
    assert full.missing(["web", "python", "api"], ["base"], set()) == table().missing(["web", "python", "api"],
                                                                                      ["base"], set())
