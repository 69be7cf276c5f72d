"""``docker_host: ssh://user@host`` end to end: the Docker SDK over a real SSH connection (paramiko) to the harness's
``sshd`` on a loopback address, which runs ``docker system dial-stdio`` against the private engine (the session's
``DOCKER_HOST`` comes from sshd's ``SetEnv``). The client side reads its key and the server's host key from a
``~/.ssh`` of the test's own (``HOME`` points at a temporary directory), as the SDK reads them on a managed host.

Check mode over ssh must predict exactly what the same task predicts over the unix socket, the real run over ssh
must do what check mode said, and ``storage_info`` must read the same daemon facts (and say it did not read the
daemon host's files, which are not on the host that runs the module).
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import missing
from tests.harness.ansible_runner import run_module
from tests.harness.images import available_manifests, pulled_index
from tests.harness.sshd import SshServer, SshUnavailable, loopback_addresses

pytestmark = pytest.mark.engine

ADDRESS = loopback_addresses(1, first=6)[0]  # 127.0.0.6: the fleet test uses 127.0.0.2 to 127.0.0.5
RESULT_KEYS = ("changed", "untagged", "deleted", "deleted_layers", "containers_removed", "skipped_images",
               "not_found", "space_reclaimed", "images")


@pytest.fixture
def ssh_host(engine, tmp_path, monkeypatch):
    """``ssh://user@127.0.0.6:port`` reaching ``engine``; the sshd stops after the test."""
    if importlib.util.find_spec("paramiko") is None:
        why = "paramiko is not installed (requirements-dev.txt has it; the Docker SDK reaches ssh:// hosts with it)"
        missing(why)
    server = SshServer([ADDRESS], lifetime=600, environment={"DOCKER_HOST": engine.url})
    try:
        server.start()
    except SshUnavailable as exc:
        missing(str(exc))
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(f"Host {ADDRESS}\n  IdentityFile {server.client_key}\n")
    (home / ".ssh" / "known_hosts").write_text(f"[{ADDRESS}]:{server.port} {server.host_key}\n")
    monkeypatch.setenv("HOME", str(home))
    try:
        yield server, f"ssh://{server.user}@{ADDRESS}:{server.port}"
    finally:
        server.stop()


def _picked(result):
    return {key: result.get(key) for key in RESULT_KEYS}


def test_image_remove_over_ssh_predicts_and_does_what_the_unix_socket_run_predicts(engine, images_for, ssh_host):
    server, url = ssh_host
    f = images_for(engine)
    app = f.simple("ssh-test/app:1", "ssh-test/app:2", content="app over ssh")
    other = f.simple("ssh-test/other:1", content="other over ssh")
    dangling = f.simple(content="dangling over ssh")
    kept = f.simple("ssh-test/kept:1", content="kept over ssh")
    args = {"images": ["ssh-test/app:1", "ssh-test/app:2", "ssh-test/other:1", dangling, "ssh-test/gone:1"],
            "timeout": 60}
    before = engine.state()
    local = run_module("image_remove", dict(args, docker_host=engine.url), check_mode=True)
    over_ssh = run_module("image_remove", dict(args, docker_host=url), check_mode=True)
    assert not local.failed and not over_ssh.failed, (local.get("msg"), over_ssh.get("msg"))
    assert _picked(over_ssh) == _picked(local)
    assert engine.state() == before  # check mode changed nothing
    assert sorted(over_ssh["deleted"]) == sorted([app, other, dangling]) and over_ssh["not_found"] == ["ssh-test/gone:1"]

    real = run_module("image_remove", dict(args, docker_host=url))
    assert not real.failed, real.get("msg")
    assert _picked(real) == _picked(over_ssh)  # the real run did what check mode said
    after = engine.state()
    assert set(after["images"]) == set(before["images"]) - {app, other, dangling}
    assert "ssh-test/kept:1" in after["images"][kept]
    assert server.accepted_logins() >= 2  # both runs went through sshd, not around it


def test_storage_info_over_ssh_reads_what_the_unix_socket_reads(engine, ssh_host):
    _server, url = ssh_host
    local = run_module("storage_info", {"docker_host": engine.url})
    over_ssh = run_module("storage_info", {"docker_host": url})
    assert not local.failed and not over_ssh.failed, (local.get("msg"), over_ssh.get("msg"))
    # the daemon's facts are the same; its host's files are read only on the daemon's own host (a unix socket)
    daemon_facts = [key for key in local["storage"] if key not in ("config", "host_files")]
    assert {k: over_ssh["storage"][k] for k in daemon_facts} == {k: local["storage"][k] for k in daemon_facts}
    assert local["storage"]["host_files"]["read"] is True
    assert over_ssh["storage"]["host_files"] == {
        "read": False, "reason": f"the daemon at {url} is not on this host (only a unix socket here is)"}
    assert over_ssh["storage"]["config"]["daemon_json"]["exists"] is None  # not known, rather than "absent"
    assert over_ssh["findings"] == local["findings"]


def test_platforms_over_ssh_removes_the_variant_the_unix_socket_run_predicts(clean_engine, registry, ssh_host):
    """``platforms`` (API 1.50, the containerd store) through the SDK over ssh: the per-image inspects with their
    manifests and the DELETE with ``platforms`` go through the ssh connection."""
    if clean_engine.kind != "containerd":
        pytest.skip("platforms removes a variant's content on the containerd image store")
    _server, url = ssh_host
    ref, image_id = pulled_index(clean_engine, registry, "plat/ssh", "plat/ssh-copy:1")()
    arm64 = next(digest for (arch, digest) in available_manifests(clean_engine, image_id) if arch == "arm64")
    args = {"images": [ref], "platforms": ["linux/arm64"], "force": True, "timeout": 60}
    local = run_module("image_remove", dict(args, docker_host=clean_engine.url), check_mode=True)
    over_ssh = run_module("image_remove", dict(args, docker_host=url), check_mode=True)
    assert not over_ssh.failed, over_ssh.get("msg")
    assert _picked(over_ssh) == _picked(local) and over_ssh["deleted_platforms"] == local["deleted_platforms"]
    assert over_ssh["deleted_platforms"] == [{"image": image_id, "platform": "linux/arm64", "manifest": arm64}]
    before = clean_engine.state()
    real = run_module("image_remove", dict(args, docker_host=url))
    assert not real.failed, real.get("msg")
    assert real["deleted_platforms"] == over_ssh["deleted_platforms"] and _picked(real) == _picked(over_ssh)
    assert clean_engine.state() == before  # the image and its names stay
    available = available_manifests(clean_engine, image_id)
    assert available[("arm64", arm64)] is False and True in available.values()  # arm64's content gone, amd64's kept
