"""Private Docker engines for tests, the demo and the benchmarks.

Three kinds, because their image delete rules differ:

* ``legacy``: Debian bookworm's ``docker.io`` (Docker 20.10, overlay2 graph driver), installed system-wide;
* ``classic``: Debian's newest ``docker.io`` and ``containerd``, fetched with ``apt-get download`` and unpacked
  into a cache folder (see ``fetch-engines.sh``), overlay2 graph driver;
* ``containerd``: the same binaries with the containerd image store.

Each engine runs as its own ``dockerd`` with its own data-root, exec-root, pidfile, daemon.json and unix socket
under a temporary directory, without networking. Nothing here ever talks to ``/var/run/docker.sock``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker

from tests.harness import procs

KINDS = ("legacy", "classic", "containerd")
REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("JANITOR_CACHE_DIR", REPO_ROOT / ".cache"))
UNSTABLE_ROOT = CACHE_DIR / "engines" / "unstable" / "root"


class EngineUnavailable(RuntimeError):
    """The binaries for an engine kind are not on this machine."""


@dataclass(frozen=True)
class EngineSpec:
    kind: str
    dockerd: Path
    path_prefix: tuple[Path, ...] = ()
    daemon_config: dict = field(default_factory=dict)

    def missing(self) -> str | None:
        """Why this engine cannot start here, or None."""
        if not self.dockerd.is_file():
            hint = "apt-get install docker.io" if self.kind == "legacy" else "make engines"
            return f"{self.kind} engine: {self.dockerd} not found (run `{hint}`)"
        return None


def engine_spec(kind: str) -> EngineSpec:
    if kind == "legacy":
        return EngineSpec(kind, Path("/usr/sbin/dockerd"))
    if kind in ("classic", "containerd"):
        return EngineSpec(
            kind,
            UNSTABLE_ROOT / "usr" / "sbin" / "dockerd",
            (UNSTABLE_ROOT / "usr" / "bin", UNSTABLE_ROOT / "usr" / "sbin"),
            {"features": {"containerd-snapshotter": kind == "containerd"}},
        )
    raise ValueError(f"unknown engine kind {kind!r}; valid kinds: {', '.join(KINDS)}")


def selected_kinds(value: str | None = None) -> list[str]:
    """Engine kinds chosen by ``--engines`` or ``JANITOR_ENGINES`` (comma-separated; default: all three)."""
    value = value or os.environ.get("JANITOR_ENGINES") or ",".join(KINDS)
    kinds = [k.strip() for k in value.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown engine kind(s) {', '.join(bad)}; valid kinds: {', '.join(KINDS)}")
    return kinds


class Engine:
    """One private dockerd. ``start()`` launches it, ``stop()`` removes every trace of it."""

    def __init__(self, spec: EngineSpec, extra_args: tuple[str, ...] = (), extra_config: dict | None = None,
                 tmpfs_size: str | None = None, data_from: Path | None = None):
        """``tmpfs_size`` (``"128m"``): the data-root is a tmpfs of that size of its own (as root), unmounted on
        ``stop()``; ``data_from``: a data-root copied in before the daemon starts (a world's golden copy)."""
        self.spec = spec
        self.tmpfs_size = tmpfs_size
        self.data_from = data_from
        self.kind = spec.kind
        self.extra_args = tuple(extra_args)
        self.extra_config = dict(extra_config or {})
        self.root: Path | None = None
        self.process: subprocess.Popen | None = None
        self.version: dict = {}
        self._client: docker.DockerClient | None = None

    # -- paths -------------------------------------------------------------------------------------------------
    @property
    def sock(self) -> Path:
        return self.root / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.url, version="auto", timeout=120)
        return self._client

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    @property
    def containerd_store(self) -> bool:
        return self.kind == "containerd"

    def env(self) -> dict:
        """Environment for a child process (ansible, docker CLI) pointed at this engine."""
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.url
        env.pop("DOCKER_TLS_VERIFY", None)
        env.pop("DOCKER_CERT_PATH", None)
        return env

    # -- life cycle --------------------------------------------------------------------------------------------
    def start(self, timeout: float = 90) -> "Engine":
        why = self.spec.missing()
        if why:
            raise EngineUnavailable(why)
        # unix socket paths are limited to 108 bytes: keep the directory short.
        self.root = Path(tempfile.mkdtemp(prefix=f"jd-{self.kind[:3]}-", dir="/tmp"))
        for sub in ("data", "exec"):
            (self.root / sub).mkdir()
        if self.tmpfs_size:
            _mount_tmpfs(self.root / "data", self.tmpfs_size)
        if self.data_from is not None:
            subprocess.run(["cp", "-a", f"{self.data_from}/.", str(self.root / "data")], check=True)
        config = dict(self.spec.daemon_config)
        config.update(self.extra_config)
        (self.root / "daemon.json").write_text(json.dumps(config))
        env = dict(os.environ)
        if self.spec.path_prefix:
            env["PATH"] = os.pathsep.join([str(p) for p in self.spec.path_prefix] + [env.get("PATH", "")])
        cmd = [
            str(self.spec.dockerd),
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "dockerd.pid"),
            "--config-file", str(self.root / "daemon.json"),
            "--host", self.url,
            "--bridge=none", "--iptables=false", "--ip-masq=false",
            *self.extra_args,
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"{self.kind} dockerd exited with {self.process.returncode}:\n{tail}")
            try:
                if self.sock.exists() and self.client.ping():
                    break
            except Exception:  # noqa: BLE001 - the daemon is still starting
                self._client = None
            if time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"{self.kind} dockerd did not answer within {timeout}s:\n{tail}")
            time.sleep(0.2)
        self.version = self.client.version()
        return self

    def describe(self) -> str:
        v = self.version
        store = "containerd image store" if self.containerd_store else "graph driver"
        return f"{self.kind}: Docker {v.get('Version')} (API {v.get('ApiVersion')}, {store}) at {self.url}"

    def stop(self) -> None:
        if self.root is None:
            return
        if self.process is not None and self.process.poll() is None:
            try:
                for c in self.api.containers(all=True, quiet=True):
                    self.api.remove_container(c["Id"], force=True)
            except Exception:  # noqa: BLE001 - best effort before shutdown
                pass
            self.terminate()
        if self._client is not None:
            self._client.close()
            self._client = None
        _remove_traces(self.root)
        self.root = None

    def terminate(self, timeout: float = 30) -> None:
        """SIGTERM the daemon and wait for it (SIGKILL its process group after ``timeout``); state stays on disk."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """Stop the daemon abruptly (for fault tests); ``stop()`` still cleans up afterwards."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> "Engine":
        # ``with Engine(spec).start() as engine`` must not start a second daemon
        return self if self.root is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- state -------------------------------------------------------------------------------------------------
    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """The reference: the docker CLI against this engine."""
        return subprocess.run(
            ["docker", "-H", self.url, *args],
            capture_output=True, text=True, check=check, timeout=timeout, env=self.env(),
        )

    def rmi(self, *args: str) -> tuple:
        """``docker rmi`` on this engine: (returncode, untagged, deleted, stderr), as the CLI prints them."""
        proc = self.cli("rmi", *args, check=False)
        lines = proc.stdout.splitlines()
        untagged = [line.split(": ", 1)[1] for line in lines if line.startswith("Untagged: ")]
        deleted = [line.split(": ", 1)[1] for line in lines if line.startswith("Deleted: ")]
        return proc.returncode, untagged, deleted, proc.stderr

    def reset(self) -> None:
        """Remove every container and every image: a clean engine for the next test."""
        for c in self.api.containers(all=True, quiet=True):
            self.api.remove_container(c["Id"], force=True)
        for _round in range(20):
            images = self.api.images(all=True)
            if not images:
                return
            self.api.prune_images(filters={"dangling": False})
            for image in self.api.images(all=True):
                try:
                    self.api.remove_image(image["Id"], force=True)
                except docker.errors.APIError:
                    pass  # a parent still held by a child: the next round takes it
        raise RuntimeError(f"{self.kind}: images left after reset: {self.api.images(all=True)}")

    def state(self) -> dict:
        """A comparable picture of the engine: image IDs with their sorted references, and containers."""
        images = {}
        for image in self.api.images(all=True):
            images[image["Id"]] = sorted(
                [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
                + [d for d in image.get("RepoDigests") or [] if d != "<none>@<none>"]
            )
        containers = {c["Id"]: c["ImageID"] for c in self.api.containers(all=True)}
        return {"images": images, "containers": containers}


class SystemContainerd:
    """A containerd of its own, as Debian's and Docker's packages run one beside dockerd (which is then started with
    ``--containerd=<its socket>``): its root, where the containerd image store keeps the images, on a tmpfs of
    ``tmpfs_size`` apart from dockerd's data root. Its config is written beside its socket (``containerd.toml``),
    the one place a module on this host may read it without touching ``/etc``. ``stop()`` ends it, unmounts its
    root and removes every trace."""

    def __init__(self, tmpfs_size: str = "256m"):
        self.tmpfs_size = tmpfs_size
        self.dir: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def sock(self) -> Path:
        return self.dir / "run" / "containerd.sock"

    def start(self, timeout: float = 60) -> "SystemContainerd":
        binary = UNSTABLE_ROOT / "usr" / "bin" / "containerd"
        if not binary.is_file():
            raise EngineUnavailable(f"containerd: {binary} not found (run `make engines`)")
        self.dir = Path(tempfile.mkdtemp(prefix="jd-ctd-", dir="/tmp"))
        for sub in ("root", "state", "run"):
            (self.dir / sub).mkdir()
        _mount_tmpfs(self.root, self.tmpfs_size)
        config = self.dir / "run" / "containerd.toml"
        config.write_text(f'version = 2\nroot = "{self.root}"\nstate = "{self.dir / "state"}"\n'
                          f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n\n[grpc]\n  address = "{self.sock}"\n')
        with open(self.dir / "containerd.log", "wb") as log:
            self.process = subprocess.Popen([str(binary), "--config", str(config)], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.sock.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (self.dir / "containerd.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"containerd did not start:\n{tail}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.dir is None:
            return
        procs.stop(self.process, timeout=20)
        _remove_traces(self.dir)
        self.dir = None


def _kill_processes_mentioning(marker: str) -> None:
    """Kill leftover containerd and shim processes whose command line names our temp dir."""
    for _attempt in range(3):
        victims = []
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
                continue
            try:
                cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                victims.append(int(pid_dir.name))
        if not victims:
            return
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.3)


def _mount_tmpfs(path: Path, size: str) -> None:
    """A tmpfs of ``size`` (``"128m"``) of its own at ``path`` (as root)."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0711", "tmpfs", str(path)], check=True,
                   capture_output=True)


def _remove_traces(directory: Path) -> None:
    """Every trace of a daemon that lived in ``directory``: its leftover processes, its mounts, its files."""
    _kill_processes_mentioning(str(directory))
    _unmount_below(str(directory))
    shutil.rmtree(directory, ignore_errors=True)


def _unmount_below(prefix: str) -> None:
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
