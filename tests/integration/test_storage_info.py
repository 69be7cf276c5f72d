"""janitor.docker.storage_info against the private engines, and with docker_info given (no daemon)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from tests.harness.ansible_runner import run_module, run_playbook
from tests.harness.engines import selected_kinds

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "docker-info"
NO_DAEMON = "unix:///nonexistent/janitor-storage-info.sock"


def _paths(tmp_path):
    """Configuration paths that do not exist: the host's own files must not change the outcome."""
    return {"daemon_config_path": str(tmp_path / "daemon.json"),
            "sysconfig_storage_path": str(tmp_path / "docker-storage")}


@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "run"])
def test_live_daemon_gives_a_clean_report(engine, engine_args, tmp_path, check_mode):
    result = run_module("storage_info", {**engine_args, **_paths(tmp_path)}, check_mode=check_mode)
    assert not result.failed, result.get("msg")
    assert result["changed"] is False
    info = engine.api.info()
    storage = result["storage"]
    assert storage["source"] == "daemon"
    assert storage["driver"] == info["Driver"] == engine.cli("info", "--format", "{{.Driver}}").stdout.strip()
    assert storage["driver"] == ("overlayfs" if engine.containerd_store else "overlay2")
    assert storage["docker_version"] == engine.version["Version"]
    assert storage["docker_root_dir"] == info["DockerRootDir"]
    assert storage["driver_status"] == [list(pair) for pair in info["DriverStatus"]]
    if not engine.containerd_store:
        assert storage["supports_d_type"] is True and storage["backing_filesystem"]
    assert storage["devicemapper"] is None
    assert storage["config"]["daemon_json"]["exists"] is False
    assert result["findings"] == [] and result["highest_severity"] == "none"
    assert result["daemon_warnings"] == [" ".join(w.split()) for w in info.get("Warnings") or []]


def test_cli_text_and_json_give_the_daemons_facts(engine, engine_args, tmp_path):
    """The docker CLI's own text and JSON of the same engine, given as docker_info, match the live answer."""
    live = run_module("storage_info", {**engine_args, **_paths(tmp_path)}, check_mode=True)
    for output in (engine.cli("info").stdout, engine.cli("info", "--format", "{{json .}}").stdout):
        given = run_module("storage_info", {"docker_host": NO_DAEMON, "docker_info": output, **_paths(tmp_path)},
                           check_mode=True)
        assert not given.failed, given.get("msg")
        assert given["storage"] == dict(live["storage"], source="docker_info")
        assert given["findings"] == live["findings"]


def test_daemon_json_naming_another_driver_is_a_finding(engine, engine_args, tmp_path):
    running = engine.api.info()["Driver"]
    other = "vfs" if running != "vfs" else "overlay2"
    paths = _paths(tmp_path)
    Path(paths["daemon_config_path"]).write_text(json.dumps({"storage-driver": other, "log-level": "info"}))
    result = run_module("storage_info", {**engine_args, **paths}, check_mode=True)
    assert not result.failed, result.get("msg")
    assert [(f["id"], f["severity"]) for f in result["findings"]] == [("storage_driver_mismatch", "warning")]
    assert other in result["findings"][0]["message"] and running in result["findings"][0]["message"]
    assert result["highest_severity"] == "warning"
    assert result["storage"]["config"]["daemon_json"]["storage_driver"] == other


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir() if p.is_file()))
def test_docker_info_option_needs_no_daemon(name, tmp_path):
    result = run_module("storage_info", {"docker_host": NO_DAEMON, "docker_info": (FIXTURES / name).read_text(),
                                         **_paths(tmp_path)}, check_mode=True)
    assert not result.failed, result.get("msg")
    assert result["changed"] is False
    assert result["storage"]["source"] == "docker_info"
    assert result["storage"]["driver"] == "devicemapper"
    severities = [f["severity"] for f in result["findings"]]
    assert severities == sorted(severities, key=["critical", "warning", "info"].index)
    if name.startswith("loop-lvm"):
        assert result["findings"][0]["id"] == "devicemapper_loop_lvm"
        assert result["highest_severity"] == "critical"
        assert result["storage"]["devicemapper"]["mode"] == "loop-lvm"
    else:
        assert result["highest_severity"] == "warning"
        assert result["storage"]["devicemapper"]["mode"] == "direct-lvm"


def test_loop_files_on_the_host_are_measured(tmp_path):
    root = tmp_path / "docker"
    data = root / "devicemapper" / "devicemapper" / "data"
    data.parent.mkdir(parents=True)
    with open(data, "wb") as handle:
        os.truncate(handle.fileno(), 1_000_000_000)
        handle.seek(500_000_000)
        handle.write(os.urandom(2 * 1024 * 1024))
    text = (FIXTURES / "loop-lvm-1.12-moby-27409.txt").read_text().replace("/var/lib/docker", str(root))
    text += f"Docker Root Dir: {root}\n"
    result = run_module("storage_info", {"docker_host": NO_DAEMON, "docker_info": text, **_paths(tmp_path)},
                        check_mode=True)
    assert not result.failed, result.get("msg")
    (record,) = result["storage"]["devicemapper"]["loop_files"]
    assert record["role"] == "data" and record["path"] == str(data) and record["measured"] is True
    assert record["apparent_size"] == 1_000_000_000
    assert 2 * 1024 * 1024 <= record["allocated_size"] < 64 * 1024 * 1024


def test_sysconfig_and_daemon_json_conflict(tmp_path):
    paths = _paths(tmp_path)
    Path(paths["daemon_config_path"]).write_text('{"storage-driver": "devicemapper"}')
    Path(paths["sysconfig_storage_path"]).write_text(
        'DOCKER_STORAGE_OPTIONS="--storage-driver devicemapper --storage-opt dm.thinpooldev=/dev/mapper/vg-pool"\n')
    result = run_module("storage_info", {"docker_host": NO_DAEMON, **paths,
                                         "docker_info": (FIXTURES / "direct-lvm-18.06-kata-1446.txt").read_text()})
    assert [f["id"] for f in result["findings"]] == ["devicemapper_deprecated", "storage_config_conflict"]
    assert result["storage"]["config"]["sysconfig"]["storage_opts"] == ["dm.thinpooldev=/dev/mapper/vg-pool"]


@pytest.mark.parametrize("thresholds, message", [
    ({"data_used_percent": 70}, "thresholds: unknown key(s) data_used_percent; valid keys: data_min_free_bytes"),
    ({"data_used_percent_warning": "high"}, "data_used_percent_warning"),
    ({"data_min_free_bytes": "a lot"}, "thresholds.data_min_free_bytes: 'a lot' is not a size"),
    ({"data_used_percent_warning": 95, "data_used_percent_critical": 90}, "is above data_used_percent_critical"),
])
def test_bad_thresholds_fail_clearly(thresholds, message, tmp_path):
    result = run_module("storage_info", {"docker_host": NO_DAEMON, "thresholds": thresholds, **_paths(tmp_path),
                                         "docker_info": (FIXTURES / "loop-lvm-17.03-docs.txt").read_text()})
    assert result.failed and message in result["msg"]


def test_thresholds_change_the_findings(tmp_path):
    result = run_module("storage_info", {
        "docker_host": NO_DAEMON, **_paths(tmp_path), "docker_info": (FIXTURES / "loop-lvm-17.03-docs.txt").read_text(),
        "thresholds": {"data_min_free_bytes": "8GB", "metadata_min_free_bytes": "3 GB"}}, check_mode=True)
    ids = [f["id"] for f in result["findings"]]
    assert "data_space_low" in ids and "metadata_space_low" in ids


def test_unreachable_daemon_fails_with_its_address(tmp_path):
    result = run_module("storage_info", {"docker_host": NO_DAEMON, "timeout": 5, **_paths(tmp_path)})
    assert result.failed and NO_DAEMON in result["msg"]


def test_docker_info_that_is_not_docker_info_fails(tmp_path):
    result = run_module("storage_info", {"docker_host": NO_DAEMON, "docker_info": "hello world", **_paths(tmp_path)})
    assert result.failed and "Storage Driver" in result["msg"]


def test_playbook_with_module_defaults_of_the_action_group(engine_pool, request, tmp_path):
    """ansible-playbook, connection options from module_defaults of group/janitor.docker.docker, --check.

    On one engine kind only: what it checks (the action group, a playbook run) does not depend on the kind.
    """
    engine = engine_pool.get(selected_kinds(request.config.getoption("--engines"))[0])
    playbook = tmp_path / "storage.yml"
    playbook.write_text(textwrap.dedent(f"""\
        - hosts: localhost
          gather_facts: false
          module_defaults:
            group/janitor.docker.docker:
              docker_host: {engine.url}
          tasks:
            - name: storage
              janitor.docker.storage_info:
                daemon_config_path: {tmp_path / "daemon.json"}
                sysconfig_storage_path: {tmp_path / "docker-storage"}
                thresholds:
                  data_used_percent_warning: 70
        """))
    run = run_playbook(playbook, check=True)
    assert run.rc == 0, run.stdout
    result = run.task("storage")
    assert result["changed"] is False
    assert result["storage"]["driver"] == engine.api.info()["Driver"]
    assert result["findings"] == [] and result["highest_severity"] == "none"
