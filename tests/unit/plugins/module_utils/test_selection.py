"""Selection by filters, exclude, keep_latest and all, on synthetic snapshots (no daemon)."""

from __future__ import annotations

import fnmatch
import hashlib
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.janitor.docker.plugins.module_utils import _selection
from ansible_collections.janitor.docker.plugins.module_utils._errors import JanitorError
from ansible_collections.janitor.docker.plugins.module_utils._snapshot import (
    CLASSIC, CONTAINERD, ContainerRecord, ImageRecord, Snapshot,
)

NOW = 1_700_000_000.0
DAY = 86400


def iid(name):
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def img(name, *tags, created=0, parent="", labels=None, digests=()):
    return ImageRecord(id=iid(name), parent=iid(parent) if parent else "", tags=tuple(tags), digests=tuple(digests),
                       created=created, size=100, labels=tuple(sorted((labels or {}).items())))


def snap(*images, containers=(), store=CLASSIC):
    return Snapshot(images=tuple(images), containers=tuple(containers), store=store)


def run(snapshot, now=NOW, **params):
    selected = _selection.Selection(params, now).resolve(snapshot)
    return selected.requests, selected.kept


def ids(requests):
    return [r.image_id for r in requests]


def targets(requests):
    return sorted(r.target for r in requests)


# -- validation ----------------------------------------------------------------------------------------------
def test_unknown_filter_lists_valid_ones():
    with pytest.raises(JanitorError) as info:
        run(snap(), filters={"dangling": True, "colour": "red"})
    assert "colour" in info.value.message
    for name in _selection.FILTER_NAMES:
        assert name in info.value.message


@pytest.mark.parametrize("filters, words", [
    ({"dangling": "maybe"}, ["dangling", "maybe", "true or false"]),
    ({"until": "10 days"}, ["until", "10 days", "240h"]),
    ({"until": "2024-13-01"}, ["until", "2024-13-01"]),
    ({"until": ["1h", "2h"]}, ["until", "exactly one"]),
    ({"label": "=x"}, ["label", "=x", "key=value"]),
    ({"label!": ""}, ["label!", "empty"]),
    ({"reference": "app[1"}, ["reference", "app[1", "not closed"]),
    ({"reference": "app\\"}, ["reference", "escape"]),
    ({"reference": "a[]"}, ["reference", "escaped"]),
    ({"reference": ["ok", {"x": 1}]}, ["reference", "not a string"]),
    ({"before": "nosuch:1"}, ["before", "no such image", "nosuch:1"]),
    ({"since": "0"}, ["since", "no such image"]),
])
def test_bad_values_are_named(filters, words):
    with pytest.raises(JanitorError) as info:
        run(snap(img("a", "app:1")), filters=filters)
    for word in words:
        assert word in info.value.message


def test_negative_keep_latest_refused():
    with pytest.raises(JanitorError, match="keep_latest.*-1.*0 or more"):
        run(snap(), filters={"dangling": True}, keep_latest=-1)


def test_keep_latest_needs_a_selection():
    with pytest.raises(JanitorError, match="keep_latest.*filters.*all"):
        run(snap(), keep_latest=2)


def test_bad_exclude_glob_refused():
    with pytest.raises(JanitorError, match="exclude"):
        run(snap(), filters={"dangling": True}, exclude=["app[x"])


def test_ambiguous_id_prefix_lists_candidates():
    images = [img(f"x{i}", created=i) for i in range(200)]
    by_hex = {}
    for image in images:
        by_hex.setdefault(image.id[7], []).append(image.id)
    prefix, candidates = next((h, c) for h, c in by_hex.items() if len(c) > 1)
    with pytest.raises(JanitorError) as info:
        run(snap(*images), filters={"before": prefix})
    for candidate in candidates:
        assert candidate in info.value.message


def test_nothing_selected_without_filters_or_all():
    s = snap(img("a", created=1))
    assert run(s) == ([], [])
    assert run(s, filters={}) == ([], [])
    assert run(s, filters={"label": None}) == ([], [])


# -- dangling and top-level images ---------------------------------------------------------------------------
def chain():
    """base (tagged) <- mid (untagged intermediate) <- top (tagged); old (dangling, no children)."""
    return snap(
        img("base", "base:1", created=10),
        img("mid", created=20, parent="base"),
        img("top", "top:1", created=30, parent="mid"),
        img("old", created=5),
        img("digest-only", created=6, digests=("reg/app@sha256:" + "1" * 64,)),
    )


def test_dangling_true_selects_untagged_top_level_images():
    requests, kept = run(chain(), filters={"dangling": True})
    assert ids(requests) == [iid("digest-only"), iid("old")]  # newest first; the intermediate is hidden
    assert all(r.kind == "id" and r.rule == "filters" and r.given == "dangling=true" for r in requests)
    assert kept == []


def test_dangling_false_selects_tagged_images():
    requests, _kept = run(chain(), filters={"dangling": False})
    assert ids(requests) == [iid("top"), iid("base")]


def test_dangling_accepts_strings():
    assert ids(run(chain(), filters={"dangling": "true"})[0]) == ids(run(chain(), filters={"dangling": True})[0])


def test_all_without_filters_is_prune_a():
    s = snap(*chain().images, img("used", "used:1", created=40),
             containers=[ContainerRecord("c1", iid("used"), "running")])
    requests, kept = run(s, all=True)
    # images in use are selected too: the planner's container policy (skip, by default, for rules) keeps them
    assert ids(requests) == [iid("used"), iid("top"), iid("base"), iid("digest-only"), iid("old")]
    assert all(r.rule == "all" for r in requests)
    assert kept == []


def test_all_on_containerd_includes_intermediate_images():
    s = snap(*chain().images, store=CONTAINERD)
    requests, _kept = run(s, all=True)
    assert iid("mid") in ids(requests)


def test_filters_keep_container_images_without_all():
    s = snap(img("used", "used:1", created=40), containers=[ContainerRecord("c1", iid("used"), "exited")])
    requests, kept = run(s, filters={"reference": "used"})
    assert targets(requests) == ["used:1"] and kept == []


# -- reference ---------------------------------------------------------------------------------------------
def refs_snapshot():
    return snap(
        img("a1", "app:1", "app:stable", "other/app:1", created=1),
        img("a2", "app:2", created=2),
        img("w1", "web:1", "localhost:5000/web:1", created=3),
        img("d1", "reg.example/team/app:1", created=4, digests=("reg.example/team/app@sha256:" + "a" * 64,)),
        img("d2", created=5, digests=("reg.example/team/app@sha256:" + "b" * 64,)),
        img("none", created=6),
    )


@pytest.mark.parametrize("pattern, expected", [
    ("app", ["app:1", "app:2", "app:stable"]),  # the name: every tag of the repository
    ("app:1", ["app:1"]),
    ("app:*", ["app:1", "app:2", "app:stable"]),
    ("*:1", ["app:1", "web:1"]),  # * does not match /
    ("*/app", ["other/app:1"]),
    ("*/*", ["localhost:5000/web:1", "other/app:1"]),
    ("*/*/*", ["reg.example/team/app:1", "reg.example/team/app@sha256:" + "b" * 64]),
    ("reg.example/team/app@sha256:*", ["reg.example/team/app@sha256:" + "a" * 64,
                                       "reg.example/team/app@sha256:" + "b" * 64]),
    ("app:[12]", ["app:1", "app:2"]),
    ("app:[^1]", ["app:2"]),
    ("ap?", ["app:1", "app:2", "app:stable"]),
    ("nothing*", []),
])
def test_reference_selects_matching_references_only(pattern, expected):
    requests, _kept = run(refs_snapshot(), filters={"reference": pattern})
    assert targets(requests) == sorted(expected)
    assert all(r.kind == "reference" and r.given == f"reference={pattern}" for r in requests)


def test_reference_digest_is_left_to_the_tag_of_its_repository():
    # removing the repository's last tag takes its digests: only the tag is requested
    requests, _kept = run(refs_snapshot(), filters={"reference": "reg.example/team/app"})
    assert targets(requests) == ["reg.example/team/app:1", "reg.example/team/app@sha256:" + "b" * 64]


def test_several_reference_patterns_are_ored():
    requests, _kept = run(refs_snapshot(), filters={"reference": ["app:1", "web:*"]})
    assert targets(requests) == ["app:1", "web:1"]


def test_reference_and_other_filters_are_anded():
    requests, _kept = run(refs_snapshot(), filters={"reference": "app:*", "since": "app:1"})
    assert targets(requests) == ["app:2"]


@given(st.text(alphabet="ab/:.*?", min_size=1, max_size=6), st.text(alphabet="ab/:.", max_size=8))
@settings(max_examples=300, deadline=None)
def test_glob_matches_like_go_path_match(pattern, name):
    # for patterns without classes or escapes, Go's path.Match is fnmatch where * and ? never cross a slash
    parts = re.split(r"(\*|\?)", pattern)
    expected = re.compile("".join("[^/]*" if p == "*" else "[^/]" if p == "?" else re.escape(p) for p in parts)
                          + r"\Z")
    assert bool(_selection.compile_glob(pattern).match(name)) == bool(expected.match(name))
    if "/" not in name:
        assert bool(_selection.compile_glob(pattern).match(name)) == fnmatch.fnmatchcase(name, pattern)


def test_glob_escapes_and_classes():
    assert _selection.compile_glob(r"a\*").match("a*")
    assert not _selection.compile_glob(r"a\*").match("ab")
    assert _selection.compile_glob(r"[\]]").match("]")
    assert _selection.compile_glob("[a-c]").match("b")
    assert not _selection.compile_glob("[^a-c]").match("b")
    assert not _selection.compile_glob("[^a]").match("/")


# -- labels ------------------------------------------------------------------------------------------------
def labels_snapshot():
    return snap(
        img("none", "n:1", created=1),
        img("tier-web", "w:1", created=2, labels={"tier": "web"}),
        img("tier-db", "d:1", created=3, labels={"tier": "db", "keep": ""}),
        img("both", "b:1", created=4, labels={"tier": "web", "team": "x"}),
    )


@pytest.mark.parametrize("filters, expected", [
    ({"label": "tier"}, ["tier-web", "tier-db", "both"]),
    ({"label": "tier=web"}, ["tier-web", "both"]),
    ({"label": ["tier=web", "team"]}, ["both"]),  # ANDed
    ({"label": "keep="}, ["tier-db"]),  # an empty value is a value
    ({"label": "tier=nope"}, []),
    ({"label!": "tier"}, ["none"]),
    ({"label!": "tier=web"}, ["none", "tier-db"]),
    ({"label!": ["tier=web", "keep"]}, ["none"]),  # no value may hold
    ({"label": "tier", "label!": "team"}, ["tier-web", "tier-db"]),
])
def test_labels(filters, expected):
    requests, _kept = run(labels_snapshot(), filters=filters)
    assert sorted(ids(requests)) == sorted(iid(n) for n in expected)


# -- time ----------------------------------------------------------------------------------------------------
def ages_snapshot():
    return snap(*(img(f"v{i}", f"app:{i}", created=int(NOW) - i * DAY) for i in range(6)))


@pytest.mark.parametrize("until, expected", [
    ("72h", [3, 4, 5]),
    ("3d", [3, 4, 5]),
    ("2w", []),
    ("1w", []),
    ("4d12h", [5]),
    ("0.5d", [1, 2, 3, 4, 5]),
    ("96h0m0s", [4, 5]),
    (str(int(NOW) - 2 * DAY), [2, 3, 4, 5]),  # Unix seconds: at or before
    ("2023-11-10T22:13:20Z", [4, 5]),  # NOW - 4 days is 2023-11-10T22:13:20Z
    ("2023-11-11T00:13:20+02:00", [4, 5]),
    ("2023-11-10", [5]),
])
def test_until(until, expected):
    requests, _kept = run(ages_snapshot(), filters={"until": until})
    assert sorted(ids(requests)) == sorted(iid(f"v{i}") for i in expected)


def test_until_local_time_without_zone(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time as _time
    if hasattr(_time, "tzset"):
        _time.tzset()
    assert _selection.parse_until("2023-11-10T22:13:20", 0) == 1_699_654_400.0
    assert _selection.parse_until("2023-11-10T22:13:20.5", 0) == 1_699_654_400.5


@pytest.mark.parametrize("text, seconds", [
    ("1h30m", 5400), ("10d", 864000), ("2w", 1209600), ("1.5h", 5400), ("-1h", -3600), ("300ms", 0.3),
    ("90s", 90), ("1us", 1e-6),
])
def test_durations(text, seconds):
    assert _selection.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["0", "", "h", "1x", "1h 30m", "1.h.", "d1"])
def test_not_durations(text):
    assert _selection.parse_duration(text) is None


def test_before_and_since_compare_creation_times():
    s = ages_snapshot()  # app:0 newest .. app:5 oldest
    assert sorted(ids(run(s, filters={"before": "app:2"})[0])) == sorted(iid(f"v{i}") for i in (3, 4, 5))
    assert sorted(ids(run(s, filters={"since": "app:2"})[0])) == sorted(iid(f"v{i}") for i in (0, 1))
    assert ids(run(s, filters={"since": "app:4", "before": "app:2"})[0]) == [iid("v3")]
    # by ID, by ID prefix, by the long form of a reference
    assert ids(run(s, filters={"before": iid("v4")})[0]) == [iid("v5")]
    assert ids(run(s, filters={"before": iid("v4")[7:19]})[0]) == [iid("v5")]
    assert ids(run(s, filters={"before": "docker.io/library/app:4"})[0]) == [iid("v5")]


def test_same_second_is_neither_before_nor_since():
    s = snap(img("a", "a:1", created=100), img("b", "b:1", created=100), img("c", "c:1", created=99))
    assert ids(run(s, filters={"before": "a:1"})[0]) == [iid("c")]
    assert ids(run(s, filters={"since": "c:1"})[0]) == sorted([iid("a"), iid("b")])


# -- exclude -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("exclude", [
    ["app:2"], ["app"], ["docker.io/library/app:2"], [iid("a2")], [iid("a2")[7:19]], ["app:[2]"], ["*:2"],
])
def test_exclude_protects_whole_images(exclude):
    requests, kept = run(refs_snapshot(), filters={"reference": "app:*"}, exclude=exclude)
    assert iid("a2") not in ids(requests)
    entry = next(k for k in kept if k["id"] == iid("a2"))
    assert entry["reason"] == "excluded" and entry["by"] == exclude[0] and entry["rule"] == "filters"


def test_exclude_bare_repository_protects_every_tag():
    requests, kept = run(refs_snapshot(), filters={"reference": "*"}, exclude=["app"])
    assert ids(requests) == [iid("w1")]
    assert {k["id"] for k in kept} == {iid("a1"), iid("a2")}


def test_exclude_protects_against_all():
    requests, kept = run(refs_snapshot(), all=True, exclude=["web:1"])
    assert iid("w1") not in ids(requests)
    assert [k["id"] for k in kept] == [iid("w1")]


def test_exclude_applies_to_images_entries_too():
    s = refs_snapshot()
    selected = _selection.Selection({"images": ["app:1", "web:1"], "exclude": ["other/*"]}, NOW).resolve(s)
    assert [(r.kind, r.target) for r in selected.requests] == [("reference", "web:1")]
    (kept,) = selected.kept
    assert (kept["id"], kept["rule"], kept["given"], kept["by"]) == (iid("a1"), "images", "app:1", "other/*")
    assert selected.protected == {iid("a1"): "other/*"}
    selected = _selection.Selection({"images": ["app:1", "web:1", "gone:1"]}, NOW).resolve(s)
    assert [r.target for r in selected.requests] == ["app:1", "web:1"]
    assert (selected.kept, selected.not_found, selected.protected) == ([], ["gone:1"], {})


def test_selection_is_validated_before_any_snapshot():
    with pytest.raises(JanitorError) as info:
        _selection.Selection({"images": ["Bad:1"]}, NOW)
    assert "'Bad:1'" in info.value.message
    with pytest.raises(JanitorError) as info:
        _selection.Selection({"images": ["ok"], "filters": {"nosuch": 1}}, NOW)
    assert "nosuch" in info.value.message
    with pytest.raises(JanitorError):
        _selection.Selection({"images": ["ok"], "tag": "bad tag"}, NOW)


def test_requests_come_from_images_first_then_the_rules():
    s = refs_snapshot()
    selected = _selection.Selection({"images": ["web:1"], "filters": {"reference": "app:2"}}, NOW).resolve(s)
    assert [(r.target, r.rule) for r in selected.requests] == [("web:1", "images"), ("app:2", "filters")]


def test_before_and_since_resolve_as_the_engine_does():
    s = refs_snapshot()
    requests, _kept = run(s, filters={"before": "docker.io/library/app:2", "dangling": False})
    assert ids(requests) == [iid("a1")]
    requests, _kept = run(s, filters={"since": iid("d1")[7:10]})
    assert ids(requests) == [iid("none"), iid("d2")]
    with pytest.raises(JanitorError) as info:
        run(s, filters={"before": "registry-1.docker.io/library/app:2"})
    assert "filters.before" in info.value.message and "no such image" in info.value.message


# -- keep_latest -------------------------------------------------------------------------------------------
def test_keep_latest_keeps_the_newest_per_repository():
    s = snap(*(img(f"v{i}", f"app:{i}", created=i) for i in range(5)),
             *(img(f"w{i}", f"web:{i}", created=i) for i in range(3)))
    requests, kept = run(s, filters={"dangling": False}, keep_latest=2)
    assert sorted(ids(requests)) == sorted([iid("v0"), iid("v1"), iid("v2"), iid("w0")])
    assert sorted((k["id"], k["repository"]) for k in kept) == sorted(
        [(iid("v4"), "app"), (iid("v3"), "app"), (iid("w2"), "web"), (iid("w1"), "web")])
    assert all(k["reason"] == "keep_latest" for k in kept)


def test_keep_latest_zero_keeps_nothing():
    s = snap(*(img(f"v{i}", f"app:{i}", created=i) for i in range(3)))
    requests, kept = run(s, filters={"reference": "app"}, keep_latest=0)
    assert len(requests) == 3 and kept == []


def test_keep_latest_counts_after_exclude():
    s = snap(*(img(f"v{i}", f"app:{i}", created=i) for i in range(5)))
    requests, kept = run(s, filters={"reference": "app"}, keep_latest=2, exclude=["app:4"])
    assert targets(requests) == ["app:0", "app:1"]
    assert sorted((k["reason"], k["id"]) for k in kept) == sorted(
        [("excluded", iid("v4")), ("keep_latest", iid("v3")), ("keep_latest", iid("v2"))])


def test_keep_latest_image_in_two_repositories():
    s = snap(img("new", "app:3", "mirror/app:3", created=3), img("mid", "app:2", created=2),
             img("old", "app:1", "mirror/app:1", created=1))
    # whole images: kept in any repository keeps the image
    requests, _kept = run(s, filters={"dangling": False}, keep_latest=1)
    assert ids(requests) == [iid("mid"), iid("old")]
    # references: only the kept repository's references stay
    requests, kept = run(s, filters={"reference": ["app", "mirror/app"]}, keep_latest=1)
    assert targets(requests) == ["app:1", "app:2", "mirror/app:1"]


def test_keep_latest_ignores_images_without_repository():
    s = snap(img("a", created=1), img("b", created=2))
    requests, kept = run(s, filters={"dangling": True}, keep_latest=5)
    assert len(requests) == 2 and kept == []


# -- determinism and scale ---------------------------------------------------------------------------------
def test_order_does_not_depend_on_listing_order():
    s = refs_snapshot()
    images = list(s.images)
    random.Random(1).shuffle(images)
    assert run(s, all=True) == run(snap(*images), all=True)


def big_snapshot(n_images=10_000, n_containers=5_000):
    rng = random.Random(5)
    images = []
    for i in range(n_images):
        repo = f"team{i % 50}/svc{i % 200}"
        tags = (f"{repo}:v{i}",) if i % 7 else ()
        parent = images[i - 1].id if i % 10 == 9 else ""
        labels = (("env", "prod" if i % 3 == 0 else "dev"),) if i % 2 else ()
        images.append(ImageRecord(id=iid(f"big{i}"), parent=parent, tags=tags, created=1_600_000_000 + i,
                                  size=1000 + i, labels=labels))
    containers = [ContainerRecord(f"c{i}", images[rng.randrange(n_images)].id,
                                  "running" if i % 2 else "exited") for i in range(n_containers)]
    return Snapshot(images=tuple(images), containers=tuple(containers))


def test_ten_thousand_images_five_thousand_containers():
    s = big_snapshot()
    used = {c.image_id for c in s.containers}
    requests, kept = run(s, all=True, filters={"reference": "team1*/*", "label!": "env=prod", "until": "1d"},
                         exclude=["team10/*"], keep_latest=3)
    by_id = s.by_id()
    assert requests
    for request in requests:
        image = by_id[request.image_id]
        assert request.kind == "reference" and request.target in image.tags
        assert image.label_dict.get("env") != "prod"
        assert request.target.startswith("team1") and not request.target.startswith("team10/")
    reasons = {k["reason"] for k in kept}
    assert reasons == {"excluded", "keep_latest"}
    assert {r.image_id for r in requests} & used  # in use: left to the planner's container policy
    per_repo = {}
    for entry in kept:
        if entry["reason"] == "keep_latest":
            per_repo[entry["repository"]] = per_repo.get(entry["repository"], 0) + 1
    assert set(per_repo.values()) == {3}
    # every kept-by-keep_latest image is newer than every requested image of its repository
    for request in requests:
        repo = request.target.rsplit(":", 1)[0]
        assert per_repo.get(repo) == 3


def test_selection_and_plan_on_ten_thousand_images():
    """The selection then the planner: every requested image is accounted for, container images stay."""
    from ansible_collections.janitor.docker.plugins.module_utils import _planner, _result

    s = big_snapshot()
    requests, kept = run(s, all=True)
    plan = _planner.plan(s, requests, _planner.Policy())  # containers not given: rules skip images in use
    result = _selection.annotate(_result.build(plan), plan, kept)
    used = {c.image_id for c in s.containers}
    deleted = set(result["deleted"])
    assert deleted and not deleted & used
    actions = {}
    for entry in result["images"]:
        actions.setdefault(entry["action"], 0)
        actions[entry["action"]] += 1
        assert entry["rule"] == "all"
    assert actions.get("kept", 0) == len({k["id"] for k in kept})
    assert sum(actions.get(a, 0) for a in ("deleted", "skipped", "unchanged", "untagged")) == len(requests)
    # an image is skipped because a container uses it, or (classic store) untagged and kept for its children, as
    # docker image prune -a leaves a tagged parent whose child a container holds
    skipped = [entry for entry in result["images"] if entry["action"] in ("skipped", "untagged")]
    assert {entry["reason"] for entry in skipped} == {"child_images", "container", "running_container"}
    assert {e["id"] for e in skipped if e["reason"] != "child_images"} == used & {r.image_id for r in requests}
    assert all(e["containers"] for e in skipped if e["reason"] != "child_images")
    assert {s["image"] for s in result["skipped_images"]} == {e["id"] for e in skipped}


def test_annotate_names_rules_and_lists_kept_images():
    from ansible_collections.janitor.docker.plugins.module_utils import _planner
    s = refs_snapshot()
    requests, kept = run(s, filters={"reference": "app:*"}, exclude=["app:2"])
    plan = _planner.plan(s, requests, _planner.Policy())
    result = {"images": [{"id": iid("a1"), "references": [], "size": 100, "action": "untagged"}],
              "skipped_images": []}
    _selection.annotate(result, plan, kept)
    first, second = result["images"]
    assert first["rule"] == "filters" and first["given"] == "reference=app:*" and "reason" not in first
    assert second == {"id": iid("a2"), "references": ["app:2"], "size": 100, "action": "kept", "rule": "filters",
                      "reason": "excluded", "given": "reference=app:*", "by": "app:2"}
    result = {"images": [{"id": iid("a1"), "references": [], "size": 100, "action": "skipped"}],
              "skipped_images": [{"image": iid("a1"), "reason": "container"}]}
    _selection.annotate(result, plan, [])
    assert result["images"][0]["reason"] == "container"


def test_the_planner_refuses_deleting_an_excluded_parent():
    from ansible_collections.janitor.docker.plugins.module_utils import _planner
    s = chain()
    for exclude in ([], ["base:1"]):
        selected = _selection.Selection({"images": ["top:1"], "exclude": exclude}, NOW).resolve(s)
        plan = _planner.plan(s, selected.requests, _planner.Policy(), protected=selected.protected)
        assert [step.deleted for step in plan.steps] == [[iid("top"), iid("mid")]]
    selected = _selection.Selection({"images": ["top:1"], "exclude": [iid("mid")[7:20]]}, NOW).resolve(s)
    assert selected.protected == {iid("mid"): iid("mid")[7:20]}
    with pytest.raises(JanitorError) as info:
        _planner.plan(s, selected.requests, _planner.Policy(), protected=selected.protected)
    assert iid("mid") in info.value.message and "prune: false" in info.value.message
    assert info.value.details["images"] == [iid("mid")]
    plan = _planner.plan(s, selected.requests, _planner.Policy(prune=False), protected=selected.protected)
    assert [step.deleted for step in plan.steps] == [[iid("top")]]


@st.composite
def random_case(draw):
    n = draw(st.integers(1, 12))
    repos = ["app", "web", "team/app", "localhost:5000/app"]
    images = []
    for i in range(n):
        tags = tuple(sorted({f"{draw(st.sampled_from(repos))}:{draw(st.integers(0, 3))}"
                             for _tag in range(draw(st.integers(0, 2)))}))
        parent = images[draw(st.integers(0, i - 1))].id if i and draw(st.booleans()) else ""
        labels = {}
        if draw(st.booleans()):
            labels["tier"] = draw(st.sampled_from(["web", "db"]))
        images.append(ImageRecord(id=iid(f"r{i}"), parent=parent, tags=tags, created=draw(st.integers(0, 5)),
                                  size=10, labels=tuple(sorted(labels.items()))))
    # a tag names one image only
    seen = set()
    unique = []
    for image in images:
        tags = tuple(t for t in image.tags if t not in seen)
        seen.update(tags)
        unique.append(ImageRecord(id=image.id, parent=image.parent, tags=tags, created=image.created, size=10,
                                  labels=image.labels))
    containers = [ContainerRecord(f"c{i}", unique[draw(st.integers(0, n - 1))].id)
                  for i in range(draw(st.integers(0, 3)))]
    filters = {}
    if draw(st.booleans()):
        filters["reference"] = draw(st.sampled_from(["app", "*", "*/*", "app:[0-1]", "*:2"]))
    if draw(st.booleans()):
        filters["dangling"] = draw(st.booleans())
    if draw(st.booleans()):
        filters["label"] = draw(st.sampled_from(["tier", "tier=web"]))
    if draw(st.booleans()):
        filters["label!"] = draw(st.sampled_from(["tier", "tier=db"]))
    params = {"filters": filters, "all": draw(st.booleans()),
              "exclude": draw(st.lists(st.sampled_from(["app:1", "web", "team/*", iid("r0")[7:19]]), max_size=2)),
              "keep_latest": draw(st.sampled_from([None, 0, 1, 2]))}
    if params["keep_latest"] is not None and not (filters or params["all"]):
        params["keep_latest"] = None
    return Snapshot(images=tuple(unique), containers=tuple(containers)), params


@given(random_case())
@settings(max_examples=300, deadline=None)
def test_selection_invariants(case):
    s, params = case
    requests, kept = run(s, **params)
    by_id = s.by_id()
    kept_ids = {k["id"] for k in kept if k["reason"] != "keep_latest"}
    policy = _selection._Policy(params, NOW)
    for request in requests:
        image = by_id[request.image_id]
        assert request.image_id not in kept_ids
        assert _selection._excluded_by(image, policy) is None
        if request.kind == "reference":
            assert request.target in image.references
        else:
            assert "reference" not in params["filters"]
        if params["filters"].get("dangling") is True:
            assert not image.tags
    assert len({(r.kind, r.target) for r in requests}) == len(requests)
    if params["keep_latest"]:
        count = {}
        for entry in kept:
            if entry["reason"] == "keep_latest":
                count[entry["repository"]] = count.get(entry["repository"], 0) + 1
        assert all(v <= params["keep_latest"] for v in count.values())
    # the same selection whatever the listing order
    assert run(Snapshot(images=tuple(reversed(s.images)), containers=s.containers), **params) == (requests, kept)


@pytest.mark.parametrize("params, warned", [
    ({"all": True, "exclude": ["*:stable"]}, [("exclude", "*:stable", "registry.example.com/shop/web:stable")]),
    ({"filters": {"reference": "*web:old"}}, [("filters.reference", "*web:old", "registry.example.com/shop/web:old")]),
    ({"filters": {"reference": ["app:?", "*shop?web:*"]}},
     [("filters.reference", "*shop?web:*", "registry.example.com/shop/web:old")]),
    ({"all": True, "exclude": ["nothing-*:1"]}, []),  # nothing to match today: normal, no warning
    ({"all": True, "exclude": ["*/*/*:stable", "app:*"]}, []),  # matches
    ({"filters": {"reference": "*"}}, []),
])
def test_a_pattern_that_matches_nothing_only_because_star_stops_at_slash_is_warned(params, warned):
    s = snap(img("w1", "registry.example.com/shop/web:stable"), img("w2", "registry.example.com/shop/web:old"),
             img("a1", "app:1"))
    warnings = _selection.Selection(params, NOW).resolve(s).warnings
    assert len(warnings) == len(warned)
    for text, (option, pattern, example) in zip(warnings, warned):
        assert text.startswith(f"{option}: {pattern!r}") and repr(example) in text
