"""Time building the role image_cleanup's fleet report for many hosts (issue 19; target: 2,000 hosts under 2 s).

No engine and no Ansible run: synthetic registered results of a realistic size (three rules per host; per host
about 8 untagged references, 5 deleted images, 2 kept and 1 skipped, one warning finding on a third of the hosts,
a failed rule on one host in fifty) go through the same code the role runs. Each host's summary
(``image_cleanup_host_summary``) is made on that host's turn during the run, in parallel over the forks; it is timed
for all hosts but reported apart. The report step proper - what the playbook's last play does once - is
``image_cleanup_fleet_report``, the JSON dump and the Markdown template (rendered by Jinja2 with the collection's
filters); the target applies to it. Prints one line per step; ``--json`` prints them as JSON.

    .venv/bin/python benchmarks/report_build.py [--hosts 2000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import jinja2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / ".cache" / "collections"))

from ansible_collections.janitor.docker.plugins.filter import image_cleanup as f  # noqa: E402

TEMPLATE = REPO / "roles" / "image_cleanup" / "templates" / "report.md.j2"
RULES = [{"name": "dangling leftovers", "filters": {"dangling": True}},
         {"name": "old releases", "filters": {"reference": "registry.example.com/shop/*"}, "keep_latest": 3},
         {"name": "retired tools", "images": ["tools/legacy:1.4", "tools/gone:2"], "containers": "skip"}]


def _id(*parts) -> str:
    return "sha256:" + hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def _rule_result(host: int, rule: int) -> dict:
    deleted = [_id(host, rule, "d", i) for i in range(2 if rule < 2 else 1)]
    untagged = [f"registry.example.com/shop/svc{rule}:{host}.{i}" for i in range(3)]
    images = [{"id": d, "references": untagged[:1], "size": 50_000_000, "action": "deleted"} for d in deleted]
    images.append({"id": _id(host, rule, "k"), "references": [f"registry.example.com/shop/svc{rule}:stable"],
                   "size": 80_000_000, "action": "kept", "reason": "keep_latest",
                   "repository": f"registry.example.com/shop/svc{rule}"})
    result = {"changed": True, "untagged": untagged, "deleted": deleted, "deleted_layers": [],
              "containers_removed": [], "not_found": ["tools/gone:2"] if rule == 2 else [],
              "skipped_images": [{"image": _id(host, rule, "s"), "references": [], "reason": "container",
                                  "containers": [_id(host, "c")[7:]]}] if rule == 0 else [],
              "space_reclaimed": 123_456_789 * (rule + 1), "images": images, "failed": False,
              "_ansible_item_label": RULES[rule]["name"]}
    if host % 50 == 7 and rule == 2:
        result.update(failed=True, msg="cannot reach the Docker daemon at unix:///var/run/docker.sock: "
                                       "ConnectionRefusedError(111, 'Connection refused')")
    return result


def _registered(host: int) -> dict:
    results = [_rule_result(host, rule) for rule in range(3)]
    findings = []
    if host % 3 == 0:
        findings.append({"id": "devicemapper_deprecated", "severity": "warning", "message": "devicemapper is "
                         "deprecated", "remedy": "Move to overlay2."})
    failed = any(r["failed"] for r in results)
    return {
        "host": f"host-{host:05d}.example.com", "dry_run": False, "rules": RULES,
        "storage": {"findings": findings, "highest_severity": findings[0]["severity"] if findings else "none"},
        "rule_results": {"results": results, "failed": failed},
        "failure": {"task": "Apply each cleanup rule", "result": {"failed": True, "results": results}} if failed
        else {},
        "unused_connection_vars": [],
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=False, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    for name, function in f.FilterModule().filters().items():
        env.filters[f"janitor.docker.{name}"] = function
    return env


def run(hosts: int) -> dict:
    registered = [_registered(h) for h in range(hosts)]
    names = [r["host"] for r in registered]
    times = {}
    start = time.perf_counter()
    summaries = [f.image_cleanup_host_summary(r) for r in registered]
    times["host summaries"] = time.perf_counter() - start
    start = time.perf_counter()
    report = f.image_cleanup_fleet_report(summaries, names, dry_run=False, generated_at="2026-12-06T00:00:00Z")
    times["fleet report"] = time.perf_counter() - start
    start = time.perf_counter()
    text = json.dumps(report, sort_keys=True)  # as the role's to_json(sort_keys=true)
    times["JSON"] = time.perf_counter() - start
    template = _environment().from_string(TEMPLATE.read_text())
    start = time.perf_counter()
    markdown = template.render(_image_cleanup_report=report)
    times["Markdown"] = time.perf_counter() - start
    times["total"] = sum(v for k, v in times.items() if k != "host summaries")
    assert report["hosts"]["total"] == hosts and f"### {names[-1]}" in markdown
    return {"hosts": hosts, "seconds": times, "json_bytes": len(text), "markdown_bytes": len(markdown)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best is reported")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rounds = [run(args.hosts) for _round in range(args.repeat)]
    best = min(rounds, key=lambda r: r["seconds"]["total"])
    best["rounds_total"] = [round(r["seconds"]["total"], 3) for r in rounds]
    best["median_total"] = statistics.median(best["rounds_total"])
    if args.json:
        print(json.dumps(best, indent=2))
        return 0
    print(f"fleet report for {best['hosts']} hosts, best of {args.repeat} "
          f"(JSON {best['json_bytes'] / 1e6:.1f} MB, Markdown {best['markdown_bytes'] / 1e6:.1f} MB):")
    seconds = best["seconds"]
    print(f"  per host, during the run: host summaries {seconds['host summaries']:.3f} s for all hosts "
          f"({seconds['host summaries'] * 1000 / best['hosts']:.2f} ms each)")
    print("  the report step (last play, once):")
    for step in ("fleet report", "JSON", "Markdown", "total"):
        print(f"    {step:<13} {seconds[step]:6.3f} s")
    print(f"  report step totals of the rounds: {best['rounds_total']} s; target under 2 s: "
          f"{'met' if seconds['total'] < 2 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
