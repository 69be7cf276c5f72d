# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Docker storage health: parse ``docker info`` (text or JSON), read the daemon's storage configuration, find problems.

Pure code apart from reading the two configuration files and ``lstat`` of devicemapper loop files; it never talks to
the engine. The flow is::

    info = parse_docker_info(text)            # or info_from_dict(client.info())
    daemon_json = read_daemon_json(path)
    sysconfig = read_sysconfig_storage(path)
    report = analyse(info, daemon_json, sysconfig, validate_thresholds(user_thresholds))

``report`` is a dict with ``storage``, ``daemon_warnings``, ``findings`` and ``highest_severity``.

Sizes in ``docker info`` are what Docker's ``units.HumanSize`` prints: decimal (SI) units, ``kB`` = 1000 bytes,
with or without a space (``65.54 kB`` before Docker 17.06, ``65.54kB`` after). They are parsed exactly (with
``_units.size_bytes``) into integer bytes; binary units (``KiB``, ``MiB``...) are accepted as well, and so is the
``291.5 Mb`` of Docker 1.0 to 1.3, which meant MiB (in ``docker info`` text only: in the user's thresholds ``Mb`` is
MB, as everywhere else).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import stat
from dataclasses import dataclass, field

from ansible_collections.janitor.docker.plugins.module_utils._errors import JanitorError, shown
from ansible_collections.janitor.docker.plugins.module_utils._units import human_size, size_bytes

_SEVERITY_RANK = {"none": 0, "info": 1, "warning": 2, "critical": 3}

DEFAULT_DOCKER_ROOT = "/var/lib/docker"

DEFAULT_THRESHOLDS = {
    "data_used_percent_warning": 80,
    "data_used_percent_critical": 90,
    "metadata_used_percent_warning": 80,
    "metadata_used_percent_critical": 90,
    "data_min_free_bytes": 5 * 1000 ** 3,
    "metadata_min_free_bytes": 100 * 1000 ** 2,
}
_PERCENT_KEYS = tuple(k for k in DEFAULT_THRESHOLDS if "_percent_" in k)
_BYTES_KEYS = tuple(k for k in DEFAULT_THRESHOLDS if k.endswith("_bytes"))

# Storage drivers Docker deprecated and later removed: driver -> (deprecated in, removed in).
DEPRECATED_DRIVERS = {
    "devicemapper": ((18, 9), (25, 0)),
    "overlay": ((18, 9), (24, 0)),
    "aufs": ((19, 3), (24, 0)),
}

# Docker 1.0 to 1.3 printed devicemapper sizes as "%.1f Mb" of bytes / 1024 / 1024: "Mb" there means MiB.
_OLD_DOCKER_BINARY = {"Kb": 1024, "Mb": 1024 ** 2, "Gb": 1024 ** 3, "Tb": 1024 ** 4}
# The pool name devicemapper makes up when it creates its own pool (loop files or dm.datadev): docker-MAJ:MIN-INODE-pool
_AUTO_POOL_RE = re.compile(r"^docker-\d+:\d+-\d+-pool$")
_KEY_VALUE_RE = re.compile(r"^(?P<key>[^:]+?):(?:\s+(?P<value>.*))?$")


def parse_size(text):
    """Bytes (int) for a size as ``docker info`` prints it (``1.821 GB``, ``65.54kB``, ``0 B``), else None."""
    return _whole_bytes(text, _OLD_DOCKER_BINARY)


def _whole_bytes(value, quirks=None):
    """Bytes (int, rounded half to even) for an int or a size as text (``_units.size_bytes``), else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    exact = size_bytes(str(value), quirks)
    return None if exact is None else round(exact)


def parse_bool(text):
    if isinstance(text, bool):
        return text
    value = str(text or "").strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    return None


def parse_int(text):
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def version_tuple(text):
    """(major, minor) of a Docker version such as ``17.03.1-ce``, ``1.13.1`` or ``28.5.2+dfsg4``; None if unknown."""
    match = re.match(r"^\s*v?(\d+)\.(\d+)", str(text or ""))
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


def _format_version(pair):
    return f"{pair[0]}.{pair[1]:02d}" if pair[0] < 20 else f"{pair[0]}.{pair[1]}"


# --------------------------------------------------------------------------------------------------------------------
# docker info -> DockerInfo


@dataclass
class DockerInfo:
    """What the storage analysis needs from ``docker info``, whatever form it came in."""

    driver: str | None = None
    server_version: str | None = None
    docker_root_dir: str | None = None
    driver_status: list = field(default_factory=list)  # [key, value] pairs in the daemon's order
    warnings: list = field(default_factory=list)

    def status(self, *names):
        """The value of the first driver status key among ``names`` (case-insensitive), or None if absent."""
        wanted = [_norm_key(n) for n in names]
        for name in wanted:
            for key, value in self.driver_status:
                if _norm_key(key) == name:
                    return value
        return None

    def has_status(self, name):
        return any(_norm_key(pair[0]) == _norm_key(name) for pair in self.driver_status)


def _norm_key(key):
    return " ".join(str(key).split()).lower()


def _norm_warning(text):
    """One line per warning: the daemon wraps long warnings over several indented lines."""
    return " ".join(str(text).split())


def parse_docker_info(text):
    """A ``DockerInfo`` from the text of ``docker info`` or its JSON (``docker info --format '{{json .}}'``)."""
    if not isinstance(text, str) or not text.strip():
        raise JanitorError("docker_info is empty: give the output of `docker info` or "
                           "`docker info --format '{{json .}}'`")
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise JanitorError(f"docker_info starts like JSON but is not valid JSON: {exc}") from exc
        return info_from_dict(data, what="docker_info")
    return parse_info_text(text)


def info_from_dict(data, what="the daemon's info"):
    """A ``DockerInfo`` from the engine's ``GET /info`` answer (docker SDK ``info()``, or ``docker info`` JSON)."""
    if not isinstance(data, dict):
        raise JanitorError(f"{what} is not a JSON object")
    if not data.get("Driver"):
        errors = data.get("ServerErrors") or []
        hint = f" (the CLI reported: {'; '.join(str(e) for e in errors)})" if errors else ""
        raise JanitorError(f"{what} has no storage driver (no Driver key): is it the output of `docker info` "
                           f"against a running daemon?{hint}")
    for key, kind, form in (("Driver", str, "a string"), ("DriverStatus", list, "a list of [name, value] pairs"),
                            ("DockerRootDir", str, "a path")):
        if data.get(key) is not None and not isinstance(data[key], kind):
            raise JanitorError(f"{what} holds {key}={shown(data[key])}, which is not {form} as in a Docker daemon's "
                               f"info")
    pairs = []
    for item in data.get("DriverStatus") or []:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            pairs.append([str(item[0]), "" if item[1] is None else str(item[1])])
    warnings = [_norm_warning(w) for w in (data.get("Warnings") or []) if str(w).strip()]
    return DockerInfo(
        driver=str(data["Driver"]),
        server_version=data.get("ServerVersion") or None,
        docker_root_dir=data.get("DockerRootDir") or None,
        driver_status=pairs,
        warnings=warnings,
    )


def _split_line(line):
    """(indent, key, value) for one line of ``docker info``; key is None for a line without ``Key:``."""
    content = line.rstrip()
    indent = len(content) - len(content.lstrip(" \t"))
    body = content.strip()
    match = _KEY_VALUE_RE.match(body)
    if match:
        return indent, match.group("key").strip(), (match.group("value") or "").strip()
    return indent, None, body


def parse_info_text(text):
    """A ``DockerInfo`` from the text of ``docker info`` (any Docker version from 1.x to today).

    The text is a tree by indentation: ``Storage Driver: devicemapper`` is followed by the driver's status, one
    ``Key: value`` per line, indented deeper. Before Docker 19.03 the server keys start in column 0; since then they
    sit under ``Server:`` with one space. ``WARNING:`` lines (with indented continuation lines) are the daemon's
    warnings, wherever they appear.
    """
    lines = [_split_line(line) for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    info = DockerInfo()
    driver_indent = None
    in_driver = False
    warning_indent = None
    for indent, key, value in lines:
        body_is_warning = key is not None and key.upper() == "WARNING"
        if warning_indent is not None and not body_is_warning and indent > warning_indent + 1:
            # a continuation line of a wrapped warning (aligned under its text; keys nest one space deeper)
            info.warnings[-1] = _norm_warning(info.warnings[-1] + " " + (f"{key}: {value}" if key else value))
            continue
        warning_indent = None
        if body_is_warning:
            info.warnings.append(_norm_warning(f"WARNING: {value}"))
            warning_indent = indent
            continue
        if in_driver and indent > driver_indent:
            if key is not None:
                info.driver_status.append([key, value])
            continue
        in_driver = False
        if key is None:
            continue
        name = _norm_key(key)
        if name == "storage driver" and info.driver is None:
            info.driver = value or None
            driver_indent = indent
            in_driver = True
        elif name == "server version" and info.server_version is None:
            info.server_version = value or None
        elif name == "docker root dir" and info.docker_root_dir is None:
            info.docker_root_dir = value or None
    if not info.driver:
        raise JanitorError("docker_info has no 'Storage Driver:' line: give the output of `docker info` (or "
                           "`docker info --format '{{json .}}'`) run against a running daemon")
    return info


# --------------------------------------------------------------------------------------------------------------------
# daemon configuration


MAX_CONFIG_BYTES = 1 << 20


def _read_config_into(path, config):
    """The bytes of a configuration file, or None when there is none to read.

    Sets ``config["exists"]``; an unreadable file is recorded in ``config["error"]`` (a missing one is not an error).
    """
    if not path:
        return None
    try:
        raw = _read_config_file(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        config["exists"] = os.path.lexists(path)
        config["error"] = f"cannot read {path}: {exc.strerror or exc}"
        return None
    config["exists"] = True
    return raw


def _read_config_file(path):
    """The bytes of a configuration file: a regular file of at most ``MAX_CONFIG_BYTES``, else ``OSError``.

    Opened without blocking and checked before reading, so a FIFO (which would block forever), a device such as
    /dev/zero (which never ends) or a directory given as a configuration path is reported, not read.
    """
    handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        chunks = []
        size = 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(handle, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_CONFIG_BYTES:
            raise OSError(errno.EFBIG, f"larger than {MAX_CONFIG_BYTES} bytes, not a daemon configuration")
        return b"".join(chunks)
    finally:
        os.close(handle)


def _empty_config(path):
    return {"path": path, "exists": False, "storage_driver": None, "storage_opts": [], "error": None, "read": True,
            "not_read_reason": None}


def host_files_apply(docker_host):
    """``(True, None)`` when the daemon at ``docker_host`` runs on this host - a unix socket that exists here - so
    this host's configuration and loop files are the daemon's; else ``(False, why)``: the files here belong to
    another machine (the controller with ``connection: local``, say) and say nothing about that daemon."""
    url = str(docker_host or "")
    if url.startswith("unix://"):
        path = url[len("unix://"):]
        if os.path.exists(path):
            return True, None
        return False, f"the daemon's socket {path} does not exist on this host"
    return False, f"the daemon at {url} is not on this host (only a unix socket here is)"


def not_read(path, why, sysconfig=False):
    """The record of a configuration file left unread, and why."""
    config = _empty_config(path)
    config["exists"] = None
    config["read"] = False
    config["not_read_reason"] = why
    if sysconfig:
        config["options"] = None
    return config


def read_daemon_json(path):
    """The storage settings of ``/etc/docker/daemon.json`` (``storage-driver``, ``storage-opts``).

    A missing file is not an error (``exists: false``); an unreadable or invalid one is reported in ``error``.
    """
    config = _empty_config(path)
    raw = _read_config_into(path, config)
    if raw is None:
        return config
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        config["error"] = f"{path} is not valid JSON: {exc}"
        return config
    if not isinstance(data, dict):
        config["error"] = f"{path} is not a JSON object"
        return config
    driver = data.get("storage-driver")
    config["storage_driver"] = str(driver) if driver else None
    opts = data.get("storage-opts") or []
    if isinstance(opts, str):
        opts = [opts]
    config["storage_opts"] = [str(o) for o in opts] if isinstance(opts, list) else []
    return config


def _parse_dockerd_flags(words):
    driver, opts = None, []
    index = 0
    while index < len(words):
        word = words[index]
        name, has_value, inline = word.partition("=")
        if name in ("--storage-driver", "-s", "--storage-opt"):
            if has_value:
                value = inline
            elif index + 1 < len(words):
                index += 1
                value = words[index]
            else:
                value = ""
            if name == "--storage-opt":
                opts.append(value)
            else:
                driver = value or None
        index += 1
    return driver, opts


def read_sysconfig_storage(path):
    """The storage flags in ``DOCKER_STORAGE_OPTIONS`` of ``/etc/sysconfig/docker-storage`` (RHEL-family hosts).

    The file is a shell fragment (``DOCKER_STORAGE_OPTIONS="--storage-driver devicemapper --storage-opt ..."``),
    written by ``docker-storage-setup``; only ``--storage-driver``/``-s`` and ``--storage-opt`` are read.
    """
    config = _empty_config(path)
    config["options"] = None
    raw = _read_config_into(path, config)
    if raw is None:
        return config
    text = raw.decode("utf-8", errors="replace")
    for line in text.replace("\\\n", "").splitlines():  # shell line continuations
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):].strip()
        if not line.startswith("DOCKER_STORAGE_OPTIONS="):
            continue
        try:
            value = " ".join(shlex.split(line[len("DOCKER_STORAGE_OPTIONS="):], comments=True))
            words = shlex.split(value)
        except ValueError as exc:
            config["error"] = f"{path}: cannot parse DOCKER_STORAGE_OPTIONS: {exc}"
            continue
        config["options"] = value
        config["error"] = None
        config["storage_driver"], config["storage_opts"] = _parse_dockerd_flags(words)
    return config


# --------------------------------------------------------------------------------------------------------------------
# loop files


def _under(path, root):
    root = root.rstrip(os.sep) or os.sep
    return path == root or path.startswith(root if root == os.sep else root + os.sep)


def measure_file(path, allowed_roots):
    """Apparent and allocated size of a devicemapper loop file, read with ``lstat``.

    Only a regular file under one of ``allowed_roots`` (the devicemapper directory of the daemon's root directory,
    where the daemon keeps its loop files) is measured; nothing outside is even looked at, so a crafted
    ``docker_info`` cannot be used to probe other files. Symbolic links are never followed, neither the file itself
    nor a directory on the way that leads out of the allowed directory. ``reason`` says why a file was not measured.
    """
    record = {"path": path, "exists": False, "measured": False, "apparent_size": None, "allocated_size": None,
              "reason": None}
    if not path or not os.path.isabs(path) or os.path.normpath(path) != path:
        record["reason"] = "not an absolute, normalised path"
        return record
    roots = [os.path.normpath(r) for r in allowed_roots if r and os.path.isabs(r) and os.path.normpath(r) != os.sep]
    if not any(_under(path, root) for root in roots):
        record["reason"] = f"outside {', '.join(roots)}, where the daemon keeps its loop files: not looked at"
        return record
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        record["reason"] = "does not exist on this host"
        return record
    except OSError as exc:
        record["reason"] = f"cannot stat: {exc.strerror or exc}"
        return record
    record["exists"] = True
    if stat.S_ISLNK(st.st_mode):
        record["reason"] = "is a symbolic link: not followed"
        return record
    real = os.path.realpath(path)
    if not any(_under(real, os.path.realpath(root)) for root in roots):
        record["reason"] = f"a symbolic link on the way leads outside {', '.join(roots)} (to {real})"
        return record
    if not stat.S_ISREG(st.st_mode):
        record["reason"] = "not a regular file"
        return record
    record["measured"] = True
    record["apparent_size"] = st.st_size
    record["allocated_size"] = st.st_blocks * 512
    return record


# --------------------------------------------------------------------------------------------------------------------
# thresholds


def validate_thresholds(given):
    """The thresholds with defaults filled in; unknown keys and bad values raise ``JanitorError``."""
    valid = ", ".join(sorted(DEFAULT_THRESHOLDS))
    given = given or {}
    if not isinstance(given, dict):
        raise JanitorError(f"thresholds must be a dictionary with the keys {valid}")
    unknown = sorted(str(k) for k in given if k not in DEFAULT_THRESHOLDS)
    if unknown:
        raise JanitorError(f"thresholds: unknown key(s) {', '.join(unknown)}; valid keys: {valid}")
    result = dict(DEFAULT_THRESHOLDS)
    for key, value in given.items():
        if value is None:
            continue
        if key in _PERCENT_KEYS:
            number = None
            if not isinstance(value, bool):
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = None
            if number is None or not 0 <= number <= 100:
                raise JanitorError(f"thresholds.{key}: {value!r} is not a percentage between 0 and 100")
            result[key] = int(number) if number == int(number) else number
        else:
            number = _whole_bytes(value)  # a size the user wrote: "Mb" is MB here, not docker info's old MiB
            if number is None and isinstance(value, float) and value >= 0:
                number = int(value)
            if number is None or number < 0:
                raise JanitorError(f"thresholds.{key}: {value!r} is not a size in bytes (a number such as "
                                   f"5000000000, or with a unit such as 5GB)")
            result[key] = number
    for space in ("data", "metadata"):
        warn, crit = result[f"{space}_used_percent_warning"], result[f"{space}_used_percent_critical"]
        if warn > crit:
            raise JanitorError(f"thresholds: {space}_used_percent_warning ({warn}) is above "
                               f"{space}_used_percent_critical ({crit})")
    return result


# --------------------------------------------------------------------------------------------------------------------
# the model


def _devicemapper_model(info, allowed_roots, not_here=None):
    data_file = info.status("Data file")
    metadata_file = info.status("Metadata file")
    data_loop = info.status("Data loop file") or None
    metadata_loop = info.status("Metadata loop file") or None
    # Before "Data loop file" existed, "Data file" named the sparse file itself (not /dev/loopN).
    if not data_loop and data_file and not data_file.startswith("/dev/"):
        data_loop = data_file
    if not metadata_loop and metadata_file and not metadata_file.startswith("/dev/"):
        metadata_loop = metadata_file
    pool_name = info.status("Pool Name") or None
    mode, evidence = _devicemapper_mode(info, data_file, data_loop, pool_name)
    model = {
        "mode": mode,
        "mode_evidence": evidence,
        "pool_name": pool_name,
        "pool_blocksize": parse_size(info.status("Pool Blocksize")),
        "base_device_size": parse_size(info.status("Base Device Size")),
        "data_file": data_file or None,
        "metadata_file": metadata_file or None,
        "data_loop_file": data_loop,
        "metadata_loop_file": metadata_loop,
        "data_space_used": parse_size(info.status("Data Space Used")),
        "data_space_total": parse_size(info.status("Data Space Total")),
        "data_space_available": parse_size(info.status("Data Space Available")),
        "data_space_used_percent": None,
        "metadata_space_used": parse_size(info.status("Metadata Space Used")),
        "metadata_space_total": parse_size(info.status("Metadata Space Total")),
        "metadata_space_available": parse_size(info.status("Metadata Space Available")),
        "metadata_space_used_percent": None,
        "thin_pool_minimum_free_space": parse_size(info.status("Thin Pool Minimum Free Space")),
        "udev_sync_supported": parse_bool(info.status("Udev Sync Supported")),
        "deferred_removal_enabled": parse_bool(info.status("Deferred Removal Enabled")),
        "deferred_deletion_enabled": parse_bool(info.status("Deferred Deletion Enabled")),
        "deferred_deleted_device_count": parse_int(info.status("Deferred Deleted Device Count")),
        "library_version": info.status("Library Version") or None,
        "loop_files": [],
    }
    for space in ("data", "metadata"):
        used, total = model[f"{space}_space_used"], model[f"{space}_space_total"]
        if used is not None and total:
            model[f"{space}_space_used_percent"] = round(used * 100.0 / total, 2)
    for role, path in (("data", data_loop), ("metadata", metadata_loop)):
        if path and not_here:
            model["loop_files"].append({"path": path, "exists": None, "measured": False, "apparent_size": None,
                                        "allocated_size": None, "reason": not_here, "role": role})
        elif path:
            record = measure_file(path, allowed_roots)
            record["role"] = role
            model["loop_files"].append(record)
    return model


def _devicemapper_mode(info, data_file, data_loop, pool_name):
    """(mode, evidence): ``loop-lvm``, ``direct-lvm`` or ``unknown``, and the line that decided it."""
    if data_loop:
        return "loop-lvm", f"the data space is the loop file {data_loop}"
    if data_file and data_file.startswith("/dev/loop"):
        return "loop-lvm", f"the data file is the loop device {data_file}"
    if data_file:
        return "direct-lvm", f"the data file is the block device {data_file}"
    if info.has_status("Data file"):
        return "direct-lvm", "the data file is empty: the daemon uses an existing thin pool (dm.thinpooldev)"
    if any("loopback" in w.lower() for w in info.warnings):
        return "loop-lvm", "the daemon warns about loopback devices"
    if pool_name and not _AUTO_POOL_RE.match(pool_name):
        return "direct-lvm", (f"no data or loop file is listed and the pool {pool_name} is not one the daemon "
                              "made itself: an existing thin pool (dm.thinpooldev)")
    return "unknown", "neither the data file, a loop file nor a thin pool name can be found in the output"


def _storage_model(info, daemon_json, sysconfig, source, not_here=None):
    driver = info.driver
    supports_d_type = parse_bool(info.status("Supports d_type"))
    # loop files live in <root>/devicemapper/devicemapper (or <root>/devicemapper with some packages)
    roots = [os.path.join(info.docker_root_dir or DEFAULT_DOCKER_ROOT, "devicemapper")]
    storage = {
        "source": source,
        "driver": driver,
        "docker_version": info.server_version,
        "docker_root_dir": info.docker_root_dir,
        "backing_filesystem": info.status("Backing Filesystem") or None,
        "supports_d_type": supports_d_type,
        "driver_status": [list(pair) for pair in info.driver_status],
        "devicemapper": _devicemapper_model(info, roots, not_here) if driver == "devicemapper" else None,
        "config": {"daemon_json": daemon_json, "sysconfig": sysconfig},
        "host_files": {"read": not_here is None, "reason": not_here},
    }
    return storage


# --------------------------------------------------------------------------------------------------------------------
# findings

_DIRECT_LVM_SNIPPET = """{
  "storage-driver": "devicemapper",
  "storage-opts": [
    "dm.directlvm_device=/dev/xvdf",
    "dm.thinp_percent=95",
    "dm.thinp_metapercent=1",
    "dm.thinp_autoextend_threshold=80",
    "dm.thinp_autoextend_percent=20",
    "dm.directlvm_device_force=false",
    "dm.use_deferred_removal=true",
    "dm.use_deferred_deletion=true"
  ]
}"""

_THINPOOLDEV_SNIPPET = """{
  "storage-driver": "devicemapper",
  "storage-opts": [
    "dm.thinpooldev=/dev/mapper/docker-thinpool",
    "dm.use_deferred_removal=true",
    "dm.use_deferred_deletion=true"
  ]
}"""


def _finding(findings, ident, severity, message, remedy):
    findings.append({"id": ident, "severity": severity, "message": message, "remedy": remedy})


def _loop_lvm_findings(findings, storage, dm):
    version = version_tuple(storage["docker_version"])
    loop_files = [f["path"] for f in dm["loop_files"]] or [dm["data_file"] or "?"]
    grown = [f for f in dm["loop_files"] if f["measured"]]
    sizes = "".join(f"; {f['path']} takes {human_size(f['allocated_size'])} on disk (apparent size "
                    f"{human_size(f['apparent_size'])})" for f in grown)
    old = version is not None and version < (17, 6)
    remedy = (
        "Move the daemon to direct-lvm: a real LVM thin pool on a dedicated block device. "
        + ("This Docker is older than 17.06, so create the thin pool yourself (pvcreate, vgcreate docker, lvcreate "
           "--thinpool, lvconvert) and point the daemon at it with dm.thinpooldev in /etc/docker/daemon.json:\n"
           + _THINPOOLDEV_SNIPPET
           if old else
           "Since Docker 17.06 the daemon can set the pool up itself from an empty block device with "
           "dm.directlvm_device in /etc/docker/daemon.json:\n" + _DIRECT_LVM_SNIPPET
           + "\nor use a thin pool you made with LVM: \"dm.thinpooldev=/dev/mapper/docker-thinpool\".")
        + "\nThe images and containers in the loop files are not carried over: push or save what is not in a "
          "registry, then restart the daemon, re-pull and re-create. On RHEL-family hosts set the options in one "
          "place only (daemon.json or DOCKER_STORAGE_OPTIONS in /etc/sysconfig/docker-storage), never both. "
          "devicemapper itself is deprecated: moving to overlay2 on xfs (ftype=1) or ext4 is the lasting fix."
    )
    _finding(
        findings, "devicemapper_loop_lvm", "critical",
        "devicemapper runs in loop-lvm mode: images and containers live in sparse loop files ("
        + ", ".join(loop_files) + ") that only grow; deleting images does not give the disk space back"
        + sizes + ". loop-lvm is meant for testing, not production.",
        remedy,
    )


def _deprecation_findings(findings, storage):
    driver = storage["driver"]
    if driver not in DEPRECATED_DRIVERS:
        return
    deprecated, removed = DEPRECATED_DRIVERS[driver]
    version = version_tuple(storage["docker_version"])
    running = f"Docker {storage['docker_version']}" if storage["docker_version"] else "this Docker (version unknown)"
    remedy = ("Migrate to overlay2 before upgrading: put the Docker root directory on xfs (formatted with "
              "ftype=1) or ext4, set \"storage-driver\": \"overlay2\" in /etc/docker/daemon.json, then re-pull "
              "images and re-create containers (they are not converted).")
    if version is not None and version >= removed:
        _finding(findings, f"{driver}_removed", "critical",
                 f"{running} reports the {driver} storage driver, which Docker removed in "
                 f"{_format_version(removed)}.", remedy)
        return
    if version is not None and version < deprecated:
        when = (f"the next Docker versions deprecate it ({_format_version(deprecated)}) and remove it "
                f"({_format_version(removed)})")
    else:
        when = (f"it is deprecated since Docker {_format_version(deprecated)} and removed in "
                f"{_format_version(removed)}: the daemon will not start on it after that upgrade")
    _finding(findings, f"{driver}_deprecated", "warning",
             f"{running} uses the {driver} storage driver; {when}.", remedy)


def _space_findings(findings, dm, thresholds):
    for space in ("data", "metadata"):
        used, total = dm[f"{space}_space_used"], dm[f"{space}_space_total"]
        available = dm[f"{space}_space_available"]
        if available is None and used is not None and total is not None:
            available = max(total - used, 0)
        percent = used * 100.0 / total if used is not None and total else None
        warn = thresholds[f"{space}_used_percent_warning"]
        crit = thresholds[f"{space}_used_percent_critical"]
        grow = ("Grow the thin pool (lvextend, or dm.thinp_autoextend_* with direct-lvm) or free space: remove "
                "unused images and containers (janitor.docker.image_remove)."
                if space == "data" else
                "Grow the pool's metadata volume (lvextend --poolmetadatasize) before it fills up: a full "
                "metadata volume puts the pool read-only.")
        if percent is not None and percent >= warn:
            severity = "critical" if percent >= crit else "warning"
            limit = crit if severity == "critical" else warn
            _finding(findings, f"{space}_space_used", severity,
                     f"the thin pool's {space} space is {percent:.1f}% used ({human_size(used)} of {human_size(total)}), "
                     f"at or above {limit}%.", grow)
        minimum = thresholds[f"{space}_min_free_bytes"]
        if available is not None and available < minimum:
            _finding(findings, f"{space}_space_low", "warning",
                     f"only {human_size(available)} of {space} space is available, below the {human_size(minimum)} "
                     f"threshold ({space}_min_free_bytes).", grow)
    floor = dm["thin_pool_minimum_free_space"]
    available = dm["data_space_available"]
    if floor is not None and available is not None and available < floor:
        _finding(findings, "data_space_below_pool_minimum", "critical",
                 f"the data space available ({human_size(available)}) is below the thin pool minimum free space "
                 f"({human_size(floor)}): the daemon refuses to create new containers and image layers.",
                 "Free or add space now: remove unused images and containers, grow the thin pool, or for loop "
                 "files free space on the file system that holds them (their size is capped by its free space).")


def _devicemapper_findings(findings, storage, thresholds):
    dm = storage["devicemapper"]
    if dm["mode"] == "loop-lvm":
        _loop_lvm_findings(findings, storage, dm)
    elif dm["mode"] == "unknown":
        _finding(findings, "devicemapper_mode_unknown", "warning",
                 "devicemapper is in use but the output does not say whether it runs on loop files (loop-lvm) "
                 "or on a thin pool (direct-lvm).",
                 "Run the module on the host against the daemon itself, or give the complete `docker info`.")
    _space_findings(findings, dm, thresholds)
    if dm["udev_sync_supported"] is False:
        _finding(findings, "udev_sync_unsupported", "critical",
                 "udev sync is not supported by this dockerd's libdevmapper: devices can be removed while udev "
                 "still uses them, which loses data and leaves stuck devices.",
                 "Use the distribution's dynamically linked dockerd (its libdevmapper supports udev sync), and "
                 "never set dm.override_udev_sync_check=true.")
    for name in ("removal", "deletion"):
        if dm[f"deferred_{name}_enabled"] is False:
            needs = (" (it needs deferred removal on as well, and a 3.18 or newer kernel)"
                     if name == "deletion" else "")
            _finding(findings, f"deferred_{name}_disabled", "warning",
                     f"deferred device {name} is off: "
                     + ("removing a container can fail with 'device or resource busy' while another mount namespace "
                        "still holds its device." if name == "removal" else
                        "the daemon deletes thin devices synchronously, so removing containers and images can fail "
                        "or hang while a device is still busy."),
                     f"Add \"dm.use_deferred_{name}=true\" to \"storage-opts\" in /etc/docker/daemon.json{needs} "
                     "and restart the daemon.")
    count = dm["deferred_deleted_device_count"]
    if count:
        _finding(findings, "deferred_deleted_devices", "info",
                 f"{count} thin device(s) wait for deferred deletion; their space is not free yet.",
                 "Nothing to do if the count goes down over time; if it keeps growing, look for processes that "
                 "keep container mounts open (grep the device in /proc/*/mountinfo).")


def _config_findings(findings, storage):
    running = storage["driver"]
    config = storage["config"]
    for name, label in (("daemon_json", "storage-driver"), ("sysconfig", "--storage-driver in DOCKER_STORAGE_OPTIONS")):
        source = config[name]
        if source["error"]:
            invalid = name == "daemon_json" and ("not valid JSON" in source["error"]
                                                 or "not a JSON object" in source["error"])
            _finding(findings, f"{name}_invalid" if invalid else f"{name}_unreadable",
                     "warning" if invalid else "info",
                     source["error"] + (": the daemon will not start with it at its next restart" if invalid else ""),
                     "Fix the file (python3 -m json.tool on it shows where) before the daemon restarts."
                     if invalid else "Run the module with become: true to read the daemon's configuration.")
        configured = source["storage_driver"]
        if configured and running and not _same_driver(configured, running, storage):
            _finding(findings, "storage_driver_mismatch", "warning",
                     f"{source['path']} sets {label} to {configured} but the daemon runs {running}: at its next "
                     f"restart the daemon switches to {configured} and every image and container of {running} "
                     "disappears from view (they stay on disk).",
                     f"Make {source['path']} name the driver you mean to keep, or plan the migration (save or push "
                     "images first) before the next daemon restart.")
    both = [key for key in ("storage_driver", "storage_opts")
            if config["daemon_json"][key] and config["sysconfig"][key]]
    if both:
        _finding(findings, "storage_config_conflict", "warning",
                 f"storage settings ({', '.join(k.replace('_', '-') for k in both)}) are in both "
                 f"{config['daemon_json']['path']} and {config['sysconfig']['path']}: when the service passes "
                 "DOCKER_STORAGE_OPTIONS to dockerd (RHEL-family units do), dockerd refuses to start with a "
                 "directive given both as a flag and in daemon.json.",
                 "Keep the storage settings in one of the two files only.")


def _same_driver(configured, running, storage):
    if configured == running:
        return True
    # With the containerd image store the daemon maps the graph driver name onto a snapshotter.
    snapshotter = any(_norm_key(k) == "driver-type" and "snapshotter" in v for k, v in storage["driver_status"])
    return snapshotter and {configured, running} <= {"overlay2", "overlayfs"}


def _overlay_findings(findings, storage):
    if storage["driver"] in ("overlay", "overlay2") and storage["supports_d_type"] is False:
        fs = storage["backing_filesystem"] or "the backing file system"
        _finding(findings, "overlay_without_d_type", "critical",
                 f"{storage['driver']} runs on {fs} without d_type support: files in image layers can show up "
                 "or vanish wrongly, and newer Docker versions refuse to start on it.",
                 "Put the Docker root directory on xfs formatted with ftype=1 (mkfs.xfs -n ftype=1; check with "
                 "xfs_info) or on ext4, then restart the daemon and re-pull images.")


def analyse(info, daemon_json, sysconfig, thresholds, source="daemon", not_here=None):
    """The module result (without ``changed``): storage facts, the daemon's warnings and the findings.

    ``not_here``: why this host's files (configuration, loop files) were not read, or None when they were."""
    storage = _storage_model(info, daemon_json, sysconfig, source, not_here)
    findings = []
    if storage["devicemapper"] is not None:
        _devicemapper_findings(findings, storage, thresholds)
    _deprecation_findings(findings, storage)
    _overlay_findings(findings, storage)
    _config_findings(findings, storage)
    findings.sort(key=lambda f: -_SEVERITY_RANK[f["severity"]])
    highest = findings[0]["severity"] if findings else "none"
    return {
        "storage": storage,
        "daemon_warnings": list(info.warnings),
        "findings": findings,
        "highest_severity": highest,
    }
