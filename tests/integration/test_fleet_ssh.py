"""The playbook janitor.docker.cleanup over real SSH (issue 19 item 11).

Debian's ``sshd``, started by the test (tests/harness/sshd.py), listens on 127.0.0.2 to 127.0.0.5 with a key the
test made. Four inventory hosts, one per address, each with a private engine of its own (the selected engine kinds
in turn, so with all three kinds the fourth host has a second engine of the first kind). ``forks: 4``: the dry
run, the real run in ``serial: 2`` batches, and a rerun. The fleet report is checked against each engine's state.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import pytest
import yaml

from tests.harness.ansible_runner import play_recap, run_playbook
from tests.harness.engines import Engine, engine_spec, selected_kinds
from tests.harness.images import ImageFactory
from tests.harness.sshd import SshServer, SshUnavailable, loopback_addresses

pytestmark = pytest.mark.engine

UTC = timezone.utc
PLAYBOOK = "janitor.docker.cleanup"
TASK = "janitor.docker.image_cleanup : "
HOSTS = ["node1", "node2", "node3", "node4"]
RULES = [
    {"name": "dangling leftovers", "filters": {"dangling": True}},
    # a glob never matches across "/": "*:stable" would protect no shop/... name
    {"name": "old releases", "filters": {"reference": "shop/*"}, "keep_latest": 1, "exclude": ["shop/*:stable"]},
]
FORKS = ("--forks", "4")


def _populate(engine: Engine, host: str) -> dict:
    f = ImageFactory(engine)
    ids = {
        "web1": f.simple("shop/web:1", content=f"web 1 on {host}", created=datetime(2021, 1, 1, tzinfo=UTC)),
        "web2": f.simple("shop/web:2", content=f"web 2 on {host}", created=datetime(2022, 1, 1, tzinfo=UTC)),
        "stable": f.simple("shop/api:stable", content=f"api on {host}", created=datetime(2018, 1, 1, tzinfo=UTC)),
        "api1": f.simple("shop/api:1", content=f"api 1 on {host}", created=datetime(2019, 1, 1, tzinfo=UTC)),
        "api2": f.simple("shop/api:2", content=f"api 2 on {host}", created=datetime(2023, 1, 1, tzinfo=UTC)),
        "dangling": f.simple(content=f"leftover on {host}"),
        "ci": f.simple(content=f"ci build on {host}"),
    }
    # a CI leftover: a dangling build that a stopped container still uses (kept, not a failure)
    f.stopped_container(ids["ci"])
    return ids


@pytest.fixture(scope="module")
def ssh_fleet(request, tmp_path_factory):
    kinds = selected_kinds(request.config.getoption("--engines"))
    for kind in kinds:
        why = engine_spec(kind).missing()
        if why:
            pytest.skip(why)
    engines = {}
    try:
        for index, host in enumerate(HOSTS):
            engines[host] = Engine(engine_spec(kinds[index % len(kinds)])).start()
        try:
            server = SshServer(loopback_addresses(len(HOSTS))).start()
        except SshUnavailable as exc:
            pytest.skip(str(exc))
        try:
            ids = {host: _populate(engine, host) for host, engine in engines.items()}
            tmp = tmp_path_factory.mktemp("ssh")
            hosts = {}
            for host, address in zip(HOSTS, server.addresses):
                hosts[host] = dict(server.host_vars(address), ansible_python_interpreter=sys.executable,
                                   image_cleanup_docker_host=engines[host].url,
                                   image_cleanup_layer_cache=str(tmp / f"{host}-layers.json"))
            inventory = tmp / "inventory.yml"
            inventory.write_text(yaml.safe_dump({"all": {
                "vars": {"image_cleanup_rules": RULES, "image_cleanup_report_dir": str(tmp / "reports")},
                "hosts": hosts}}, sort_keys=False))
            yield {"engines": engines, "ids": ids, "server": server, "inventory": str(inventory),
                   "reports": tmp / "reports"}
        finally:
            server.stop()
    finally:
        for engine in engines.values():
            engine.stop()


@pytest.fixture(scope="module")
def runs(ssh_fleet, tmp_path_factory):
    inventory = ssh_fleet["inventory"]
    states = {}
    control = tmp_path_factory.mktemp("ssh-control")

    def own_connections(name):
        """Each run its own ssh master connections (ControlPath directory), so that each run is seen logging in
        on every address, however quickly the next run follows."""
        return {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(control / name)}

    def state():
        return {host: engine.state() for host, engine in ssh_fleet["engines"].items()}

    states["before"] = state()
    check = run_playbook(PLAYBOOK, inventory=inventory, check=True, args=FORKS, env=own_connections("check"))
    states["after_check"] = state()
    dry = json.loads((ssh_fleet["reports"] / "image-cleanup.dry-run.json").read_text())
    real = run_playbook(PLAYBOOK, inventory=inventory, args=FORKS, extra_vars={"image_cleanup_serial": 2},
                        env=own_connections("real"))
    states["after_real"] = state()
    done = json.loads((ssh_fleet["reports"] / "image-cleanup.json").read_text())
    again = run_playbook(PLAYBOOK, inventory=inventory, args=FORKS, env=own_connections("again"))
    rerun = json.loads((ssh_fleet["reports"] / "image-cleanup.json").read_text())
    return {"check": check, "real": real, "again": again, "dry": dry, "done": done, "rerun": rerun,
            "states": states}


def test_every_host_was_reached_over_ssh(runs, ssh_fleet):
    for run in ("check", "real", "again"):
        assert runs[run].rc == 0, runs[run].stdout[-4000:]
        assert sorted(play_recap(runs[run].stdout)) == HOSTS
    connections = ssh_fleet["server"].connections()
    # each address: the harness's readiness probe, then at least one login per run (each run its own masters)
    assert all(count >= 1 + 3 for count in connections.values()), connections
    assert ssh_fleet["server"].accepted_logins() >= 3 * len(HOSTS)
    summary = runs["real"].task(TASK + "Show this host's summary", "node1")["msg"]
    assert [line.split(":")[0] for line in summary[1:]] == ["rule 'dangling leftovers'", "rule 'old releases'"]


def test_dry_run_changes_nothing_and_predicts_the_real_run(runs):
    assert runs["states"]["after_check"] == runs["states"]["before"]
    drop = ("dry_run", "generated_at")
    assert {k: v for k, v in runs["dry"].items() if k not in drop} == \
        {k: v for k, v in runs["done"].items() if k not in drop}
    assert runs["dry"]["dry_run"] is True and runs["done"]["dry_run"] is False


def test_fleet_report_matches_each_engine(runs, ssh_fleet):
    report = runs["done"]
    assert report["hosts"] == {"total": 4, "ok": 4, "failed": 0, "changed": 4, "names": HOSTS}
    after = runs["states"]["after_real"]
    before = runs["states"]["before"]
    total_deleted = 0
    for entry in report["per_host"]:
        host, ids = entry["host"], ssh_fleet["ids"][entry["host"]]
        images = after[host]["images"]
        # what the report says was deleted is gone, everything else the engine had is still there
        assert set(entry["deleted"]) == set(before[host]["images"]) - set(images)
        assert set(entry["deleted"]) == {ids["web1"], ids["api1"], ids["dangling"]}
        for ref in entry["untagged"]:
            assert all(ref not in refs for refs in images.values())
        assert images[ids["stable"]] == before[host]["images"][ids["stable"]]  # untouched, digests too
        assert ids["web2"] in images and ids["api2"] in images and ids["ci"] in images
        rules = {r["name"]: r for r in entry["rules"]}
        assert [s["image"] for s in rules["dangling leftovers"]["skipped"]] == [ids["ci"]]
        assert rules["dangling leftovers"]["skipped"][0]["reason"] == "container"
        kept = {k["image"]: k["reason"] for k in rules["old releases"]["kept"]}
        assert kept == {ids["stable"]: "excluded", ids["web2"]: "keep_latest", ids["api2"]: "keep_latest"}
        assert after[host]["containers"] == before[host]["containers"]
        total_deleted += len(entry["deleted"])
    assert report["totals"]["deleted"] == total_deleted == 12


def test_serial_batches_and_rerun(runs):
    real = runs["real"].stdout
    assert real.count("PLAY [Clean up Docker images and check Docker storage]") == 2  # two batches of two
    assert all(c["changed"] >= 1 and c["failed"] == 0 for c in play_recap(real).values())
    assert all(c["changed"] == 0 for c in play_recap(runs["again"].stdout).values()), runs["again"].stdout[-3000:]
    rerun = runs["rerun"]
    assert rerun["totals"]["deleted"] == 0 and rerun["totals"]["untagged"] == 0 and rerun["hosts"]["changed"] == 0
    assert rerun["totals"]["skipped"] == 4  # each host's CI build, still in use
