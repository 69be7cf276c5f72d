# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The module's own JSON files on the managed host (``last_used_state``, ``layer_cache``): read, and written
atomically - a temporary file in the same directory, flushed and synced, then renamed over the old one - so a
reader never sees half a file and a run that dies while writing leaves the old one."""

from __future__ import annotations

import json
import os
import tempfile

from ansible_collections.janitor.docker.plugins.module_utils._errors import JanitorError


def checked_path(option, value, example):
    """The path given for ``option`` ("" when not given); ``JanitorError`` naming the option, the value and an
    ``example`` when it is not absolute: the file is on the managed host, and a relative path would depend on the
    directory the module happens to run in."""
    path = str(value or "")
    if path and not path.startswith("/"):
        raise JanitorError(f"{option}: {path!r} is not an absolute path; give a file path on the managed host such "
                           f"as {example}")
    return path


def read_json(path):
    """``(data, problem)``: the decoded file, or None and why (None and no problem when the file does not exist,
    a directory above it included: a parent that is a regular file is the write's problem, said once)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle), None
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except (OSError, ValueError) as exc:
        return None, str(exc)


def write_json(path, data, prefix):
    """Write ``data`` to ``path`` atomically (creating its directory); the ``OSError`` text on failure, else None."""
    directory = os.path.dirname(path) or "."
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    temp = None
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
        temp = None
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        return str(exc)
    finally:
        if temp is not None:
            try:
                os.unlink(temp)
            except OSError:
                pass
    return None
