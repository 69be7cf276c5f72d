"""`make bench`: time removing the same image sets with janitor.docker, the docker CLI and community.docker.

See benchmarks/README.md for what each row means. In short, for each engine kind (default: the legacy engine and
the containerd image store) and each N (default 200, 300 and 1000) one private engine gets the same image set
(restored from a saved data-root before every destructive run), and the rows are timed in rounds, so every round
sees the machine in about the same state; each row reports its best round. Then the
planner alone is timed on a synthetic snapshot. The results go to benchmarks/results/latest.json (legacy) and
latest-<kind>.json (other kinds), and a Markdown table is printed for each.

``--smoke`` (CI): N=20, one round, no community.docker rows, a small planner snapshot, output to
.cache/bench-smoke.json unless --output is given. It checks the benchmark works, not how fast anything is.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CACHE = Path(os.environ.get("JANITOR_CACHE_DIR", REPO / ".cache"))
COLLECTIONS = CACHE / "collections"  # the working tree, linked as `make link` does; --commit uses an export
for _path in (str(BENCH), str(REPO)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import imageset  # noqa: E402
import planner_bench  # noqa: E402
import playbooks  # noqa: E402
import report  # noqa: E402
from tests.harness.ansible_runner import ansible_env  # noqa: E402
from tests.harness.registry import Registry  # noqa: E402

BENCH_VENV = CACHE / "bench-venv"
COMMUNITY_REQUIREMENTS = BENCH / "requirements-community.txt"
DEFAULT_OUTPUT = BENCH / "results" / "latest.json"
SMOKE_OUTPUT = CACHE / "bench-smoke.json"
MODULE_PYTHON = REPO / ".venv" / "bin" / "python"
DESTRUCTIVE = ("janitor_list", "janitor_list_cold", "janitor_filter", "docker_rmi", "community_prune")
SMALL_N = 300  # up to this N a row gets --repeat-small rounds


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# -- environment -----------------------------------------------------------------------------------------------
def module_python() -> str:
    """The interpreter every module runs with, ours and community.docker's alike."""
    fallback = MODULE_PYTHON if MODULE_PYTHON.exists() else sys.executable
    return os.environ.get("ANSIBLE_PYTHON_INTERPRETER") or str(fallback)


def use_collection(commit: str | None) -> dict:
    """Where ansible-playbook and the in-process runs import janitor.docker from; returns the source described.

    Without ``commit``: the working tree, through .cache/collections (as `make link` makes it). With ``commit``: an
    export of that commit under .cache/bench-src, so edits made in the working tree during a long run do not
    change what is measured.
    """
    global COLLECTIONS  # pylint: disable=global-statement
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=False).stdout.strip()
    if commit:
        sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", commit], capture_output=True, text=True,
                             check=True).stdout.strip()
        root = CACHE / "bench-src" / sha[:12]
        target = root / "ansible_collections" / "janitor" / "docker"
        if not target.exists():
            target.mkdir(parents=True)
            archive = subprocess.run(["git", "-C", str(REPO), "archive", sha], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
        COLLECTIONS = root
        source = {"source": "commit", "commit": sha}
    else:
        target = COLLECTIONS / "ansible_collections" / "janitor" / "docker"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(REPO)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "plugins"],
                               capture_output=True, text=True, check=False).stdout.strip()
        source = {"source": "working tree", "commit": head, "plugins_modified": bool(dirty)}
    sys.path.insert(0, str(COLLECTIONS))
    return source


def ensure_bench_venv() -> Path:
    """The separate virtualenv with the pinned ``ansible`` package (community.docker); made on first use."""
    wanted = hashlib.sha256(COMMUNITY_REQUIREMENTS.read_bytes()).hexdigest()
    marker = BENCH_VENV / ".installed"
    if marker.exists() and marker.read_text().strip() == wanted:
        return BENCH_VENV / "bin" / "ansible-playbook"
    log(f"installing {COMMUNITY_REQUIREMENTS.name} into {BENCH_VENV} (once)")
    if not (BENCH_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    subprocess.run([str(BENCH_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "-r", str(COMMUNITY_REQUIREMENTS)], check=True)
    marker.write_text(wanted)
    return BENCH_VENV / "bin" / "ansible-playbook"


def community_version(ansible_playbook: Path) -> dict:
    py = ansible_playbook.parent / "python"
    code = ("import json, importlib.metadata as m, pathlib, ansible_collections.community.docker as d;"
            "p = pathlib.Path(list(d.__path__)[0]) / 'MANIFEST.json';"
            "print(json.dumps({'ansible': m.version('ansible'), 'ansible-core': m.version('ansible-core'),"
            "'community.docker': json.loads(p.read_text())['collection_info']['version']}))")
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-500:]}


def machine() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()
    core = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "--version"], capture_output=True,
                          text=True, check=False).stdout.splitlines()[:1]
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "ansible_core": core[0] if core else "?",
        "load_average_at_start": [round(x, 2) for x in load],
        "description": f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Linux {platform.release()}, "
                       f"Python {platform.python_version()}, {core[0] if core else 'ansible-core ?'}; "
                       f"a shared machine (load average {load[0]:.1f} at the start)",
    }


# -- running things ---------------------------------------------------------------------------------------------
class Runner:
    def __init__(self, bench_engine: imageset.BenchEngine, workdir: Path, community_playbook: Path | None):
        self.be = bench_engine
        self.workdir = workdir
        self.community_playbook = community_playbook
        self.ours = Path(sys.executable).parent / "ansible-playbook"
        shim = workdir / "python-peak-rss"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{BENCH / "peak_rss.py"}" "$@"\n')
        shim.chmod(0o755)
        self.shim = shim

    @property
    def engine(self):
        return self.be.engine

    def env(self, extra: dict | None = None) -> dict:
        env = ansible_env({
            "DOCKER_HOST": self.engine.url,
            "ANSIBLE_PYTHON_INTERPRETER": module_python(),
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "ANSIBLE_LIBRARY": str(BENCH / "library"),
        })
        for key in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_TLS", "DOCKER_API_VERSION"):
            env.pop(key, None)
        env.update(extra or {})
        return env

    def playbook(self, playbook: Path, check: bool = False, community: bool = False, rss_file: Path | None = None,
                 timeout: float = 1800, keep_result: Path | None = None) -> dict:
        """Run ansible-playbook; returns seconds, rc and a summary of the ``bench`` task's result (written whole to
        ``keep_result`` when given, without the keys Ansible adds)."""
        results_file = self.workdir / "results.jsonl"
        results_file.unlink(missing_ok=True)
        extra = {"JANITOR_RESULTS_FILE": str(results_file)}
        if rss_file is not None:
            extra.update({"ANSIBLE_PYTHON_INTERPRETER": str(self.shim), "JANITOR_BENCH_PYTHON": module_python(),
                          "JANITOR_BENCH_RSS_FILE": str(rss_file)})
        binary = self.community_playbook if community else self.ours
        cmd = [str(binary), "-i", "localhost,", str(playbook)] + (["--check"] if check else [])
        env = self.env(extra)
        cpu_before = _children_cpu()
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        seconds = time.perf_counter() - started
        cpu = _children_cpu() - cpu_before
        records = []
        if results_file.exists():
            records = [json.loads(line) for line in results_file.read_text().splitlines() if line.strip()]
        task = [r for r in records if r["task"] == playbooks.TASK]
        summary = {"seconds": seconds, "rc": proc.returncode, "cpu_seconds": cpu}
        if task:
            summary["result"] = summarize(task[-1]["result"])
            if keep_result is not None:
                kept = {k: v for k, v in task[-1]["result"].items() if k != "invocation" and not k.startswith("_")}
                keep_result.write_text(json.dumps(kept), encoding="utf-8")
        if proc.returncode != 0:
            summary["error"] = (proc.stdout[-1500:] + proc.stderr[-1500:]).strip()
        return summary

    def _timed_cli(self, *commands: list) -> tuple[dict, list]:
        """The docker CLI commands run one after the other against the engine and timed together: the row's
        ``seconds``, ``rc`` (the first failure's), client ``cpu_seconds`` and ``error``, and the finished processes."""
        env = self.engine.env()
        cpu_before = _children_cpu()
        started = time.perf_counter()
        procs = [subprocess.run(["docker", "-H", self.engine.url, *args], capture_output=True, text=True, env=env,
                                check=False) for args in commands]
        out = {"seconds": time.perf_counter() - started,
               "rc": next((proc.returncode for proc in procs if proc.returncode), 0),
               "cpu_seconds": _children_cpu() - cpu_before}
        if out["rc"]:
            out["error"] = "".join(proc.stderr for proc in procs)[-1500:]
        return out, procs

    def engine_listing(self) -> dict:
        """The engine's own listing time: ``docker image ls -a`` and ``docker ps -a`` through the CLI, what any
        tool must at least ask before it can choose what to remove."""
        out, (images, containers) = self._timed_cli(["image", "ls", "-a"], ["ps", "-a"])
        out["result"] = {"images": max(0, len(images.stdout.splitlines()) - 1),
                         "containers": max(0, len(containers.stdout.splitlines()) - 1)}
        return out

    def engine_inspect_all(self) -> dict:
        """The engine's own inspect of every image: ``docker image inspect`` with every image ID in one call (the
        IDs listed first, untimed). What a tool that reports each image's layers must ask too, as a cold
        ``image_remove`` run does; the containerd store answers it in a time that grows with its number of images."""
        listing, (listed,) = self._timed_cli(["image", "ls", "-a", "-q", "--no-trunc"])
        if listing["rc"]:
            return dict(listing, result={"images": 0})
        ids = sorted(set(listed.stdout.split()))
        out, _procs = self._timed_cli(["image", "inspect", *ids])
        out["result"] = {"images": len(ids)}
        return out

    def docker_rmi(self, image_set: imageset.ImageSet) -> dict:
        out, (_rm, rmi) = self._timed_cli(["rm", *image_set.containers], ["rmi", *image_set.references])
        out["result"] = {"untagged": rmi.stdout.count("Untagged:"), "deleted": rmi.stdout.count("Deleted:")}
        return out


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (the client side; the engine is not a child)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def summarize(result: dict) -> dict:
    """Counts from a task result (ours, a loop, or docker_prune)."""
    out = {"failed": bool(result.get("failed")), "changed": bool(result.get("changed"))}
    for key in ("untagged", "deleted", "deleted_layers", "containers_removed", "skipped", "skipped_images",
                "not_found"):
        if isinstance(result.get(key), list):
            out[key] = len(result[key])
    if isinstance(result.get("space_reclaimed"), int):
        out["space_reclaimed"] = result["space_reclaimed"]
    cache_warnings = [str(w)[:300] for w in result.get("warnings") or () if "layer_cache" in str(w)]
    if cache_warnings:
        out["layer_cache_warnings"] = cache_warnings
    if isinstance(result.get("results"), list):
        items = result["results"]
        out["items"] = len(items)
        out["items_failed"] = sum(1 for item in items if item.get("failed"))
    for key in ("images", "containers"):
        if isinstance(result.get(key), list) and "images_space_reclaimed" in result:
            out[f"pruned_{key}"] = len(result[key])
    if result.get("msg") and out["failed"]:
        out["msg"] = str(result["msg"])[:500]
    return out


def record(rows: dict, key: str, sample: dict, leftovers: dict | None = None) -> None:
    row = rows.setdefault(key, {"samples": []})
    entry = {"seconds": round(sample["seconds"], 4), "rc": sample["rc"],
             "cpu_seconds": round(sample.get("cpu_seconds", 0.0), 4)}
    if leftovers is not None:
        entry["left"] = leftovers
    for extra in ("result", "error"):
        if extra in sample:
            entry[extra] = sample[extra]
    row["samples"].append(entry)
    ok = [s["seconds"] for s in row["samples"] if report.counts(key, s)]
    row["seconds"] = min(ok) if ok else None
    flag = "" if sample["rc"] == 0 else f"  rc={sample['rc']} {sample.get('error', '')[-300:]}"
    left = f"  left={leftovers}" if leftovers and any(leftovers.values()) else ""
    log(f"  {key:22} {sample['seconds']:8.3f} s{flag}{left}")


def measure_size(runner: Runner, n: int, args) -> dict:
    be = runner.be
    log(f"N={n}: making the image set")
    be.wipe()
    registry = Registry()
    registry.start()  # only while the set is made: its pulled images keep their names and RepoDigests after
    try:
        image_set = imageset.make_set(be.engine, n, registry)
    finally:
        registry.stop()
    be.save()
    log(f"N={n}: {image_set.describe()}")
    paths = playbooks.write_all(runner.workdir, image_set)
    caches = playbooks.cache_paths(runner.workdir, n)
    caches["warm"].unlink(missing_ok=True)
    rows: dict = {}
    size = {"set": image_set.describe(), "rows": rows}

    def cold(check: bool) -> dict:
        """The explicit list with its ``layer_cache`` file deleted just before the run: a first run."""
        caches["cold"].unlink(missing_ok=True)
        return runner.playbook(paths["janitor_list_cold"], check=check)

    def destructive(key: str, run) -> None:
        engine = be.restore()
        sample = run()
        record(rows, key, sample, imageset.leftovers(engine, image_set))

    memory_samples = {}

    def rss_path(mode):
        path = runner.workdir / f"rss-{mode}.jsonl"
        path.unlink(missing_ok=True)
        return path

    rounds = rounds_at(args, n)
    size["rounds"] = rounds
    for round_no in range(rounds):
        log(f"N={n}: round {round_no + 1}/{rounds}")
        be.restore()
        if round_no == 0:
            # untimed: one check run fills the warm rows' layer_cache, which then stays across the restores
            size["layer_cache"] = warm_cache(runner, paths["janitor_list"], caches["warm"])
        memory_samples["check"] = runner.playbook(paths["janitor_list"], check=True,
                                                  rss_file=rss_path("check") if args.smoke else None,
                                                  keep_result=runner.workdir / playbooks.RECORDED_CHECK_RESULT)
        record(rows, "janitor_list_check", memory_samples["check"])
        record(rows, "janitor_list_check_cold", cold(check=True))
        record(rows, "echo_check", runner.playbook(paths["echo_check"], check=True))
        record(rows, "janitor_filter_check", runner.playbook(paths["janitor_filter"], check=True))
        record(rows, "noop", runner.playbook(paths["noop"]))
        record(rows, "engine_listing", runner.engine_listing())
        record(rows, "engine_inspect_all", runner.engine_inspect_all())
        if runner.community_playbook:
            record(rows, "noop_community", runner.playbook(paths["noop"], community=True))
        if args.smoke:
            engine = be.restore()
            memory_samples["real"] = runner.playbook(paths["janitor_list"], rss_file=rss_path("real"))
            record(rows, "janitor_list", memory_samples["real"], imageset.leftovers(engine, image_set))
        else:
            destructive("janitor_list", lambda: runner.playbook(paths["janitor_list"]))
        destructive("janitor_list_cold", lambda: cold(check=False))
        destructive("janitor_filter", lambda: runner.playbook(paths["janitor_filter"]))
        destructive("docker_rmi", lambda: runner.docker_rmi(image_set))
        if runner.community_playbook:
            destructive("community_prune", lambda: runner.playbook(paths["community_prune"], community=True))

    # peak memory of the module process, in separate runs (the measuring wrapper costs a process start);
    # the smoke run measures it in its timed runs instead, to stay short
    memory = {}
    for mode, check in (("check", True), ("real", False)):
        rss_file = runner.workdir / f"rss-{mode}.jsonl"
        if args.smoke:
            sample = memory_samples[mode]
            engine = be.engine
        else:
            engine = be.restore()
            sample = runner.playbook(paths["janitor_list"], check=check, rss_file=rss_path(mode))
        lines = [json.loads(line) for line in rss_file.read_text().splitlines()] if rss_file.exists() else []
        if lines:
            peak = max(lines, key=lambda item: item["max_rss_kib"])
            memory[mode] = {"max_rss_mib": round(peak["max_rss_kib"] / 1024, 1),
                            "module_process_wall_seconds": peak["wall_seconds"],
                            "module_process_cpu_seconds": round(peak["user_seconds"] + peak["system_seconds"], 4),
                            "playbook_seconds": round(sample["seconds"], 4), "rc": sample["rc"]}
        if not check and not args.smoke and mode in memory:
            memory[mode]["left"] = imageset.leftovers(engine, image_set)
        log(f"  memory {mode:15} {memory.get(mode)}")
    size["memory"] = memory

    # community.docker's loop: one run, only up to --community-loop-max images (about 0.3 s per reference)
    if runner.community_playbook and n <= args.community_loop_max:
        destructive("community_loop", lambda: runner.playbook(paths["community_loop"], community=True))
    elif runner.community_playbook:
        rows["community_loop"] = {"seconds": None, "skipped": f"not run above N={args.community_loop_max}"}
    else:
        rows["community_loop"] = {"seconds": None, "skipped": "community.docker rows off"}
    if not runner.community_playbook:
        rows["community_prune"] = {"seconds": None, "skipped": "community.docker rows off"}
        rows["noop_community"] = {"seconds": None, "skipped": "community.docker rows off"}
    size["space"] = space(runner, paths["janitor_list"])
    size["image_set"] = image_set
    return size


def warm_cache(runner: Runner, playbook: Path, path: Path) -> dict:
    """The untimed check run that fills the warm ``layer_cache``, and what the file then knows: its entries, and
    how many of the images the engine lists it knows with their listed size (those the warm runs do not inspect;
    the restored state lists the same IDs and sizes)."""
    sample = runner.playbook(playbook, check=True)
    out = {"path": path.name, "warming_run_seconds": round(sample["seconds"], 4), "warming_run_rc": sample["rc"]}
    try:
        entries = json.loads(path.read_text(encoding="utf-8")).get("images") or {}
        out["file_bytes"] = path.stat().st_size
    except (OSError, ValueError, AttributeError) as exc:
        entries = {}
        out["error"] = f"{type(exc).__name__}: {exc}"
    listed = runner.engine.api.images(all=True)
    out["entries"] = len(entries)
    out["listed_images"] = len(listed)
    out["listed_images_known"] = sum(1 for image in listed
                                     if (entries.get(image["Id"]) or {}).get("size") == image.get("Size"))
    log(f"  layer_cache warmed in {sample['seconds']:.3f} s (rc={sample['rc']}): {out['listed_images_known']} of "
        f"{out['listed_images']} listed images known")
    return out


def space(runner: Runner, playbook: Path) -> dict:
    """The explicit-list real run once more, untimed: the module's ``space_reclaimed`` next to the drop of the
    engine's own ``docker system df`` ``LayersSize`` (layers no image needs any more; the keep images still use
    one base layer of the set)."""
    engine = runner.be.restore()
    before = engine.api.df().get("LayersSize")
    result_file = runner.workdir / "space-result.json"
    result_file.unlink(missing_ok=True)
    sample = runner.playbook(playbook, keep_result=result_file)
    after = runner.engine.api.df().get("LayersSize")
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    out = {"module_space_reclaimed": result.get("space_reclaimed"),
           "engine_layers_size_before": before, "engine_layers_size_after": after,
           "engine_layers_size_drop": before - after if isinstance(before, int) and isinstance(after, int) else None,
           "rc": sample["rc"]}
    log(f"  space: module {out['module_space_reclaimed']}, engine LayersSize drop {out['engine_layers_size_drop']}")
    return out


def extrapolate_loop(sizes: dict) -> None:
    """The community loop above --community-loop-max: its per-reference time at the largest measured N."""
    measured = [(n, s) for n, s in sizes.items() if s["rows"].get("community_loop", {}).get("seconds")]
    if not measured:
        return
    n0, s0 = max(measured, key=lambda pair: pair[0])
    per_ref = ((s0["rows"]["community_loop"]["seconds"] - (s0["rows"].get("noop_community", {}).get("seconds") or 0))
               / (s0["set"]["references"] + s0["set"]["containers"]))
    for n, size in sizes.items():
        row = size["rows"].get("community_loop", {})
        if row.get("seconds") is None and size["rows"].get("noop_community", {}).get("seconds") is not None:
            refs = size["set"]["references"] + size["set"]["containers"]
            row["extrapolated_seconds"] = round(size["rows"]["noop_community"]["seconds"] + per_ref * refs, 2)
            row["extrapolated_from"] = (f"N={n0}: {per_ref * 1000:.0f} ms per item (loop minus its no-op run) "
                                        f"× {refs} items + the no-op run")


# -- profile ----------------------------------------------------------------------------------------------------
PHASES = (
    ("_snapshot", "read"), ("_references", "resolve"), ("_selection", "_select"), ("_planner", "plan"),
    ("_result", "build"), ("_executor", "apply"), ("_executor", "differences"),
)


def profile(be: imageset.BenchEngine, image_set: imageset.ImageSet, out_path: Path, caches: dict) -> dict:
    """Where the module's time goes at this N: phase wall times (no profiler) with the warm ``layer_cache`` (the
    timed rows' file) and cold (a file deleted just before the run), then cProfile of both modes, warm."""
    import importlib

    from tests.harness.ansible_runner import run_module

    utils = {name: importlib.import_module(f"ansible_collections.janitor.docker.plugins.module_utils.{name}")
             for name in ("_snapshot", "_references", "_selection", "_planner", "_result", "_executor",
                          "_transport", "_layer_reader", "_layer_cache")}
    phases: dict = {}
    originals = []
    inspected = []

    def wrap(owner, attr, label):
        original = getattr(owner, attr, None)
        if original is None:
            return
        originals.append((owner, attr, vars(owner).get(attr, original)))  # restored as it was (a classmethod too)

        def timed(*a, **kw):
            started = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                phases[label] = phases.get(label, 0.0) + time.perf_counter() - started
        setattr(owner, attr, timed)

    for module_name, func in PHASES:
        wrap(utils[module_name], func, f"{module_name}.{func}")
    wrap(utils["_layer_reader"].LayerReader, "layers", "_layer_reader.LayerReader.layers (waiting for the layer inspects)")
    wrap(utils["_layer_cache"].LayerCache, "load", "_layer_cache.LayerCache.load (reading the layer_cache file)")
    wrap(utils["_layer_cache"].LayerCache, "save", "_layer_cache.LayerCache.save (writing the layer_cache file)")
    reader_start = utils["_layer_reader"].LayerReader.start

    def counted_start(reader):
        inspected.append(len(reader.image_ids))
        return reader_start(reader)
    originals.append((utils["_layer_reader"].LayerReader, "start", reader_start))
    utils["_layer_reader"].LayerReader.start = counted_start
    for method, request in (("start", "GET /version"), ("info", "GET /info"), ("images", "GET /images/json?all=1"),
                            ("containers", "GET /containers/json?all=1")):
        wrap(utils["_transport"]._UnixEngine, method, f"engine answer to {request}")  # pylint: disable=protected-access
    args = {"images": image_set.references, "containers": "remove"}
    out = {}
    report_text = io.StringIO()
    try:
        for mode, check, cache in (("check", True, "warm"), ("real", False, "warm"), ("check_cold", True, "cold"),
                                   ("real_cold", False, "cold")):
            engine = be.restore()
            if cache == "cold":
                caches["cold"].unlink(missing_ok=True)
            phases.clear()
            inspected.clear()
            started = time.perf_counter()
            result = run_module("image_remove", {**args, "docker_host": engine.url, "layer_cache": str(caches[cache])},
                                check_mode=check)
            total = time.perf_counter() - started
            out[mode] = {"layer_cache": cache, "total_seconds": round(total, 4),
                         "images_inspected": sum(inspected),
                         "phases": {k: round(v, 4) for k, v in sorted(phases.items(), key=lambda kv: -kv[1])},
                         "failed": result.failed}
    finally:
        for owner, attr, original in originals:
            setattr(owner, attr, original)
    for mode, check in (("check", True), ("real", False)):
        engine = be.restore()
        prof = cProfile.Profile()
        prof.enable()
        run_module("image_remove", {**args, "docker_host": engine.url, "layer_cache": str(caches["warm"])},
                   check_mode=check)
        prof.disable()
        stream = io.StringIO()
        stats = pstats.Stats(prof, stream=stream)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(20)
        report_text.write(f"==== image_remove, explicit list, N={image_set.n}, {mode} mode, layer_cache warm, "
                          f"in-process cProfile (main thread only; worker threads show as waiting) ====\n")
        report_text.write(stream.getvalue().replace(str(REPO) + "/", "").replace(str(COLLECTIONS) + "/", ""))
    started = time.perf_counter()
    subprocess.run([module_python(), "-c", "import ansible_collections.janitor.docker.plugins.modules.image_remove"],
                   check=True, env={**os.environ, "PYTHONPATH": str(COLLECTIONS)})
    imports = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run([module_python(), "-c", "pass"], check=True)
    bare = time.perf_counter() - started
    out["python_start_seconds"] = round(bare, 4)
    out["module_import_seconds"] = round(imports - bare, 4)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    head = json.dumps(out, indent=2)
    out_path.write_text(f"phase wall times (seconds):\n{head}\n\n{report_text.getvalue()}", encoding="utf-8")
    return out


# -- main -------------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--smoke", action="store_true", help="small and quick: checks the benchmark still works")
    parser.add_argument("--sizes", default=None, help="comma-separated N (default 200,300,1000; smoke: 20)")
    parser.add_argument("--engine", default=None,
                        help="comma-separated engine kinds: legacy, classic, containerd (default legacy,containerd; "
                             "smoke: legacy); one results file each")
    parser.add_argument("--repeat", type=int, default=None, help="rounds per row (default 3; smoke: 1)")
    parser.add_argument("--repeat-small", type=int, default=None,
                        help=f"rounds per row at N <= {SMALL_N} (default 5, at least --repeat; smoke: 1): there the "
                             f"whole run takes about a second and the machine's noise is a larger share of it")
    parser.add_argument("--no-community", action="store_true", help="skip the community.docker rows")
    parser.add_argument("--community-loop-max", type=int, default=200,
                        help="run the community.docker loop only up to this N (default 200); above it the row "
                             "is extrapolated")
    parser.add_argument("--planner-images", type=int, default=None, help="synthetic snapshot size (default 10000)")
    parser.add_argument("--planner-containers", type=int, default=None, help="(default: half the images)")
    parser.add_argument("--no-profile", action="store_true", help="skip the in-process profile at the largest N")
    parser.add_argument("--on-disk", action="store_true", help="engine data-root under /tmp instead of /dev/shm")
    parser.add_argument("--output", type=Path, default=None, help="results JSON path")
    parser.add_argument("--commit", default=None,
                        help="measure this commit (exported to .cache/bench-src) instead of the working tree")
    args = parser.parse_args(argv)
    sizes = args.sizes or ("20" if args.smoke else "200,300,1000")
    args.engines = [kind.strip() for kind in (args.engine or ("legacy" if args.smoke else "legacy,containerd"))
                    .split(",") if kind.strip()]
    args.sizes = [int(x) for x in sizes.split(",") if x.strip()]
    args.repeat = args.repeat or (1 if args.smoke else 3)
    args.repeat_small = max(args.repeat, args.repeat_small or (1 if args.smoke else 5))
    args.no_community = args.no_community or args.smoke
    args.no_profile = args.no_profile or args.smoke
    args.planner_images = args.planner_images or (1000 if args.smoke else 10_000)
    args.planner_containers = args.planner_containers or args.planner_images // 2
    args.output = args.output or (SMOKE_OUTPUT if args.smoke else DEFAULT_OUTPUT)
    return args


def rounds_at(args, n: int) -> int:
    """The rounds per row at ``n`` images: more at the small sizes, where one round takes about a second."""
    return args.repeat_small if n <= SMALL_N else args.repeat


def output_for(args, kind: str) -> Path:
    """The results path of one engine kind: --output (or the default) for the legacy engine, ``<stem>-<kind>.json``
    beside it for the others, whichever kinds one run measures (``--engine containerd`` alone must not overwrite
    the legacy engine's results)."""
    if kind == "legacy":
        return args.output
    return args.output.with_name(f"{args.output.stem}-{kind}{args.output.suffix}")


def main(argv=None) -> int:
    args = parse_args(argv)
    source = use_collection(args.commit)
    community_playbook = None if args.no_community else ensure_bench_venv()
    for kind in args.engines:
        measure_engine(args, kind, output_for(args, kind), source, community_playbook)
    return 0


def measure_engine(args, kind: str, output: Path, source, community_playbook) -> None:
    results = {
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "smoke": args.smoke, "repeat": args.repeat, "repeat_small": args.repeat_small, "small_n": SMALL_N, "machine": machine(), "janitor_docker": source,
        "community": community_version(community_playbook) if community_playbook else None,
        "layer_cache": {"warm": "the janitor rows: layer_cache in the work dir, filled by one untimed check run per "
                                "N before the rounds, kept across the restores",
                        "cold": "the *_cold rows: the explicit list with its layer_cache file deleted just before "
                                "each run (a first run)"},
        "sizes": {},
    }
    be = imageset.BenchEngine(kind, on_disk=args.on_disk)
    sizes = {}
    try:
        engine = be.start()
        results["engine"] = {"kind": kind, "describe": engine.describe().rsplit(" at ", 1)[0],
                             "data_root": "tmpfs (/dev/shm)" if be.tmpfs else "disk (/tmp)"}
        log(results["engine"]["describe"])
        with tempfile.TemporaryDirectory(prefix="jd-bench-") as tmp:
            runner = Runner(be, Path(tmp), community_playbook)
            for n in args.sizes:
                sizes[n] = measure_size(runner, n, args)
            extrapolate_loop(sizes)
            if not args.no_profile:
                n = max(sizes)
                log(f"N={n}: profiling the module in-process")
                profile_path = output.with_name(output.stem + "-profile.txt")
                sizes[n]["profile"] = profile(be, sizes[n]["image_set"], profile_path,
                                              playbooks.cache_paths(runner.workdir, n))
    finally:
        be.close()
    for n, size in sizes.items():
        size.pop("image_set", None)
        size["derived"] = {k: round(v, 4) for k, v in report.derive(size).items()}
        results["sizes"][str(n)] = size
    log(f"planner: synthetic snapshot of {args.planner_images} images, {args.planner_containers} containers")
    results["planner"] = planner_bench.run(args.planner_images, args.planner_containers,
                                           repeat=1 if args.smoke else 3)
    results["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = report.targets(results)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = output.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    tmp_out.replace(output)
    print(report.markdown(results))
    log(f"results written to {output}")


if __name__ == "__main__":
    sys.exit(main())
