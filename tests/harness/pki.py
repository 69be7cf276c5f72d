"""Throw-away certificates made with the ``openssl`` command, and a private dockerd that demands them.

``make_pki(directory)`` writes a CA, a server certificate and a client certificate (the layout of
``DOCKER_CERT_PATH``: ``ca.pem``, ``cert.pem``, ``key.pem``), plus a second, unrelated CA to prove that a wrong
CA is refused. ``tls_engine(kind, pki)`` starts a private engine that also listens on ``tcp://127.0.0.1:<port>``
with ``--tlsverify`` (its unix socket stays, for the test's own setup).

The server certificate names ``localhost`` and ``janitor-daemon.test`` but not the address ``127.0.0.1``: so
``tcp://localhost:<port>`` verifies, ``tcp://127.0.0.1:<port>`` does not, unless ``tls_hostname`` says which
name to expect.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.harness.engines import Engine, engine_spec

SERVER_NAMES = ("localhost", "janitor-daemon.test")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=60)


def _key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path), cwd=path.parent)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    key = directory / f"{name}-key.pem"
    cert = directory / f"{name}.pem"
    _key(key)
    _openssl("req", "-x509", "-new", "-key", str(key), "-sha256", "-days", "2", "-subj", f"/CN=janitor test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", str(cert), cwd=directory)
    return cert, key


def _signed(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    key = directory / f"{name}-key.pem"
    csr = directory / f"{name}.csr"
    cert = directory / f"{name}-cert.pem"
    ext = directory / f"{name}.ext"
    _key(key)
    _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr), cwd=directory)
    ext.write_text(extensions)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-days", "2", "-sha256", "-extfile", str(ext), "-out", str(cert), cwd=directory)
    return cert, key


@dataclass
class PKI:
    directory: Path
    ca: Path  # the CA that signed the server and client certificates
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # an unrelated CA
    other_client_cert: Path  # a client certificate signed by the unrelated CA
    other_client_key: Path
    cert_dir: Path  # DOCKER_CERT_PATH layout: ca.pem, cert.pem, key.pem

    def secrets(self) -> list[str]:
        """The private keys' contents: none of this may ever appear in a result or a log."""
        keys = (self.client_key, self.server_key, self.other_client_key)
        return [path.read_text() for path in keys] + [_key_body(path) for path in keys]


def _key_body(path: Path) -> str:
    """The base64 body of a PEM key, without its armour lines (a fragment that would betray a leak)."""
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]
    return "".join(lines)[:40]


def make_pki(directory: Path) -> PKI:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "ca")
    server = _signed(directory, "server", ca,
                     "subjectAltName=" + ",".join(f"DNS:{n}" for n in SERVER_NAMES) + "\n"
                     "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n")
    client = _signed(directory, "client", ca, "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n")
    other = _ca(directory, "other-ca")
    other_client = _signed(directory, "other-client", other,
                           "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n")
    cert_dir = directory / "docker-cert-path"
    cert_dir.mkdir(exist_ok=True)
    (cert_dir / "ca.pem").write_bytes(ca[0].read_bytes())
    (cert_dir / "cert.pem").write_bytes(client[0].read_bytes())
    (cert_dir / "key.pem").write_bytes(client[1].read_bytes())
    for path in directory.rglob("*key.pem"):
        path.chmod(0o600)
    return PKI(directory, ca[0], server[0], server[1], client[0], client[1], other[0], other_client[0],
               other_client[1], cert_dir)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tls_engine(kind: str, pki: PKI) -> tuple[Engine, int]:
    """A started private engine of ``kind`` that also listens on tcp://127.0.0.1:<port> with --tlsverify."""
    port = free_port()
    engine = Engine(engine_spec(kind), extra_args=(
        "--host", f"tcp://127.0.0.1:{port}",
        "--tlsverify", "--tlscacert", str(pki.ca), "--tlscert", str(pki.server_cert), "--tlskey", str(pki.server_key),
    ))
    engine.start()
    return engine, port
