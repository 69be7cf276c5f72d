"""A local ``docker-registry`` (Debian's distribution 2.x) on 127.0.0.1, so that images get real RepoDigests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.harness import procs

REGISTRY_BIN = Path("/usr/bin/docker-registry")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    def __init__(self):
        self.root: Path | None = None
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: engines treat loopback registries as insecure (plain HTTP) by default."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> "Registry":
        if not REGISTRY_BIN.is_file():
            raise RuntimeError(f"{REGISTRY_BIN} not found (apt-get install docker-registry)")
        self.root = Path(tempfile.mkdtemp(prefix="jd-reg-", dir="/tmp"))
        self.port = _free_port()
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.root / 'data'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: '127.0.0.1:{self.port}'}}\n"
        )
        log = open(self.root / "registry.log", "wb")
        self.process = subprocess.Popen([str(REGISTRY_BIN), "serve", str(config)], stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("docker-registry did not start")

    def push(self, engine, image: str, repo: str, tag: str = "latest") -> str:
        """Tag ``image`` as ``<registry>/<repo>:<tag>`` on ``engine`` and push it; returns the pushed reference."""
        name = f"{self.host}/{repo}"
        engine.api.tag(image, name, tag)
        for chunk in engine.api.push(name, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise RuntimeError(f"push of {name}:{tag} failed: {chunk['error']}")
        return f"{name}:{tag}"

    def stop(self) -> None:
        procs.stop(self.process)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> "Registry":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
