"""Misbehaving daemons for fault tests: a socket that never answers, a fake daemon of an old API version, and a
proxy in front of a real engine that can be told to stop answering in the middle of a run.

Also ``run_module_process()``: a module run the way Ansible runs it (a separate Python process, arguments as JSON on
stdin), optionally as another user, so a test sees exactly what an operator would: the JSON result, and any
traceback on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
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
    """Answers ``/_ping`` and ``/version`` like a daemon of API ``api_version`` (with dockerd's ``Api-Version`` and
    ``Server`` headers); 404 for everything else."""

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
                                 f"Server: Docker/{self.version} (linux)\r\n"
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


def image_id(n: int) -> str:
    """A well-formed image ID for a fake engine's store: ``sha256:`` and the byte ``n`` 32 times."""
    return "sha256:" + f"{n:02x}" * 32


SMALL_STORE = {image_id(n): [f"app{n}:1"] for n in range(1, 4)}  # three images, one tag each


@contextlib.contextmanager
def fake_engine(images: dict | None = None, tcp: bool = False):
    """A ``FakeEngine`` on a socket in a temporary directory (``tcp``: on 127.0.0.1, a port of its own, where the
    modules use the Docker SDK), holding ``images`` (``SMALL_STORE`` by default)."""
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        with FakeEngine(Path(tmp) / "engine.sock", SMALL_STORE if images is None else images, tcp=tcp) as daemon:
            yield daemon


class FakeEngine:
    """A fake Docker daemon on a unix socket, with the faults a proxy or a broken daemon may show, and a log.

    Built on the standard library's ``http.server`` (which reads the requests); the answers are written as raw
    bytes so that a test can send exactly the misbehaviour it wants to check. The engine model is small and exact
    for what it holds: images with tags (no parents, no containers, the classic store): ``DELETE`` of a tag untags
    it and deletes the image with its last tag (answering ``Untagged``, ``Deleted`` image, ``Deleted`` layer);
    ``DELETE`` of an ID deletes the image unless several repositories reference it (409).

    ``log`` lists every request the fake carried out, as ``(method, path, status)``, and ``untagged``/``deleted``
    what it really did. ``connections`` counts the connections accepted, ``served`` the answers on each.

    Faults (attributes, change them at any time):

    * ``interim``: interim answers (``100 Continue``, ``102 Processing``...) sent before every answer;
    * ``stray``: ``b"..."`` written after each answer's body, ``stray_delay`` seconds later (0: in the same write);
    * ``close_after``: close each connection silently (no ``Connection: close``) right after its N-th answer;
    * ``connection_header``: a ``Connection`` header to send (``"keep-alive, close"`` closes after the answer);
    * ``stall``: requests whose path contains this string are read and never answered;
    * ``not_json``: requests whose path contains this string get a 200 answer that is not JSON;
    * ``refuse``: ``{reference or ID: (status, message)}`` answered to a ``DELETE`` of it, nothing done;
    * ``fail``: ``{path fragment: (status, message)}`` answered to every request whose path holds the fragment;
    * ``api_header``: False to leave out the ``Api-Version`` header (a server that is not a Docker daemon);
    * ``delay``: ``{path fragment: seconds}`` to wait before answering a request whose path holds the fragment;
    * ``rewrite``: ``{path fragment: function}``: the JSON value of a successful answer to a request whose path holds
      the fragment is ``function(value)`` (an odd shape a broken daemon or proxy may send); what the fake did stays.

    Like dockerd, every answer carries ``Api-Version`` (``API_VERSION``) and ``Server`` headers, and a request at a
    ``/v{version}/`` newer than ``API_VERSION`` is refused (400 ``client version ... is too new``).
    * ``vanish``: the next N image listings answer ``(status, message)`` as the containerd store does when another
      client deleted content it was listing (``vanish_answer``, default a 404 ``NotFound: content digest ...``).
    """

    API_VERSION = "1.41"
    VERSION = "20.10.24"

    def __init__(self, path: Path, images: dict, tcp: bool = False):
        import http.server
        import socketserver

        self.images = {image_id: list(tags) for image_id, tags in images.items()}
        self.layers = {image_id: "sha256:" + image_id[7:][::-1] for image_id in images}
        self.log: list[tuple[str, str, int]] = []
        self.untagged: list[str] = []
        self.deleted: list[str] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.connections = 0
        self.served: list[int] = []
        self.interim: list[str] = []
        self.stray = b""
        self.stray_delay = 0.0
        self.close_after = 0
        self.connection_header = ""
        self.stall = ""
        self.not_json = ""
        self.refuse: dict = {}
        self.fail: dict = {}
        self.api_header = True
        self.delay: dict = {}
        self.rewrite: dict = {}
        self.vanish = 0
        self.vanish_answer = (404, "NotFound: content digest sha256:" + "ab" * 32 + ": not found")
        self.path = Path(path)
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with fake.lock:
                    self.number = fake.connections
                    fake.connections += 1
                    fake.served.append(0)

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._answer("GET")

            def do_DELETE(self):
                self._answer("DELETE")

            def _answer(self, method):
                if fake.stall and fake.stall in self.path:
                    fake.closing.wait()
                    self.close_connection = True
                    return
                for fragment, seconds in list(fake.delay.items()):
                    if fragment in self.path:
                        time.sleep(seconds)
                status, body = fake.handle(method, self.path)
                if fake.not_json and fake.not_json in self.path:
                    status, body = 200, b"<html><body>502 Bad Gateway</body></html>"
                head = b"".join(f"HTTP/1.1 {code}\r\n\r\n".encode() for code in fake.interim)
                reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 409: "Conflict",
                          500: "Internal Server Error"}.get(status, "Error")
                head += f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nServer: " \
                        f"Docker/{fake.VERSION} (linux)\r\nContent-Length: {len(body)}\r\n".encode()
                if fake.api_header:
                    head += f"Api-Version: {fake.API_VERSION}\r\n".encode()
                if fake.connection_header:
                    head += f"Connection: {fake.connection_header}\r\n".encode()
                data = head + b"\r\n" + body
                if fake.stray and not fake.stray_delay:
                    data += fake.stray
                with fake.lock:
                    fake.served[self.number] += 1
                    served = fake.served[self.number]
                self.wfile.write(data)
                if fake.stray and fake.stray_delay:
                    time.sleep(fake.stray_delay)
                    self.wfile.write(fake.stray)
                if "close" in fake.connection_header.lower() or (fake.close_after and served >= fake.close_after):
                    self.close_connection = True

        class Server(socketserver.ThreadingMixIn, socketserver.TCPServer if tcp else socketserver.UnixStreamServer):
            daemon_threads = True
            allow_reuse_address = True

            def shutdown_request(self, request):
                request.close()  # a silent close: no shutdown(SHUT_WR) first, whatever the client sent stays unread

            def handle_error(self, request, client_address):
                if isinstance(sys.exc_info()[1], OSError):
                    return  # a client that dropped its connection: the faults under test, not the fake's error
                super().handle_error(request, client_address)

        self.tcp = tcp
        self.server = Server(("127.0.0.1", 0) if tcp else str(self.path), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        if self.tcp:
            return "tcp://127.0.0.1:%d" % self.server.server_address[1]
        return f"unix://{self.path}"

    def _find(self, name):
        if name.startswith("sha256:") and name in self.images:
            return name
        for image_id, tags in self.images.items():
            if name in tags or (":" not in name.split("/")[-1] and f"{name}:latest" in tags):
                return image_id
        for image_id in self.images:
            if len(name) >= 4 and image_id[7:].startswith(name):
                return image_id
        return None

    def _record(self, image_id):
        return {"Id": image_id, "ParentId": "", "RepoTags": list(self.images[image_id]), "RepoDigests": [],
                "Created": 1700000000, "Size": 1000, "Labels": None}

    def handle(self, method, raw_path):
        """``(status, body)`` for one request, carrying it out on the model; logged."""
        from urllib.parse import unquote, urlsplit

        split = urlsplit(raw_path)
        path = split.path
        asked = None
        if path.startswith("/v") and path.count("/") >= 2:
            asked, path = path.split("/", 2)[1][1:], "/" + path.split("/", 2)[2]
        with self.lock:
            failing = [answer for fragment, answer in self.fail.items() if fragment in raw_path]
            if asked is not None and tuple(map(int, asked.split("."))) > tuple(map(int, self.API_VERSION.split("."))):
                status, value = 400, {"message": f"client version {asked} is too new. Maximum supported API "
                                                 f"version is {self.API_VERSION}"}
            elif failing:
                status, value = failing[0][0], {"message": failing[0][1]}
            else:
                status, value = self._handle(method, path, split.query)
                for fragment, function in self.rewrite.items():
                    if status < 300 and fragment in raw_path:
                        value = function(value)
            self.log.append((method, unquote(raw_path), status))
        return status, json.dumps(value).encode() + b"\n"

    def _handle(self, method, path, query):
        from urllib.parse import unquote

        if method == "GET" and path == "/version":
            return 200, {"ApiVersion": self.API_VERSION, "Version": self.VERSION, "MinAPIVersion": "1.12"}
        if method == "GET" and path == "/_ping":
            return 200, "OK"
        if method == "GET" and path == "/info":
            return 200, {"ServerVersion": self.VERSION, "Driver": "overlay2", "DriverStatus": []}
        if method == "GET" and path == "/images/json":
            if self.vanish:
                self.vanish -= 1
                status, message = self.vanish_answer
                return status, {"message": message}
            return 200, [self._record(image_id) for image_id in self.images]
        if method == "GET" and path == "/containers/json":
            return 200, []
        if method == "GET" and path == "/system/df":
            return 200, {"LayersSize": 1000 * len(self.images), "Images": [self._record(i) for i in self.images],
                         "Containers": [], "Volumes": [], "BuildCache": []}
        if path.startswith("/images/"):
            name = unquote(path[len("/images/"):])
            if method == "GET" and name.endswith("/json"):
                image_id = self._find(name[:-len("/json")])
                if image_id is None:
                    return 404, {"message": f"No such image: {name[:-len('/json')]}"}
                return 200, dict(self._record(image_id), RootFS={"Type": "layers", "Layers": [self.layers[image_id]]})
            if method == "DELETE":
                if name in self.refuse:
                    status, message = self.refuse[name]
                    return status, {"message": message}
                image_id = self._find(name)
                if image_id is None:
                    return 404, {"message": f"No such image: {name}"}
                tags = self.images[image_id]
                answer = []
                if name != image_id and name in tags:
                    tags.remove(name)
                    self.untagged.append(name)
                    answer.append({"Untagged": name})
                    if tags:
                        return 200, answer
                elif len({tag.rsplit(":", 1)[0] for tag in tags}) > 1:
                    return 409, {"message": f"conflict: unable to delete {image_id[7:19]} (must be forced) - image "
                                            f"is referenced in multiple repositories"}
                else:
                    for tag in tags:
                        self.untagged.append(tag)
                        answer.append({"Untagged": tag})
                del self.images[image_id]
                self.deleted.append(image_id)
                answer += [{"Deleted": image_id}, {"Deleted": self.layers[image_id]}]
                return 200, answer
        return 404, {"message": "page not found"}

    def deletes(self) -> list[str]:
        """The DELETE requests the fake carried out (a request carried out twice shows twice)."""
        return [path for method, path, _status in self.log if method == "DELETE"]

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
