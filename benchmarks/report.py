"""Ratios, targets and the Markdown tables, from the JSON ``run.py`` writes.

``python benchmarks/report.py [results.json]`` prints the tables again without running anything.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"

WARM = ", layer_cache warm"  # added to the janitor rows' labels in results that have cold rows
COLD = ", cold: layer_cache file deleted just before the run"

# (key, label, whether it is a janitor row the warm label applies to) in table order
ROWS = (
    ("janitor_list", "1. janitor.docker.image_remove, explicit list (whole ansible-playbook)", True),
    ("janitor_list_cold", "1. janitor.docker.image_remove, explicit list (whole ansible-playbook)" + COLD, False),
    ("janitor_filter", "1. janitor.docker.image_remove, label filter (whole ansible-playbook)", True),
    ("janitor_list_check", "2. the same, explicit list, --check", True),
    ("janitor_list_check_cold", "2. the same, explicit list, --check" + COLD, False),
    ("janitor_filter_check", "2. the same, label filter, --check", True),
    ("docker_rmi", "3. docker rm + docker rmi, every reference in one call", False),
    ("community_loop", "4. community.docker docker_container + docker_image_remove loop", False),
    ("community_prune", "4. community.docker docker_prune, label filter", False),
    ("noop", "5. ansible-playbook, one ansible.builtin.ping task", False),
    ("engine_listing", "6. the engine's own listing: docker image ls -a + docker ps -a (CLI)", False),
    ("engine_inspect_all", "6b. the engine's own inspect of every image: docker image inspect, every ID in one call "
                           "(CLI)", False),
    ("echo_check", "5. row 2's arguments in and its recorded result out, no work (bench_echo), --check", False),
    ("noop_community", "5. the same with the ansible package (community.docker's side)", False),
)

# (derived key, label, whether it is a janitor row the warm label applies to) in table order
DERIVED = (
    ("janitor_list_module", "module time, explicit list (row 1 − row 5)", True),
    ("janitor_list_cold_module", "module time, explicit list (row 1 − row 5)" + COLD, False),
    ("janitor_filter_module", "module time, label filter (row 1 − row 5)", True),
    ("janitor_list_check_module", "module time, explicit list, --check", True),
    ("janitor_list_check_cold_module", "module time, explicit list, --check" + COLD, False),
    ("janitor_filter_check_module", "module time, label filter, --check", True),
    ("echo_check_module", "of which Ansible's share: same arguments and result, no work (echo row − row 5)", False),
    ("janitor_list_check_own", "of which image_remove's own work, explicit list, --check (row 2 − echo row)", True),
    ("community_prune_module", "docker_prune module time (its row − its row 5)", False),
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
    for key in ("janitor_list", "janitor_list_cold", "janitor_filter", "janitor_list_check", "janitor_list_check_cold",
                "janitor_filter_check"):
        if best(key) is not None and noop is not None:
            out[f"{key}_module"] = best(key) - noop
    if best("echo_check") is not None and noop is not None:
        out["echo_check_module"] = best("echo_check") - noop
        if best("janitor_list_check") is not None:
            out["janitor_list_check_own"] = best("janitor_list_check") - best("echo_check")
    if best("community_prune") is not None and best("noop_community") is not None:
        out["community_prune_module"] = best("community_prune") - best("noop_community")
    if rmi:
        for key in ("janitor_list", "janitor_list_module", "janitor_list_cold", "janitor_list_cold_module",
                    "janitor_filter", "janitor_filter_module"):
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
    rounds = round_ratios(size, "janitor_list")
    if rounds:
        out["janitor_list_module_vs_rmi_median_round"] = statistics.median(rounds)
    return out


def counts(key: str, sample: dict) -> bool:
    """Whether a row's sample counts for its timings: a run that succeeded (``docker rmi`` whatever its exit code)."""
    return sample.get("rc") == 0 or key == "docker_rmi"


def round_ratios(size: dict, key: str) -> list:
    """Round by round: (the row's time - the same round's no-op) / the same round's ``docker rmi``, for the rounds
    where all three ran. The best-of-rounds ratio pairs each row's best round; this shows how much of it is noise."""
    rows = size["rows"]

    def times(name):
        return [s["seconds"] if counts(name, s) else None for s in (rows.get(name) or {}).get("samples", [])]

    out = []
    for row, noop, rmi in zip(times(key), times("noop"), times("docker_rmi")):
        if row is not None and noop is not None and rmi:
            out.append((row - noop) / rmi)
    return out


def _over(value) -> str:
    return f"listing {'+' if value >= 0 else '−'} {abs(value):.2f} s"


def has_cold(results: dict) -> bool:
    """Whether the results have the cold ``layer_cache`` rows (then the janitor rows ran with a warm cache)."""
    return any("janitor_list_cold" in size.get("rows", {}) for size in results.get("sizes", {}).values())


def targets(results: dict) -> list:
    """``[{"target", "measured", "met"}]`` for the issues' targets (``met``: True, False or None when not
    measured), on the janitor rows - run with a warm ``layer_cache`` when the results have cold rows; where a cold
    row measures the same target, ``cold_measured`` and ``cold_met`` beside them."""
    sizes = {int(k): v for k, v in results.get("sizes", {}).items()}
    big = sizes.get(1000) or (sizes[max(sizes)] if sizes else None)
    big_n = 1000 if 1000 in sizes else (max(sizes) if sizes else None)
    small = sizes.get(200) or (sizes[min(sizes)] if sizes else None)
    small_n = 200 if 200 in sizes else (min(sizes) if sizes else None)
    cold_rows = has_cold(results)
    out = []
    no_cold = object()

    def judged(value, limit, fmt, lower_is_better):
        if value is None:
            return "not measured", None
        return fmt(value), value <= limit if lower_is_better else value >= limit

    def add(text, value, limit, fmt, lower_is_better=True, cold=no_cold):
        measured, met = judged(value, limit, fmt, lower_is_better)
        entry = {"target": text, "measured": measured, "met": met}
        if cold_rows and cold is not no_cold:
            entry["cold_measured"], entry["cold_met"] = judged(cold, limit, fmt, lower_is_better)
        out.append(entry)

    def over_listing(size, check):
        listing = (size["rows"].get("engine_listing") or {}).get("seconds")
        return None if check is None or listing is None else check - listing

    def over_engine(size, check):
        """``check`` over the engine's own listing and inspect of every image (rows 6 + 6b)."""
        rows = size["rows"]
        listing = (rows.get("engine_listing") or {}).get("seconds")
        inspect = (rows.get("engine_inspect_all") or {}).get("seconds")
        return None if None in (check, listing, inspect) else check / (listing + inspect)

    kind = results.get("engine", {}).get("kind", "?")
    if big:
        d = derive(big)
        add(f"module time (row 1 − row 5) ≤ 1.0 × docker rmi, N={big_n}", d.get("janitor_list_module_vs_rmi"), 1.0,
            _x, cold=d.get("janitor_list_cold_module_vs_rmi"))
        add(f"whole process ≤ 1.5 × docker rmi, N={big_n}", d.get("janitor_list_vs_rmi"), 1.5, _x,
            cold=d.get("janitor_list_cold_vs_rmi"))
        if kind == "legacy":
            add(f"check-mode module time ≤ 0.8 s on the legacy engine, N={big_n}", d.get("janitor_list_check_module"),
                0.8, _s, cold=d.get("janitor_list_check_cold_module"))
        add(f"check-mode module time ≤ the engine's listing (row 6) + 0.5 s, N={big_n}",
            over_listing(big, d.get("janitor_list_check_module")), 0.5, _over,
            cold=over_listing(big, d.get("janitor_list_check_cold_module")))
        add(f"check-mode module time ≤ 1.0 × the engine's own listing + inspect of every image (rows 6 + 6b), "
            f"N={big_n}", over_engine(big, d.get("janitor_list_check_module")), 1.0, _x,
            cold=over_engine(big, d.get("janitor_list_check_cold_module")))
    if 300 in sizes:
        d = derive(sizes[300])
        add("module time (row 1 − row 5) ≤ 1.0 × docker rmi, N=300", d.get("janitor_list_module_vs_rmi"), 1.0, _x,
            cold=d.get("janitor_list_cold_module_vs_rmi"))
        if big_n != 300:
            add("check-mode module time ≤ the engine's listing (row 6) + 0.5 s, N=300",
                over_listing(sizes[300], d.get("janitor_list_check_module")), 0.5, _over,
                cold=over_listing(sizes[300], d.get("janitor_list_check_cold_module")))
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
    small = ""
    if results.get("repeat_small") and results["repeat_small"] != results.get("repeat"):
        small = f" ({results['repeat_small']} at N ≤ {results.get('small_n', '?')})"
    lines.append(f"Machine: {machine.get('description', '?')}. Engine: {results.get('engine', {}).get('describe', '?')}"
                 f"; data-root on {results.get('engine', {}).get('data_root', '?')}. Best of "
                 f"{results.get('repeat', '?')}{small} (community.docker loop: one run). Run {results.get('started', '?')}.")
    lines.append("")
    lines.append("Times are wall-clock seconds of the whole process (best round); client CPU is the user + system "
                 "CPU of that process and its children (not the engine's).")
    lines.append("")
    header = "| row | " + " | ".join(f"N={n}: time | × docker rmi | client CPU" for n in ns) + " |"
    lines.append(header)
    lines.append("|---|" + "---:|---:|---:|" * len(ns))
    cold_rows = has_cold(results)

    def labelled(label, janitor):
        return label + WARM if janitor and cold_rows else label

    for key, label, janitor in ROWS:
        if key.endswith("_cold") and not cold_rows:
            continue
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
        lines.append(f"| {labelled(label, janitor)} | " + " | ".join(cells) + " |")
    derived = {n: derive(sizes[n]) for n in ns}
    for key, label, janitor in DERIVED:
        if "_cold" in key and not cold_rows:
            continue
        cells = []
        for n in ns:
            value = derived[n].get(key)
            rmi = sizes[n]["rows"].get("docker_rmi", {}).get("seconds")
            cells += [_s(value), _x(value / rmi) if value is not None and rmi else "—", _s(cpu_module(sizes[n], key))]
        lines.append(f"| {labelled(label, janitor)} | " + " | ".join(cells) + " |")
    cells = []
    for n in ns:
        mem = sizes[n].get("memory", {})
        real, check = mem.get("real", {}), mem.get("check", {})
        text = (f"{real.get('max_rss_mib', 0):.1f} MiB (check mode {check.get('max_rss_mib', 0):.1f} MiB)"
                if real else "—")
        cells += [text, "", ""]
    lines.append(f"| {labelled('module process peak RSS, explicit list', True)} | " + " | ".join(cells) + " |")
    if cold_rows:
        cells = []
        for n in ns:
            cache = sizes[n].get("layer_cache") or {}
            if "listed_images_known" in cache:
                cells += [f"{cache['listed_images_known']} of {cache['listed_images']} listed images known, "
                          f"{cache.get('file_bytes', 0) / 1000:.0f} kB (warming run {_s(cache['warming_run_seconds'])})",
                          "", ""]
            else:
                cells += ["—", "", ""]
        lines.append("| layer_cache after the untimed warming check run | " + " | ".join(cells) + " |")
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
    cells = []
    for n in ns:
        rounds = round_ratios(sizes[n], "janitor_list")
        cells += [(", ".join(f"{r:.2f}×" for r in rounds) + f" (median {statistics.median(rounds):.2f}×)")
                  if rounds else "—", "", ""]
    label = labelled("module time × docker rmi, round by round (each round's own no-op and docker rmi)", True)
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
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

    def yes(met):
        return "yes" if met else "no" if met is False else "—"

    if cold_rows:
        lines.append("| target | warm layer_cache (the role's default; a host from its second run on) | met | "
                     "cold: no cache file (a first run) | met cold |")
        lines.append("|---|---:|:---:|---:|:---:|")
        for target in targets(results):
            cold = (target["cold_measured"], yes(target["cold_met"])) if "cold_measured" in target else ("—", "—")
            lines.append(f"| {target['target']} | {target['measured']} | {yes(target['met'])} | {cold[0]} | "
                         f"{cold[1]} |")
    else:
        lines.append("| target | measured | met |")
        lines.append("|---|---:|:---:|")
        for target in targets(results):
            lines.append(f"| {target['target']} | {target['measured']} | {yes(target['met'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    print(markdown(json.loads(path.read_text(encoding="utf-8"))))
