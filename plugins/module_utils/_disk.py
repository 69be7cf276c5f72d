# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The measures ``free_space`` compares with its thresholds, read once per run.

* ``filesystem``: the filesystem that holds the engine's data root (``DockerRootDir`` of ``GET /info``), read with
  ``statvfs`` on this host; ``used`` is its size minus the space available (``f_bavail``), as kubelet counts it.
  It needs the engine on this host: a unix socket that exists here and a data root that is a directory here.
* ``images``: the images' total size in the engine's own accounting, ``LayersSize`` of ``GET /system/df``
  (``docker system df``), each layer counted once however many images share it.
"""

from __future__ import annotations

import os

from ansible_collections.janitor.docker.plugins.module_utils._errors import JanitorError
from ansible_collections.janitor.docker.plugins.module_utils._pressure import Measure
from ansible_collections.janitor.docker.plugins.module_utils._pressure_options import MEASURE_FILESYSTEM, MEASURE_IMAGES


def data_root(info):
    """``DockerRootDir`` of ``GET /info``; empty when the info names none, or not as a path."""
    root = info.get("DockerRootDir") if isinstance(info, dict) else None
    return root if isinstance(root, str) else ""


def local_data_root(host, info):
    """The engine's data root when it is on this host; JanitorError (suggesting the size measure) otherwise."""
    root = data_root(info)
    host = host or ""
    socket_path = host[len("unix://"):] if host.startswith("unix://") else ""
    if not socket_path or not os.path.exists(socket_path):
        raise JanitorError(
            f"free_space in percent measures the filesystem that holds the engine's data root, which needs the engine "
            f"on this host (a unix socket that exists here); the engine at {host or 'the default host'} is not. "
            f"Give free_space as sizes of the images instead (for example high: 20GB, low: 15GB), measured with the "
            f"engine's own accounting (docker system df), or run the task on the engine's host")
    if not root or not os.path.isdir(root):
        raise JanitorError(
            f"free_space in percent measures the filesystem that holds the engine's data root, but the data root "
            f"{root or '(not reported)'} the engine reports is not a directory on this host. Give free_space as "
            f"sizes of the images instead (for example high: 20GB, low: 15GB)")
    return root


def filesystem(path):
    """``(total, used)`` bytes of the filesystem holding ``path``."""
    stat = os.statvfs(path)
    total = stat.f_blocks * stat.f_frsize
    return total, total - stat.f_bavail * stat.f_frsize


def read_measure(client, measure, info):
    """The Measure of kind ``measure``."""
    if measure == MEASURE_FILESYSTEM:
        path = local_data_root(getattr(client, "host", ""), info)
        total, used = filesystem(path)
        return Measure(MEASURE_FILESYSTEM, used, total, path)
    df = system_df(client)
    what = f"reading the images' size (GET /system/df): the Docker daemon at {getattr(client, 'host', '')} answered"
    if not isinstance(df, dict):
        raise JanitorError(f"{what} {type(df).__name__}, not a JSON object")
    size = df.get("LayersSize")
    if isinstance(size, bool) or not isinstance(size, (int, type(None))) or (size or 0) < 0:
        raise JanitorError(f"{what} LayersSize={size!r}, not a size in bytes")
    return Measure(MEASURE_IMAGES, size or 0, None, data_root(info))


def system_df(client):
    """``GET /system/df``; engine failures come as the transport's ``JanitorError`` types."""
    return client.df()
