"""Disk pressure: free_space and unused_for options, the LRU order and the shortest prefix (no daemon)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.janitor.docker.plugins.module_utils import _layers, _planner, _pressure, _pressure_options, _units
from ansible_collections.janitor.docker.plugins.module_utils._errors import JanitorError
from ansible_collections.janitor.docker.plugins.module_utils._snapshot import (
    CLASSIC, CONTAINERD, ContainerRecord, ImageRecord, Snapshot,
)

NOW = 1_700_000_000.0
DAY = 86400.0


def iid(name):
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def img(name, *tags, created=0, parent="", digests=()):
    return ImageRecord(id=iid(name), parent=iid(parent) if parent else "", tags=tuple(tags), digests=tuple(digests),
                       created=created, size=100)


def snap(*images, containers=(), store=CLASSIC):
    return Snapshot(images=tuple(images), containers=tuple(containers), store=store)


# -- options ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, measure, high, low", [
    ({"high": "85%", "low": "80%"}, "filesystem", 85.0, 80.0),
    ({"high": "85 %", "low": "0%"}, "filesystem", 85.0, 0.0),
    ({"high": "100%", "low": "99.5%"}, "filesystem", 100.0, 99.5),
    ({"high": "20GB", "low": "15GB"}, "images", 20 * 10 ** 9, 15 * 10 ** 9),
    ({"high": "15GiB", "low": "512MiB"}, "images", 15 * 2 ** 30, 512 * 2 ** 20),
    ({"high": 2000, "low": "1kB"}, "images", 2000, 1000),
    ({"high": "1.5G", "low": "1000000000"}, "images", 1_500_000_000, 10 ** 9),
    ({"high": "10 gib", "low": 0}, "images", 10 * 2 ** 30, 0),
    ({"high": "5GB", "low": "5GB"}, "images", 5 * 10 ** 9, 5 * 10 ** 9),
])
def test_free_space_forms(value, measure, high, low):
    parsed = _pressure_options.parse_free_space(value)
    assert (parsed.measure, parsed.high, parsed.low) == (measure, high, low)


@pytest.mark.parametrize("value, words", [
    ({"high": "85%", "low": "20GB"}, ["different kinds", "85%", "20GB"]),
    ({"high": "80%", "low": "85%"}, ["low", "above high", "85%"]),
    ({"high": "10GB", "low": "20GB"}, ["above high"]),
    ({"high": "lots", "low": "1GB"}, ["free_space.high", "lots", "85%", "GiB"]),
    ({"high": "120%", "low": "80%"}, ["free_space.high", "120%", "more than 100%"]),
    ({"high": "20XB", "low": "1GB"}, ["20XB", "KiB"]),
    ({"high": -5, "low": 0}, ["negative"]),
    ({"high": 1.5, "low": 0}, ["whole number"]),
    ({"high": True, "low": 0}, ["free_space.high", "True"]),
    ({"high": "85%"}, ["low missing"]),
    ({"high": "85%", "low": "80%", "mid": 1}, ["unknown key", "mid"]),
    ("85%", ["dictionary", "high", "low"]),
])
def test_free_space_errors_name_the_value_and_the_forms(value, words):
    with pytest.raises(JanitorError) as info:
        _pressure_options.parse_free_space(value)
    for word in words:
        assert word in info.value.message


@given(st.integers(0, 10 ** 15), st.sampled_from(sorted(_units.UNIT_BYTES)))
def test_sizes_are_the_number_times_the_unit(number, unit):
    kind, value = _pressure_options._threshold("high", f"{number}{unit}")
    assert kind == "bytes" and value == number * _units.UNIT_BYTES[unit]


@pytest.mark.parametrize("text, size", [
    ("1.5B", 1),  # whole bytes, rounded down
    ("0.9999999999kB", 999),
    ("291.5 Mb", 291_500_000),  # docker info's old "Mb" = MiB is not a rule of this option
    ("1 EiB", 2 ** 60),
])
def test_sizes_are_whole_bytes_of_the_one_unit_table(text, size):
    assert _pressure_options._threshold("low", text) == ("bytes", size)


@pytest.mark.parametrize("text", ["٨٥%", "８５%", "85٫5%"])
def test_a_percentage_in_other_digits_is_refused_like_a_size(text):
    with pytest.raises(JanitorError) as info:
        _pressure_options._threshold("high", text)
    assert repr(text) in info.value.message and "neither a percentage nor a size" in info.value.message


def test_the_refusal_names_every_unit_the_table_accepts():
    with pytest.raises(JanitorError) as info:
        _pressure_options._threshold("low", "20 GBs")
    message = info.value.message
    assert "'20 GBs'" in message and "PB, EB, ZB, YB" in message and "KiB to YiB" in message
    assert _pressure_options._threshold("low", "1 YB") == ("bytes", 10 ** 24)  # what the message promises is accepted
    assert _pressure_options._threshold("low", "1 YiB") == ("bytes", 2 ** 80)


def test_percent_bounds_round_towards_the_safe_side():
    free_space = _pressure_options.parse_free_space({"high": "85%", "low": "80%"})
    assert free_space.bounds(1000) == (850, 800)
    assert free_space.bounds(1001) == (851, 800)  # 850.85 up, 800.8 down


def test_unused_for_uses_the_until_forms():
    assert _pressure_options.parse_unused_for("30d", NOW) == NOW - 30 * DAY
    assert _pressure_options.parse_unused_for("1h30m", NOW) == NOW - 5400
    assert _pressure_options.parse_unused_for("2024-05-01T00:00:00Z", NOW) == 1714521600
    assert _pressure_options.parse_unused_for(None, NOW) is None
    for bad, word in (("thirty days", "thirty days"), ("-3d", "negative"), ("2024-13-01", "2024-13-01")):
        with pytest.raises(JanitorError) as info:
            _pressure_options.parse_unused_for(bad, NOW)
        assert info.value.message.startswith("unused_for: ") and word in info.value.message
        assert "10d" in info.value.message  # the valid forms


@pytest.mark.parametrize("option", [{"free_space": {"high": "85%", "low": "80%"}}, {"unused_for": "7d"}])
def test_pressure_with_images_is_an_error_before_connecting(option):
    with pytest.raises(JanitorError) as info:
        _pressure_options.Pressure.from_params(dict(option, images=["app:1"]), NOW)
    assert "images" in info.value.message and "filters or all" in info.value.message
    assert info.value.message.startswith(next(iter(option)))
    pressure = _pressure_options.Pressure.from_params({"unused_for": "7d", "all": True}, NOW)
    assert pressure.active and pressure.unused_before == NOW - 7 * DAY
    assert not _pressure_options.Pressure.from_params({}, NOW).active
    with pytest.raises(JanitorError, match="absolute path"):
        _pressure_options.Pressure.from_params({"unused_for": "1d", "last_used_state": "state.json"}, NOW)


# -- candidates ---------------------------------------------------------------------------------------------------
def test_candidates_are_whole_images_no_container_uses():
    from ansible_collections.janitor.docker.plugins.module_utils._snapshot import Request

    a = img("a", "app:1", "app:2", digests=("app@sha256:" + "1" * 64, "mirror/app@sha256:" + "2" * 64))
    b = img("b", "app:3", "other:3")
    c = img("c")
    d = img("d", "app:4")
    snapshot = snap(a, b, c, d, containers=[ContainerRecord("c1", d.id, "exited")])
    requests = [Request("id", a.id, a.id), Request("reference", "app:3", b.id), Request("id", c.id, c.id),
                Request("id", d.id, d.id)]
    offered, kept = _pressure.candidates(snapshot, requests, [], "free_space=85%/80%")
    assert [(x.image_id, x.references) for x in offered] == [
        (a.id, ("app:1", "app:2", "mirror/app@sha256:" + "2" * 64)), (c.id, ())]
    assert {(k["id"], k["reason"]) for k in kept} == {(b.id, "other_references"), (d.id, "container")}
    reqs = _pressure.requests_for(snapshot, offered, "free_space", "g")
    assert [(r.kind, r.target) for r in reqs] == [
        ("reference", "app:1"), ("reference", "app:2"), ("reference", "mirror/app@sha256:" + "2" * 64), ("id", c.id)]


# -- order --------------------------------------------------------------------------------------------------------
def test_lru_order_ties_older_creation_then_id():
    a, b, c, d = img("a", created=30), img("b", created=10), img("c", created=10), img("d", created=5)
    snapshot = snap(a, b, c, d)
    last = {a.id: 100, b.id: 200, c.id: 200, d.id: 300}
    order, _last = _pressure.lru_order(snapshot, [a.id, b.id, c.id, d.id], last)
    assert order[0] == a.id and order[-1] == d.id
    assert order[1:3] == sorted([b.id, c.id])


def test_children_before_parents_even_when_the_parent_is_older():
    base = img("base", "base:1", created=1)
    mid = img("mid", created=2, parent="base")
    top = img("top", "top:1", created=3, parent="mid")
    other = img("other", "other:1", created=0)
    snapshot = snap(base, mid, top, other)
    last = {base.id: 50, mid.id: 10, top.id: 20, other.id: 20}
    order, effective = _pressure.lru_order(snapshot, [base.id, mid.id, top.id, other.id], last)
    assert effective[mid.id] == 20 and effective[base.id] == 50  # a parent is used when its child is
    assert order == [other.id, top.id, mid.id, base.id]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(-1, 20)), min_size=1, max_size=20))
def test_order_properties(specs):
    images = []
    last = {}
    for i, (used, created, parent) in enumerate(specs):
        parent_name = f"i{parent}" if 0 <= parent < i else ""
        images.append(img(f"i{i}", created=created, parent=parent_name))
        last[iid(f"i{i}")] = used
    snapshot = snap(*images)
    ids = [i.id for i in images]
    order, effective = _pressure.lru_order(snapshot, ids, last)
    assert sorted(order) == sorted(ids)
    position = {image_id: n for n, image_id in enumerate(order)}
    by_id = snapshot.by_id()
    for image in images:
        if image.parent:
            assert position[image.id] < position[image.parent]
            assert effective[image.parent] >= effective[image.id]
    if not any(image.parent for image in images):
        assert order == sorted(ids, key=lambda i: (last[i], by_id[i].created, i))


def test_freeable_keeps_parents_of_children_that_stay_on_the_classic_store():
    base = img("base", "base:1")
    top = img("top", "top:1", parent="base")
    snapshot = snap(base, top)
    classic = _pressure.freeable(snapshot, _planner.CLASSIC_RULES, [base.id])
    assert classic == set()
    assert _pressure.freeable(snapshot, _planner.CLASSIC_RULES, [base.id, top.id]) == {base.id, top.id}
    assert _pressure.freeable(snap(base, top, store=CONTAINERD), _planner.CONTAINERD_RULES, [base.id]) == {base.id}


class _Freed:
    """A layer accounting where each image has one layer of its own: freed = the deleted images' sizes."""

    def __init__(self, sizes):
        self.sizes = sizes
        self.asked = []

    def freed(self, deleted):
        self.asked.append(set(deleted))
        return sum(self.sizes[i] for i in deleted)


def _planned(snapshot, offered, sizes, prune=True):
    accounting = _Freed(sizes)
    rules = _planner.rules_for(snapshot.store)
    freed = _pressure.planned_freed(snapshot, offered, _planner.Policy(prune=prune), rules, accounting,
                                    _pressure.RULE_FREE_SPACE, "free_space=1/0")
    return freed, accounting


def test_the_planner_decides_which_untagged_parents_go():
    base = img("base")
    left = img("left", "l:1", parent="base")
    right = img("right", "r:1", parent="base")
    sizes = {base.id: 300, left.id: 10, right.id: 20}
    offered = [_pressure.Candidate(left.id, ("l:1",)), _pressure.Candidate(right.id, ("r:1",))]
    freed, accounting = _planned(snap(base, left, right), offered, sizes)
    assert freed([left.id]) == 10 and accounting.asked[-1] == {left.id}  # its sibling keeps the parent
    assert freed([left.id, right.id]) == 330 and accounting.asked[-1] == {left.id, right.id, base.id}
    freed, accounting = _planned(snap(base, left, right, store=CONTAINERD), offered, sizes)
    assert freed([left.id]) == 310 and accounting.asked[-1] == {left.id, base.id}
    freed, accounting = _planned(snap(base, left, right), offered, sizes, prune=False)
    assert freed([left.id, right.id]) == 30 and freed([]) == 0


# -- the choice ---------------------------------------------------------------------------------------------------
def _world(n=6, store=CLASSIC):
    images = [img(f"w{i}", f"w:{i}", created=i) for i in range(n)]
    return snap(*images, store=store), images


def _choose(snapshot, images, used, total=None, high=None, low=None, measure="images", last=None, sizes=None,
            unused=None):
    sizes = sizes or {i.id: 100 for i in images}
    last = last or {i.id: float(i.created) for i in images}
    free_space = None
    if high is not None:
        free_space = _pressure_options.FreeSpace(measure, high, low)
    pressure = _pressure_options.Pressure(free_space=free_space, unused_before=unused, unused_for="x" if unused else "")
    offered = [_pressure.Candidate(i.id, tuple(i.tags)) for i in images]
    rules = _planner.rules_for(snapshot.store)
    return _pressure.choose(snapshot, pressure, offered, last, rules,
                            measure=_pressure.Measure(measure, used, total, "/data"),
                            freed=lambda ids: sum(sizes[i] for i in ids))


def test_nothing_below_high():
    snapshot, images = _world()
    choice = _choose(snapshot, images, used=999, high=1000, low=500)
    assert choice.chosen == [] and choice.free_space["used_after"] == 999 and choice.free_space["target_met"]


def test_the_shortest_prefix_that_reaches_low():
    snapshot, images = _world()
    choice = _choose(snapshot, images, used=1000, high=1000, low=750)
    assert [c.image_id for c in choice.chosen] == [images[0].id, images[1].id, images[2].id]
    assert choice.free_space == {"measure": "images", "path": "/data", "total": None, "high": 1000, "low": 750,
                                 "used_before": 1000, "used_after": 700, "target_met": True}
    exact = _choose(snapshot, images, used=1000, high=1000, low=800)
    assert len(exact.chosen) == 2 and exact.free_space["used_after"] == 800  # at low is enough


def test_target_not_met_removes_every_eligible_image_and_warns():
    snapshot, images = _world(3)
    choice = _choose(snapshot, images, used=1000, high=900, low=100)
    assert len(choice.chosen) == 3 and choice.free_space["used_after"] == 700
    assert choice.free_space["target_met"] is False and "above low" in choice.warnings[0]


def test_filesystem_percentages_use_the_total():
    snapshot, images = _world()
    choice = _choose(snapshot, images, used=900, total=1000, high=85, low=70, measure="filesystem")
    assert choice.free_space["high"] == 850 and choice.free_space["low"] == 700 and len(choice.chosen) == 2


def test_unused_for_alone_and_as_a_minimum_idle_time():
    snapshot, images = _world()
    last = {i.id: NOW - (10 - n) * DAY for n, i in enumerate(images)}  # w0 idle 10 days ... w5 idle 5 days
    alone = _choose(snapshot, images, used=0, last=last, unused=NOW - 7 * DAY)
    assert [c.image_id for c in alone.chosen] == [i.id for i in images[:4]]
    assert alone.free_space is None and alone.last_used[images[0].id] == _pressure.iso_time(NOW - 10 * DAY)
    assert {k["reason"] for k in alone.kept} == {"recently_used"} and len(alone.kept) == 2
    both = _choose(snapshot, images, used=1000, high=900, low=0, last=last, unused=NOW - 8 * DAY)
    assert len(both.chosen) == 3 and both.free_space["target_met"] is False


def test_pruned_parents_count_in_the_prefix():
    base = img("base", created=0)
    top = img("top", "top:1", created=1, parent="base")
    other = img("other", "other:1", created=5)
    snapshot = snap(base, top, other)
    sizes = {base.id: 300, top.id: 10, other.id: 100}
    offered = [_pressure.Candidate(top.id, ("top:1",)), _pressure.Candidate(other.id, ("other:1",))]
    pressure = _pressure_options.Pressure(free_space=_pressure_options.FreeSpace("images", 500, 200))
    freed, _accounting = _planned(snapshot, offered, sizes)
    choice = _pressure.choose(snapshot, pressure, offered, {top.id: 1, other.id: 5, base.id: 0},
                              _planner.CLASSIC_RULES, measure=_pressure.Measure("images", 500), freed=freed)
    assert [c.image_id for c in choice.chosen] == [top.id]  # the untagged base goes with it: 310 bytes
    assert choice.free_space["used_after"] == 190


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=0, max_size=30), st.integers(0, 2000), st.integers(0, 2000))
def test_prefix_is_minimal(sizes, used, low):
    images = [img(f"p{i}", f"p:{i}", created=i) for i in range(len(sizes))]
    snapshot = snap(*images)
    size_of = {image.id: size for image, size in zip(images, sizes)}
    high = max(low, min(used, 2000))
    choice = _choose(snapshot, images, used=used, high=high, low=low, sizes=size_of)
    chosen = [c.image_id for c in choice.chosen]
    assert chosen == [i.id for i in images[:len(chosen)]]  # a prefix of the LRU order
    freed = sum(size_of[i] for i in chosen)
    assert choice.free_space["used_after"] == used - freed
    if used < high:
        assert chosen == []
    elif used - freed <= low:
        assert choice.free_space["target_met"]
        if chosen:
            assert used - (freed - size_of[chosen[-1]]) > low  # one image fewer would not reach low
    else:
        assert len(chosen) == len(images) and not choice.free_space["target_met"]


@pytest.mark.parametrize("store", [CLASSIC, CONTAINERD])
def test_one_plan_answers_every_prefix_as_a_plan_per_prefix_does(store):
    base = img("base", created=0)  # untagged: pruned with its last child on the classic store
    left = img("left", "l:1", created=1, parent="base")
    right = img("right", "r:1", created=5, parent="base")
    lone = img("lone", "lone:1", created=2)
    twin = img("twin", "twin:1", created=3)  # shares lone's base layer
    used = img("used", "used:1", created=4)
    images = (base, left, right, lone, twin, used)
    snapshot = snap(*images, containers=(ContainerRecord(id="c1", image_id=used.id),), store=store)
    layers = {base.id: ("b",), left.id: ("b", "l"), right.id: ("b", "r"), lone.id: ("s", "o"),
              twin.id: ("s", "t"), used.id: ("s", "u")}
    sizes = {base.id: 300, left.id: 310, right.id: 320, lone.id: 1040, twin.id: 1080, used.id: 1005}
    table = _layers.LayerTable.from_diff_ids(layers, sizes)
    space = _pressure.LayerSpace(snapshot, table, lambda ids: {})
    offered = [_pressure.Candidate(i.id, tuple(i.tags)) for i in (left, right, lone, twin)]
    rules = _planner.rules_for(store)
    freed = _pressure.PrefixFreed(snapshot, offered, _planner.Policy(), rules, space, _pressure.RULE_FREE_SPACE, "x")
    order = [left.id, lone.id, right.id, twin.id]
    answers = [freed(order[:k]) for k in range(len(order), -1, -1)]
    assert freed.running is not False
    assert answers == [freed.fallback(order[:k]) for k in range(len(order), -1, -1)]
    assert all(freed.exact(order[:k]) for k in range(len(order) + 1))


def test_one_plan_sizes_a_base_the_whole_order_empties_as_the_prefixes_do():
    # two pulled images on one base (no Parent link, no image whose top it is): removing both releases it, and
    # no image that stays has its history, so the whole order alone would estimate it; removing one keeps the
    # other on it, whose history gives its real size. Every prefix must count it with that size.
    first = img("first", "first:1", created=1)
    second = img("second", "second:1", created=2)
    kept = img("kept", "kept:1", created=3)
    snapshot = snap(first, second, kept, containers=(ContainerRecord(id="c1", image_id=kept.id),))
    layers = {first.id: ("base", "one"), second.id: ("base", "two"), kept.id: ("other",)}
    sizes = {first.id: 30_000_100, second.id: 30_000_900, kept.id: 5_000}
    histories = {first.id: [100, 30_000_000], second.id: [900, 30_000_000], kept.id: [5_000]}
    read = []

    def read_histories(ids):
        read.extend(ids)
        return {i: histories[i] for i in ids}

    table = _layers.LayerTable.from_diff_ids(layers, sizes)
    space = _pressure.LayerSpace(snapshot, table, read_histories)
    offered = [_pressure.Candidate(i.id, tuple(i.tags)) for i in (first, second)]
    freed = _pressure.PrefixFreed(snapshot, offered, _planner.Policy(), _planner.rules_for(CLASSIC), space,
                                  _pressure.RULE_FREE_SPACE, "x")
    order = [first.id, second.id]
    assert freed(order) == 30_001_000  # the base once, both own layers
    assert freed.running is not False
    assert freed(order[:1]) == 100  # only its own layer: the base stays for the second
    assert read == [second.id]  # the image that stays longest on the base, read once
    assert all(freed.exact(order[:k]) for k in range(len(order) + 1))
    assert [freed(order[:k]) for k in range(3)] == [freed.fallback(order[:k]) for k in range(3)]


def test_read_for_prefixes_reads_the_holder_that_stays_longest_once():
    a, b, c, d = img("a", "a:1"), img("b", "b:1"), img("c", "c:1"), img("d", "d:1")
    snapshot = snap(a, b, c, d)
    # a, b and c stand on the base s (no image's top); d stays, on a base of its own
    table = _layers.LayerTable.from_diff_ids({a.id: ("s", "x"), b.id: ("s", "t", "y"), c.id: ("s", "z"),
                                              d.id: ("u",)}, {a.id: 10, b.id: 20, c.id: 30, d.id: 5})
    asked = []

    def read(ids):
        asked.append(list(ids))
        return {i: [1] * len(table.chains[i]) for i in ids}

    space = _pressure.LayerSpace(snapshot, table, read)
    chains = table.chains
    base = chains[a.id][0]
    deleted_at = {c.id: 0, b.id: 1, a.id: 2}  # a goes last: every prefix that keeps an image on s keeps a
    released = {chains[c.id][1]: 0, chains[b.id][1]: 1, chains[b.id][2]: 1, chains[a.id][1]: 2, base: 2}
    got = space.read_for_prefixes(released, deleted_at, 3)
    assert asked == [[a.id]]  # b's middle layer is b's alone: no image that another prefix keeps can size it
    assert got is space.table and got._located(base) == (a.id, 0)
    assert space.read_for_prefixes(released, deleted_at, 3) is got and asked == [[a.id]]  # known: not again


@pytest.mark.parametrize("store", [CLASSIC, CONTAINERD])
def test_the_choice_carries_the_plan_of_its_images(store):
    images = [img(f"i{n}", f"i{n}:1", created=n) for n in range(6)]
    snapshot = snap(*images, store=store)
    layers = {i.id: (f"base{n % 2}", f"own{n}") for n, i in enumerate(images)}
    sizes = {i.id: 1000 + 10 * n for n, i in enumerate(images)}
    table = _layers.LayerTable.from_diff_ids(layers, sizes)
    space = _pressure.LayerSpace(snapshot, table, lambda ids: {i: [10, 1000] for i in ids})
    offered = [_pressure.Candidate(i.id, tuple(i.tags)) for i in images]
    rules = _planner.rules_for(store)
    used = table.space([i.id for i in images], [], set())
    pressure = _pressure_options.Pressure(free_space=_pressure_options.FreeSpace(_pressure_options.MEASURE_IMAGES, used, used - 1500))
    given = pressure.describe()
    freed = _pressure.PrefixFreed(snapshot, offered, _planner.Policy(), rules, space, _pressure.RULE_FREE_SPACE, given)
    measure = _pressure.Measure(_pressure_options.MEASURE_IMAGES, used)
    last_used = {i.id: NOW - 100 * n for n, i in enumerate(images)}
    choice = _pressure.choose_checked(snapshot, pressure, offered, last_used, rules, measure, freed)
    assert choice.chosen and choice.plan is not None
    requests = _pressure.requests_for(snapshot, choice.chosen, _pressure.RULE_FREE_SPACE, given)
    assert _planner.planned(choice.plan) == _planner.plan(snapshot, requests, _planner.Policy(), rules)


def test_the_requests_of_a_prefix_are_those_requests_for_gives():
    tagged = img("tagged", "a:1", "a:2", "b:1", digests=("b@sha256:" + "1" * 64, "c@sha256:" + "2" * 64))
    bare = img("bare")
    other = img("other", "o:1")
    snapshot = snap(tagged, bare, other)
    offered = [_pressure.Candidate(i.id, _pressure.needed_references(i)) for i in (tagged, bare, other)]
    table = _layers.LayerTable.from_diff_ids({i.id: (i.id,) for i in (tagged, bare, other)}, {})
    space = _pressure.LayerSpace(snapshot, table, lambda ids: {})
    freed = _pressure.PrefixFreed(snapshot, offered, _planner.Policy(), _planner.rules_for(CLASSIC), space,
                                  _pressure.RULE_FREE_SPACE, "g")
    order = [other.id, tagged.id, bare.id]
    freed(order)
    by_id = {c.image_id: c for c in offered}
    for prefix in ([order[:k] for k in range(4)] + [[bare.id], [tagged.id, other.id]]):
        expected = _pressure.requests_for(snapshot, [by_id[i] for i in prefix], _pressure.RULE_FREE_SPACE, "g")
        assert freed.requests_of(prefix) == expected
    assert len(freed.requests_of(order)) == 1 + 4 + 1  # o:1; a:1, a:2, b:1 and c's digest; bare by ID
