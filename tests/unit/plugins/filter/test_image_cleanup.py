"""The filters behind the role image_cleanup: host summary, fleet report, output lines (no engine)."""

from __future__ import annotations

import copy

from ansible_collections.janitor.docker.plugins.filter import image_cleanup as f

RULES = [{"name": "old", "images": ["a:1", "b:1"]}, {"name": "dangling", "filters": {"dangling": True}}]


def _rule_result(**kw):
    result = {"changed": True, "untagged": [], "deleted": [], "skipped_images": [], "not_found": [],
              "containers_removed": [], "space_reclaimed": 0, "failed": False}
    result.update(kw)
    return result


def _host(host, storage=None, results=None, failure=None, dry_run=False):
    return f.image_cleanup_host_summary({
        "host": host, "dry_run": dry_run, "rules": RULES,
        "storage": storage if storage is not None else {"findings": [], "highest_severity": None},
        "rule_results": {"results": results} if results is not None else {"skipped": True},
        "failure": failure or {},
    })


def test_host_summary_counts_and_sorts():
    summary = _host("h1", results=[
        _rule_result(untagged=["b:1", "a:1"], deleted=["sha256:bb", "sha256:aa"], space_reclaimed=300,
                     skipped_images=[{"image": "sha256:cc", "references": ["z:1", "c:1"], "reason": "container",
                                      "containers": ["c2", "c1"]}], not_found=["gone:1"],
                     images=[{"id": "sha256:dd", "references": ["d:2"], "action": "kept", "reason": "keep_latest"},
                             {"id": "sha256:aa", "references": ["a:1"], "action": "deleted"}]),
        _rule_result(changed=False),
    ])
    assert summary["status"] == "ok" and summary["changed"] is True and summary["error"] is None
    assert summary["untagged"] == ["a:1", "b:1"]
    assert summary["deleted"] == ["sha256:aa", "sha256:bb"]
    assert summary["totals"] == {"untagged": 2, "deleted": 2, "skipped": 1, "not_found": 1,
                                 "containers_removed": 0, "kept": 1, "space_reclaimed": 300}
    assert summary["rules"][0]["kept"] == [{"image": "sha256:dd", "short_id": "dd", "references": ["d:2"],
                                            "reason": "keep_latest", "detail": None}]
    assert summary["skipped"] == [{"image": "sha256:cc", "short_id": "cc", "references": ["c:1", "z:1"],
                                   "reason": "container", "containers": ["c1", "c2"], "rule": "old"}]
    # deleted images by name where the result names them, by ID alone where not (a parent deleted with them)
    assert summary["rules"][0]["deleted_images"] == [{"id": "sha256:aa", "short_id": "aa", "references": ["a:1"]},
                                                     {"id": "sha256:bb", "short_id": "bb", "references": []}]
    assert summary["not_found"] == [{"rule": "old", "image": "gone:1"}]
    assert [r["status"] for r in summary["rules"]] == ["ok", "ok"]


def test_rules_not_run_when_storage_check_failed():
    storage = {"findings": [{"id": "devicemapper_loop_lvm", "severity": "critical", "message": "loop", "remedy": "x"},
                            {"id": "x", "severity": "info", "message": "i", "remedy": ""}],
               "highest_severity": "critical"}
    summary = _host("h", storage=storage,
                    failure={"task": "Fail on storage findings", "result": {"failed": True, "msg": "critical"}})
    assert summary["status"] == "failed"
    assert summary["error"] == {"task": "Fail on storage findings", "message": "critical"}
    assert [r["status"] for r in summary["rules"]] == ["not run", "not run"]
    assert summary["storage"]["highest_severity"] == "critical"
    assert [x["severity"] for x in summary["storage"]["findings"]] == ["critical", "info"]


def test_failed_loop_item_message_names_the_rule():
    results = [_rule_result(), {"failed": True, "msg": "boom", "_ansible_item_label": "dangling"}]
    failed_loop = {"failed": True, "msg": "One or more items failed", "results": results}
    failure = {"task": "Apply each cleanup rule", "result": failed_loop}
    summary = _host("h", results=results, failure=failure)
    assert summary["error"]["message"] == "dangling: boom"
    assert summary["rules"][1]["status"] == "failed" and summary["rules"][1]["error"] == "boom"


def test_storage_check_skipped():
    summary = _host("h", storage={"skipped": True, "changed": False})
    assert summary["storage"] == {"checked": False, "highest_severity": None, "findings": []}
    assert f.image_cleanup_summary_lines(summary)[0] == "storage: not checked"


def test_fleet_report_is_sorted_and_totals_add_up():
    storage = {"findings": [{"id": "w", "severity": "warning", "message": "m", "remedy": "r"}]}
    crit = {"findings": [{"id": "c", "severity": "critical", "message": "m", "remedy": "r"}]}
    h2_results = [_rule_result(deleted=["sha256:1"], space_reclaimed=10), _rule_result(changed=False)]
    h2 = _host("h2", storage=storage, results=h2_results)
    h1 = _host("h1", storage=crit, failure={"task": "t", "result": {"msg": "bad"}})
    report = f.image_cleanup_fleet_report([h2, h1, {}], ["h2", "h1", "h3"], dry_run=True, generated_at="now")
    assert report["dry_run"] is True and report["generated_at"] == "now"
    assert report["hosts"] == {"total": 3, "ok": 1, "failed": 2, "changed": 1, "names": ["h1", "h2", "h3"]}
    assert [h["host"] for h in report["per_host"]] == ["h1", "h2", "h3"]
    assert report["totals"]["deleted"] == 1 and report["totals"]["space_reclaimed"] == 10
    assert [(x["host"], x["severity"]) for x in report["findings"]] == [("h1", "critical"), ("h2", "warning")]
    assert report["findings_by_severity"] == {"critical": 1, "warning": 1, "info": 0}
    assert report["remedies"] == [{"id": "c", "severity": "critical", "remedy": "r", "hosts": ["h1"]},
                                  {"id": "w", "severity": "warning", "remedy": "r", "hosts": ["h2"]}]
    assert report["failed_hosts"] == [{"host": "h1", "task": "t", "error": "bad"},
                                      {"host": "h3", "task": None, "error": f.NO_RESULT}]


def test_dry_run_and_real_reports_differ_only_in_the_mark():
    results = [_rule_result(untagged=["a:1"], deleted=["sha256:1"]), _rule_result(changed=False)]
    dry = f.image_cleanup_fleet_report([_host("h", results=copy.deepcopy(results), dry_run=True)], ["h"],
                                       dry_run=True, generated_at="t1")
    real = f.image_cleanup_fleet_report([_host("h", results=results)], ["h"], dry_run=False, generated_at="t2")

    def strip(report):
        return {k: v for k, v in report.items() if k not in ("dry_run", "generated_at")}

    assert strip(dry) == strip(real)


def test_lines():
    lines = f.image_cleanup_finding_lines([
        {"id": "i", "severity": "info", "message": "fine", "remedy": ""},
        {"id": "c", "severity": "critical", "message": "loop", "remedy": "direct-lvm:\n{\"a\": 1}"},
    ])
    assert lines == ["[CRITICAL] c: loop", "  remedy: direct-lvm:", '    {"a": 1}', "[INFO] i: fine"]
    results = [_rule_result(deleted=["sha256:1"], space_reclaimed=2_500_000),
               _rule_result(changed=False)]
    summary = _host("h", dry_run=True, results=results)
    assert summary["rules"][0]["space_reclaimed"] == 2_500_000
    text = f.image_cleanup_summary_lines(summary)
    assert text == ["DRY RUN (check mode): nothing was removed; these are the results the real run would give.",
                    "storage: highest severity none",
                    "rule 'old': untagged 0, deleted 1, kept 0, 2.5 MB reclaimed",
                    "rule 'dangling': untagged 0, deleted 0, kept 0, 0 B reclaimed"]
    assert f.image_cleanup_summary_lines({}) == ["no summary"]


def test_rule_line_counts_kept_images_by_reason_in_decimal_units():
    """The console's one line per rule (issue 19 item 9), sizes like the docker CLI (item 7)."""
    result = _rule_result(
        untagged=["a:1", "a:2", "b:1", "c:1"], deleted=["sha256:" + "1" * 64], space_reclaimed=19,
        skipped_images=[{"image": "sha256:" + "2" * 64, "references": [], "reason": "container", "containers": ["c"]}],
        images=[{"id": "sha256:" + "3" * 64, "references": ["x:stable"], "action": "kept", "reason": "excluded",
                 "by": "*:stable"}], not_found=["gone:1"], containers_removed=["c9"])
    rule = _host("h", results=[result, _rule_result(changed=False, space_reclaimed=130_140_000)])["rules"]
    assert f.image_cleanup_rule_line(rule[0]) == ("untagged 4, deleted 1, kept 2 (1 excluded, 1 in use), not found 1, "
                                                  "containers removed 1, 19 B reclaimed")
    assert f.image_cleanup_rule_line(rule[1]) == "untagged 0, deleted 0, kept 0, 130.1 MB reclaimed"
    assert rule[0]["kept"][0]["short_id"] == "3" * 12 and rule[0]["kept"][0]["detail"] == "*:stable"
    assert f.image_cleanup_rule_line({"status": "not run"}) == "not run"
    assert f.human_size(34_100_000) == "34.1 MB" and f.human_size(0) == "0 B"


def test_errors_are_one_readable_line_each_message_once():
    """No Python tuples and no message repeated per rule (issue 19 item 7)."""
    refused = ("Cannot connect to the Docker daemon at unix:///tmp/x.sock: "
               "ConnectionRefusedError(111, 'Connection refused')\nTraceback (most recent call last): ...")
    results = [{"failed": True, "msg": refused, "_ansible_item_label": name} for name in ("old", "dangling")]
    failure = {"task": "Apply each cleanup rule", "result": {"failed": True, "msg": "One or more items failed",
                                                             "results": results}}
    summary = _host("h", results=results, failure=failure)
    one = "Cannot connect to the Docker daemon at unix:///tmp/x.sock: Connection refused"
    assert summary["error"]["message"] == f"old, dangling: {one}"
    assert summary["rules"][0]["error"] == one
    report = f.image_cleanup_fleet_report([summary], ["h"])
    assert report["failed_hosts"] == [{"host": "h", "task": "Apply each cleanup rule", "error": f"old, dangling: {one}"}]
    assert report["per_host"][0]["rules"][0]["error"] == one


def test_unused_connection_variables_become_warnings():
    summary = f.image_cleanup_host_summary({"host": "h", "rules": [], "unused_connection_vars": ["tls", "docker_cert_path"]})
    assert [w.split()[1] for w in summary["warnings"]] == ["docker_cert_path", "tls"]
    assert f.image_cleanup_summary_lines(summary)[0].startswith("WARNING: variable docker_cert_path")


def test_filter_module_lists_the_filters():
    assert sorted(f.FilterModule().filters()) == ["human_size", "image_cleanup_finding_lines",
                                                  "image_cleanup_fleet_report", "image_cleanup_host_summary",
                                                  "image_cleanup_rule_line", "image_cleanup_summary_lines"]


def test_free_space_rules_give_the_hosts_measure_before_and_after():
    def measured(before, after, met=True):
        return {"measure": "filesystem", "path": "/var/lib/docker", "total": 1000, "high": 850, "low": 800,
                "used_before": before, "used_after": after, "target_met": met}

    summary = _host("h1", results=[_rule_result(free_space=measured(900, 790)),
                                   _rule_result(free_space=measured(790, 780, met=False))])
    assert summary["rules"][0]["free_space"]["used_after"] == 790
    assert summary["free_space"] == {"measure": "filesystem", "path": "/var/lib/docker", "total": 1000, "high": 850,
                                     "low": 800, "before": 900, "after": 780, "target_met": False}
    assert _host("h2", results=[_rule_result(), _rule_result()])["free_space"] is None
    report = f.image_cleanup_fleet_report([summary], ["h1"])
    assert report["per_host"][0]["free_space"]["before"] == 900
    assert report["per_host"][0]["rules"][0]["free_space"]["used_before"] == 900


def _odd_structure(rng, depth=0):
    keys = ["host", "dry_run", "storage", "rules", "results", "result", "name", "status", "untagged", "deleted",
            "kept", "skipped_images", "space_reclaimed", "findings", "severity", "id", "message", "remedy", "failed",
            "msg", "error", "task", "checked", "totals", "highest_severity", "images", "reason", "free_space"]
    leaves = [None, 0, -1, 1.5, 2 ** 70, "", "x", True, False, "critical", "warning", "12", [], {}]
    draw = rng.random()
    if depth > 3 or draw < 0.4:
        return rng.choice(leaves)
    if draw < 0.7:
        return {rng.choice(keys): _odd_structure(rng, depth + 1) for unused in range(rng.randint(0, 5))}
    return [_odd_structure(rng, depth + 1) for unused in range(rng.randint(0, 4))]


def test_filters_given_input_of_another_shape_end_in_a_filter_error():
    """Each public filter, given odd structures (seeded), returns a value or raises AnsibleFilterError naming itself:
    never the KeyError or TypeError that Ansible reports as an unexpected Python error."""
    import random

    from ansible.errors import AnsibleFilterError

    rng = random.Random(20261206)
    filters = f.FilterModule().filters()
    refused = set()
    for unused in range(1500):
        for name, function in filters.items():
            args = [_odd_structure(rng)] + ([_odd_structure(rng)] if name == "image_cleanup_fleet_report" else [])
            try:
                function(*args)
            except AnsibleFilterError as exc:
                assert str(exc).startswith(f"janitor.docker.{name}: "), exc
                refused.add(name)
    assert refused >= {"human_size", "image_cleanup_fleet_report", "image_cleanup_summary_lines"}, refused
    assert filters["human_size"]("1048576") == "1.049 MB" and filters["human_size"](None) == "?"
