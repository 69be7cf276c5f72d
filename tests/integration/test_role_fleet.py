"""The role and playbook as a fleet tool (issue 19): where the report goes and its history, idempotency, the
storage gate, connection variables, serial batches and the free strategy, 50 hosts, a CI host's dangling images.

Most tests need no daemon: the storage facts come from ``docker info`` fixtures and the daemons of failing hosts
are sockets that do not exist. The 50-host and CI-host tests use the harness's engines.
"""

from __future__ import annotations

import json
import re
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.harness.ansible_runner import REPO_ROOT, play_recap, run_playbook
from tests.harness.images import ImageFactory

PLAYBOOK = "janitor.docker.cleanup"
TASK = "janitor.docker.image_cleanup : "
FIXTURES = Path(__file__).parent / "fixtures" / "image_cleanup"
LOOP_LVM = (FIXTURES / "loop-lvm-19.03-info.json").read_text()  # critical
DIRECT_LVM = (FIXTURES / "direct-lvm-17.03-docs.txt").read_text()  # warning only
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
STAMPED = re.compile(r"^image-cleanup-\d{8}T\d{6}Z(\.dry-run)?\.(json|md)$")


def _write_inventory(path: Path, hosts: dict, **group_vars) -> str:
    # the role's layer cache in the test's directory, not the default under /var/cache on the test machine
    group_vars.setdefault("image_cleanup_layer_cache", str(path.parent / "layers.json"))
    path.write_text(yaml.safe_dump({"all": {"vars": group_vars, "hosts": hosts}}, sort_keys=False))
    return str(path)


def _dead_socket(tmp_path: Path, name: str) -> str:
    return f"unix://{tmp_path}/{name}-no-daemon.sock"


def test_report_location_history_and_idempotency(tmp_path):
    """Items 1, 2 and 8: a relative report directory is relative to where ansible-playbook runs (never inside the
    installed collection), the console names the absolute path, every run keeps its own files beside the latest
    copy, and writing the report (into a directory that does not exist yet) is never a change."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    hosts = {"one": dict(LOCAL, image_cleanup_storage_docker_info=DIRECT_LVM), "two": dict(LOCAL)}
    hosts["two"]["image_cleanup_storage_check"] = False
    inventory = _write_inventory(tmp_path / "inventory.yml", hosts, image_cleanup_report_dir="reports/fleet")
    reports = workdir / "reports" / "fleet"

    check = run_playbook(PLAYBOOK, inventory=inventory, check=True, cwd=workdir)
    assert check.rc == 0, check.stdout
    assert all(c["changed"] == 0 for c in play_recap(check.stdout).values()), check.stdout
    names = sorted(p.name for p in reports.iterdir())
    assert len(names) == 4 and "image-cleanup.dry-run.json" in names and "image-cleanup.dry-run.md" in names, names
    assert all(STAMPED.match(n) for n in names if n not in ("image-cleanup.dry-run.json", "image-cleanup.dry-run.md"))
    where = check.task(TASK + "Show where the fleet report is", "one")["msg"]
    assert f"latest: {reports}/image-cleanup.dry-run.json" in where and where.startswith("fleet report (dry run): /")
    assert not (REPO_ROOT / "playbooks" / "reports").exists()

    first = run_playbook(PLAYBOOK, inventory=inventory, cwd=workdir)
    time.sleep(1.1)  # the next run's files are named by the next second
    second = run_playbook(PLAYBOOK, inventory=inventory, cwd=workdir)
    for run in (first, second):
        assert run.rc == 0 and all(c["changed"] == 0 for c in play_recap(run.stdout).values()), run.stdout
    real = sorted(p.name for p in reports.iterdir() if STAMPED.match(p.name) and ".dry-run." not in p.name)
    assert len(real) == 4, real  # two runs, .json and .md each
    latest = json.loads((reports / "image-cleanup.json").read_text())
    newest = json.loads((reports / real[-2]).read_text())  # sorted: ...Z.json, ...Z.md of the second run last
    assert latest == newest and latest["dry_run"] is False
    dry = json.loads((reports / "image-cleanup.dry-run.json").read_text())
    assert dry["dry_run"] is True and dry["hosts"]["names"] == ["one", "two"]


def test_storage_gate_after_rules_by_default_or_before_rules(tmp_path):
    """Item 4: by default a host with a critical finding runs its rules, then fails; before_rules keeps the
    earlier behaviour. The rule talks to a daemon that is not there, so whether it ran shows in its status."""
    rule = [{"name": "dangling", "filters": {"dangling": True}}]
    hosts = {
        "after": dict(LOCAL, image_cleanup_storage_docker_info=LOOP_LVM,
                      image_cleanup_docker_host=_dead_socket(tmp_path, "after")),
        "before": dict(LOCAL, image_cleanup_storage_docker_info=LOOP_LVM, image_cleanup_storage_gate="before_rules",
                       image_cleanup_docker_host=_dead_socket(tmp_path, "before")),
        "bad_gate": dict(LOCAL, image_cleanup_storage_docker_info=LOOP_LVM, image_cleanup_storage_gate="sometimes"),
    }
    inventory = _write_inventory(tmp_path / "inventory.yml", hosts, image_cleanup_rules=rule,
                                 image_cleanup_report_dir=str(tmp_path / "r"))
    run = run_playbook(PLAYBOOK, inventory=inventory, check=True)
    assert {h: c["failed"] for h, c in play_recap(run.stdout).items()} == {"after": 1, "before": 1, "bad_gate": 1}
    assert "sometimes" in run.stdout and "before_rules" in run.stdout  # the argument spec names the choices
    report = json.loads((tmp_path / "r" / "image-cleanup.dry-run.json").read_text())
    per_host = {h["host"]: h for h in report["per_host"]}
    assert per_host["after"]["rules"][0]["status"] == "failed"  # it ran (and found no daemon)
    assert "after-no-daemon.sock" in per_host["after"]["rules"][0]["error"]
    assert per_host["before"]["rules"][0]["status"] == "not run"
    assert "no cleanup rule was run" in per_host["before"]["error"]["message"]
    assert per_host["before"]["highest_severity"] == "critical"


def test_docker_host_variable_is_used_and_unused_connection_variables_warned(tmp_path):
    """Item 6: a plain ``docker_host`` host variable reaches the modules (no fallback to the controller's socket);
    connection-like variables the role does not read are warned about once per host and listed in the report."""
    hosts = {
        "plain": dict(LOCAL, docker_host=_dead_socket(tmp_path, "plain"), tls=True, docker_cert_path="/etc/x"),
        "both": dict(LOCAL, docker_host=_dead_socket(tmp_path, "ignored"),
                     image_cleanup_docker_host=_dead_socket(tmp_path, "role")),
    }
    inventory = _write_inventory(tmp_path / "inventory.yml", hosts, image_cleanup_report_dir=str(tmp_path / "r"))
    run = run_playbook(PLAYBOOK, inventory=inventory, check=True)
    read = TASK + "Read the storage facts and findings"
    assert "plain-no-daemon.sock" in run.task(read, "plain")["msg"]
    assert "role-no-daemon.sock" in run.task(read, "both")["msg"]
    assert "/var/run/docker.sock" not in run.task(read, "plain")["msg"]
    warned = [r for r in run.results if r["task"] == TASK + "Warn about connection variables the role does not use"]
    assert [r["host"] for r in warned if "msg" in r["result"]] == ["plain"]  # once, and only where needed
    text = run.task(TASK + "Warn about connection variables the role does not use", "plain")["msg"]
    assert "docker_cert_path, tls" in text
    report = json.loads((tmp_path / "r" / "image-cleanup.dry-run.json").read_text())
    per_host = {h["host"]: h for h in report["per_host"]}
    assert [w.split()[1] for w in per_host["plain"]["warnings"]] == ["docker_cert_path", "tls"]
    assert per_host["both"]["warnings"] == []


FLEET = {
    # the first batch of two fails completely: the playbook must still reach every later host and the report
    "h1_loop": dict(LOCAL, image_cleanup_storage_docker_info=LOOP_LVM),
    "h2_loop": dict(LOCAL, image_cleanup_storage_docker_info=LOOP_LVM),
    "h3_direct": dict(LOCAL, image_cleanup_storage_docker_info=DIRECT_LVM),
    "h4_direct": dict(LOCAL, image_cleanup_storage_docker_info=DIRECT_LVM),
    "h5_unchecked": dict(LOCAL, image_cleanup_storage_check=False),
}
FLEET_FAILED = {"h1_loop", "h2_loop"}

OWN_PLAYBOOK = """
- name: My cleanup, two hosts at a time
  hosts: all
  gather_facts: false
  serial: 2
  strategy: free
  roles:
    - role: janitor.docker.image_cleanup
      vars:
        image_cleanup_fail_host: false

- name: Write the fleet report and fail the hosts whose cleanup failed
  hosts: all
  gather_facts: false
  tasks:
    - name: Finish the cleanup
      ansible.builtin.include_role:
        name: janitor.docker.image_cleanup
        tasks_from: finish
"""


@pytest.mark.parametrize("how", ["serial", "free", "serial+free", "own playbook"])
def test_report_covers_every_host_with_serial_batches_and_the_free_strategy(tmp_path, how):
    """Item 10: the report is written once from every host's result, whatever the batches or the strategy;
    a batch in which every host failed does not end the playbook early."""
    inventory = _write_inventory(tmp_path / "inventory.yml", FLEET, image_cleanup_report_dir=str(tmp_path / "r"))
    extra = {"serial": {"image_cleanup_serial": 2}, "free": {"image_cleanup_strategy": "free"},
             "serial+free": {"image_cleanup_serial": 2, "image_cleanup_strategy": "free"}}.get(how)
    playbook = PLAYBOOK
    if how == "own playbook":
        playbook = tmp_path / "mine.yml"
        playbook.write_text(OWN_PLAYBOOK)
    run = run_playbook(playbook, inventory=inventory, check=True, extra_vars=extra)
    recap = play_recap(run.stdout)
    assert {h: c["failed"] for h, c in recap.items()} == {h: int(h in FLEET_FAILED) for h in FLEET}, run.stdout
    writes = [r for r in run.results if r["task"] == TASK + "Write the fleet report as JSON"]
    assert len(writes) == 1  # once for the whole fleet
    report = json.loads((tmp_path / "r" / "image-cleanup.dry-run.json").read_text())
    assert report["hosts"]["names"] == sorted(FLEET) and report["hosts"]["total"] == len(FLEET)
    assert {f["host"] for f in report["failed_hosts"]} == FLEET_FAILED
    assert all("no result" not in f["error"] for f in report["failed_hosts"])  # every host has its own result
    per_host = {h["host"]: h for h in report["per_host"]}
    assert per_host["h3_direct"]["highest_severity"] == "warning" and per_host["h3_direct"]["status"] == "ok"


@pytest.mark.engine
def test_fifty_hosts_on_three_engines(engine_pool, tmp_path):
    """Item 11 (scale): 50 inventory hosts (local connection) share two engines; each host's rule removes its own
    image. Dry run, then the real run: the report and the summary hold every host, counts match the engines' state.

    Graph-driver engines only: on the containerd image store, listing the images while another client deletes
    one can fail with the engine's ``NotFound: content digest ...`` (seen with 17 hosts on one engine), which
    ``docker image ls`` meets as well; that is not what this test is about."""
    engines = [engine_pool.get(kind) for kind in ("legacy", "classic")]
    hosts, ids = {}, {}
    for engine in engines:
        engine.reset()
    for index in range(50):
        name = f"sim{index:02d}"
        engine = engines[index % 2]
        ids[name] = (engine, ImageFactory(engine).simple(f"sim/{name}:1", content=f"image of {name}"))
        hosts[name] = dict(LOCAL, image_cleanup_docker_host=engine.url, image_cleanup_storage_check=index % 2 == 0)
    rules = [{"name": "own image", "images": ["sim/{{ inventory_hostname }}:1"]}]
    inventory = _write_inventory(tmp_path / "inventory.yml", hosts, image_cleanup_rules=rules,
                                 image_cleanup_report_dir=str(tmp_path / "r"))
    forks = ("--forks", "10")
    check = run_playbook(PLAYBOOK, inventory=inventory, check=True, args=forks)
    assert check.rc == 0, check.stdout[-3000:]
    assert all(ids[h][1] in ids[h][0].state()["images"] for h in hosts)
    real = run_playbook(PLAYBOOK, inventory=inventory, args=forks)
    assert real.rc == 0, real.stdout[-3000:]
    dry = json.loads((tmp_path / "r" / "image-cleanup.dry-run.json").read_text())
    done = json.loads((tmp_path / "r" / "image-cleanup.json").read_text())
    for report in (dry, done):
        assert report["hosts"]["total"] == 50 and report["hosts"]["ok"] == 50
        assert report["totals"]["deleted"] == 50 and report["totals"]["untagged"] == 50
    assert {k: v for k, v in dry.items() if k not in ("dry_run", "generated_at")} == \
        {k: v for k, v in done.items() if k not in ("dry_run", "generated_at")}
    for host, (engine, image) in ids.items():
        per_host = next(h for h in done["per_host"] if h["host"] == host)
        assert per_host["deleted"] == [image]
        assert image not in engine.state()["images"]
        lines = real.task(TASK + "Show this host's summary", host)["msg"]
        assert lines[-1].startswith("rule 'own image': untagged 1, deleted 1, kept 0, ") and lines[-1].endswith(
            " reclaimed")
        assert len(lines) == 2  # storage, one line per rule


def test_ci_host_dangling_images_in_use_are_kept_not_a_failure(fresh_world, tmp_path):
    """Item 3 on a CI-like host (the realistic world: dangling CI builds, one used by a stopped container): the
    dangling rule without `containers` keeps the used image with its reason and does not fail, dry run and real
    run alike."""
    engine, world = fresh_world.engine, fresh_world.world
    used = set(world.containers.values())
    kept_dangling = [i for i in world.dangling if i in used]
    assert kept_dangling, "the world has a dangling build used by a stopped container"
    hosts = {"ci": dict(LOCAL, image_cleanup_docker_host=engine.url)}
    inventory = _write_inventory(tmp_path / "inventory.yml", hosts, image_cleanup_report_dir=str(tmp_path / "r"),
                                 image_cleanup_rules=[{"name": "dangling leftovers", "filters": {"dangling": True}}])
    check = run_playbook(PLAYBOOK, inventory=inventory, check=True)
    real = run_playbook(PLAYBOOK, inventory=inventory)
    for run in (check, real):
        assert run.rc == 0 and play_recap(run.stdout)["ci"]["failed"] == 0, run.stdout[-3000:]
    report = json.loads((tmp_path / "r" / "image-cleanup.json").read_text())
    rule = report["per_host"][0]["rules"][0]
    assert rule["status"] == "ok"
    assert {s["image"] for s in rule["skipped"]} >= set(kept_dangling)
    assert all(s["reason"] == "container" for s in rule["skipped"] if s["image"] in kept_dangling)
    assert set(kept_dangling) <= set(engine.state()["images"])
    line = real.task(TASK + "Show this host's summary", "ci")["msg"][-1]
    assert "in use" in line, line


class _TcpToUnix(socketserver.ThreadingTCPServer):
    """A plain TCP port on 127.0.0.1 relaying bytes to a daemon's unix socket: a "remote" daemon for the test."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, unix_path: str):
        self.unix_path = unix_path
        super().__init__(("127.0.0.1", 0), _Relay)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.server_address[1]}"

    def close(self):
        self.shutdown()
        self.server_close()


class _Relay(socketserver.BaseRequestHandler):
    def handle(self):
        upstream = socket.socket(socket.AF_UNIX)
        upstream.connect(self.server.unix_path)

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for end in (src, dst):
                    try:
                        end.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        other = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
        other.start()
        pump(self.request, upstream)
        other.join(timeout=30)
        upstream.close()


def test_storage_info_reads_this_hosts_files_only_for_a_local_daemon(engine, tmp_path):
    """Item 5: with ``connection: local`` and a tcp:// daemon the controller's daemon.json is not the daemon's:
    not read, no false storage_driver_mismatch, and the facts say why. The same daemon on its unix socket here:
    the file is read (and the mismatch it makes up is reported)."""
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text(json.dumps({"storage-driver": "devicemapper"}))  # the controller's own, not the engine's
    relay = _TcpToUnix(str(engine.sock))
    try:
        hosts = {
            "remote": dict(LOCAL, image_cleanup_docker_host=relay.url),
            "local": dict(LOCAL, image_cleanup_docker_host=engine.url),
        }
        inventory = _write_inventory(tmp_path / "inventory.yml", hosts, image_cleanup_storage_fail_on="never",
                                     image_cleanup_storage_daemon_config_path=str(daemon_json))
        run = run_playbook(PLAYBOOK, inventory=inventory, check=True)
    finally:
        relay.close()
    assert run.rc == 0, run.stdout[-3000:]
    read = TASK + "Read the storage facts and findings"
    remote, local = run.task(read, "remote"), run.task(read, "local")
    assert remote["storage"]["driver"] == local["storage"]["driver"]  # the same daemon, over TCP
    assert remote["storage"]["host_files"]["read"] is False
    assert relay.url in remote["storage"]["host_files"]["reason"]
    assert remote["storage"]["config"]["daemon_json"]["read"] is False
    assert remote["storage"]["config"]["daemon_json"]["storage_driver"] is None
    assert "storage_driver_mismatch" not in [f["id"] for f in remote["findings"]]
    assert local["storage"]["host_files"] == {"read": True, "reason": None}
    assert local["storage"]["config"]["daemon_json"]["storage_driver"] == "devicemapper"
    assert "storage_driver_mismatch" in [f["id"] for f in local["findings"]]
