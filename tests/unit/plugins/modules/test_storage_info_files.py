"""storage_info reads only what it documents: the two configuration files it is given, as regular files, and the
devicemapper loop files under the daemon's root directory, without following symbolic links out of it.

The module runs in its own process, as Ansible runs it, under a memory limit and a time limit, so a file that
never ends (a FIFO, /dev/zero) shows up as a failure here rather than as a hung or exhausted host.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _storage
from tests.harness.ansible_runner import run_module
from tests.harness.faults import collections_path

SECRET = "hunter2-do-not-print-me"


def _run(args, timeout=None):
    """storage_info in-process (fast); with ``timeout``, in its own process under a 1 GiB memory limit."""
    if timeout is None:
        result = run_module("storage_info", args)
        return result, None

    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    env = dict(os.environ, PYTHONPATH=collections_path(), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "ansible_collections.janitor.docker.plugins.modules.storage_info"],
        input=json.dumps({"ANSIBLE_MODULE_ARGS": args}), capture_output=True, text=True, timeout=timeout, env=env,
        preexec_fn=limits, check=False,
    )
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc


def _read_with_deadline(option, path, seconds=3.0):
    """The reader behind ``option`` on ``path`` in a thread; None when it is still blocked after ``seconds``."""
    reader = _storage.read_daemon_json if option == "daemon_config_path" else _storage.read_sysconfig_storage
    answer = []
    thread = threading.Thread(target=lambda: answer.append(reader(str(path))), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        # unblock the reader: a writer that opens and closes the FIFO gives it an end of file
        with open(os.open(str(path), os.O_WRONLY | os.O_NONBLOCK), "wb"):
            pass
        thread.join(5)
        return None
    return answer[0]


def _info(root: Path, data_loop: str, metadata_loop: str) -> str:
    return json.dumps({
        "Driver": "devicemapper", "DockerRootDir": str(root), "ServerVersion": "19.03.5",
        "DriverStatus": [
            ["Pool Name", "docker-8:1-1-pool"], ["Data file", "/dev/loop0"], ["Metadata file", "/dev/loop1"],
            ["Data loop file", data_loop], ["Metadata loop file", metadata_loop],
            ["Data Space Used", "1GB"], ["Data Space Total", "100GB"], ["Data Space Available", "99GB"],
            ["Metadata Space Used", "1MB"], ["Metadata Space Total", "2GB"], ["Metadata Space Available", "2GB"],
            ["Udev Sync Supported", "true"],
        ],
    })


@pytest.fixture
def tree(tmp_path):
    """A daemon root with one real loop file, and a secret file outside it."""
    root = tmp_path / "docker"
    (root / "devicemapper" / "devicemapper").mkdir(parents=True)
    data = root / "devicemapper" / "devicemapper" / "data"
    with open(data, "wb") as handle:
        handle.truncate(1 << 30)  # sparse: 1 GiB apparent
        handle.write(b"x" * 4096)
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(f"DOCKER_STORAGE_OPTIONS=--storage-opt dm.password={SECRET}\n{SECRET}\n")
    return root, data, secret


def _base(tmp_path):
    return {"daemon_config_path": str(tmp_path / "none.json"), "sysconfig_storage_path": str(tmp_path / "none")}


def test_regular_loop_file_is_measured(tree, tmp_path):
    root, data, _secret = tree
    result, _proc = _run({**_base(tmp_path), "docker_info": _info(root, str(data), str(data.parent / "metadata"))})
    files = {f["role"]: f for f in result["storage"]["devicemapper"]["loop_files"]}
    assert files["data"]["measured"] and files["data"]["apparent_size"] == 1 << 30
    assert files["metadata"]["exists"] is False


@pytest.mark.parametrize("how", ["file_link", "dir_link", "dotdot", "outside"])
def test_loop_files_are_not_followed_out_of_the_root(tree, tmp_path, how):
    root, _data, secret = tree
    if how == "file_link":
        path = root / "devicemapper" / "devicemapper" / "metadata"
        path.symlink_to(secret)
    elif how == "dir_link":
        (root / "escape").symlink_to(secret.parent, target_is_directory=True)
        path = root / "escape" / "secret.txt"
    elif how == "dotdot":
        path = Path(f"{root}/../outside/secret.txt")
    else:
        path = secret
    result, _proc = _run({**_base(tmp_path), "docker_info": _info(root, str(path), str(path))})
    assert not result.get("failed"), result
    for record in result["storage"]["devicemapper"]["loop_files"]:
        assert record["measured"] is False and record["reason"], record
        assert record["apparent_size"] is None
    assert SECRET not in json.dumps(result)


@pytest.mark.parametrize("option", ["daemon_config_path", "sysconfig_storage_path"])
def test_configuration_path_that_is_a_fifo(tmp_path, option):
    """A FIFO would block the read forever: the module must not hang."""
    path = tmp_path / "config"
    os.mkfifo(path)
    config = _read_with_deadline(option, path)
    assert config is not None, f"storage_info blocked reading a FIFO given as {option}"
    assert config["error"] and "regular file" in config["error"], config


@pytest.mark.parametrize("option", ["daemon_config_path", "sysconfig_storage_path"])
@pytest.mark.parametrize("kind", [
    "dev_zero",
    "directory",
])
def test_configuration_path_that_is_not_a_regular_file(tmp_path, option, kind):
    """/dev/zero never ends: reading it must not exhaust the host (the module runs under a memory limit here)."""
    path = tmp_path / "config"
    if kind == "dev_zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    args = {**_base(tmp_path), option: str(path), "docker_info": _info(tmp_path, "", "")}
    result, _proc = _run(args, timeout=60) if kind == "dev_zero" else _run(args)
    # (before the fix: a FIFO blocked forever and /dev/zero ended in MemoryError with a traceback)
    assert not result.get("failed"), result
    key = "daemon_json" if option == "daemon_config_path" else "sysconfig"
    config = result["storage"]["config"][key]
    assert config["error"] and ("regular file" in config["error"] or "directory" in config["error"]), config


@pytest.mark.parametrize("option", ["daemon_config_path", "sysconfig_storage_path"])
def test_configuration_content_is_not_echoed(tree, tmp_path, option):
    """A configuration path that points at some other file: nothing of what is in it is repeated beyond the
    storage settings the module looks for."""
    _root, _data, secret = tree
    link = tmp_path / "link"
    other = tmp_path / "other.txt"
    other.write_text(f"password={SECRET}\n")
    link.symlink_to(other)
    result, _proc = _run({**_base(tmp_path), option: str(link), "docker_info": _info(tmp_path, "", "")})
    assert not result.get("failed"), result
    assert SECRET not in json.dumps(result)
    assert secret.exists()
