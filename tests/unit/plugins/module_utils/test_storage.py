"""Storage analysis without a daemon: docker info parsing (text and JSON), units, the devicemapper model, loop file
sizes, configuration files, thresholds and findings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.janitor.docker.plugins.module_utils import _storage
from ansible_collections.janitor.docker.plugins.module_utils._errors import JanitorError

FIXTURES = Path(__file__).resolve().parents[3] / "unit" / "fixtures" / "docker-info"
DERIVED = FIXTURES / "derived"
SHARED = Path(__file__).resolve().parents[5] / "shared" / "fixtures" / "docker-info"  # ../shared beside the repo

DM_KEYS = ("mode", "pool_name", "pool_blocksize", "base_device_size", "data_file", "metadata_file",
           "data_loop_file", "metadata_loop_file", "data_space_used", "data_space_total", "data_space_available",
           "data_space_used_percent", "metadata_space_used", "metadata_space_total", "metadata_space_available",
           "metadata_space_used_percent", "thin_pool_minimum_free_space", "udev_sync_supported",
           "deferred_removal_enabled", "deferred_deletion_enabled", "deferred_deleted_device_count",
           "library_version")

LOOPBACK_WARNING = ("WARNING: devicemapper: usage of loopback devices is strongly discouraged for production use. "
                    "Use `--storage-opt dm.thinpooldev` to specify a custom block storage device.")

# Every shared fixture: the exact storage facts, devicemapper block, daemon warnings and (id, severity) of findings.
EXPECTED = {
    "direct-lvm-17.03-docs.txt": {
        "storage": {"driver": "devicemapper", "docker_version": "17.03.1-ce", "docker_root_dir": None,
                    "backing_filesystem": "xfs", "supports_d_type": None},
        "devicemapper": {
            "mode": "direct-lvm", "pool_name": "docker-thinpool", "pool_blocksize": 524_300,
            "base_device_size": 10_740_000_000, "data_file": None, "metadata_file": None,
            "data_loop_file": None, "metadata_loop_file": None,
            "data_space_used": 19_920_000, "data_space_total": 102_000_000_000,
            "data_space_available": 102_000_000_000, "data_space_used_percent": 0.02,
            "metadata_space_used": 147_500, "metadata_space_total": 1_070_000_000,
            "metadata_space_available": 1_069_000_000, "metadata_space_used_percent": 0.01,
            "thin_pool_minimum_free_space": 10_200_000_000, "udev_sync_supported": True,
            "deferred_removal_enabled": True, "deferred_deletion_enabled": True,
            "deferred_deleted_device_count": 0, "library_version": "1.02.135-RHEL7 (2016-11-16)",
        },
        "loop_files": [],
        "warnings": [],
        "findings": [("devicemapper_deprecated", "warning")],
    },
    "direct-lvm-18.06-kata-1446.txt": {
        "storage": {"driver": "devicemapper", "docker_version": "18.06.1", "docker_root_dir": None,
                    "backing_filesystem": "xfs", "supports_d_type": None},
        "devicemapper": {
            "mode": "direct-lvm", "pool_name": "docker-thinpool", "pool_blocksize": 524_300,
            "base_device_size": 10_740_000_000, "data_file": None, "metadata_file": None,
            "data_loop_file": None, "metadata_loop_file": None,
            "data_space_used": 6_162_000_000, "data_space_total": 94_480_000_000,
            "data_space_available": 88_310_000_000, "data_space_used_percent": 6.52,
            "metadata_space_used": 860_200, "metadata_space_total": 994_100_000,
            "metadata_space_available": 993_200_000, "metadata_space_used_percent": 0.09,
            "thin_pool_minimum_free_space": 9_448_000_000, "udev_sync_supported": True,
            "deferred_removal_enabled": True, "deferred_deletion_enabled": True,
            "deferred_deleted_device_count": 0, "library_version": "1.02.149-RHEL7 (2018-07-20)",
        },
        "loop_files": [],
        "warnings": [],
        "findings": [("devicemapper_deprecated", "warning")],
    },
    "loop-lvm-1.12-moby-27409.txt": {
        "storage": {"driver": "devicemapper", "docker_version": None, "docker_root_dir": None,
                    "backing_filesystem": "xfs", "supports_d_type": None},
        "devicemapper": {
            "mode": "loop-lvm", "pool_name": "docker-253:1-650320-pool", "pool_blocksize": 65_540,
            "base_device_size": 10_740_000_000, "data_file": "/dev/loop0", "metadata_file": "/dev/loop1",
            "data_loop_file": "/var/lib/docker/devicemapper/devicemapper/data", "metadata_loop_file": None,
            "data_space_used": 5_223_000_000, "data_space_total": 107_400_000_000,
            "data_space_available": 44_740_000_000, "data_space_used_percent": 4.86,
            "metadata_space_used": 6_988_000, "metadata_space_total": 2_147_000_000,
            "metadata_space_available": 2_140_000_000, "metadata_space_used_percent": 0.33,
            "thin_pool_minimum_free_space": 10_740_000_000, "udev_sync_supported": True,
            "deferred_removal_enabled": False, "deferred_deletion_enabled": False,
            "deferred_deleted_device_count": 0, "library_version": None,
        },
        "loop_files": [("data", "/var/lib/docker/devicemapper/devicemapper/data")],
        "warnings": ["WARNING: Usage of loopback devices is strongly discouraged for production use. "
                     "Use `--storage-opt dm.thinpooldev` to specify a custom block storage device."],
        "findings": [("devicemapper_loop_lvm", "critical"), ("deferred_removal_disabled", "warning"),
                     ("deferred_deletion_disabled", "warning"), ("devicemapper_deprecated", "warning")],
    },
    "loop-lvm-17.03-docs.txt": {
        "storage": {"driver": "devicemapper", "docker_version": "17.03.1-ce", "docker_root_dir": None,
                    "backing_filesystem": "xfs", "supports_d_type": None},
        "devicemapper": {
            "mode": "loop-lvm", "pool_name": "docker-202:1-8413957-pool", "pool_blocksize": 65_540,
            "base_device_size": 10_740_000_000, "data_file": "/dev/loop0", "metadata_file": "/dev/loop1",
            "data_loop_file": "/var/lib/docker/devicemapper/data",
            "metadata_loop_file": "/var/lib/docker/devicemapper/metadata",
            "data_space_used": 11_800_000, "data_space_total": 107_400_000_000,
            "data_space_available": 7_440_000_000, "data_space_used_percent": 0.01,
            "metadata_space_used": 581_600, "metadata_space_total": 2_147_000_000,
            "metadata_space_available": 2_147_000_000, "metadata_space_used_percent": 0.03,
            "thin_pool_minimum_free_space": 10_740_000_000, "udev_sync_supported": True,
            "deferred_removal_enabled": False, "deferred_deletion_enabled": False,
            "deferred_deleted_device_count": 0, "library_version": "1.02.135-RHEL7 (2016-11-16)",
        },
        "loop_files": [("data", "/var/lib/docker/devicemapper/data"),
                       ("metadata", "/var/lib/docker/devicemapper/metadata")],
        "warnings": [],
        # 7.44 GB available is below the pool's own 10.74 GB minimum: the daemon refuses new devices
        "findings": [("devicemapper_loop_lvm", "critical"), ("data_space_below_pool_minimum", "critical"),
                     ("deferred_removal_disabled", "warning"), ("deferred_deletion_disabled", "warning"),
                     ("devicemapper_deprecated", "warning")],
    },
    "loop-lvm-19.03-info.json": {
        "storage": {"driver": "devicemapper", "docker_version": None, "docker_root_dir": None,
                    "backing_filesystem": "xfs", "supports_d_type": None},
        "devicemapper": {
            "mode": "loop-lvm", "pool_name": "docker-253:0-307923-pool", "pool_blocksize": 65_540,
            "base_device_size": 10_740_000_000, "data_file": "/dev/loop0", "metadata_file": "/dev/loop1",
            "data_loop_file": "/var/lib/docker/devicemapper/devicemapper/data",
            "metadata_loop_file": "/var/lib/docker/devicemapper/devicemapper/metadata",
            "data_space_used": 661_500_000, "data_space_total": 107_400_000_000,
            "data_space_available": 46_780_000_000, "data_space_used_percent": 0.62,
            "metadata_space_used": 970_800, "metadata_space_total": 2_147_000_000,
            "metadata_space_available": 2_147_000_000, "metadata_space_used_percent": 0.05,
            "thin_pool_minimum_free_space": 10_740_000_000, "udev_sync_supported": True,
            "deferred_removal_enabled": True, "deferred_deletion_enabled": True,
            "deferred_deleted_device_count": 0, "library_version": "1.02.158-RHEL7 (2019-05-13)",
        },
        "loop_files": [("data", "/var/lib/docker/devicemapper/devicemapper/data"),
                       ("metadata", "/var/lib/docker/devicemapper/devicemapper/metadata")],
        "warnings": ["WARNING: the devicemapper storage-driver is deprecated, and will be removed in a future "
                     "release.", LOOPBACK_WARNING],
        "findings": [("devicemapper_loop_lvm", "critical"), ("devicemapper_deprecated", "warning")],
    },
}

# The other form of each fixture, written by hand in tests/unit/fixtures/docker-info/derived/.
OTHER_FORM = {
    "direct-lvm-17.03-docs.txt": "direct-lvm-17.03-docs.json",
    "direct-lvm-18.06-kata-1446.txt": "direct-lvm-18.06-kata-1446.json",
    "loop-lvm-1.12-moby-27409.txt": "loop-lvm-1.12-moby-27409.json",
    "loop-lvm-17.03-docs.txt": "loop-lvm-17.03-docs.json",
    "loop-lvm-19.03-info.json": "loop-lvm-19.03-info.txt",
}

NO_CONFIG = {"path": None, "exists": False, "storage_driver": None, "storage_opts": [], "error": None, "read": True,
             "not_read_reason": None}


def test_host_files_apply_only_to_a_daemon_on_a_local_unix_socket(tmp_path):
    """Issue 19 item 5: this host's files are the daemon's only when its unix socket is here."""
    sock = tmp_path / "docker.sock"
    sock.write_text("")
    assert _storage.host_files_apply(f"unix://{sock}") == (True, None)
    here, why = _storage.host_files_apply(f"unix://{tmp_path}/gone.sock")
    assert here is False and "does not exist on this host" in why
    for remote in ("tcp://docker.example.com:2376", "ssh://ops@build-01", "npipe:////./pipe/docker_engine"):
        here, why = _storage.host_files_apply(remote)
        assert here is False and remote in why
    record = _storage.not_read("/etc/docker/daemon.json", "remote")
    assert record["read"] is False and record["exists"] is None and record["not_read_reason"] == "remote"


def analyse_text(text, daemon_json=None, sysconfig=None, thresholds=None, **kwargs):
    info = _storage.parse_docker_info(text)
    return _storage.analyse(info, daemon_json or dict(NO_CONFIG), sysconfig or dict(NO_CONFIG, options=None),
                            _storage.validate_thresholds(thresholds), source="docker_info", **kwargs)


def ids(report):
    return [(f["id"], f["severity"]) for f in report["findings"]]


def test_every_shared_fixture_has_expected_values():
    if SHARED.is_dir():
        assert sorted(p.name for p in SHARED.iterdir()) == sorted(EXPECTED)
        for path in SHARED.iterdir():
            assert (FIXTURES / path.name).read_bytes() == path.read_bytes(), f"{path.name}: copy is out of date"
    assert sorted(p.name for p in FIXTURES.iterdir() if p.is_file()) == sorted(EXPECTED)


def _check(report, expected):
    storage = report["storage"]
    for key, value in expected["storage"].items():
        assert storage[key] == value, key
    dm = storage["devicemapper"]
    assert {k: dm[k] for k in DM_KEYS} == expected["devicemapper"]
    assert [(f["role"], f["path"]) for f in dm["loop_files"]] == expected["loop_files"]
    for record in dm["loop_files"]:  # none of these paths exists on a test machine
        assert record["exists"] is False and record["measured"] is False
        assert record["apparent_size"] is None and record["allocated_size"] is None
    assert report["daemon_warnings"] == expected["warnings"]
    assert ids(report) == expected["findings"]
    assert report["highest_severity"] == expected["findings"][0][1]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parsed_to_exact_values(name):
    _check(analyse_text((FIXTURES / name).read_text()), EXPECTED[name])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_other_form_of_fixture_gives_same_values(name):
    text = (DERIVED / OTHER_FORM[name]).read_text()
    assert text.lstrip().startswith("{") == OTHER_FORM[name].endswith(".json")
    report = analyse_text(text)
    _check(report, EXPECTED[name])
    original = analyse_text((FIXTURES / name).read_text())
    assert report["storage"]["driver_status"] == original["storage"]["driver_status"]
    assert report["findings"] == original["findings"]


def test_json_dict_from_sdk_is_the_same_as_json_text():
    text = (FIXTURES / "loop-lvm-19.03-info.json").read_text()
    from_dict = _storage.info_from_dict(json.loads(text))
    assert from_dict == _storage.parse_docker_info(text)


# ---------------------------------------------------------------------------------------------------------- units

@pytest.mark.parametrize("text, expected", [
    ("1.821 GB", 1_821_000_000),
    ("1.821GB", 1_821_000_000),
    ("65.54 kB", 65_540),
    ("65.54kB", 65_540),
    ("581.6 KB", 581_600),
    ("0 B", 0),
    ("512B", 512),
    ("102 GB", 102_000_000_000),
    ("994.1MB", 994_100_000),
    ("1.5 TB", 1_500_000_000_000),
    ("2PB", 2_000_000_000_000_000),
    ("23.54GiB", 25_275_882_537),
    ("1 KiB", 1024),
    ("4 MiB", 4 * 1024 ** 2),
    ("291.5 Mb", 305_659_904),  # Docker 1.0 to 1.3: "%.1f Mb" of bytes / 1024 / 1024
    ("102400.0 Mb", 107_374_182_400),
    ("1 Gb", 1024 ** 3),
    ("1 mb", 1_000_000),
    ("10", 10),
    (" 7.44 GB ", 7_440_000_000),
    (".5 kB", 500),
    ("", None),
    ("N/A", None),
    ("-1 GB", None),
    ("1.2.3 GB", None),
    ("12 parsecs", None),
    (None, None),
])
def test_parse_size(text, expected):
    assert _storage.parse_size(text) == expected


def test_parse_size_is_exact_for_many_values():
    for whole in range(0, 1000, 7):
        for frac in ("", ".1", ".25", ".999"):
            for unit, mult in (("kB", 10 ** 3), ("MB", 10 ** 6), ("GB", 10 ** 9), ("TB", 10 ** 12)):
                text = f"{whole}{frac} {unit}"
                digits = frac[1:] if frac else ""
                expected = (whole * 10 ** len(digits) + int(digits or 0)) * mult // 10 ** len(digits)
                assert _storage.parse_size(text) == expected, text


@pytest.mark.parametrize("text, expected", [("17.03.1-ce", (17, 3)), ("1.12.6", (1, 12)), ("28.5.2+dfsg4", (28, 5)),
                                            ("25.0.0-beta.1", (25, 0)), ("", None), (None, None), ("dev", None)])
def test_version_tuple(text, expected):
    assert _storage.version_tuple(text) == expected


# ------------------------------------------------------------------------------------------ text parser corners

MODERN_OVERLAY2 = """Client:
 Version:    28.2.2
 Context:    default
 Debug Mode: false

Server:
 Containers: 0
  Running: 0
 Images: 0
 Server Version: 28.5.2+dfsg4
 Storage Driver: overlay2
  Backing Filesystem: extfs
  Supports d_type: true
  Using metacopy: false
  Native Overlay Diff: true
  userxattr: false
 Logging Driver: json-file
 Plugins:
  Volume: local
 Security Options:
  seccomp
   Profile: builtin
 Total Memory: 23.54GiB
 Docker Root Dir: /srv/docker
 Debug Mode: false
"""

CONTAINERD_STORE = """Server:
 Server Version: 28.5.2+dfsg4
 Storage Driver: overlayfs
  driver-type: io.containerd.snapshotter.v1
 Logging Driver: json-file
 Docker Root Dir: /var/lib/docker
"""


def test_modern_overlay2_text():
    report = analyse_text(MODERN_OVERLAY2)
    storage = report["storage"]
    assert storage["driver"] == "overlay2"
    assert storage["docker_version"] == "28.5.2+dfsg4"
    assert storage["docker_root_dir"] == "/srv/docker"
    assert storage["backing_filesystem"] == "extfs"
    assert storage["supports_d_type"] is True
    assert storage["devicemapper"] is None
    assert storage["driver_status"] == [["Backing Filesystem", "extfs"], ["Supports d_type", "true"],
                                        ["Using metacopy", "false"], ["Native Overlay Diff", "true"],
                                        ["userxattr", "false"]]
    assert report["findings"] == [] and report["highest_severity"] == "none"


def test_containerd_image_store_text():
    report = analyse_text(CONTAINERD_STORE)
    assert report["storage"]["driver"] == "overlayfs"
    assert report["storage"]["driver_status"] == [["driver-type", "io.containerd.snapshotter.v1"]]
    assert report["storage"]["supports_d_type"] is None
    assert report["findings"] == []


def test_overlay_without_d_type_is_critical():
    text = MODERN_OVERLAY2.replace("Backing Filesystem: extfs", "Backing Filesystem: xfs").replace(
        "Supports d_type: true", "Supports d_type: false")
    report = analyse_text(text)
    assert ids(report) == [("overlay_without_d_type", "critical")]
    assert "xfs" in report["findings"][0]["message"] and "ftype=1" in report["findings"][0]["remedy"]


def test_legacy_overlay_and_aufs_are_deprecated():
    report = analyse_text("Server Version: 18.09.1\nStorage Driver: overlay\n Backing Filesystem: extfs\n"
                          " Supports d_type: true\n")
    assert ids(report) == [("overlay_deprecated", "warning")]
    assert "24.0" in report["findings"][0]["message"]
    report = analyse_text("Server Version: 18.06.0-ce\nStorage Driver: aufs\n Root Dir: /var/lib/docker/aufs\n")
    assert ids(report) == [("aufs_deprecated", "warning")]
    assert "19.03" in report["findings"][0]["message"]


def test_missing_storage_driver_is_refused():
    with pytest.raises(JanitorError, match="Storage Driver"):
        _storage.parse_docker_info("Client:\n Version: 24.0.7\n\nServer:\nERROR: Cannot connect to the Docker daemon")
    with pytest.raises(JanitorError, match="empty"):
        _storage.parse_docker_info("  \n")
    with pytest.raises(JanitorError, match="not valid JSON"):
        _storage.parse_docker_info('{"Driver": ')
    with pytest.raises(JanitorError, match="ServerErrors|Cannot connect"):
        _storage.parse_docker_info('{"ClientInfo": {}, "ServerErrors": ["Cannot connect to the Docker daemon"]}')
    with pytest.raises(JanitorError, match="not a JSON object"):
        _storage.info_from_dict(["Driver"])


def test_key_after_a_warning_is_not_part_of_it():
    info = _storage.parse_docker_info("Server:\n Storage Driver: vfs\nWARNING: one\n   two\n Docker Root Dir: /x\n")
    assert info.warnings == ["WARNING: one two"] and info.docker_root_dir == "/x"


def test_crlf_and_trailing_spaces():
    text = (FIXTURES / "loop-lvm-17.03-docs.txt").read_text()
    crlf = text.replace("\n", "  \r\n")
    assert analyse_text(crlf)["storage"] == analyse_text(text)["storage"]


def test_json_with_null_driver_status_and_warnings():
    report = analyse_text('{"Driver": "vfs", "DriverStatus": null, "Warnings": null, "ServerVersion": "24.0.7"}')
    assert report["storage"]["driver"] == "vfs" and report["storage"]["driver_status"] == []
    assert report["daemon_warnings"] == [] and report["findings"] == []


def test_keys_are_matched_case_insensitively():
    report = analyse_text("Storage Driver: devicemapper\n pool name: docker-thinpool\n DATA FILE:\n"
                          " data space used: 1 GB\n Data Space Total: 4 GB\n")
    dm = report["storage"]["devicemapper"]
    assert dm["mode"] == "direct-lvm" and dm["pool_name"] == "docker-thinpool"
    assert dm["data_space_used_percent"] == 25.0


# ---------------------------------------------------------------------------------- devicemapper mode corners

def _dm(text):
    return analyse_text("Server Version: 1.13.1\nStorage Driver: devicemapper\n" + text)


def test_old_data_file_naming_the_sparse_file_is_loop_lvm():
    # Docker before 1.8 had no "Data loop file": "Data file" named the sparse file itself.
    report = _dm(" Pool Name: docker-8:1-1234-pool\n Data file: /var/lib/docker/devicemapper/devicemapper/data\n"
                 " Metadata file: /var/lib/docker/devicemapper/devicemapper/metadata\n Data Space Used: 1.5 GB\n"
                 " Data Space Total: 107.4 GB\n Metadata Space Used: 2 MB\n Metadata Space Total: 2.147 GB\n")
    dm = report["storage"]["devicemapper"]
    assert dm["mode"] == "loop-lvm"
    assert dm["data_file"] == dm["data_loop_file"] == "/var/lib/docker/devicemapper/devicemapper/data"
    assert dm["metadata_loop_file"] == "/var/lib/docker/devicemapper/devicemapper/metadata"
    assert dm["data_space_available"] is None and dm["metadata_space_available"] is None
    assert [f["role"] for f in dm["loop_files"]] == ["data", "metadata"]
    assert ids(report)[0] == ("devicemapper_loop_lvm", "critical")
    # with 1.13 the remedy is the manual thin pool: dm.directlvm_device came with 17.06
    loop = report["findings"][0]
    assert "dm.thinpooldev=/dev/mapper/docker-thinpool" in loop["remedy"]
    assert "dm.directlvm_device" not in loop["remedy"]


def test_docker_1_3_output():
    """Docker 1.0 to 1.3: no Server Version line, the loop files in "Data file", sizes in "Mb" (MiB)."""
    text = ("Containers: 2\nImages: 14\nStorage Driver: devicemapper\n Pool Name: docker-253:0-1838339-pool\n"
            " Data file: /var/lib/docker/devicemapper/devicemapper/data\n"
            " Metadata file: /var/lib/docker/devicemapper/devicemapper/metadata\n"
            " Data Space Used: 291.5 Mb\n Data Space Total: 102400.0 Mb\n Metadata Space Used: 0.7 Mb\n"
            " Metadata Space Total: 2048.0 Mb\nExecution Driver: native-0.2\nKernel Version: 3.10.0-123.el7.x86_64\n")
    report = analyse_text(text)
    dm = report["storage"]["devicemapper"]
    assert dm["mode"] == "loop-lvm"
    assert dm["data_loop_file"] == "/var/lib/docker/devicemapper/devicemapper/data"
    assert dm["data_space_used"] == 305_659_904 and dm["data_space_total"] == 107_374_182_400
    assert dm["metadata_space_used"] == 734_003 and dm["metadata_space_total"] == 2_147_483_648
    assert dm["data_space_used_percent"] == 0.28
    assert report["storage"]["docker_version"] is None
    assert ids(report) == [("devicemapper_loop_lvm", "critical"), ("devicemapper_deprecated", "warning")]


def test_loop_device_without_loop_file_is_loop_lvm():
    dm = _dm(" Pool Name: docker-8:1-1234-pool\n Data file: /dev/loop0\n Metadata file: /dev/loop1\n")[
        "storage"]["devicemapper"]
    assert dm["mode"] == "loop-lvm" and dm["data_loop_file"] is None and dm["loop_files"] == []


def test_block_device_data_file_is_direct():
    report = _dm(" Pool Name: docker-8:1-1234-pool\n Data file: /dev/sdb1\n Metadata file: /dev/sdc1\n"
                 " Udev Sync Supported: true\n Deferred Removal Enabled: true\n Deferred Deletion Enabled: true\n")
    dm = report["storage"]["devicemapper"]
    assert dm["mode"] == "direct-lvm" and dm["data_file"] == "/dev/sdb1" and dm["metadata_file"] == "/dev/sdc1"
    assert dm["data_loop_file"] is None and dm["loop_files"] == []
    assert ids(report) == [("devicemapper_deprecated", "warning")]


def test_only_driver_line_is_unknown_mode():
    report = analyse_text("Storage Driver: devicemapper\n")
    dm = report["storage"]["devicemapper"]
    assert dm["mode"] == "unknown"
    assert all(dm[k] is None for k in DM_KEYS if k != "mode")
    assert ids(report) == [("devicemapper_mode_unknown", "warning"), ("devicemapper_deprecated", "warning")]


def test_auto_pool_name_alone_is_unknown_but_loopback_warning_decides():
    assert _dm(" Pool Name: docker-253:1-650320-pool\n")["storage"]["devicemapper"]["mode"] == "unknown"
    report = _dm(" Pool Name: docker-253:1-650320-pool\nWARNING: Usage of loopback devices is strongly "
                 "discouraged for production use.\n")
    assert report["storage"]["devicemapper"]["mode"] == "loop-lvm"
    assert report["daemon_warnings"] == ["WARNING: Usage of loopback devices is strongly discouraged for "
                                         "production use."]


def test_empty_values_are_none():
    dm = _dm(" Pool Name:\n Pool Blocksize:\n Data file:\n Data loop file:\n Data Space Used:\n"
             " Udev Sync Supported:\n Deferred Deleted Device Count:\n Library Version:\n")["storage"]["devicemapper"]
    assert dm["mode"] == "direct-lvm"  # an empty data file: an existing thin pool
    assert dm["pool_name"] is None and dm["pool_blocksize"] is None and dm["data_loop_file"] is None
    assert dm["data_space_used"] is None and dm["data_space_used_percent"] is None
    assert dm["udev_sync_supported"] is None and dm["deferred_deleted_device_count"] is None
    assert dm["library_version"] is None


def test_zero_total_gives_no_percent():
    dm = _dm(" Data file:\n Data Space Used: 0 B\n Data Space Total: 0 B\n")["storage"]["devicemapper"]
    assert dm["data_space_used"] == 0 and dm["data_space_total"] == 0 and dm["data_space_used_percent"] is None


def test_udev_sync_unsupported_is_critical_and_deferred_count_is_info():
    report = _dm(" Pool Name: docker-thinpool\n Udev Sync Supported: false\n Deferred Removal Enabled: true\n"
                 " Deferred Deletion Enabled: false\n Deferred Deleted Device Count: 3\n")
    assert ids(report) == [("udev_sync_unsupported", "critical"), ("deferred_deletion_disabled", "warning"),
                           ("devicemapper_deprecated", "warning"), ("deferred_deleted_devices", "info")]
    deletion = report["findings"][1]
    assert '"dm.use_deferred_deletion=true"' in deletion["remedy"]


@pytest.mark.parametrize("version, fragment", [
    ("17.03.1-ce", "the next Docker versions deprecate it (18.09) and remove it (25.0)"),
    ("18.09.0", "deprecated since Docker 18.09 and removed in 25.0"),
    ("24.0.7", "deprecated since Docker 18.09 and removed in 25.0"),
])
def test_devicemapper_deprecation_message_follows_version(version, fragment):
    report = analyse_text(f"Server Version: {version}\nStorage Driver: devicemapper\n Pool Name: docker-thinpool\n")
    finding = dict((f["id"], f) for f in report["findings"])["devicemapper_deprecated"]
    assert finding["severity"] == "warning" and fragment in finding["message"]
    assert "overlay2" in finding["remedy"]


def test_devicemapper_on_25_is_reported_removed():
    report = analyse_text("Server Version: 25.0.3\nStorage Driver: devicemapper\n Pool Name: docker-thinpool\n")
    assert ("devicemapper_removed", "critical") in ids(report)


def _snippet(remedy):
    start = remedy.index("{")
    depth, end = 0, start
    for end, char in enumerate(remedy[start:], start):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            break
    return json.loads(remedy[start:end + 1])


@pytest.mark.parametrize("name, option", [
    ("loop-lvm-19.03-info.json", "dm.directlvm_device="),  # 17.06 and later: the daemon makes the pool itself
    ("loop-lvm-17.03-docs.txt", "dm.thinpooldev="),  # before 17.06: a thin pool made by hand
])
def test_loop_lvm_remedy_has_a_valid_daemon_json_snippet(name, option):
    remedy = analyse_text((FIXTURES / name).read_text())["findings"][0]["remedy"]
    snippet = _snippet(remedy)
    assert snippet["storage-driver"] == "devicemapper"
    assert any(opt.startswith(option) for opt in snippet["storage-opts"])
    assert "dm.use_deferred_removal=true" in snippet["storage-opts"]
    assert "dm.thinpooldev" in remedy and "overlay2" in remedy


# ------------------------------------------------------------------------------------------------- thresholds

def _pool(used, total, available, meta_used="1 MB", meta_total="2 GB", meta_available="2 GB", minimum="1 GB"):
    return (f"Server Version: 17.03.1-ce\nStorage Driver: devicemapper\n Pool Name: docker-thinpool\n Data file:\n"
            f" Data Space Used: {used}\n Data Space Total: {total}\n Data Space Available: {available}\n"
            f" Metadata Space Used: {meta_used}\n Metadata Space Total: {meta_total}\n"
            f" Metadata Space Available: {meta_available}\n Thin Pool Minimum Free Space: {minimum}\n")


def _space_ids(report):
    return [i for i in ids(report) if i[0] != "devicemapper_deprecated"]


def test_default_thresholds():
    assert _storage.validate_thresholds(None) == _storage.DEFAULT_THRESHOLDS
    assert _storage.DEFAULT_THRESHOLDS == {
        "data_used_percent_warning": 80, "data_used_percent_critical": 90,
        "metadata_used_percent_warning": 80, "metadata_used_percent_critical": 90,
        "data_min_free_bytes": 5_000_000_000, "metadata_min_free_bytes": 100_000_000}


@pytest.mark.parametrize("used, expected", [
    ("79.99 GB", []),
    ("80 GB", [("data_space_used", "warning")]),
    ("89.99 GB", [("data_space_used", "warning")]),
    ("90 GB", [("data_space_used", "critical")]),
])
def test_data_percent_thresholds(used, expected):
    assert _space_ids(analyse_text(_pool(used, "100 GB", "50 GB"))) == expected


def test_metadata_percent_and_min_free():
    report = analyse_text(_pool("1 GB", "100 GB", "99 GB", meta_used="1.9 GB", meta_total="2 GB",
                                meta_available="99 MB"))
    assert _space_ids(report) == [("metadata_space_used", "critical"), ("metadata_space_low", "warning")]
    assert "95.0%" in report["findings"][0]["message"]


def test_min_free_and_pool_minimum():
    report = analyse_text(_pool("10 GB", "100 GB", "4.9 GB", minimum="10 GB"))
    assert _space_ids(report) == [("data_space_below_pool_minimum", "critical"), ("data_space_low", "warning")]
    low = dict((f["id"], f) for f in report["findings"])["data_space_low"]
    assert "4.9 GB" in low["message"] and "5 GB" in low["message"]


def test_min_free_without_available_uses_total_minus_used():
    text = ("Storage Driver: devicemapper\n Data file:\n Data Space Used: 98 GB\n Data Space Total: 100 GB\n")
    assert ("data_space_low", "warning") in ids(analyse_text(text))


def test_custom_thresholds():
    text = _pool("60 GB", "100 GB", "40 GB")
    assert _space_ids(analyse_text(text)) == []
    custom = {"data_used_percent_warning": 50, "data_used_percent_critical": "70", "data_min_free_bytes": "50GB"}
    assert _space_ids(analyse_text(text, thresholds=custom)) == [("data_space_used", "warning"),
                                                                 ("data_space_low", "warning")]
    assert _space_ids(analyse_text(text, thresholds={"data_used_percent_critical": 55.5,
                                                     "data_used_percent_warning": 55.5})) == [
        ("data_space_used", "critical")]


def test_validate_thresholds_values():
    result = _storage.validate_thresholds({"data_min_free_bytes": "2GiB", "metadata_min_free_bytes": 1e6,
                                           "metadata_used_percent_warning": 75.0, "data_used_percent_warning": None})
    assert result["data_min_free_bytes"] == 2 * 1024 ** 3
    assert result["metadata_min_free_bytes"] == 1_000_000
    assert result["metadata_used_percent_warning"] == 75
    assert result["data_used_percent_warning"] == 80


def test_thresholds_read_mb_as_megabytes_not_as_old_docker_info_mebibytes():
    result = _storage.validate_thresholds({"data_min_free_bytes": "512Mb", "metadata_min_free_bytes": "1.5 Gb"})
    assert result["data_min_free_bytes"] == 512 * 10 ** 6
    assert result["metadata_min_free_bytes"] == 1_500_000_000
    assert _storage.parse_size("512Mb") == 512 * 1024 ** 2  # the same text in docker info is Docker 1.x's MiB


@pytest.mark.parametrize("given, message", [
    ({"data_used_percent": 80}, "unknown key(s) data_used_percent; valid keys: data_min_free_bytes, "),
    ({"zzz": 1, "aaa": 2}, "unknown key(s) aaa, zzz"),
    ({"data_used_percent_warning": "lots"}, "thresholds.data_used_percent_warning: 'lots' is not a percentage"),
    ({"data_used_percent_warning": 101}, "not a percentage between 0 and 100"),
    ({"data_used_percent_warning": True}, "not a percentage"),
    ({"data_min_free_bytes": "5 parsecs"}, "thresholds.data_min_free_bytes: '5 parsecs' is not a size"),
    ({"data_min_free_bytes": -1}, "is not a size"),
    ({"metadata_used_percent_warning": 95}, "metadata_used_percent_warning (95) is above "
                                            "metadata_used_percent_critical (90)"),
    ("80", "must be a dictionary"),
])
def test_validate_thresholds_errors(given, message):
    with pytest.raises(JanitorError) as info:
        _storage.validate_thresholds(given)
    assert message in info.value.message


# --------------------------------------------------------------------------------------------- configuration

def test_read_daemon_json(tmp_path):
    path = tmp_path / "daemon.json"
    assert _storage.read_daemon_json(str(path)) == dict(NO_CONFIG, path=str(path))
    path.write_text(json.dumps({"storage-driver": "devicemapper", "storage-opts": ["dm.thinpooldev=/dev/x"],
                                "log-driver": "journald"}))
    assert _storage.read_daemon_json(str(path)) == {"path": str(path), "exists": True,
                                                    "storage_driver": "devicemapper",
                                                    "storage_opts": ["dm.thinpooldev=/dev/x"], "error": None,
                                                    "read": True, "not_read_reason": None}
    path.write_text("{}")
    assert _storage.read_daemon_json(str(path))["storage_driver"] is None
    path.write_text('{"storage-driver": "overlay2",}')
    config = _storage.read_daemon_json(str(path))
    assert config["exists"] and "not valid JSON" in config["error"]
    path.write_text("[]")
    assert "not a JSON object" in _storage.read_daemon_json(str(path))["error"]
    assert "cannot read" in _storage.read_daemon_json(str(tmp_path))["error"]  # a directory


SYSCONFIG = """# This file may be automatically generated by an installation program.
# Please DO NOT edit this file directly. Instead edit /etc/sysconfig/docker-storage-setup
DOCKER_STORAGE_OPTIONS="--storage-driver devicemapper --storage-opt dm.fs=xfs \
--storage-opt dm.thinpooldev=/dev/mapper/rhel-docker--pool \
--storage-opt dm.use_deferred_removal=true --storage-opt dm.use_deferred_deletion=true "
"""


def test_read_sysconfig_storage(tmp_path):
    path = tmp_path / "docker-storage"
    assert _storage.read_sysconfig_storage(str(path)) == dict(NO_CONFIG, path=str(path), options=None)
    path.write_text(SYSCONFIG)
    config = _storage.read_sysconfig_storage(str(path))
    assert config["exists"] and config["error"] is None
    assert config["storage_driver"] == "devicemapper"
    assert config["storage_opts"] == ["dm.fs=xfs", "dm.thinpooldev=/dev/mapper/rhel-docker--pool",
                                      "dm.use_deferred_removal=true", "dm.use_deferred_deletion=true"]
    assert config["options"].startswith("--storage-driver devicemapper")
    path.write_text("export DOCKER_STORAGE_OPTIONS='-s=overlay2 --storage-opt=overlay2.size=10G'  # comment\n")
    config = _storage.read_sysconfig_storage(str(path))
    assert config["storage_driver"] == "overlay2" and config["storage_opts"] == ["overlay2.size=10G"]
    path.write_text('DOCKER_STORAGE_OPTIONS="-s devicemapper \\\n  --storage-opt dm.basesize=20G"\n')
    config = _storage.read_sysconfig_storage(str(path))  # a shell line continued with a backslash
    assert config["storage_driver"] == "devicemapper" and config["storage_opts"] == ["dm.basesize=20G"]
    path.write_text("DOCKER_STORAGE_OPTIONS=\n")
    config = _storage.read_sysconfig_storage(str(path))
    assert config["exists"] and config["storage_driver"] is None and config["storage_opts"] == []
    assert config["options"] == ""
    path.write_text('DOCKER_STORAGE_OPTIONS="--storage-driver devicemapper\n')
    assert "cannot parse" in _storage.read_sysconfig_storage(str(path))["error"]


def test_driver_mismatch_and_conflict(tmp_path):
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text('{"storage-driver": "overlay2", "storage-opts": ["overlay2.size=10G"]}')
    sysconfig = tmp_path / "docker-storage"
    sysconfig.write_text(SYSCONFIG)
    report = analyse_text((DERIVED / "direct-lvm-18.06-kata-1446.json").read_text(),
                          daemon_json=_storage.read_daemon_json(str(daemon_json)),
                          sysconfig=_storage.read_sysconfig_storage(str(sysconfig)))
    assert ids(report) == [("devicemapper_deprecated", "warning"), ("storage_driver_mismatch", "warning"),
                           ("storage_config_conflict", "warning")]
    mismatch = report["findings"][1]
    assert str(daemon_json) in mismatch["message"] and "overlay2" in mismatch["message"]
    conflict = report["findings"][2]
    assert "storage-driver, storage-opts" in conflict["message"]
    assert report["storage"]["config"]["sysconfig"]["storage_driver"] == "devicemapper"


def test_sysconfig_driver_mismatch_alone(tmp_path):
    sysconfig = tmp_path / "docker-storage"
    sysconfig.write_text(SYSCONFIG)
    report = analyse_text(MODERN_OVERLAY2, sysconfig=_storage.read_sysconfig_storage(str(sysconfig)))
    assert ids(report) == [("storage_driver_mismatch", "warning")]
    assert "--storage-driver in DOCKER_STORAGE_OPTIONS" in report["findings"][0]["message"]


def test_overlay2_config_matches_containerd_overlayfs(tmp_path):
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text('{"storage-driver": "overlay2"}')
    report = analyse_text(CONTAINERD_STORE, daemon_json=_storage.read_daemon_json(str(daemon_json)))
    assert report["findings"] == []
    # without the containerd image store overlay2 and overlayfs are different drivers
    report = analyse_text("Storage Driver: overlayfs\n", daemon_json=_storage.read_daemon_json(str(daemon_json)))
    assert ids(report) == [("storage_driver_mismatch", "warning")]


def test_invalid_daemon_json_is_a_warning(tmp_path):
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text("{")
    report = analyse_text(MODERN_OVERLAY2, daemon_json=_storage.read_daemon_json(str(daemon_json)))
    assert ids(report) == [("daemon_json_invalid", "warning")]
    report = analyse_text(MODERN_OVERLAY2, daemon_json=_storage.read_daemon_json(str(tmp_path)))
    assert ids(report) == [("daemon_json_unreadable", "info")]


# ------------------------------------------------------------------------------------------------ loop files

def _sparse(path, apparent=1_000_000_000, written=3):
    """A sparse file of ``apparent`` bytes with ``written`` MiB-blocks of real data; returns the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        os.truncate(handle.fileno(), apparent)
        for index in range(written):
            handle.seek(index * 100 * 1024 * 1024)
            handle.write(b"\x5a" * 1024 * 1024)
        handle.flush()
        os.fsync(handle.fileno())
    return written * 1024 * 1024


def test_sparse_loop_file_sizes(tmp_path):
    root = tmp_path / "docker"
    data = root / "devicemapper" / "devicemapper" / "data"
    written = _sparse(data)
    record = _storage.measure_file(str(data), [str(root)])
    assert record["exists"] and record["measured"] and record["reason"] is None
    assert record["apparent_size"] == 1_000_000_000
    # the file system may allocate a little more around the written blocks, never the whole file
    assert written <= record["allocated_size"] < written + 16 * 1024 * 1024
    assert record["allocated_size"] == os.stat(data).st_blocks * 512


def test_loop_files_measured_through_analyse(tmp_path):
    root = tmp_path / "docker"
    data = root / "devicemapper" / "devicemapper" / "data"
    metadata = root / "devicemapper" / "devicemapper" / "metadata"
    written = _sparse(data)
    _sparse(metadata, apparent=2_000_000_000, written=1)
    text = (DERIVED / "loop-lvm-19.03-info.txt").read_text().replace("/var/lib/docker", str(root)).replace(
        " Logging Driver: json-file\n", f" Logging Driver: json-file\n Docker Root Dir: {root}\n")
    report = analyse_text(text)
    files = report["storage"]["devicemapper"]["loop_files"]
    assert [(f["role"], f["apparent_size"]) for f in files] == [("data", 1_000_000_000), ("metadata", 2_000_000_000)]
    assert all(f["measured"] for f in files)
    # a file in the root directory but not in its devicemapper directory is not looked at
    elsewhere = analyse_text(text.replace(str(data), str(root / "data")))["storage"]["devicemapper"]["loop_files"][0]
    assert elsewhere["path"] == str(root / "data") and not elsewhere["measured"] and "not looked at" in elsewhere["reason"]
    assert "on disk" in report["findings"][0]["message"] and str(data) in report["findings"][0]["message"]
    assert files[0]["allocated_size"] >= written


def test_loop_file_outside_root_is_not_looked_at(tmp_path):
    outside = tmp_path / "elsewhere" / "data"
    _sparse(outside, written=0)
    record = _storage.measure_file(str(outside), [str(tmp_path / "docker")])
    assert record == {"path": str(outside), "exists": False, "measured": False, "apparent_size": None,
                      "allocated_size": None, "reason": record["reason"]}
    assert "where the daemon keeps its loop files: not looked at" in record["reason"]
    # the root directory itself can never be the whole file system
    assert "not looked at" in _storage.measure_file(str(outside), ["/"])["reason"]
    for bad in ("relative/data", str(tmp_path / "docker" / ".." / "elsewhere" / "data"), ""):
        assert _storage.measure_file(bad, [str(tmp_path / "docker")])["reason"] == "not an absolute, normalised path"


def test_symlinks_are_not_followed(tmp_path):
    root = tmp_path / "docker"
    secret = tmp_path / "secret"
    _sparse(secret, written=1)
    (root / "devicemapper").mkdir(parents=True)
    link = root / "devicemapper" / "data"
    link.symlink_to(secret)
    record = _storage.measure_file(str(link), [str(root)])
    assert record["exists"] and not record["measured"] and record["apparent_size"] is None
    assert "symbolic link" in record["reason"]
    # a directory on the way that leads out of the root
    (root / "dm").symlink_to(tmp_path)
    record = _storage.measure_file(str(root / "dm" / "secret"), [str(root)])
    assert not record["measured"] and "leads outside" in record["reason"]
    # a root that is itself a symbolic link is fine: the daemon reports its real path, the default may be a link
    real_root = tmp_path / "real-docker"
    data = real_root / "devicemapper" / "data"
    _sparse(data, written=1)
    (tmp_path / "linked-root").symlink_to(real_root)
    record = _storage.measure_file(str(tmp_path / "linked-root" / "devicemapper" / "data"),
                                   [str(tmp_path / "linked-root")])
    assert record["measured"] and record["apparent_size"] == 1_000_000_000


def test_non_regular_and_missing_files(tmp_path):
    (tmp_path / "dir").mkdir()
    record = _storage.measure_file(str(tmp_path / "dir"), [str(tmp_path)])
    assert record["exists"] and not record["measured"] and record["reason"] == "not a regular file"
    record = _storage.measure_file(str(tmp_path / "missing"), [str(tmp_path)])
    assert not record["exists"] and record["reason"] == "does not exist on this host"


# ------------------------------------------------------------------------------------------------- properties

_STATUS_KEYS = ["Pool Name", "Pool Blocksize", "Base Device Size", "Backing Filesystem", "Data file", "Metadata file",
                "Data loop file", "Metadata loop file", "Data Space Used", "Data Space Total", "Data Space Available",
                "Metadata Space Used", "Metadata Space Total", "Metadata Space Available",
                "Thin Pool Minimum Free Space", "Udev Sync Supported", "Deferred Removal Enabled",
                "Deferred Deletion Enabled", "Deferred Deleted Device Count", "Library Version"]
_values = st.one_of(
    st.builds(lambda n, u, sp: f"{n}{sp}{u}", st.decimals(min_value=0, max_value=999, places=3).map(str),
              st.sampled_from(["B", "kB", "KB", "MB", "GB", "TB"]), st.sampled_from(["", " "])),
    st.sampled_from(["true", "false", "0", "12", "", "/dev/loop0", "/dev/sdb", "docker-thinpool",
                     "docker-8:1-99-pool", "/var/lib/docker/devicemapper/devicemapper/data",
                     "1.02.135-RHEL7 (2016-11-16)"]),
)


@settings(max_examples=100, deadline=None)
@given(status=st.lists(st.tuples(st.sampled_from(_STATUS_KEYS), _values), unique_by=lambda p: p[0]),
       version=st.sampled_from([None, "1.13.1", "17.03.1-ce", "18.09.7", "24.0.7", "25.0.0"]),
       modern=st.booleans())
def test_text_and_json_forms_always_agree(status, version, modern):
    """Any driver status printed the way docker info prints it parses to the same report as its JSON."""
    pad = " " if modern else ""
    lines = ["Server:"] if modern else []
    if version:
        lines.append(f"{pad}Server Version: {version}")
    lines.append(f"{pad}Storage Driver: devicemapper")
    lines += [f"{pad} {key}: {value}".rstrip() if value else f"{pad} {key}:" for key, value in status]
    lines.append(f"{pad}Logging Driver: json-file")
    as_json = json.dumps({"Driver": "devicemapper", "ServerVersion": version,
                          "DriverStatus": [list(pair) for pair in status]})
    from_text, from_json = analyse_text("\n".join(lines) + "\n"), analyse_text(as_json)
    assert from_text == from_json
    assert from_text["storage"]["devicemapper"]["mode"] in ("loop-lvm", "direct-lvm", "unknown")
    ranks = [("critical", "warning", "info").index(f["severity"]) for f in from_text["findings"]]
    assert ranks == sorted(ranks)


@settings(max_examples=150, deadline=None)
@given(st.decimals(min_value=0, max_value=10 ** 6, places=4), st.sampled_from(list("kmgtpezy")),
       st.sampled_from(["", " "]))
def test_parse_size_matches_exact_decimal(number, unit, space):
    text = f"{number}{space}{unit.upper() if unit != 'k' else 'k'}B"
    expected = int((number * 1000 ** ("kmgtpezy".index(unit) + 1)).to_integral_value())
    assert _storage.parse_size(text) == expected
