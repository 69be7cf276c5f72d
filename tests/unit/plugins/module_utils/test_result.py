"""The module's one-line summary (``msg``), from a finished result."""

from __future__ import annotations

from ansible_collections.janitor.docker.plugins.module_utils._result import summary


def result(**values):
    base = {"untagged": [], "deleted": [], "containers_removed": [], "not_found": [], "space_reclaimed": 0,
            "images": []}
    base.update(values)
    return base


def test_counts_reasons_and_decimal_size():
    images = [{"id": "a", "action": "deleted"}, {"id": "b", "action": "skipped", "reason": "container"},
              {"id": "c", "action": "kept", "reason": "excluded"}, {"id": "d", "action": "untagged"}]
    text = summary(result(untagged=["a:1", "a:2", "d:1", "d:2"], deleted=["a"], images=images,
                          space_reclaimed=1_048_576))
    assert text == "untagged 4, deleted 1, kept 2 (1 in use, 1 excluded), 1.049 MB reclaimed"


def test_nothing_done():
    assert summary(result()) == "untagged 0, deleted 0, kept 0, 0 B reclaimed"


def test_containers_not_found_and_every_reason():
    images = [{"action": "skipped", "reason": "running_container"}, {"action": "skipped", "reason": "child_images"},
              {"action": "skipped", "reason": "multiple_repositories"},
              {"action": "kept", "reason": "keep_latest"}, {"action": "skipped", "reason": "conflict"}]
    text = summary(result(containers_removed=["c1", "c2"], not_found=["x:1"], images=images, space_reclaimed=999))
    assert text == ("untagged 0, deleted 0, kept 5 (1 in use, 1 child images, 1 multiple repositories, 1 keep_latest, "
                    "1 other), removed 2 container(s), 1 not found, 999 B reclaimed")
