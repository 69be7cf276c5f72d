"""Last use of images and the last_used_state file; the disk measures (no daemon)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.janitor.docker.plugins.module_utils import _disk, _last_used
from ansible_collections.janitor.docker.plugins.module_utils._errors import JanitorError
from ansible_collections.janitor.docker.plugins.module_utils._snapshot import CONTAINERD, ContainerRecord, ImageRecord, Snapshot

NOW = 1_700_000_000.0


def image(n, created):
    return ImageRecord(id=f"sha256:{n:064x}", created=created)


def test_engine_times():
    assert _last_used.engine_time("2024-05-01T12:00:00.123456789Z") == pytest.approx(1714564800.123456789)
    assert _last_used.engine_time("2024-05-01T14:00:00+02:00") == 1714564800
    assert _last_used.engine_time("0001-01-01T00:00:00Z") is None
    assert _last_used.engine_time("") is None and _last_used.engine_time(None) is None
    assert _last_used.engine_time("yesterday") is None


def test_container_use_running_is_now_stopped_is_its_latest_time():
    stopped = {"Created": "2024-05-01T00:00:00Z",
               "State": {"Status": "exited", "StartedAt": "2024-05-02T00:00:00Z", "FinishedAt": "2024-05-03T00:00:00Z"}}
    assert _last_used.container_use(stopped, NOW) == 1714694400
    created = {"Created": "2024-05-01T00:00:00Z",
               "State": {"Status": "created", "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"}}
    assert _last_used.container_use(created, NOW) == 1714521600
    for state in ({"Running": True}, {"Paused": True, "Running": True}, {"Status": "restarting"}):
        assert _last_used.container_use({"Created": "2024-05-01T00:00:00Z", "State": state}, NOW) == NOW


def test_last_use_is_the_latest_of_every_source():
    a, b, c, d = image(1, 100), image(2, 100), image(3, 100), image(4, 500)
    snapshot = Snapshot(images=(a, b, c, d))
    tag_times = {a.id: 200}
    uses = {b.id: 300}
    remembered = {c.id: {"last_used": 400, "seen": 450}, d.id: {"last_used": 50}}
    assert _last_used.last_used(snapshot, tag_times, uses, remembered) == {a.id: 200, b.id: 300, c.id: 400,
                                                                           d.id: 500}


def test_next_state_remembers_container_uses_and_forgets_removed_images():
    a, b, c = image(1, 100), image(2, 100), image(3, 100)
    snapshot = Snapshot(images=(a, b, c), containers=(ContainerRecord("k1", a.id, "exited"),))
    remembered = {a.id: {"last_used": 900, "seen": 950}, b.id: {"last_used": 700}, c.id: {"last_used": 10}}
    state = _last_used.next_state(snapshot, remembered, {a.id: 800}, NOW, deleted=[c.id])
    assert state == {a.id: {"last_used": 900, "seen": NOW}, b.id: {"last_used": 700}}
    state = _last_used.next_state(snapshot, {}, {a.id: 800}, NOW)
    assert state == {a.id: {"last_used": 800, "seen": NOW}}


def test_state_file_round_trip_is_atomic(tmp_path):
    path = str(tmp_path / "sub" / "dir" / "last-used.json")
    images, warning = _last_used.load_state(path)
    assert images == {} and warning is None  # the first run
    assert _last_used.save_state(path, {"sha256:" + "a" * 64: {"last_used": 5.0, "seen": 6.0}}) is None
    images, warning = _last_used.load_state(path)
    assert warning is None and images == {"sha256:" + "a" * 64: {"last_used": 5.0, "seen": 6.0}}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(os.path.dirname(path)) == ["last-used.json"]  # no temporary file left
    assert json.loads(open(path).read())["version"] == _last_used.STATE_VERSION


@pytest.mark.parametrize("content", ["{not json", "[]", '{"version": 99, "images": {}}', '{"version": 1}', "\0\1"])
def test_a_corrupt_state_file_is_a_warning_and_a_fresh_start(tmp_path, content):
    path = tmp_path / "state.json"
    path.write_text(content)
    images, warning = _last_used.load_state(str(path))
    assert images == {} and str(path) in warning and "starting afresh" in warning


def test_bad_entries_are_dropped(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 1, "images": {"x": {"last_used": "soon"}, "y": 5,
                                                         "z": {"last_used": 3, "seen": True, "other": 1}}}))
    assert _last_used.load_state(str(path)) == ({"z": {"last_used": 3.0}}, None)


def test_an_unwritable_state_file_is_a_warning(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    # the read finds no file (a cold start, no warning); the write says why the path cannot be used, once
    assert _last_used.load_state(str(blocker / "state.json")) == ({}, None)
    warning = _last_used.save_state(str(blocker / "state.json"), {})
    assert "could not be written" in warning
    assert sorted(os.listdir(tmp_path)) == ["file"]


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=20), st.fixed_dictionaries(
    {"last_used": st.floats(0, 4e9, allow_nan=False), "seen": st.floats(0, 4e9, allow_nan=False)}), max_size=20))
def test_state_round_trip(tmp_path_factory, images):
    path = str(tmp_path_factory.mktemp("state") / "state.json")
    assert _last_used.save_state(path, images) is None
    assert _last_used.load_state(path) == (images, None)


# -- measures -----------------------------------------------------------------------------------------------------
def test_filesystem_measure_of_a_directory(tmp_path):
    total, used = _disk.filesystem(str(tmp_path))
    st_ = os.statvfs(str(tmp_path))
    assert total == st_.f_blocks * st_.f_frsize and 0 <= used <= total


def test_the_filesystem_measure_needs_the_engine_here(tmp_path):
    sock = tmp_path / "docker.sock"
    sock.write_text("")
    assert _disk.local_images_path(f"unix://{sock}", {"DockerRootDir": str(tmp_path)}) == str(tmp_path)
    for host, root in (("tcp://10.0.0.1:2376", str(tmp_path)), ("ssh://user@host", str(tmp_path)),
                       (f"unix://{tmp_path}/missing.sock", str(tmp_path))):
        with pytest.raises(JanitorError) as info:
            _disk.local_images_path(host, {"DockerRootDir": root})
        assert "on this host" in info.value.message and "20GB" in info.value.message
    with pytest.raises(JanitorError) as info:
        _disk.local_images_path(f"unix://{sock}", {"DockerRootDir": str(tmp_path / "elsewhere")})
    assert "not a directory on this host" in info.value.message and "sizes of the images" in info.value.message


@pytest.fixture
def containerd_host(tmp_path, monkeypatch):
    """A host with Docker's data root, a system containerd's config path and default root, all under tmp_path."""
    paths = {name: tmp_path / name for name in ("docker", "etc-config.toml", "var-lib-containerd", "run")}
    paths["docker"].mkdir()
    paths["var-lib-containerd"].mkdir()
    paths["run"].mkdir()
    monkeypatch.setattr(_disk, "CONTAINERD_CONFIG", str(paths["etc-config.toml"]))
    monkeypatch.setattr(_disk, "CONTAINERD_ROOT", str(paths["var-lib-containerd"]))
    return paths


def _info(paths, address=True):
    info = {"DockerRootDir": str(paths["docker"])}
    if address:
        info["Containerd"] = {"Address": str(paths["run"] / "containerd.sock"), "Namespaces": {"Containers": "moby"}}
    return info


def test_a_graph_driver_store_measures_the_data_root(containerd_host):
    assert _disk.images_path(_info(containerd_host), "classic") == str(containerd_host["docker"])


def test_a_system_containerd_keeps_the_images_in_its_own_root(containerd_host):
    """Debian's and Docker's packages: dockerd --containerd=/run/containerd/containerd.sock. No config beside the
    socket: the system config's root, or /var/lib/containerd when it names none (or does not exist)."""
    assert _disk.images_path(_info(containerd_host), CONTAINERD) == str(containerd_host["var-lib-containerd"])
    containerd_host["etc-config.toml"].write_text('version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n')
    assert _disk.images_path(_info(containerd_host), CONTAINERD) == str(containerd_host["var-lib-containerd"])
    containerd_host["etc-config.toml"].write_text('version = 2\nroot = "/srv/containerd"  # a disk of its own\n'
                                                  '[grpc]\n  root = "/not/this"\n')
    assert _disk.images_path(_info(containerd_host), CONTAINERD) == "/srv/containerd"
    assert _disk.images_path(_info(containerd_host, address=False), CONTAINERD) == "/srv/containerd"


def test_dockerds_own_containerd_has_its_config_beside_its_socket(containerd_host):
    """dockerd without --containerd writes <exec-root>/containerd/containerd.toml with root under the data root;
    that config wins over the system one, which that containerd does not read."""
    own = containerd_host["docker"] / "containerd" / "daemon"
    own.mkdir(parents=True)
    (containerd_host["run"] / "containerd.toml").write_text(f'version = 2\nroot = "{own}"\n')
    containerd_host["etc-config.toml"].write_text('root = "/srv/containerd"\n')
    assert _disk.images_path(_info(containerd_host), CONTAINERD) == str(own)
    # an engine older than API 1.46 names no address: its own containerd's root, when no system config exists
    containerd_host["etc-config.toml"].unlink()
    assert _disk.images_path(_info(containerd_host, address=False), CONTAINERD) == str(own)


def test_a_config_beside_the_socket_that_cannot_be_looked_at_is_not_guessed_past(containerd_host, monkeypatch):
    """A user without access to dockerd's exec root (0700) cannot tell whether dockerd runs its own containerd: the
    task fails and says how to go on, instead of measuring /var/lib/containerd's disk."""
    beside = str(containerd_host["run"] / "containerd.toml")
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if str(path) == beside:
            raise PermissionError(13, "Permission denied", beside)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(_disk.os, "stat", stat)
    with pytest.raises(JanitorError) as info:
        _disk.images_path(_info(containerd_host), CONTAINERD)
    assert beside in info.value.message and "Permission denied" in info.value.message
    assert "become" in info.value.message and "20GB" in info.value.message


def test_a_containerd_config_that_cannot_be_read_names_itself_and_the_size_form(containerd_host, monkeypatch):
    containerd_host["etc-config.toml"].write_text("root = \n")
    with pytest.raises(JanitorError) as info:
        _disk.images_path(_info(containerd_host), CONTAINERD)
    assert str(containerd_host["etc-config.toml"]) in info.value.message and "20GB" in info.value.message
    monkeypatch.setattr(_disk, "_toml", None)  # Python before 3.11 without the tomli package
    containerd_host["etc-config.toml"].write_text('root = "/srv/containerd"\n')
    with pytest.raises(JanitorError) as info:
        _disk.images_path(_info(containerd_host), CONTAINERD)
    assert "tomli" in info.value.message and "Python 3.11" in info.value.message and "20GB" in info.value.message


def test_the_filesystem_measure_on_the_containerd_store_names_containerds_root(containerd_host):
    sock = containerd_host["run"] / "docker.sock"
    sock.write_text("")
    containerd_host["etc-config.toml"].write_text(f'root = "{containerd_host["docker"]}/missing"\n')
    with pytest.raises(JanitorError) as info:
        _disk.local_images_path(f"unix://{sock}", _info(containerd_host), CONTAINERD)
    assert "containerd's root" in info.value.message and "missing" in info.value.message
