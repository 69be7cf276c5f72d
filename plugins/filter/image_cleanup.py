# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters behind the role janitor.docker.image_cleanup: one host's summary and the fleet report.

Both are pure functions of registered task results. Everything they return is sorted, so a dry run and the real
run on the same state give equal reports apart from ``dry_run`` and ``generated_at``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.janitor.docker.plugins.module_utils._units import human_size

SEVERITY_RANK = {"critical": 3, "warning": 2, "info": 1}
COUNTED = ("untagged", "deleted", "skipped", "not_found", "containers_removed", "kept")
# ConnectionRefusedError(111, 'Connection refused') -> Connection refused
_EXCEPTION_REPR = re.compile(r"\b[A-Z]\w*(?:Error|Exception)\((?:-?\d+, )?(?P<q>['\"])(?P<text>.*?)(?P=q)\)")
# why an image stayed, in the words of the console line
KEPT_WORDS = {"container": "in use", "running_container": "in use", "excluded": "excluded",
              "keep_latest": "newest", "child_images": "has child images",
              "multiple_repositories": "in several repositories", "multiple_tags": "several tags"}
RULE_REPORT_KEYS = ("name", "status", "changed", "error", "counts", "space_reclaimed", "untagged", "deleted_images",
                    "kept", "skipped", "not_found", "free_space")
FREE_SPACE_KEYS = ("measure", "path", "total", "high", "low", "used_before", "used_after", "target_met")
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
    values = _items(values)
    if all(isinstance(v, str) for v in values):
        return sorted(set(values))
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
    """The error message of a failed task result as one line; for loops, each distinct item message once, after
    the labels of the items (rules) that failed with it."""
    if not isinstance(result, Mapping):
        return _one_line(result) if result else "unknown error"
    by_text = {}
    for item in _items(result.get("results")):
        if isinstance(item, Mapping) and (item.get("failed") or item.get("unreachable")):
            label = str(item.get("_ansible_item_label") or "")
            by_text.setdefault(_one_line(item.get("msg") or "failed"), []).append(label)
    if by_text:
        return "; ".join(f"{', '.join(l for l in labels if l)}: {text}" if any(labels) else text
                         for text, labels in by_text.items())
    return _one_line(result.get("msg") or result.get("message") or "unknown error")


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


def _short(image_id) -> str:
    """The 12-hex short ID the docker CLI shows."""
    text = str(image_id or "")
    return text.split(":", 1)[-1][:12] if text.startswith("sha256:") else text[:12]


def _one_line(text) -> str:
    """An error message as one readable line: the first non-empty line, Python exception reprs such as
    ``ConnectionRefusedError(111, 'Connection refused')`` shown as their text, spaces collapsed."""
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    line = lines[0] if lines else "unknown error"
    line = _EXCEPTION_REPR.sub(lambda m: m.group("text"), line)
    line = re.sub(r"\s+", " ", line).strip()
    return line if len(line) <= 300 else line[:297] + "..."


def _images_named(result) -> dict:
    """Image ID -> its references when the module started, from the result's ``images`` and ``skipped_images``."""
    names = {}
    for entry in _items(result.get("images")) + _items(result.get("skipped_images")):
        if isinstance(entry, Mapping):
            image = entry.get("id") or entry.get("image")
            if image:
                names.setdefault(str(image), sorted(str(r) for r in _items(entry.get("references"))))
    return names


def _rule(rule, result, index: int, ran: bool) -> dict:
    rule = rule if isinstance(rule, Mapping) else {}
    name = str(rule.get("name") or f"rule {index + 1}")
    entry = {"name": name, "status": "not run", "changed": False, "error": None,
             "space_reclaimed": 0, "counts": {k: 0 for k in COUNTED},
             "untagged": [], "deleted": [], "deleted_images": [], "skipped": [], "not_found": [], "kept": [],
             "free_space": None}
    if not isinstance(result, Mapping):
        entry["status"] = "not run" if not ran else "no result"
        return entry
    if result.get("skipped") and "untagged" not in result:
        entry["status"] = "skipped"
        return entry
    names = _images_named(result)
    entry["changed"] = bool(result.get("changed"))
    entry["untagged"] = _sorted_unique(result.get("untagged"))
    entry["deleted"] = _sorted_unique(result.get("deleted"))
    # parents deleted with an image have no entry of their own: no references known, shown by ID
    entry["deleted_images"] = [{"id": i, "short_id": _short(i), "references": names.get(str(i), [])}
                               for i in entry["deleted"]]
    entry["not_found"] = _sorted_unique(result.get("not_found"))
    entry["skipped"] = _sorted_unique([
        {"image": s.get("image"), "short_id": _short(s.get("image")),
         "references": sorted(str(r) for r in _items(s.get("references"))),
         "reason": s.get("reason"), "containers": sorted(str(c) for c in _items(s.get("containers")))}
        if isinstance(s, Mapping) else {"image": str(s), "short_id": _short(s), "references": [], "reason": None,
                                        "containers": []}
        for s in _items(result.get("skipped_images"))
    ])
    # selected by filters/all but kept by exclude or keep_latest (image_remove's images[].action == kept)
    entry["kept"] = _sorted_unique([
        {"image": i.get("id"), "short_id": _short(i.get("id")),
         "references": sorted(str(r) for r in _items(i.get("references"))),
         "reason": i.get("reason"), "detail": i.get("by") or i.get("repository")}
        for i in _items(result.get("images")) if isinstance(i, Mapping) and i.get("action") == "kept"
    ])
    entry["space_reclaimed"] = _int(result.get("space_reclaimed"))
    if isinstance(result.get("free_space"), Mapping):
        entry["free_space"] = {k: result["free_space"].get(k) for k in FREE_SPACE_KEYS}
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
        entry["error"] = _one_line(result.get("msg") or "failed")
    else:
        entry["status"] = "ok"
    return entry


def image_cleanup_host_summary(data) -> dict:
    """One host's outcome, from the registered results of the role's tasks.

    ``data`` keys: ``host``, ``dry_run``, ``storage`` (the storage_info result), ``rules`` (the rules as given),
    ``rule_results`` (the registered loop result of the image_remove task), ``failure`` (``{task, result}`` from
    the rescue, or empty), ``unused_connection_vars`` (names of connection-like variables the role ignored).
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
    measured = [e["free_space"] for e in entries if e["free_space"]]
    skipped = [dict(s, rule=e["name"]) for e in entries for s in e["skipped"]]
    not_found = [{"rule": e["name"], "image": i} for e in entries for i in e["not_found"]]
    return {
        "host": str(data.get("host") or ""),
        "dry_run": bool(data.get("dry_run")),
        "status": "failed" if error else "ok",
        "changed": any(e["changed"] for e in entries),
        "error": error,
        "warnings": [f"variable {name} looks like a connection option but the role does not read it "
                     "(it reads image_cleanup_docker_host, image_cleanup_tls, ... and docker_host)"
                     for name in sorted({str(n) for n in _items(data.get("unused_connection_vars"))})],
        "storage": _storage(data.get("storage")),
        "rules": entries,
        "totals": totals,
        "free_space": _measured(measured),
        "untagged": _sorted_unique([u for e in entries for u in e["untagged"]]),
        "deleted": _sorted_unique([d for e in entries for d in e["deleted"]]),
        "skipped": skipped,
        "not_found": not_found,
    }


def _measured(measured):
    """The host's disk measure before its first free_space rule and after its last one (None without such rules);
    ``target_met`` only when every such rule met its target."""
    if not measured:
        return None
    last = measured[-1]
    return {"measure": last["measure"], "path": last["path"], "total": last["total"], "high": last["high"],
            "low": last["low"], "before": measured[0]["used_before"], "after": last["used_after"],
            "target_met": all(m.get("target_met") is not False for m in measured)}


def _no_result_host(name: str) -> dict:
    return {"host": name, "status": "failed", "changed": False, "error": {"task": None, "message": NO_RESULT},
            "warnings": [], "counts": {k: 0 for k in COUNTED}, "space_reclaimed": 0, "free_space": None,
            "highest_severity": None,
            "untagged": [], "deleted": [], "rules": []}


def image_cleanup_fleet_report(summaries, hosts, dry_run=False, generated_at=None) -> dict:
    """The report for every host of the play: ``summaries`` holds one host summary (or nothing) per ``hosts`` entry."""
    summaries = _items(summaries)
    names = [str(h) for h in _items(hosts)]
    by_host = {}
    for index, name in enumerate(names):
        summary = summaries[index] if index < len(summaries) else None
        # summaries come from image_cleanup_host_summary, plain data already: read, never copied (2,000 hosts)
        by_host[name] = summary if isinstance(summary, Mapping) and summary.get("host") else None

    per_host, skipped, findings, failed, not_found = [], [], [], [], []
    totals = {k: 0 for k in COUNTED}
    totals["space_reclaimed"] = 0
    for name in sorted(by_host):
        summary = by_host[name]
        if summary is None:
            failed.append({"host": name, "task": None, "error": NO_RESULT})
            per_host.append(_no_result_host(name))
            continue
        counts = {k: summary["totals"][k] for k in COUNTED}
        for key in COUNTED:
            totals[key] += counts[key]
        totals["space_reclaimed"] += summary["totals"]["space_reclaimed"]
        per_host.append({
            "host": name,
            "status": summary["status"],
            "changed": summary["changed"],
            "error": summary["error"],
            "warnings": summary.get("warnings", []),
            "counts": counts,
            "space_reclaimed": summary["totals"]["space_reclaimed"],
            "free_space": summary.get("free_space"),
            "highest_severity": summary["storage"]["highest_severity"],
            "untagged": summary["untagged"],
            "deleted": summary["deleted"],
            "rules": [{k: r.get(k) for k in RULE_REPORT_KEYS} for r in summary["rules"]],
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


def image_cleanup_finding_lines(findings) -> list:
    """Storage findings as lines, most severe first: ``[CRITICAL] id: message``, then its remedy, one entry a line."""
    lines = []
    for finding in _sort_findings([_finding(f) for f in _items(_plain(findings))]):
        lines.append(f"[{finding['severity'].upper()}] {finding['id']}: {finding['message']}")
        for index, text in enumerate(finding["remedy"].splitlines()):
            lines.append(("  remedy: " if index == 0 else "    ") + text)
    return lines


def _kept_text(rule: Mapping) -> str:
    """``kept 3 (2 in use, 1 excluded)``: the images a rule selected that stay, skipped or kept, by reason."""
    reasons = {}
    for entry in _items(rule.get("skipped")) + _items(rule.get("kept")):
        word = KEPT_WORDS.get(str(entry.get("reason")), str(entry.get("reason") or "other"))
        reasons[word] = reasons.get(word, 0) + 1
    total = sum(reasons.values())
    detail = ", ".join(f"{n} {word}" for word, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"kept {total} ({detail})" if total else "kept 0"


def image_cleanup_rule_line(rule) -> str:
    """One rule's outcome in one line: ``untagged 4, deleted 1, kept 2 (1 in use, 1 excluded), 19 B reclaimed``."""
    rule = rule if isinstance(rule, Mapping) else {}
    status = rule.get("status")
    if status not in ("ok", "failed"):
        return str(status or "not run")
    counts = rule.get("counts") or {}
    parts = [f"untagged {counts.get('untagged', 0)}", f"deleted {counts.get('deleted', 0)}", _kept_text(rule)]
    if counts.get("not_found"):
        parts.append(f"not found {counts['not_found']}")
    if counts.get("containers_removed"):
        parts.append(f"containers removed {counts['containers_removed']}")
    parts.append(f"{human_size(_int(rule.get('space_reclaimed')))} reclaimed")
    text = ", ".join(parts)
    if rule.get("error"):
        text += f"; FAILED: {rule['error']}"
    return text


def image_cleanup_summary_lines(summary) -> list:
    """A host summary (from image_cleanup_host_summary) as short lines for the play output: the dry-run mark, the
    error, the storage check, one line per rule. The details are in the fleet report."""
    summary = _plain(summary) if isinstance(summary, Mapping) else {}
    if not summary:
        return ["no summary"]
    lines = []
    if summary.get("dry_run"):
        lines.append("DRY RUN (check mode): nothing was removed; these are the results the real run would give.")
    if summary.get("error"):
        lines.append(f"FAILED in '{summary['error']['task']}': {summary['error']['message']}")
    lines.extend(f"WARNING: {w}" for w in summary.get("warnings", []))
    storage = summary["storage"]
    if storage["checked"]:
        ids = ", ".join(f"{f['id']} ({f['severity']})" for f in storage["findings"])
        lines.append(f"storage: highest severity {storage['highest_severity'] or 'none'}" + (f": {ids}" if ids else ""))
    else:
        lines.append("storage: not checked")
    lines.extend(f"rule '{rule['name']}': {image_cleanup_rule_line(rule)}" for rule in summary["rules"])
    return lines


def _size_filter(size):
    """``human_size`` for templates: a number of bytes (or its digits as text), else a clear filter error."""
    if isinstance(size, str) and re.fullmatch(r"\s*-?\d+\s*", size):
        size = int(size)
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, float)) or not math.isfinite(size)):
        raise AnsibleFilterError(f"janitor.docker.human_size: {size!r} is not a size in bytes (a whole number such as "
                                 f"1048576)")
    return human_size(size)


def _guarded(name, expects, function):
    """``function`` as a filter: input of another shape than it reads ends in a filter error that says so, not in
    Ansible's report of an unexpected Python error."""
    @functools.wraps(function)
    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise AnsibleFilterError(f"janitor.docker.{name}: its input is not {expects} ({type(exc).__name__}: "
                                     f"{exc})") from exc
    return run


_SUMMARY = "a host summary made by janitor.docker.image_cleanup_host_summary"


class FilterModule:
    """janitor.docker.image_cleanup_* filters and human_size."""

    def filters(self):
        return {
            "image_cleanup_host_summary": _guarded("image_cleanup_host_summary", "the role's registered results",
                                                   image_cleanup_host_summary),
            "image_cleanup_fleet_report": _guarded("image_cleanup_fleet_report", f"a list of {_SUMMARY} per host",
                                                   image_cleanup_fleet_report),
            "image_cleanup_finding_lines": _guarded("image_cleanup_finding_lines", "storage_info findings",
                                                    image_cleanup_finding_lines),
            "image_cleanup_summary_lines": _guarded("image_cleanup_summary_lines", _SUMMARY,
                                                    image_cleanup_summary_lines),
            "image_cleanup_rule_line": _guarded("image_cleanup_rule_line", "a rule of a host summary",
                                                image_cleanup_rule_line),
            "human_size": _size_filter,
        }
