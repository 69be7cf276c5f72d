"""Ratios, targets and the Markdown tables, from the JSON ``run.py`` writes.

``python benchmarks/report.py [results.json]`` prints the tables again without running anything.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"

# (key, label) in table order
ROWS = (
    ("janitor_list", "1. janitor.docker.image_remove, explicit list (whole ansible-playbook)"),
    ("janitor_filter", "1. janitor.docker.image_remove, label filter (whole ansible-playbook)"),
    ("janitor_list_check", "2. the same, explicit list, --check"),
    ("janitor_filter_check", "2. the same, label filter, --check"),
    ("docker_rmi", "3. docker rm + docker rmi, every reference in one call"),
    ("community_loop", "4. community.docker docker_container + docker_image_remove loop"),
    ("community_prune", "4. community.docker docker_prune, label filter"),
    ("noop", "5. ansible-playbook, one ansible.builtin.ping task"),
    ("engine_listing", "6. the engine's own listing: docker image ls -a + docker ps -a (CLI)"),
    ("echo_check", "5. row 2's arguments in and its recorded result out, no work (bench_echo), --check"),
    ("noop_community", "5. the same with the ansible package (community.docker's side)"),
)


def _s(value) -> str:
    return "—" if value is None else f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.0f} ms"


def _x(value) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _cpu(row):
    """The lowest client CPU seconds among a row's samples (None when not recorded)."""
    values = [s["cpu_seconds"] for s in (row or {}).get("samples", []) if s.get("cpu_seconds")]
    return min(values) if values else None


def cpu_module(size: dict, key: str):
    """Client CPU of a janitor row minus its no-op row (the ``*_module`` keys of ``derive``), or of row 2 minus the
    echo row (``janitor_list_check_own``)."""
    rows = size["rows"]
    if key == "janitor_list_check_own":
        base, noop = "janitor_list_check", "echo_check"
    else:
        base, noop = key[: -len("_module")], "noop_community" if key.startswith("community") else "noop"
    mine, fixed = _cpu(rows.get(base)), _cpu(rows.get(noop))
    return None if mine is None or fixed is None else mine - fixed


def derive(size: dict) -> dict:
    """Module times and ratios for one N."""
    rows = size["rows"]

    def best(key):
        row = rows.get(key)
        return None if not row or row.get("seconds") is None else row["seconds"]

    noop, rmi = best("noop"), best("docker_rmi")
    out = {}
    for key in ("janitor_list", "janitor_filter", "janitor_list_check", "janitor_filter_check"):
        if best(key) is not None and noop is not None:
            out[f"{key}_module"] = best(key) - noop
    if best("echo_check") is not None and noop is not None:
        out["echo_check_module"] = best("echo_check") - noop
        if best("janitor_list_check") is not None:
            out["janitor_list_check_own"] = best("janitor_list_check") - best("echo_check")
    if best("community_prune") is not None and best("noop_community") is not None:
        out["community_prune_module"] = best("community_prune") - best("noop_community")
    if rmi:
        for key in ("janitor_list", "janitor_list_module", "janitor_filter", "janitor_filter_module"):
            value = best(key) if key in rows else out.get(key)
            if value is not None:
                out[f"{key}_vs_rmi"] = value / rmi
    loop = best("community_loop")
    if loop is None and rows.get("community_loop", {}).get("extrapolated_seconds") is not None:
        loop = rows["community_loop"]["extrapolated_seconds"]
    if loop is not None and best("janitor_list"):
        out["community_loop_vs_janitor_list"] = loop / best("janitor_list")
    if best("community_prune") and best("janitor_filter"):
        out["janitor_filter_vs_prune"] = best("janitor_filter") / best("community_prune")
    return out


def targets(results: dict) -> list:
    """[(target, measured text, met: True/False/None)] for the issue's targets."""
    sizes = {int(k): v for k, v in results.get("sizes", {}).items()}
    big = sizes.get(1000) or (sizes[max(sizes)] if sizes else None)
    big_n = 1000 if 1000 in sizes else (max(sizes) if sizes else None)
    small = sizes.get(200) or (sizes[min(sizes)] if sizes else None)
    small_n = 200 if 200 in sizes else (min(sizes) if sizes else None)
    out = []

    def add(text, value, limit, fmt, lower_is_better=True):
        if value is None:
            out.append((text, "not measured", None))
        else:
            out.append((text, fmt(value), value <= limit if lower_is_better else value >= limit))

    kind = results.get("engine", {}).get("kind", "?")
    if big:
        d = derive(big)
        add(f"module time (row 1 − row 5) ≤ 1.0 × docker rmi, N={big_n}", d.get("janitor_list_module_vs_rmi"), 1.0,
            _x)
        add(f"whole process ≤ 1.5 × docker rmi, N={big_n}", d.get("janitor_list_vs_rmi"), 1.5, _x)
        if kind == "legacy":
            add(f"check-mode module time ≤ 0.8 s on the legacy engine, N={big_n}", d.get("janitor_list_check_module"),
                0.8, _s)
        listing = (big["rows"].get("engine_listing") or {}).get("seconds")
        check = d.get("janitor_list_check_module")
        add(f"check-mode module time ≤ the engine's listing (row 6) + 0.5 s, N={big_n}",
            None if check is None or listing is None else check - listing, 0.5,
            lambda v: f"listing + {v:.2f} s")
    if 300 in sizes:
        add("module time (row 1 − row 5) ≤ 1.0 × docker rmi, N=300",
            derive(sizes[300]).get("janitor_list_module_vs_rmi"), 1.0, _x)
    if big:
        mem = big.get("memory", {}).get("real", {}).get("max_rss_mib")
        add(f"module peak memory < 100 MiB, N={big_n}", mem, 100, lambda v: f"{v:.1f} MiB")
    for n, size in sorted(sizes.items()):
        if n not in (small_n, big_n):
            continue
        add(f"filter run ≤ docker_prune, N={n}", derive(size).get("janitor_filter_vs_prune"), 1.0, _x)
    if small:
        add(f"whole process ≥ 25 × faster than the community.docker loop, N={small_n}",
            derive(small).get("community_loop_vs_janitor_list"), 25, _x, lower_is_better=False)
    planner = results.get("planner", {})
    plan_seconds = planner.get("list", {}).get("planner_seconds")
    add(f"planner < 0.5 s at {planner.get('images', '?')} images / {planner.get('containers', '?')} containers",
        plan_seconds, 0.5, _s)
    return out


def markdown(results: dict) -> str:
    sizes = {int(k): v for k, v in results.get("sizes", {}).items()}
    ns = sorted(sizes)
    lines = []
    machine = results.get("machine", {})
    if machine.get("load_average_at_end"):
        machine = dict(machine, description=machine["description"].rstrip(")") +
                       f", {machine['load_average_at_end'][0]:.1f} at the end)")
    lines.append(f"Machine: {machine.get('description', '?')}. Engine: {results.get('engine', {}).get('describe', '?')}"
                 f"; data-root on {results.get('engine', {}).get('data_root', '?')}. Best of "
                 f"{results.get('repeat', '?')} (community.docker loop: one run). Run {results.get('started', '?')}.")
    lines.append("")
    lines.append("Times are wall-clock seconds of the whole process (best round); client CPU is the user + system "
                 "CPU of that process and its children (not the engine's).")
    lines.append("")
    header = "| row | " + " | ".join(f"N={n}: time | × docker rmi | client CPU" for n in ns) + " |"
    lines.append(header)
    lines.append("|---|" + "---:|---:|---:|" * len(ns))
    for key, label in ROWS:
        cells = []
        for n in ns:
            row = sizes[n]["rows"].get(key)
            rmi = sizes[n]["rows"].get("docker_rmi", {}).get("seconds")
            value = None if not row else row.get("seconds")
            note = ""
            if value is None and row and row.get("extrapolated_seconds") is not None:
                value, note = row["extrapolated_seconds"], " (extrapolated)"
            if value is None:
                reason = (row or {}).get("skipped", "not run")
                cells += [f"— ({reason})" if row else "—", "—", "—"]
                continue
            cells += [_s(value) + note, _x(value / rmi) if rmi else "—", _s(_cpu(row))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    derived = {n: derive(sizes[n]) for n in ns}
    for key, label in (("janitor_list_module", "module time, explicit list (row 1 − row 5)"),
                       ("janitor_filter_module", "module time, label filter (row 1 − row 5)"),
                       ("janitor_list_check_module", "module time, explicit list, --check"),
                       ("janitor_filter_check_module", "module time, label filter, --check"),
                       ("echo_check_module", "of which Ansible's share: same arguments and result, no work "
                                             "(echo row − row 5)"),
                       ("janitor_list_check_own", "of which image_remove's own work, explicit list, --check "
                                                  "(row 2 − echo row)"),
                       ("community_prune_module", "docker_prune module time (its row − its row 5)")):
        cells = []
        for n in ns:
            value = derived[n].get(key)
            rmi = sizes[n]["rows"].get("docker_rmi", {}).get("seconds")
            cells += [_s(value), _x(value / rmi) if value is not None and rmi else "—", _s(cpu_module(sizes[n], key))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cells = []
    for n in ns:
        mem = sizes[n].get("memory", {})
        real, check = mem.get("real", {}), mem.get("check", {})
        text = (f"{real.get('max_rss_mib', 0):.1f} MiB (check mode {check.get('max_rss_mib', 0):.1f} MiB)"
                if real else "—")
        cells += [text, "", ""]
    lines.append("| module process peak RSS, explicit list | " + " | ".join(cells) + " |")
    cells = []
    for n in ns:
        space = sizes[n].get("space") or {}
        module, drop = space.get("module_space_reclaimed"), space.get("engine_layers_size_drop")
        if isinstance(module, int) and isinstance(drop, int):
            gap = "equal" if module == drop else f"{(module - drop) / drop:+.2%}" if drop else "—"
            cells += [f"{module:,} B (engine {drop:,} B: {gap})", "", ""]
        else:
            cells += ["—", "", ""]
    lines.append("| space_reclaimed of the explicit-list run, next to the engine's LayersSize drop | "
                 + " | ".join(cells) + " |")
    planner = results.get("planner")
    if planner:
        lines.append("")
        lines.append(f"Planner alone ({planner['images']} images, {planner['containers']} containers, synthetic):")
        lines.append("")
        lines.append("| case | requests | resolve/select | plan | result | planner (plan + result) |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        for case in ("list", "filter"):
            c = planner.get(case)
            if c:
                lines.append(f"| {case} | {c['requests']} | {_s(c['select_or_resolve_seconds'])} | "
                             f"{_s(c['plan_seconds'])} | {_s(c['result_seconds'])} | {_s(c['planner_seconds'])} |")
    lines.append("")
    lines.append("| target | measured | met |")
    lines.append("|---|---:|:---:|")
    for text, measured, met in targets(results):
        lines.append(f"| {text} | {measured} | {'yes' if met else 'no' if met is False else '—'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    print(markdown(json.loads(path.read_text(encoding="utf-8"))))
