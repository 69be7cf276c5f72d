#!/usr/bin/python
# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: storage_info
short_description: Tell whether a host's Docker storage is healthy, devicemapper loop-lvm first
version_added: 1.0.0
description:
  - Reads the storage driver and its status from the Docker daemon (or from the text or JSON of C(docker info)),
    the storage settings in C(/etc/docker/daemon.json) and, on RHEL-family hosts, C(/etc/sysconfig/docker-storage),
    and returns the storage facts with a list of findings, each with a severity and a remedy.
  - The first thing it looks for is the devicemapper driver in loop-lvm mode. There the daemon keeps every image and
    container in sparse loop files (typically C(/var/lib/docker/devicemapper/devicemapper/data)) that only grow;
    deleting images does not give the disk space back. Production hosts must use direct-lvm (a real LVM thin pool)
    instead; loop-lvm is a V(critical) finding.
  - "Other findings: the devicemapper driver (and the legacy C(overlay) and C(aufs) drivers) deprecated or removed
    in the running or a coming Docker version (devicemapper: deprecated in 18.09, removed in 25.0); thin pool data
    or metadata space above the O(thresholds) or below the minimum free space; data space below the pool's own
    minimum free space; udev sync not supported; deferred device removal or deletion off; overlay without d_type
    support; a storage driver in the configuration files that differs from the running one (the daemon would switch
    at its next restart); storage settings in both configuration files; an invalid C(daemon.json)."
  - For devicemapper loop files that exist on the host the module reports their apparent size and the space they
    really take on disk. It only looks at regular files in the C(devicemapper) directory of the daemon's root
    directory (C(Docker Root Dir), V(/var/lib/docker) when unknown), where the daemon keeps them, and never follows
    a symbolic link, neither the file itself nor a directory on the way that leads out of that directory; other
    paths are reported with the reason they were not measured, without being looked at.
  - This host's files (the configuration files and the loop files) are read only when they are the daemon's - when
    the daemon listens on a unix socket that exists on this host, or when O(docker_info) is given. With a
    C(tcp://) or C(ssh://) O(docker_host) (such as the local connection on a controller that manages a remote
    daemon), they belong to another machine, so they are not read and RV(storage.host_files) says why.
  - The module only reads; it never changes the daemon or a file.
author:
  - janitor.docker developers (@janitor-docker)
extends_documentation_fragment:
  - janitor.docker.engine
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
    details: The module only reads, so check mode returns exactly what a normal run returns.
  diff_mode:
    support: none
  idempotent:
    description: Running the module again with the same options gives the same result when nothing else changed.
    support: full
  platform:
    support: full
    platforms: posix
  action_group:
    membership:
      - janitor.docker.docker
options:
  docker_info:
    description:
      - The output of C(docker info) (text) or of C(docker info --format '{{json .}}') (JSON) to analyse instead
        of asking the daemon. When given, no daemon is contacted and the connection options are not used.
      - Text from every Docker version is understood, from 1.x (keys in the first column, C(65.54 kB)) to today
        (keys under C(Server:), C(65.54kB)).
      - The configuration files and loop files are still read on the host the module runs on.
    type: str
  daemon_config_path:
    description:
      - The daemon's configuration file, read for C(storage-driver) and C(storage-opts).
      - A missing file is normal (the daemon then runs on its defaults and flags).
    type: path
    default: /etc/docker/daemon.json
  sysconfig_storage_path:
    description:
      - The shell fragment with C(DOCKER_STORAGE_OPTIONS) that RHEL-family Docker packages and
        C(docker-storage-setup) use; C(--storage-driver)/C(-s) and C(--storage-opt) are read from it.
      - A missing file is normal.
    type: path
    default: /etc/sysconfig/docker-storage
  thresholds:
    description:
      - Limits for the devicemapper thin pool findings. Give only the keys to change; the others keep their
        defaults. Unknown keys and values that are not numbers fail the module.
      - A C(*_used_percent_*) threshold compares the used space with the total space of the pool in percent
        (0 to 100); the V(critical) one must not be below the V(warning) one.
      - A C(*_min_free_bytes) threshold is a size in bytes, as a number or with a decimal or binary unit such as
        V(5GB) or V(512MiB); space available below it is a V(warning) finding.
    type: dict
    default: {}
    suboptions:
      data_used_percent_warning:
        description: Data space used, in percent, from which a V(warning) finding is reported.
        type: float
        default: 80
      data_used_percent_critical:
        description: Data space used, in percent, from which the finding is V(critical).
        type: float
        default: 90
      metadata_used_percent_warning:
        description: Metadata space used, in percent, from which a V(warning) finding is reported.
        type: float
        default: 80
      metadata_used_percent_critical:
        description: Metadata space used, in percent, from which the finding is V(critical).
        type: float
        default: 90
      data_min_free_bytes:
        description: Data space available below this many bytes is a V(warning) finding (default 5 GB).
        type: raw
        default: 5000000000
      metadata_min_free_bytes:
        description: Metadata space available below this many bytes is a V(warning) finding (default 100 MB).
        type: raw
        default: 100000000
notes:
  - Findings are sorted by severity, V(critical) first. Each finding has a stable RV(findings[].id) to match on.
  - Sizes are bytes. C(docker info) prints decimal units (1 kB = 1000 bytes) rounded to four digits, so values
    parsed from it are exact to that rounding only. Docker 1.0 to 1.3 printed devicemapper sizes as C(291.5 Mb),
    meaning MiB (1024 * 1024 bytes); they are read that way.
  - The daemon's own warnings are returned as RV(daemon_warnings), not as C(warnings), so that Ansible does not
    print them as warnings of the task.
seealso:
  - name: Deprecated Engine features
    description: When Docker deprecated and removed each storage driver.
    link: https://docs.docker.com/engine/deprecated/
"""

EXAMPLES = r"""
- name: Check the storage of the host's Docker daemon
  janitor.docker.storage_info:
  register: storage

- name: Stop when the storage set-up is critical (devicemapper loop-lvm for example)
  ansible.builtin.assert:
    that: storage.highest_severity != 'critical'
    fail_msg: "{{ storage.findings | selectattr('severity', 'eq', 'critical') | map(attribute='message') | list }}"

- name: Analyse the output of docker info collected earlier, without a daemon
  janitor.docker.storage_info:
    docker_info: "{{ lookup('ansible.builtin.file', 'docker-info/' ~ inventory_hostname ~ '.txt') }}"
    thresholds:
      data_used_percent_warning: 70
      data_min_free_bytes: 20GB
  delegate_to: localhost
  register: storage

- name: Talk to a daemon over TLS and read the configuration of a non-standard install
  janitor.docker.storage_info:
    docker_host: tcp://docker.example.com:2376
    validate_certs: true
    ca_path: /etc/pki/docker/ca.pem
    daemon_config_path: /opt/docker/etc/daemon.json
"""

RETURN = r"""
storage:
  description: The storage facts.
  returned: success
  type: dict
  contains:
    source:
      description: Where the facts come from, V(daemon) or V(docker_info).
      type: str
      sample: daemon
    driver:
      description: The running storage driver (C(overlayfs) and the like with the containerd image store).
      type: str
      sample: devicemapper
    docker_version:
      description: The daemon's version (C(Server Version)); null when the input does not say.
      type: str
      sample: 17.03.1-ce
    docker_root_dir:
      description: The daemon's root directory; null when the input does not say.
      type: str
      sample: /var/lib/docker
    backing_filesystem:
      description: The file system under the driver's data (C(extfs), C(xfs)...); null when not reported.
      type: str
      sample: xfs
    supports_d_type:
      description: Whether the backing file system supports d_type (overlay drivers); null when not reported.
      type: bool
      sample: true
    driver_status:
      description: The driver status as the daemon reported it, a list of [key, value] pairs.
      type: list
      elements: list
      sample: [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]]
    devicemapper:
      description: The devicemapper details; null for every other driver.
      type: dict
      returned: success
      contains:
        mode:
          description:
            - V(loop-lvm) (loop files), V(direct-lvm) (a thin pool or block devices) or V(unknown) (the input
              does not say).
          type: str
          sample: loop-lvm
        mode_evidence:
          description: What decided the mode.
          type: str
          sample: the data space is the loop file /var/lib/docker/devicemapper/devicemapper/data
        pool_name:
          description: The thin pool's device-mapper name.
          type: str
          sample: docker-thinpool
        pool_blocksize:
          description: The pool's block size in bytes.
          type: int
          sample: 65540
        base_device_size:
          description: The size of each container's thin device in bytes.
          type: int
          sample: 10740000000
        data_file:
          description: The C(Data file) as reported (a loop device, a block device, or empty with a thin pool).
          type: str
          sample: /dev/loop0
        metadata_file:
          description: The C(Metadata file) as reported.
          type: str
          sample: /dev/loop1
        data_loop_file:
          description:
            - The sparse file behind the data loop device (C(Data loop file), or C(Data file) when an old daemon
              names the file there); null when there is none.
          type: str
          sample: /var/lib/docker/devicemapper/devicemapper/data
        metadata_loop_file:
          description: The sparse file behind the metadata loop device; null when there is none.
          type: str
          sample: /var/lib/docker/devicemapper/devicemapper/metadata
        data_space_used:
          description: Data space used, in bytes.
          type: int
          sample: 5223000000
        data_space_total:
          description: Data space total, in bytes.
          type: int
          sample: 107400000000
        data_space_available:
          description: Data space available, in bytes (for loop files capped by the free space of their file system).
          type: int
          sample: 44740000000
        data_space_used_percent:
          description: Data space used in percent of the total, rounded to two decimals.
          type: float
          sample: 4.86
        metadata_space_used:
          description: Metadata space used, in bytes.
          type: int
          sample: 6988000
        metadata_space_total:
          description: Metadata space total, in bytes.
          type: int
          sample: 2147000000
        metadata_space_available:
          description: Metadata space available, in bytes.
          type: int
          sample: 2140000000
        metadata_space_used_percent:
          description: Metadata space used in percent of the total, rounded to two decimals.
          type: float
          sample: 0.33
        thin_pool_minimum_free_space:
          description: The free data space below which the daemon refuses to create devices, in bytes.
          type: int
          sample: 10740000000
        udev_sync_supported:
          description: Whether the daemon's libdevmapper supports udev sync.
          type: bool
          sample: true
        deferred_removal_enabled:
          description: Whether deferred device removal is on.
          type: bool
          sample: false
        deferred_deletion_enabled:
          description: Whether deferred device deletion is on.
          type: bool
          sample: false
        deferred_deleted_device_count:
          description: Devices waiting for deferred deletion.
          type: int
          sample: 0
        library_version:
          description: The libdevmapper version.
          type: str
          sample: 1.02.135-RHEL7 (2016-11-16)
        loop_files:
          description: The loop files, with their sizes when they could be measured on this host.
          type: list
          elements: dict
          contains:
            role:
              description: V(data) or V(metadata).
              type: str
            path:
              description: The file's path.
              type: str
            exists:
              description: Whether the path exists on this host.
              type: bool
            measured:
              description: Whether the sizes were read.
              type: bool
            apparent_size:
              description: The file's apparent size in bytes (what C(ls -l) shows).
              type: int
            allocated_size:
              description: The disk space the sparse file really takes, in bytes (what C(du) shows).
              type: int
            reason:
              description: Why the file was not measured; null when it was.
              type: str
          sample:
            - role: data
              path: /var/lib/docker/devicemapper/devicemapper/data
              exists: true
              measured: true
              apparent_size: 107374182400
              allocated_size: 5223460864
              reason: null
    host_files:
      description: Whether this host's files were read as the daemon's (see the description).
      type: dict
      contains:
        read:
          description: V(true) when the files were read.
          type: bool
        reason:
          description: Why they were not read (a remote daemon, a socket that is not here); null when they were.
          type: str
      sample: {"read": false, "reason": "the daemon at tcp://docker.example.com:2376 is not on this host (only a unix socket here is)"}
    config:
      description: The storage settings read from the configuration files.
      type: dict
      contains:
        daemon_json:
          description:
            - O(daemon_config_path) - C(path), C(exists), C(storage_driver), C(storage_opts) (list), C(error)
              (null, or why it could not be read), C(read) (false when this host's files were not read, see
              RV(storage.host_files)) and C(not_read_reason).
          type: dict
          sample: {"path": "/etc/docker/daemon.json", "exists": true, "storage_driver": "overlay2",
                   "storage_opts": [], "error": null, "read": true, "not_read_reason": null}
        sysconfig:
          description:
            - O(sysconfig_storage_path) - the same keys, plus C(options), the value of C(DOCKER_STORAGE_OPTIONS).
          type: dict
          sample: {"path": "/etc/sysconfig/docker-storage", "exists": false, "storage_driver": null,
                   "storage_opts": [], "error": null, "options": null, "read": true, "not_read_reason": null}
daemon_warnings:
  description: The daemon's own warnings (C(Warnings) of C(docker info)), one line each.
  returned: success
  type: list
  elements: str
  sample: ["WARNING: the devicemapper storage-driver is deprecated, and will be removed in a future release."]
findings:
  description: What is wrong or worth knowing, the most severe first.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description:
        - A stable identifier, such as V(devicemapper_loop_lvm), V(devicemapper_deprecated),
          V(data_space_used), V(data_space_low), V(metadata_space_used), V(metadata_space_low),
          V(data_space_below_pool_minimum), V(udev_sync_unsupported), V(deferred_removal_disabled),
          V(deferred_deletion_disabled), V(deferred_deleted_devices),
          V(overlay_without_d_type), V(storage_driver_mismatch), V(storage_config_conflict),
          V(daemon_json_invalid), V(devicemapper_mode_unknown).
      type: str
      sample: devicemapper_loop_lvm
    severity:
      description: V(info), V(warning) or V(critical).
      type: str
      sample: critical
    message:
      description: What was found.
      type: str
    remedy:
      description: What to do about it (may hold a C(daemon.json) snippet).
      type: str
highest_severity:
  description: The severity of the first finding, or V(none) when there is no finding.
  returned: success
  type: str
  sample: critical
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.janitor.docker.plugins.module_utils._errors import JanitorError, unforeseen
from ansible_collections.janitor.docker.plugins.module_utils._transport import (
    connect,
    engine_argument_spec,
    guard_secrets,
)
from ansible_collections.janitor.docker.plugins.module_utils import _storage


class StorageInfo:
    """Gathers the facts (daemon or docker_info, configuration files) and analyses them."""

    def __init__(self, module):
        self.module = module
        self.params = module.params

    def _info(self):
        if self.params["docker_info"] is not None:
            return _storage.parse_docker_info(self.params["docker_info"]), "docker_info"
        client = connect(self.params)
        try:
            answer = client.info()  # engine failures come as JanitorError with an operator message
        finally:
            client.close()
        if not isinstance(answer, dict):
            raise JanitorError(f"reading the daemon's info: the Docker daemon at {client.host} answered "
                               f"{type(answer).__name__}, not a JSON object")
        return _storage.info_from_dict(answer, what=f"the info of the Docker daemon at {client.host} (GET /info)"), \
            "daemon"

    def run(self):
        thresholds = _storage.validate_thresholds(self.params["thresholds"])
        info, source = self._info()
        not_here = None
        if source == "daemon":
            not_here = _storage.host_files_apply(self.params["docker_host"])[1]
        if not_here:
            daemon_json = _storage.not_read(self.params["daemon_config_path"], not_here)
            sysconfig = _storage.not_read(self.params["sysconfig_storage_path"], not_here, sysconfig=True)
        else:
            daemon_json = _storage.read_daemon_json(self.params["daemon_config_path"])
            sysconfig = _storage.read_sysconfig_storage(self.params["sysconfig_storage_path"])
        result = _storage.analyse(info, daemon_json, sysconfig, thresholds, source=source, not_here=not_here)
        result["changed"] = False
        return result


def main():
    argument_spec = engine_argument_spec(
        docker_info=dict(type="str"),
        daemon_config_path=dict(type="path", default="/etc/docker/daemon.json"),
        sysconfig_storage_path=dict(type="path", default="/etc/sysconfig/docker-storage"),
        # type dict without options: _storage.validate_thresholds checks the keys and values and names the bad one
        thresholds=dict(type="dict", default={}),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    guard_secrets(module)
    try:
        result = StorageInfo(module).run()
    except JanitorError as exc:
        details = dict(exc.details)
        # an operator error is its message; a traceback only when the error carries one (the SDK import failure)
        module.fail_json(msg=exc.message, **details)
    except Exception as exc:  # noqa: BLE001 - the last net: a message, never a bare traceback
        module.fail_json(msg=unforeseen(exc, "storage_info"), exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
