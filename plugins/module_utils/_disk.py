# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The measures ``free_space`` compares with its thresholds, read once per run.

* ``filesystem``: the filesystem that holds the images, read with ``statvfs`` on this host; ``used`` is its size
  minus the space available (``f_bavail``), as kubelet counts it. On a graph-driver store that is the engine's data
  root (``DockerRootDir`` of ``GET /info``). On the containerd image store the images (snapshots and content) are
  in containerd's root, which is not under the data root when dockerd uses a system containerd (Debian's and
  Docker's packages start it with ``--containerd=/run/containerd/containerd.sock``; its root is
  ``/var/lib/containerd`` unless ``/etc/containerd/config.toml`` says otherwise), and is under it when dockerd runs
  its own (which writes its config beside its socket). It needs the engine on this host: a unix socket that exists
  here and a directory here.
* ``images``: the images' total size in the engine's own accounting, ``LayersSize`` of ``GET /system/df``
  (``docker system df``), each layer counted once however many images share it.
"""

from __future__ import annotations

import os

from ansible_collections.janitor.docker.plugins.module_utils._errors import JanitorError
from ansible_collections.janitor.docker.plugins.module_utils._pressure import Measure
from ansible_collections.janitor.docker.plugins.module_utils._pressure_options import MEASURE_FILESYSTEM, MEASURE_IMAGES
from ansible_collections.janitor.docker.plugins.module_utils._snapshot import CONTAINERD

try:
    import tomllib as _toml  # Python 3.11+
except ImportError:  # pragma: no cover - older Pythons on the managed host
    try:
        import tomli as _toml  # the same parser, as a package
    except ImportError:
        _toml = None

CONTAINERD_CONFIG = "/etc/containerd/config.toml"  # what a system containerd reads unless told otherwise
CONTAINERD_ROOT = "/var/lib/containerd"  # its root when the config names none
_ROOT_MEASURE = "free_space in percent on the containerd image store measures the filesystem of containerd's root"


def data_root(info):
    """``DockerRootDir`` of ``GET /info``; empty when the info names none, or not as a path."""
    root = info.get("DockerRootDir") if isinstance(info, dict) else None
    return root if isinstance(root, str) else ""


def containerd_root(info):
    """Where the containerd that dockerd uses keeps the images: the ``root`` of its config, which is beside its
    socket (``Containerd.Address`` of ``GET /info``, API 1.46+) when dockerd runs its own containerd, and
    ``/etc/containerd/config.toml`` for a system containerd; ``/var/lib/containerd`` when the config names none.
    Without an address (older engines), dockerd's own containerd is recognised by its root under the data root
    (``<DockerRootDir>/containerd/daemon``) when no system config exists."""
    containerd = info.get("Containerd") if isinstance(info, dict) else None
    address = containerd.get("Address") if isinstance(containerd, dict) else None
    system_config = os.path.isfile(CONTAINERD_CONFIG)
    if isinstance(address, str) and address:
        beside = os.path.join(os.path.dirname(address), "containerd.toml")
        try:
            os.stat(beside)
        except FileNotFoundError:
            pass  # a system containerd: nothing beside its socket
        except OSError as exc:  # not allowed to look: guessing could measure another disk
            raise JanitorError(
                f"{_ROOT_MEASURE}, which its config {beside} names, but it cannot be looked at "
                f"({exc.strerror or exc}): run the task as root (become: true), or give free_space as sizes of the "
                f"images (for example high: 20GB, low: 15GB)") from exc
        else:
            return _configured_root(beside)
    elif not system_config and data_root(info):
        own = os.path.join(data_root(info), "containerd", "daemon")
        if os.path.isdir(own):
            return own
    return _configured_root(CONTAINERD_CONFIG) if system_config else CONTAINERD_ROOT


def _configured_root(path):
    """The top-level ``root`` of a containerd config file (TOML), or the default root when it names none."""
    if _toml is None:
        raise JanitorError(
            f"{_ROOT_MEASURE}, which {path} may set; reading it needs Python 3.11 or the tomli package on this host. "
            f"Install python3-tomli (or tomli with pip), or give free_space as sizes of the images (for example "
            f"high: 20GB, low: 15GB)")
    try:
        with open(path, "rb") as handle:
            config = _toml.loads(handle.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # TOMLDecodeError is a ValueError
        raise JanitorError(
            f"{_ROOT_MEASURE}, but its config {path} could not be read ({type(exc).__name__}: {exc}). Give "
            f"free_space as sizes of the images instead (for example high: 20GB, low: 15GB)") from exc
    root = config.get("root")
    return root if isinstance(root, str) and root else CONTAINERD_ROOT


def images_path(info, store):
    """The directory whose filesystem holds the images: containerd's root on the containerd image store, else the
    data root."""
    return containerd_root(info) if store == CONTAINERD else data_root(info)


def local_images_path(host, info, store=None):
    """The directory holding the images (``images_path``) when it is on this host; JanitorError (suggesting the
    size measure) otherwise."""
    host = host or ""
    socket_path = host[len("unix://"):] if host.startswith("unix://") else ""
    if not socket_path or not os.path.exists(socket_path):
        raise JanitorError(
            f"free_space in percent measures the filesystem that holds the engine's images, which needs the engine "
            f"on this host (a unix socket that exists here); the engine at {host or 'the default host'} is not. "
            f"Give free_space as sizes of the images instead (for example high: 20GB, low: 15GB), measured with the "
            f"engine's own accounting (docker system df), or run the task on the engine's host")
    root = images_path(info, store)
    if not root or not os.path.isdir(root):
        what = "containerd's root" if store == CONTAINERD else "the data root"
        raise JanitorError(
            f"free_space in percent measures the filesystem that holds the images, but {what} "
            f"{root or '(not reported)'} is not a directory on this host. Give free_space as "
            f"sizes of the images instead (for example high: 20GB, low: 15GB)")
    return root


def filesystem(path):
    """``(total, used)`` bytes of the filesystem holding ``path``."""
    stat = os.statvfs(path)
    total = stat.f_blocks * stat.f_frsize
    return total, total - stat.f_bavail * stat.f_frsize


def read_measure(client, measure, info, store=None):
    """The Measure of kind ``measure`` (``store``: the snapshot's store kind, which says where the images are)."""
    if measure == MEASURE_FILESYSTEM:
        path = local_images_path(getattr(client, "host", ""), info, store)
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
