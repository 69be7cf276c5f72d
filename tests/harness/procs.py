"""Ending the servers a test started (registry, sshd): politely first, then for sure."""

from __future__ import annotations

import subprocess


def stop(process: subprocess.Popen | None, timeout: float = 10) -> None:
    """Terminate ``process`` if it still runs; kill it if it has not ended within ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
