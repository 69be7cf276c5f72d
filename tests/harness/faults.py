"""Misbehaving daemons for fault tests: a socket that never answers, a fake daemon of an old API version, and a
proxy in front of a real engine that can be told to stop answering in the middle of a run.

Also ``run_module_process()``: a module run the way Ansible runs it (a separate Python process, arguments as JSON on
stdin), optionally as another user, so a test sees exactly what an operator would: the JSON result, and any
traceback on stderr.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tests.harness.ansible_runner import REPO_ROOT


class _UnixServer:
    """Accepts connections on a unix socket in a thread; ``handle(conn)`` runs in a thread per connection."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        self.sock.listen(16)
        self.closed = threading.Event()
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def _accept(self):
        while not self.closed.is_set():
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for conn in self.connections:
            try:
                conn.close()
            except OSError:
                pass
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SilentDaemon(_UnixServer):
    """Accepts every connection and never answers."""

    def handle(self, conn):
        self.closed.wait()


class FakeDaemon(_UnixServer):
    """Answers ``/_ping`` and ``/version`` like a daemon of API ``api_version``; 404 for everything else."""

    def __init__(self, path: Path, api_version: str, version: str = "19.03.15"):
        self.api_version = api_version
        self.version = version
        super().__init__(path)

    def handle(self, conn):
        buffer = b""
        with conn:
            while not self.closed.is_set():
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    path = head.split(b" ", 2)[1].decode()
                    if path.endswith("/_ping"):
                        status, body, kind = "200 OK", b"OK", "text/plain"
                    elif path.endswith("/version"):
                        status, kind = "200 OK", "application/json"
                        body = json.dumps({"ApiVersion": self.api_version, "Version": self.version,
                                           "MinAPIVersion": "1.12", "Os": "linux", "Arch": "amd64"}).encode()
                    else:
                        status, body, kind = "404 Not Found", b'{"message":"page not found"}', "application/json"
                    conn.sendall(f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nApi-Version: {self.api_version}\r\n"
                                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


class StallingProxy(_UnixServer):
    """Forwards to a real engine's socket until ``stall()``; from then on it reads requests and never answers."""

    def __init__(self, path: Path, target: Path):
        self.target = Path(target)
        self.stalled = threading.Event()
        self.requests = 0
        super().__init__(path)

    def stall(self) -> None:
        self.stalled.set()

    def handle(self, conn):
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(str(self.target))
        except OSError:
            conn.close()
            return
        with conn, upstream:
            while not self.closed.is_set():
                if self.stalled.is_set():
                    self.closed.wait()
                    return
                ready, _w, _x = select.select([conn, upstream], [], [], 0.1)
                for side in ready:
                    try:
                        data = side.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    if side is conn:
                        if self.stalled.is_set():
                            self.closed.wait()
                            return
                        self.requests += data.count(b" HTTP/1.1\r\n")
                        upstream.sendall(data)
                    else:
                        conn.sendall(data)


def collections_path() -> str:
    return os.environ.get("ANSIBLE_COLLECTIONS_PATH") or str(REPO_ROOT / ".cache" / "collections")


def run_module_process(name: str, args: dict, check_mode: bool = False, user: str | None = None,
                       env: dict | None = None, timeout: float = 120) -> tuple[dict, subprocess.CompletedProcess]:
    """Run ``janitor.docker.<name>`` as Ansible would, in its own process (as ``user`` when given).

    Returns the parsed JSON result (``{}`` when the module printed none) and the finished process.
    """
    full_args = dict(args)
    full_args["_ansible_check_mode"] = check_mode
    command = [sys.executable, "-m", f"ansible_collections.janitor.docker.plugins.modules.{name}"]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--", *command]
    process_env = dict(os.environ)
    process_env.update(env or {})
    process_env["PYTHONPATH"] = collections_path()
    process_env["PYTHONDONTWRITEBYTECODE"] = "1"
    process_env["HOME"] = "/tmp"
    proc = subprocess.run(command, input=json.dumps({"ANSIBLE_MODULE_ARGS": full_args}), capture_output=True,
                          text=True, timeout=timeout, env=process_env, cwd="/", check=False)
    result = {}
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            result = json.loads(line)
            break
        except ValueError:
            continue
    return result, proc


def run_python_as(user: str, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python as ``user`` (a numeric uid or a name) with the collection importable."""
    env = dict(os.environ, PYTHONPATH=collections_path(), PYTHONDONTWRITEBYTECODE="1", HOME="/tmp")
    return subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--", sys.executable,
                           "-c", code], capture_output=True, text=True, timeout=timeout, env=env, cwd="/",
                          check=False)
