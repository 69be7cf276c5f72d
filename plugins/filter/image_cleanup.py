# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters behind the role janitor.docker.image_cleanup: one host's summary and the fleet report.

Both are pure functions of registered task results. Everything they return is sorted, so a dry run and the real
run on the same state give equal reports apart from ``dry_run`` and ``generated_at``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

SEVERITY_RANK = {"critical": 3, "warning": 2, "info": 1}
COUNTED = ("untagged", "deleted", "skipped", "not_found", "containers_removed", "kept")
NO_RESULT = "no result from the role: the host was unreachable or failed before the role ran (see the play output)"


def _plain(value):
    """A JSON-compatible copy (drops Ansible's wrapper types, keeps the data)."""
    return json.loads(json.dumps(value, default=str))


def _items(value) -> list:
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return list(value)
    return []


def _key(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _sorted_unique(values) -> list:
    seen = {}
    for value in _items(values):
        seen.setdefault(_key(value), value)
    return [seen[k] for k in sorted(seen)]


def _count(value) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    return len(_items(value))


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _rank(severity) -> int:
    return SEVERITY_RANK.get(str(severity or "").lower(), 0)


def _message(result) -> str:
    """The error message of a failed task result, item messages included for loops."""
    if not isinstance(result, Mapping):
        return str(result) if result else "unknown error"
    parts = []
    for item in _items(result.get("results")):
        if isinstance(item, Mapping) and (item.get("failed") or item.get("unreachable")):
            label = item.get("_ansible_item_label") or ""
            text = str(item.get("msg") or "failed")
            parts.append(f"{label}: {text}" if label else text)
    if parts:
        return "; ".join(parts)
    return str(result.get("msg") or result.get("message") or "unknown error")


def _finding(finding) -> dict:
    finding = finding if isinstance(finding, Mapping) else {"message": str(finding)}
    severity = str(finding.get("severity") or "info").lower()
    return {
        "id": str(finding.get("id") or ""),
        "severity": severity,
        "message": str(finding.get("message") or ""),
        "remedy": str(finding.get("remedy") or ""),
    }


def _sort_findings(findings: list) -> list:
    return sorted(findings, key=lambda f: (-_rank(f["severity"]), f.get("host", ""), f["id"], f["message"]))


def _storage(storage) -> dict:
    if not isinstance(storage, Mapping) or storage.get("skipped") or "findings" not in storage:
        checked = isinstance(storage, Mapping) and not storage.get("skipped") and not storage.get("failed")
        return {"checked": bool(checked and storage), "highest_severity": None, "findings": []}
    findings = _sort_findings([_finding(f) for f in _items(storage.get("findings"))])
    highest = storage.get("highest_severity")
    if str(highest or "").lower() in ("", "none", "null"):
        highest = None
    if not highest and findings:
        highest = findings[0]["severity"]
    return {"checked": True, "highest_severity": str(highest) if highest else None, "findings": findings}


def _rule(rule, result, index: int, ran: bool) -> dict:
    rule = rule if isinstance(rule, Mapping) else {}
    name = str(rule.get("name") or f"rule {index + 1}")
    entry = {"name": name, "status": "not run", "changed": False, "error": None,
             "space_reclaimed": 0, "counts": {k: 0 for k in COUNTED},
             "untagged": [], "deleted": [], "skipped": [], "not_found": [], "kept": [], "prediction_notes": []}
    if not isinstance(result, Mapping):
        entry["status"] = "not run" if not ran else "no result"
        return entry
    if result.get("skipped") and "untagged" not in result:
        entry["status"] = "skipped"
        return entry
    entry["changed"] = bool(result.get("changed"))
    entry["untagged"] = _sorted_unique(result.get("untagged"))
    entry["deleted"] = _sorted_unique(result.get("deleted"))
    entry["not_found"] = _sorted_unique(result.get("not_found"))
    entry["skipped"] = _sorted_unique([
        {"image": s.get("image"), "references": sorted(str(r) for r in _items(s.get("references"))),
         "reason": s.get("reason"), "containers": sorted(str(c) for c in _items(s.get("containers")))}
        if isinstance(s, Mapping) else {"image": str(s), "references": [], "reason": None, "containers": []}
        for s in _items(result.get("skipped_images"))
    ])
    # selected by filters/all but kept by exclude, keep_latest or a container (image_remove's images[].action)
    entry["kept"] = _sorted_unique([
        {"image": i.get("id"), "references": sorted(str(r) for r in _items(i.get("references"))),
         "reason": i.get("reason")}
        for i in _items(result.get("images")) if isinstance(i, Mapping) and i.get("action") == "kept"
    ])
    entry["prediction_notes"] = sorted({str(n) for n in _items(result.get("prediction_notes"))})
    entry["space_reclaimed"] = _int(result.get("space_reclaimed"))
    entry["counts"] = {
        "untagged": len(entry["untagged"]),
        "deleted": len(entry["deleted"]),
        "skipped": len(entry["skipped"]),
        "not_found": len(entry["not_found"]),
        "containers_removed": _count(result.get("containers_removed")),
        "kept": len(entry["kept"]),
    }
    if result.get("failed"):
        entry["status"] = "failed"
        entry["error"] = _message(result)
    else:
        entry["status"] = "ok"
    return entry


def image_cleanup_host_summary(data) -> dict:
    """One host's outcome, from the registered results of the role's tasks.

    ``data`` keys: ``host``, ``dry_run``, ``storage`` (the storage_info result), ``rules`` (the rules as given),
    ``rule_results`` (the registered loop result of the image_remove task), ``failure`` (``{task, result}`` from
    the rescue, or empty).
    """
    data = data if isinstance(data, Mapping) else {}
    data = _plain(dict(data))
    rules = _items(data.get("rules"))
    run = data.get("rule_results")
    ran = isinstance(run, Mapping) and not (run.get("skipped") and "results" not in run)
    results = _items(run.get("results")) if isinstance(run, Mapping) else []
    entries = [_rule(rule, results[i] if i < len(results) else None, i, ran) for i, rule in enumerate(rules)]

    failure = data.get("failure") or {}
    error = None
    if failure:
        error = {"task": str(failure.get("task") or ""), "message": _message(failure.get("result"))}

    totals = {k: sum(e["counts"][k] for e in entries) for k in COUNTED}
    totals["space_reclaimed"] = sum(e["space_reclaimed"] for e in entries)
    skipped = [dict(s, rule=e["name"]) for e in entries for s in e["skipped"]]
    not_found = [{"rule": e["name"], "image": i} for e in entries for i in e["not_found"]]
    return {
        "host": str(data.get("host") or ""),
        "dry_run": bool(data.get("dry_run")),
        "status": "failed" if error else "ok",
        "changed": any(e["changed"] for e in entries),
        "error": error,
        "storage": _storage(data.get("storage")),
        "rules": entries,
        "totals": totals,
        "untagged": _sorted_unique([u for e in entries for u in e["untagged"]]),
        "deleted": _sorted_unique([d for e in entries for d in e["deleted"]]),
        "skipped": skipped,
        "not_found": not_found,
    }


def image_cleanup_fleet_report(summaries, hosts, dry_run=False, generated_at=None) -> dict:
    """The report for every host of the play: ``summaries`` holds one host summary (or nothing) per ``hosts`` entry."""
    summaries = _items(summaries)
    names = [str(h) for h in _items(hosts)]
    by_host = {}
    for index, name in enumerate(names):
        summary = summaries[index] if index < len(summaries) else None
        by_host[name] = _plain(dict(summary)) if isinstance(summary, Mapping) and summary.get("host") else None

    per_host, skipped, findings, failed, not_found = [], [], [], [], []
    totals = {k: 0 for k in COUNTED}
    totals["space_reclaimed"] = 0
    for name in sorted(by_host):
        summary = by_host[name]
        if summary is None:
            failed.append({"host": name, "task": None, "error": NO_RESULT})
            per_host.append({"host": name, "status": "failed", "changed": False, "counts": {k: 0 for k in COUNTED},
                             "space_reclaimed": 0, "highest_severity": None, "untagged": [], "deleted": [],
                             "rules": []})
            continue
        counts = {k: summary["totals"][k] for k in COUNTED}
        for key in COUNTED:
            totals[key] += counts[key]
        totals["space_reclaimed"] += summary["totals"]["space_reclaimed"]
        per_host.append({
            "host": name,
            "status": summary["status"],
            "changed": summary["changed"],
            "counts": counts,
            "space_reclaimed": summary["totals"]["space_reclaimed"],
            "highest_severity": summary["storage"]["highest_severity"],
            "untagged": summary["untagged"],
            "deleted": summary["deleted"],
            "rules": [{"name": r["name"], "status": r["status"], "changed": r["changed"], "counts": r["counts"],
                       "space_reclaimed": r["space_reclaimed"]} for r in summary["rules"]],
        })
        skipped.extend(dict(s, host=name) for s in summary["skipped"])
        not_found.extend(dict(n, host=name) for n in summary["not_found"])
        findings.extend(dict(f, host=name) for f in summary["storage"]["findings"])
        if summary["error"]:
            failed.append({"host": name, "task": summary["error"]["task"], "error": summary["error"]["message"]})

    findings = _sort_findings(findings)
    severities = {s: sum(1 for f in findings if f["severity"] == s) for s in SEVERITY_RANK}
    # each distinct remedy once, with the hosts it applies to: a fleet shares most findings
    remedies = {}
    for finding in findings:
        if finding["remedy"]:
            key = (finding["id"], finding["severity"], finding["remedy"])
            remedies.setdefault(key, []).append(finding["host"])
    remedy_list = [{"id": k[0], "severity": k[1], "remedy": k[2], "hosts": sorted(set(h))}
                   for k, h in sorted(remedies.items(), key=lambda kv: (-_rank(kv[0][1]), kv[0][0], kv[0][2]))]
    return {
        "report": "janitor.docker.image_cleanup",
        "dry_run": bool(dry_run),
        "generated_at": str(generated_at) if generated_at else None,
        "hosts": {
            "total": len(by_host),
            "ok": sum(1 for h in per_host if h["status"] == "ok"),
            "failed": len(failed),
            "changed": sum(1 for h in per_host if h["changed"]),
            "names": sorted(by_host),
        },
        "totals": totals,
        "findings_by_severity": severities,
        "per_host": per_host,
        "skipped": sorted(skipped, key=lambda s: (s["host"], _key(s))),
        "not_found": sorted(not_found, key=lambda n: (n["host"], _key(n))),
        "findings": findings,
        "remedies": remedy_list,
        "failed_hosts": failed,
    }


def _bytes(value) -> str:
    size = float(_int(value))
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{int(size)} B"  # pragma: no cover


def image_cleanup_finding_lines(findings) -> list:
    """Storage findings as lines, most severe first: ``[CRITICAL] id: message``, then its remedy, one entry a line."""
    lines = []
    for finding in _sort_findings([_finding(f) for f in _items(_plain(findings))]):
        lines.append(f"[{finding['severity'].upper()}] {finding['id']}: {finding['message']}")
        for index, text in enumerate(finding["remedy"].splitlines()):
            lines.append(("  remedy: " if index == 0 else "    ") + text)
    return lines


def _counts_text(counts: dict, space: int) -> str:
    return (f"untagged {counts['untagged']}, deleted {counts['deleted']}, skipped {counts['skipped']}, "
            f"kept {counts['kept']}, not found {counts['not_found']}, "
            f"containers removed {counts['containers_removed']}, space reclaimed {_bytes(space)}")


def image_cleanup_summary_lines(summary) -> list:
    """A host summary (from image_cleanup_host_summary) as lines for the play output."""
    summary = _plain(summary) if isinstance(summary, Mapping) else {}
    if not summary:
        return ["no summary"]
    lines = []
    if summary.get("dry_run"):
        lines.append("DRY RUN (check mode): nothing was removed; these are the results the real run would give.")
    if summary.get("error"):
        lines.append(f"FAILED in '{summary['error']['task']}': {summary['error']['message']}")
    storage = summary["storage"]
    if storage["checked"]:
        lines.append(f"storage: {len(storage['findings'])} finding(s), highest severity "
                     f"{storage['highest_severity'] or 'none'}")
        # the remedies were shown by the storage check already: one line per finding here
        lines.extend(f"  {line}" for line in image_cleanup_finding_lines(storage["findings"]) if line.startswith("["))
    else:
        lines.append("storage: not checked")
    for rule in summary["rules"]:
        if rule["status"] in ("ok", "failed"):
            text = _counts_text(rule["counts"], rule["space_reclaimed"])
            if rule["error"]:
                text += f"; FAILED: {rule['error']}"
        else:
            text = rule["status"]
        lines.append(f"rule '{rule['name']}': {text}")
    lines.append("total: " + _counts_text(summary["totals"], summary["totals"]["space_reclaimed"]))
    for skipped in summary["skipped"]:
        refs = ", ".join(skipped["references"]) or "no references"
        text = f"skipped {skipped['image']} ({refs}) by rule '{skipped['rule']}': {skipped['reason']}"
        if skipped["containers"]:
            text += f" (containers: {', '.join(skipped['containers'])})"
        lines.append(text)
    for missing in summary["not_found"]:
        lines.append(f"not found {missing['image']} (rule '{missing['rule']}')")
    for rule in summary["rules"]:
        lines.extend(f"prediction note (rule '{rule['name']}'): {note}" for note in rule.get("prediction_notes", []))
    return lines


class FilterModule:
    """janitor.docker.image_cleanup_* filters."""

    def filters(self):
        return {
            "image_cleanup_host_summary": image_cleanup_host_summary,
            "image_cleanup_fleet_report": image_cleanup_fleet_report,
            "image_cleanup_finding_lines": image_cleanup_finding_lines,
            "image_cleanup_summary_lines": image_cleanup_summary_lines,
        }
