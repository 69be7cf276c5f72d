"""A private OpenSSH server for tests: Debian's ``sshd`` started by the test, never as a system service.

``SshServer(addresses)`` makes a host key and a client key with ``ssh-keygen`` in a temporary directory, writes
an ``sshd_config`` that listens on the given loopback addresses (127.0.0.2, 127.0.0.3, ...) on one free port,
accepts only that client key (for the user running the tests) and nothing else, and runs ``sshd -D`` in the
foreground. The server stops by itself: ``stop()`` (or leaving the ``with`` block) ends it, it gets SIGTERM when
the process that started it dies (``PR_SET_PDEATHSIG``), and it never outlives ``lifetime`` seconds (``timeout``).
"""

from __future__ import annotations

import ctypes
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.harness import procs

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it; the Debian package creates it at boot
PR_SET_PDEATHSIG = 1


class SshUnavailable(RuntimeError):
    """sshd or ssh-keygen is not installed (``make sysdeps`` installs openssh-server)."""


def loopback_addresses(count: int, first: int = 2) -> list[str]:
    """``count`` loopback addresses from 127.0.0.<first>: all of 127.0.0.0/8 is the loopback on Linux."""
    return [f"127.0.0.{first + i}" for i in range(count)]


def _free_port(addresses: list[str]) -> int:
    """A port free on every one of ``addresses``."""
    for _attempt in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = probe.getsockname()[1]
        try:
            for address in addresses[1:]:
                with socket.socket() as other:
                    other.bind((address, port))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no port free on all of {', '.join(addresses)}")


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class SshServer:
    """One ``sshd`` listening on ``addresses`` (one port for all), key authentication only."""

    def __init__(self, addresses: list[str], lifetime: int = 3600, environment: dict | None = None):
        self.addresses = list(addresses)
        self.lifetime = lifetime
        self.environment = dict(environment or {})  # set in every session (sshd's SetEnv), e.g. DOCKER_HOST
        self.user = getpass.getuser()
        self.root: Path | None = None
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    @property
    def client_key(self) -> Path:
        return self.root / "client_ed25519"

    @property
    def host_key(self) -> str:
        """The server's public host key, ``type base64`` (for a known_hosts line)."""
        return " ".join((self.root / "host_ed25519.pub").read_text().split()[:2])

    @property
    def log_path(self) -> Path:
        return self.root / "sshd.log"

    def host_vars(self, address: str) -> dict:
        """Inventory variables that make Ansible reach ``address`` through this server."""
        return {
            "ansible_connection": "ssh",
            "ansible_host": address,
            "ansible_port": self.port,
            "ansible_user": self.user,
            "ansible_ssh_private_key_file": str(self.client_key),
            # kept-alive master connections end a few seconds after the run, not a minute later
            "ansible_ssh_args": "-o ControlMaster=auto -o ControlPersist=5s",
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                       "-o IdentitiesOnly=yes -o ConnectTimeout=10",
        }

    def start(self, timeout: float = 20) -> "SshServer":
        for tool in (SSHD, Path(shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen")):
            if not tool.is_file():
                raise SshUnavailable(f"{tool} not found (run `make sysdeps`: it installs openssh-server)")
        self.root = Path(tempfile.mkdtemp(prefix="jd-sshd-", dir="/tmp"))
        os.chmod(self.root, 0o700)
        for name in ("host_ed25519", "client_ed25519"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"janitor-test-{name}",
                            "-f", str(self.root / name)], check=True, capture_output=True)
        (self.root / "authorized_keys").write_text((self.root / "client_ed25519.pub").read_text())
        self.port = _free_port(self.addresses)
        config = [
            f"Port {self.port}",
            *(f"ListenAddress {address}" for address in self.addresses),
            f"HostKey {self.root / 'host_ed25519'}",
            f"PidFile {self.root / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            f"AllowUsers {self.user}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "MaxStartups 100",
            "MaxSessions 100",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
            *(f"SetEnv {name}={value}" for name, value in self.environment.items()),
        ]
        (self.root / "sshd_config").write_text("\n".join(config) + "\n")
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        check = subprocess.run([str(SSHD), "-t", "-f", str(self.root / "sshd_config")], capture_output=True,
                               text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"sshd rejected its configuration: {check.stderr}")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["timeout", "--kill-after=10", str(self.lifetime), str(SSHD), "-D", "-e",
                 "-f", str(self.root / "sshd_config")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        waiting = list(self.addresses)
        while waiting:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection((waiting[0], self.port), timeout=1) as conn:
                    if conn.recv(64).startswith(b"SSH-"):
                        waiting.pop(0)
                        continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sshd did not answer on {waiting[0]}:{self.port} within {timeout}s")
            time.sleep(0.1)
        return self

    def connections(self) -> dict[str, int]:
        """How many connections sshd took on each of its addresses (from its log: ``Connection from 127.0.0.1
        port 40522 on 127.0.0.3 port 40001``) - after a public-key login, since nothing else is accepted."""
        text = self.log_path.read_text(errors="replace") if self.root else ""
        counts = {address: 0 for address in self.addresses}
        for match in re.finditer(r"Connection from \S+ port \d+ on (\S+) port (\d+)", text):
            if int(match.group(2)) == self.port and match.group(1) in counts:
                counts[match.group(1)] += 1
        return counts

    def accepted_logins(self) -> int:
        text = self.log_path.read_text(errors="replace") if self.root else ""
        return text.count("Accepted publickey")

    def stop(self) -> None:
        procs.stop(self.process)
        self.process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> "SshServer":
        return self if self.process is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
