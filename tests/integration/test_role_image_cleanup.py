"""The role janitor.docker.image_cleanup through the shipped playbook, on a fleet of three private engines.

Three inventory hosts (local connection, each with its own ``docker_host``): ``alpha`` on the legacy engine,
``bravo`` on the classic one and ``charlie`` on the containerd one, which is also given the storage facts of a
devicemapper loop-lvm daemon (a copy of a real ``docker info``), so its storage check is critical: its rules run
(removing unused images is what the finding's remedy asks for) and the host fails afterwards. The same playbook
runs as a dry run, for real, again (idempotent), and once more with one daemon
killed and one host unreachable.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from ansible_collections.janitor.docker.plugins.filter.image_cleanup import image_cleanup_rule_line as rule_line
from ansible_collections.janitor.docker.plugins.module_utils._units import human_size
from tests.harness.ansible_runner import play_recap, run_playbook
from tests.harness.images import ImageFactory

pytestmark = pytest.mark.engine

UTC = timezone.utc
PLAYBOOK = "janitor.docker.cleanup"
LOOP_LVM = Path(__file__).parent / "fixtures" / "image_cleanup" / "loop-lvm-19.03-info.json"
HOSTS = {"alpha": "legacy", "bravo": "classic", "charlie": "containerd"}
RULES = [
    {"name": "retired tools", "images": ["tools/old:1", "shop/gone:9"], "containers": "skip"},
    {"name": "newest web only", "filters": {"reference": "shop/web"}, "keep_latest": 1, "containers": "skip"},
    {"name": "dangling leftovers", "filters": {"dangling": True}},
]
NOT_COMPARABLE = ("dry_run", "generated_at")
TASK = "janitor.docker.image_cleanup : "  # how ansible-playbook names the role's tasks


def _populate(engine) -> dict:
    engine.reset()
    f = ImageFactory(engine)
    ids = {
        "web1": f.simple("shop/web:1", content=f"web 1 on {engine.kind}", created=datetime(2021, 1, 1, tzinfo=UTC)),
        "web2": f.simple("shop/web:2", "shop/web:stable", content="web 2", created=datetime(2022, 1, 1, tzinfo=UTC)),
        "old": f.simple("tools/old:1", content="old tool"),
        "dangling": f.simple(content=f"leftover on {engine.kind}"),
    }
    return ids


@pytest.fixture(scope="module")
def fleet(engine_pool, tmp_path_factory):
    engines = {host: engine_pool.get(kind) for host, kind in HOSTS.items()}
    ids = {host: _populate(engine) for host, engine in engines.items()}
    # alpha's old tool is still used by a stopped container: skipped with a reason
    ImageFactory(engines["alpha"]).stopped_container(ids["alpha"]["old"])
    tmp = tmp_path_factory.mktemp("fleet")
    return {"engines": engines, "ids": ids, "tmp": tmp}


def _inventory(fleet, name: str, extra_hosts: dict | None = None) -> str:
    hosts = {
        host: {"image_cleanup_docker_host": engine.url, "ansible_connection": "local",
               "ansible_python_interpreter": sys.executable}
        for host, engine in fleet["engines"].items()
    }
    hosts["charlie"]["image_cleanup_storage_docker_info"] = LOOP_LVM.read_text()
    hosts.update(extra_hosts or {})
    inventory = {"all": {
        "vars": {"image_cleanup_rules": RULES, "image_cleanup_report_dir": str(fleet["tmp"] / name),
                 "image_cleanup_layer_cache": str(fleet["tmp"] / f"{name}-layers.json")},
        "children": {"docker_hosts": {"hosts": hosts}},
    }}
    path = fleet["tmp"] / f"{name}.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return str(path)


def _report(fleet, name: str, dry_run: bool) -> tuple[dict, str]:
    base = fleet["tmp"] / name / ("image-cleanup.dry-run" if dry_run else "image-cleanup")
    json_file, md_file = Path(f"{base}.json"), Path(f"{base}.md")
    assert json_file.is_file() and md_file.is_file(), f"no report {base}.json/.md"
    return json.loads(json_file.read_text()), md_file.read_text()


def _comparable(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in NOT_COMPARABLE}


def _states(fleet) -> dict:
    return {host: engine.state() for host, engine in fleet["engines"].items()}


@pytest.fixture(scope="module")
def runs(fleet):
    """The dry run, the real run and the rerun, with the engines' state before and after each."""
    inventory = _inventory(fleet, "main")
    before = _states(fleet)
    check = run_playbook(PLAYBOOK, inventory=inventory, check=True)
    after_check = _states(fleet)
    dry = _report(fleet, "main", dry_run=True)
    real = run_playbook(PLAYBOOK, inventory=inventory)
    after_real = _states(fleet)
    done = _report(fleet, "main", dry_run=False)
    again = run_playbook(PLAYBOOK, inventory=inventory)
    return {"check": check, "real": real, "again": again, "dry": dry, "done": done,
            "before": before, "after_check": after_check, "after_real": after_real}


def test_dry_run_changes_nothing_and_says_so(runs):
    assert runs["after_check"] == runs["before"]
    report, markdown = runs["dry"]
    assert report["dry_run"] is True
    assert "DRY RUN" in markdown
    summary = runs["check"].task(TASK + "Show this host's summary", "alpha")["msg"]
    assert summary[0].startswith("DRY RUN")


def test_the_dry_run_remembers_every_image_layers_and_the_real_run_uses_them(runs, fleet):
    """The dry run writes the layer cache (the hosts share one file here: their engines run on this machine), so
    the real run reads the layers from it; its report equals the dry run's (the next test)."""
    cache = json.loads((fleet["tmp"] / "main-layers.json").read_text())
    assert cache["version"] == 1
    for host, state in runs["before"].items():
        listed = fleet["engines"][host].api.images(all=True)
        missing = set(state["images"]) - set(cache["images"])
        assert not missing, (host, missing)
        for image in listed:
            entry = cache["images"][image["Id"]]
            assert entry["size"] == image["Size"]
            layers = fleet["engines"][host].api.inspect_image(image["Id"])["RootFS"]["Layers"]
            assert entry["layers"] == layers, (host, image["Id"])


def test_dry_run_report_equals_real_report(runs):
    (dry, dry_md), (done, done_md) = runs["dry"], runs["done"]
    assert done["dry_run"] is False
    assert _comparable(dry) == _comparable(done)

    def body(text):
        return [line for line in text.splitlines() if not line.startswith("> ")]

    assert body(dry_md) == body(done_md)
    assert dry_md != done_md  # the mark differs


def test_real_run_removes_what_the_rules_say(runs, fleet):
    ids = fleet["ids"]
    after = runs["after_real"]
    for host in ("alpha", "bravo"):
        assert ids[host]["web1"] not in after[host]["images"], runs["real"].stdout
        assert ids[host]["dangling"] not in after[host]["images"], runs["real"].stdout
        assert after[host]["images"][ids[host]["web2"]] == ["shop/web:2", "shop/web:stable"]
    assert ids["alpha"]["old"] in after["alpha"]["images"]  # used by a container: skipped
    assert ids["bravo"]["old"] not in after["bravo"]["images"]
    # charlie's storage check is critical: the default gate (after_rules) runs its rules first, then fails it
    assert ids["charlie"]["web1"] not in after["charlie"]["images"] and ids["charlie"]["old"] not in after["charlie"]["images"]


def test_report_contents(runs, fleet):
    report, markdown = runs["done"]
    assert report["hosts"]["names"] == ["alpha", "bravo", "charlie"]
    assert report["hosts"]["total"] == 3 and report["hosts"]["failed"] == 1 and report["hosts"]["ok"] == 2
    per_host = {h["host"]: h for h in report["per_host"]}
    for host in ("alpha", "bravo"):
        assert per_host[host]["status"] == "ok" and per_host[host]["changed"] is True
        assert fleet["ids"][host]["web1"] in per_host[host]["deleted"]
        assert "shop/web:1" in per_host[host]["untagged"]
        assert per_host[host]["counts"]["kept"] >= 1  # shop/web:2, the newest, by keep_latest
    assert per_host["charlie"]["status"] == "failed"
    assert per_host["charlie"]["highest_severity"] == "critical"
    assert [r["status"] for r in per_host["charlie"]["rules"]] == ["ok", "ok", "ok"]
    assert per_host["charlie"]["counts"]["deleted"] >= 3
    assert report["totals"]["space_reclaimed"] == sum(h["space_reclaimed"] for h in report["per_host"]) > 0
    assert report["totals"]["deleted"] == sum(h["counts"]["deleted"] for h in report["per_host"]) >= 4

    skipped = [s for s in report["skipped"] if s["host"] == "alpha"]
    assert [s["image"] for s in skipped] == [fleet["ids"]["alpha"]["old"]]
    assert skipped[0]["rule"] == "retired tools" and skipped[0]["reason"] and skipped[0]["containers"]
    assert {(n["host"], n["image"]) for n in report["not_found"]} == {(h, "shop/gone:9") for h in HOSTS}

    ranks = {"critical": 3, "warning": 2, "info": 1}
    severities = [ranks[f["severity"]] for f in report["findings"]]
    assert severities == sorted(severities, reverse=True)
    assert report["findings"][0]["host"] == "charlie" and report["findings"][0]["severity"] == "critical"
    assert report["remedies"][0]["id"] == "devicemapper_loop_lvm" and report["remedies"][0]["hosts"] == ["charlie"]
    assert "### Remedies" in markdown

    assert [f["host"] for f in report["failed_hosts"]] == ["charlie"]
    assert "storage" in report["failed_hosts"][0]["error"] and "after the cleanup rules" in report["failed_hosts"][0]["error"]
    for text in ("# Docker image cleanup report", "| charlie | failed |", "critical", "tools/old:1"):
        assert text in markdown


def test_markdown_lists_each_rule_by_name_and_short_id_in_decimal_units(runs, fleet):
    """Issue 19 item 7: fleet totals first, per host and rule what was untagged, deleted, kept, with the reason;
    12-hex short IDs; sizes like the docker CLI (the JSON keeps bytes)."""
    report, markdown = runs["done"]
    assert markdown.index("## Fleet totals") < markdown.index("## Failed hosts") < markdown.index("## Hosts")
    alpha = markdown[markdown.index("### alpha"):markdown.index("### bravo")]
    web1 = fleet["ids"]["alpha"]["web1"].split(":")[1]
    old = fleet["ids"]["alpha"]["old"].split(":")[1]
    assert f"  - deleted `{web1[:12]}` shop/web:1" in alpha
    assert "  - untagged shop/web:1" in alpha
    assert f"  - kept `{old[:12]}` tools/old:1: container" in alpha
    assert "shop/web:2, shop/web:stable: keep_latest (shop/web)" in alpha
    assert "  - not found shop/gone:9" in alpha
    assert web1 not in markdown  # never the 64-hex ID
    per_host = {h["host"]: h for h in report["per_host"]}
    space = per_host["alpha"]["space_reclaimed"]
    assert isinstance(space, int) and space > 0
    assert f"| {human_size(space)} |" in markdown
    rule = per_host["alpha"]["rules"][0]
    assert f"- rule **retired tools**: {rule_line(rule)}" in alpha
    for binary in ("MiB", "KiB", "Bytes"):
        assert binary not in markdown


def test_failed_host_is_marked_failed_and_others_finish(runs):
    real = runs["real"]
    assert real.rc == 2, real.stdout
    recap = play_recap(real.stdout)
    assert recap["charlie"]["failed"] == 1
    assert recap["alpha"]["failed"] == 0 and recap["bravo"]["failed"] == 0
    assert recap["alpha"]["changed"] >= 1


def test_rerun_is_idempotent(runs):
    again = runs["again"]
    recap = play_recap(again.stdout)
    assert set(recap) >= {"alpha", "bravo", "charlie"}, again.stdout
    assert all(counts["changed"] == 0 for counts in recap.values()), again.stdout
    for host in ("alpha", "bravo"):
        result = again.task(TASK + "Apply each cleanup rule", host)
        assert [r["changed"] for r in result["results"]] == [False, False, False]


def test_killed_daemon_and_unreachable_host_do_not_stop_the_others(runs, fleet):
    alpha, bravo = fleet["engines"]["alpha"], fleet["engines"]["bravo"]
    leftover = ImageFactory(alpha).simple(content="a new leftover")
    unreachable = {"delta": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9,
                             "ansible_user": "nobody", "ansible_ssh_common_args": "-o ConnectTimeout=5"}}
    inventory = _inventory(fleet, "faults", unreachable)
    bravo.kill()
    try:
        run = run_playbook(PLAYBOOK, inventory=inventory)
    finally:
        # the pool's session fixtures hold this Engine object: bring it back (fresh and empty) for later tests
        bravo.stop()
        bravo.start()
    assert run.rc != 0
    assert leftover not in alpha.state()["images"]
    report, markdown = _report(fleet, "faults", dry_run=False)
    assert report["hosts"]["names"] == ["alpha", "bravo", "charlie", "delta"]
    failed = {f["host"]: f for f in report["failed_hosts"]}
    assert sorted(failed) == ["bravo", "charlie", "delta"]
    assert "unreachable" in failed["delta"]["error"].lower() or "unreachable" in failed["delta"]["task"].lower()
    assert failed["bravo"]["error"]
    per_host = {h["host"]: h for h in report["per_host"]}
    assert per_host["alpha"]["status"] == "ok" and per_host["alpha"]["counts"]["deleted"] == 1
    assert "| delta | failed |" in markdown


CONNECTION_PLAY = """
- name: Connection settings, play level and role level
  hosts: all
  gather_facts: false
  module_defaults:
    group/janitor.docker.docker:
      docker_host: unix:///tmp/jd-no-such-daemon-play.sock
  roles:
    - role: janitor.docker.image_cleanup
      vars:
        image_cleanup_timeout: 3
"""


def test_connection_settings_layer_over_the_play_module_defaults(tmp_path):
    """Unset role variables leave the play's group module_defaults alone; set ones override that option only."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(CONNECTION_PLAY)
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {
        "play_level": local,
        "role_level": dict(local, image_cleanup_docker_host="unix:///tmp/jd-no-such-daemon-role.sock"),
    }}}))
    run = run_playbook(playbook, inventory=str(inventory))
    assert run.rc == 2
    read = TASK + "Read the storage facts and findings"
    assert "unix:///tmp/jd-no-such-daemon-play.sock" in run.task(read, "play_level")["msg"]
    assert "unix:///tmp/jd-no-such-daemon-role.sock" in run.task(read, "role_level")["msg"]


def test_storage_fail_on_levels_and_hosts_without_a_result(tmp_path):
    """No daemon needed: storage facts from docker-info fixtures, no rules. Each level of
    image_cleanup_storage_fail_on, a disabled check, and a host whose variables fail the role's argument spec
    (it never reaches the role's block, and the report still lists it)."""
    loop_lvm = LOOP_LVM.read_text()  # critical (loop-lvm) and warning (deprecated driver)
    direct_lvm = (LOOP_LVM.parent / "direct-lvm-17.03-docs.txt").read_text()  # warning only
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {
        "loop_default": dict(local, image_cleanup_storage_docker_info=loop_lvm),
        "loop_never": dict(local, image_cleanup_storage_docker_info=loop_lvm, image_cleanup_storage_fail_on="never"),
        "direct_default": dict(local, image_cleanup_storage_docker_info=direct_lvm),
        "direct_warning": dict(local, image_cleanup_storage_docker_info=direct_lvm,
                               image_cleanup_storage_fail_on="warning"),
        "unchecked": dict(local, image_cleanup_storage_check=False),
        "bad_rule": dict(local, image_cleanup_storage_docker_info=direct_lvm,
                         image_cleanup_rules=[{"images": ["a:1"], "containers": "sometimes"}]),
    }
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"vars": {"image_cleanup_report_dir": str(tmp_path / "r")},
                                                 "hosts": hosts}}))
    run = run_playbook(PLAYBOOK, inventory=str(inventory), check=True)
    recap = play_recap(run.stdout)
    assert {h: recap[h]["failed"] for h in hosts} == {
        "loop_default": 1, "loop_never": 0, "direct_default": 0, "direct_warning": 1, "unchecked": 0, "bad_rule": 1,
    }, run.stdout
    report = json.loads((tmp_path / "r" / "image-cleanup.dry-run.json").read_text())
    per_host = {h["host"]: h for h in report["per_host"]}
    assert per_host["loop_never"]["highest_severity"] == "critical" and per_host["loop_never"]["status"] == "ok"
    assert per_host["direct_default"]["highest_severity"] == "warning"
    assert per_host["unchecked"]["highest_severity"] is None
    failed = {f["host"]: f for f in report["failed_hosts"]}
    assert sorted(failed) == ["bad_rule", "direct_warning", "loop_default"]
    assert "no result from the role" in failed["bad_rule"]["error"]
    assert "warning" in failed["direct_warning"]["error"]
    summary = run.task(TASK + "Show this host's summary", "unchecked")["msg"]
    assert "storage: not checked" in summary
