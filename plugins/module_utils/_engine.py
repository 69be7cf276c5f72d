# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Connection to the Docker engine: options -> docker SDK ``APIClient``; engine errors -> our exceptions.

This is the only place that imports the Docker SDK. Everything above it receives a connected client and raises
``JanitorError`` subclasses with messages meant for an operator.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlencode

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.janitor.docker.plugins.module_utils._errors import (
    EngineAPIError,
    EngineUnreachableError,
    JanitorError,
    SDKMissingError,
)

try:
    import docker
    import docker.errors
    import docker.transport
    import requests.exceptions
    import requests.models
except ImportError:
    docker = None
    SDK_IMPORT_ERROR = traceback.format_exc()
else:
    SDK_IMPORT_ERROR = None

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DEFAULT_TIMEOUT = 60
MIN_API_VERSION = "1.41"
SDK_PACKAGE = "docker"
SDK_MIN_VERSION = "7.0.0"

# The connection options, with the names, aliases, defaults and environment variables of community.docker.
ENGINE_ARGUMENT_SPEC = dict(
    docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST, fallback=(env_fallback, ["DOCKER_HOST"]),
                     aliases=["docker_url"]),
    tls_hostname=dict(type="str", fallback=(env_fallback, ["DOCKER_TLS_HOSTNAME"])),
    api_version=dict(type="str", default="auto", fallback=(env_fallback, ["DOCKER_API_VERSION"]),
                     aliases=["docker_api_version"]),
    timeout=dict(type="int", default=DEFAULT_TIMEOUT, fallback=(env_fallback, ["DOCKER_TIMEOUT"])),
    ca_path=dict(type="path", aliases=["ca_cert", "tls_ca_cert", "cacert_path"]),
    client_cert=dict(type="path", aliases=["tls_client_cert", "cert_path"]),
    client_key=dict(type="path", aliases=["tls_client_key", "key_path"], no_log=False),
    tls=dict(type="bool", default=False, fallback=(env_fallback, ["DOCKER_TLS"])),
    validate_certs=dict(type="bool", default=False, fallback=(env_fallback, ["DOCKER_TLS_VERIFY"]),
                        aliases=["tls_verify"]),
)


def guard_secrets(module):
    """Hide key or certificate text pasted into a path option from everything the module returns.

    ``client_key`` and the other certificate options hold paths, so they are not ``no_log`` (paths are fine to
    show). When a value looks like PEM text instead, it is added to the module's no-log values, so neither the
    invocation nor any message repeats it. Call right after creating the ``AnsibleModule``.
    """
    for name in ("ca_path", "client_cert", "client_key"):
        value = module.params.get(name)
        if isinstance(value, str) and _looks_like_pem(value):
            module.no_log_values.add(value)


def engine_argument_spec(**extra):
    """The connection options plus the module's own ``extra`` options."""
    spec = {name: dict(value) for name, value in ENGINE_ARGUMENT_SPEC.items()}
    spec.update(extra)
    return spec


def _cert_path_default(params, name, filename):
    if params.get(name):
        return params[name]
    cert_dir = os.environ.get("DOCKER_CERT_PATH")
    if cert_dir:
        return os.path.join(cert_dir, filename)
    return None


def _looks_like_pem(value):
    return "-----BEGIN" in value or "\n" in value


def _tls_config(params):
    """A docker.tls.TLSConfig for the options, or None for a plain connection."""
    ca_path = _cert_path_default(params, "ca_path", "ca.pem")
    client_cert = _cert_path_default(params, "client_cert", "cert.pem")
    client_key = _cert_path_default(params, "client_key", "key.pem")
    verify = bool(params.get("validate_certs"))
    if not (verify or params.get("tls")):
        return None
    for option, path in (("ca_path", ca_path), ("client_cert", client_cert), ("client_key", client_key)):
        if path and _looks_like_pem(path):
            # a certificate or key pasted where its path belongs: never repeat it (it may be a private key)
            raise JanitorError(f"{option} must be the path of a PEM file, not its content "
                               f"(the value given looks like PEM text; it is not repeated here)")
        if path and not os.path.isfile(path):
            raise JanitorError(f"{option}: the file {path} does not exist or is not a file")
    if bool(client_cert) != bool(client_key):
        raise JanitorError("client_cert and client_key must be given together (the key of the certificate)")
    if verify and not ca_path:
        raise JanitorError("validate_certs=true needs ca_path (the CA that signed the daemon's certificate), "
                           "or DOCKER_CERT_PATH with a ca.pem in it")
    return docker.tls.TLSConfig(
        client_cert=(client_cert, client_key) if client_cert else None,
        ca_cert=ca_path if verify else None,
        verify=ca_path if verify else False,
    )


def _expect_hostname(client, hostname):
    """Verify the daemon's certificate against ``hostname`` instead of the host in the URL (tls_hostname)."""
    import requests.adapters

    class _HostnameAdapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            kwargs["assert_hostname"] = hostname
            kwargs["server_hostname"] = hostname
            super().init_poolmanager(*args, **kwargs)

    adapter = _HostnameAdapter(pool_connections=1, pool_maxsize=getattr(client, "_pool_size", 10) or 10)
    client.mount("https://", adapter)
    client._custom_adapter = adapter


def _pin_tls_settings(client):
    """Make the options, not the environment, decide how the daemon's certificate is verified.

    requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` replace a session's CA file for every request, which
    would silently swap ``ca_path`` for the system bundle (and turn ``tls=true`` without ``validate_certs`` into a
    verification against it). Proxies and the rest of the environment still apply.
    """
    merge = client.merge_environment_settings
    pinned = client.verify

    def merge_environment_settings(url, proxies, stream, verify, cert):
        settings = merge(url, proxies, stream, verify, cert)
        settings["verify"] = pinned
        return settings

    client.merge_environment_settings = merge_environment_settings


def _base_url(params):
    host = params.get("docker_host") or DEFAULT_DOCKER_HOST
    if (params.get("tls") or params.get("validate_certs")) and host.startswith("tcp://"):
        host = "https://" + host[len("tcp://"):]
    return host


def connect(params):
    """A connected ``docker.APIClient`` for the module parameters (the connection options).

    Raises ``SDKMissingError``, ``EngineUnreachableError`` or ``JanitorError`` with an operator-facing message.
    """
    if docker is None:
        raise SDKMissingError(
            missing_required_lib(f"{SDK_PACKAGE} (Docker SDK for Python) >= {SDK_MIN_VERSION}"),
            exception=SDK_IMPORT_ERROR,
        )
    if params.get("docker_host") is not None and not str(params["docker_host"]).strip():
        # an empty value (an unset variable, a failed lookup) must not quietly mean the host's default daemon
        raise JanitorError(f"docker_host is empty: name the daemon, such as {DEFAULT_DOCKER_HOST}, or leave the "
                           f"option out to use DOCKER_HOST or that default")
    host = params.get("docker_host") or DEFAULT_DOCKER_HOST
    api_version = params.get("api_version") or "auto"
    auto = api_version.lower() == "auto"
    if not auto:
        if not re.fullmatch(r"[0-9]+\.[0-9]+", api_version):
            raise JanitorError(f"api_version={api_version!r} is not an API version: use auto, or a version such "
                               f"as {MIN_API_VERSION}")
        if _version_tuple(api_version) < _version_tuple(MIN_API_VERSION):
            raise JanitorError(f"api_version={api_version} is older than {MIN_API_VERSION}, the oldest this "
                               f"collection supports; use auto or {MIN_API_VERSION} or newer")
    tls = _tls_config(params)
    try:
        # never "auto" here: the SDK would ask the daemon before the TLS settings below are in place
        client = docker.APIClient(
            base_url=_base_url(params),
            version=MIN_API_VERSION if auto else api_version,
            timeout=params.get("timeout") or DEFAULT_TIMEOUT,
            tls=tls,
        )
    except docker.errors.DockerException as exc:
        raise _connection_error(host, exc, params) from exc
    except requests.exceptions.RequestException as exc:
        raise _connection_error(host, exc, params) from exc
    if tls is not None:
        _pin_tls_settings(client)
        if params.get("tls_hostname") and params.get("validate_certs"):
            _expect_hostname(client, params["tls_hostname"])
    try:
        version = client.version(api_version=False)
        if auto:
            client._version = version["ApiVersion"]
        client.ping()
        if not auto:
            version = client.version()
    except Exception as exc:  # noqa: BLE001 - every failure here means the daemon cannot be used
        client.close()
        raise _connection_error(host, exc, params) from exc
    client.janitor_host = host  # the daemon as the user named it, for messages about later failures
    engine_api = version.get("ApiVersion", "0")
    if _version_tuple(engine_api) < _version_tuple(MIN_API_VERSION):
        client.close()
        raise JanitorError(
            f"the Docker daemon at {host} speaks API {engine_api} (Docker {version.get('Version', '?')}), "
            f"older than {MIN_API_VERSION} (Docker 20.10), the oldest this collection supports"
        )
    return client


def _version_tuple(text):
    try:
        return tuple(int(part) for part in str(text).split("."))
    except ValueError:
        return (0,)


def _connection_error(host, exc, params=None):
    params = params or {}
    text = str(exc)
    lowered = text.lower()
    if "permission denied" in lowered:
        return EngineUnreachableError(
            f"permission denied on the Docker socket of {host}: run the task as root (become: true) or as a member "
            f"of the socket's group ({text})"
        )
    if isinstance(exc, docker.errors.APIError) and "client version" in lowered and "too old" in lowered:
        return JanitorError(f"the Docker daemon at {host} refused the API version: {text}")
    if isinstance(exc, docker.errors.APIError) and "client version" in lowered and "too new" in lowered:
        return JanitorError(f"the Docker daemon at {host} is too old for the requested api_version: {text}")
    if "http request to an https server" in lowered:
        return EngineUnreachableError(
            f"the Docker daemon at {host} only speaks TLS: set tls=true or validate_certs=true (with ca_path, "
            f"client_cert and client_key, or DOCKER_TLS_VERIFY and DOCKER_CERT_PATH)"
        )
    if "key values mismatch" in lowered or "key_values_mismatch" in lowered:
        return JanitorError(f"cannot connect to the Docker daemon at {host}: client_key "
                            f"{params.get('client_key') or '(from DOCKER_CERT_PATH)'} is not the key of client_cert "
                            f"{params.get('client_cert') or '(from DOCKER_CERT_PATH)'}")
    if "certificate required" in lowered or "bad certificate" in lowered or "unknown ca" in lowered:
        return EngineUnreachableError(
            f"the Docker daemon at {host} refused our client certificate (none given, or not signed by a CA it "
            f"trusts): set client_cert and client_key ({text})"
        )
    if "eof occurred in violation of protocol" in lowered and (params.get("tls") or params.get("validate_certs")):
        return EngineUnreachableError(
            f"the Docker daemon at {host} closed the connection during the TLS handshake, which it does when it does "
            f"not trust our client certificate ({params.get('client_cert') or 'none given'}): check client_cert and "
            f"client_key ({text})"
        )
    if "hostname mismatch" in lowered or "doesn't match" in lowered or "not valid for" in lowered:
        expected = params.get("tls_hostname") or host
        return EngineUnreachableError(
            f"TLS handshake with the Docker daemon at {host} failed: its certificate does not name {expected}; "
            f"set tls_hostname to a name the certificate holds ({text})"
        )
    if "certificate verify failed" in lowered:
        return EngineUnreachableError(
            f"TLS handshake with the Docker daemon at {host} failed: its certificate is not signed by the CA in "
            f"ca_path {params.get('ca_path') or '(from DOCKER_CERT_PATH)'} ({text})"
        )
    if "ssl" in lowered or "certificate" in lowered:
        return EngineUnreachableError(f"TLS handshake with the Docker daemon at {host} failed: {text}")
    if "timed out" in lowered or "timeout" in lowered:
        return EngineUnreachableError(f"the Docker daemon at {host} did not answer in time: {text}")
    return EngineUnreachableError(f"cannot reach the Docker daemon at {host}: {text}")


def lost_connection_error(client, exc, action):
    """A ``JanitorError`` for a request that failed without an answer (the daemon stopped, or went silent)."""
    host = getattr(client, "janitor_host", None) or DEFAULT_DOCKER_HOST
    text = str(exc)
    lowered = text.lower()
    if "timed out" in lowered or "timeout" in lowered:
        return EngineUnreachableError(f"{action}: the Docker daemon at {host} did not answer in time: {text}")
    return EngineUnreachableError(f"{action}: lost the connection to the Docker daemon at {host}: {text}")


def status_of(exc):
    """The HTTP status of the engine's answer behind a docker SDK error, or None."""
    return getattr(getattr(exc, "response", None), "status_code", None)


def api_error(exc, action):
    """Turn a docker SDK error raised while doing ``action`` into an ``EngineAPIError``."""
    status = status_of(exc)
    explanation = getattr(exc, "explanation", None) or str(exc)
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return EngineAPIError(f"{action}: {explanation}", status=status, explanation=str(explanation))


def is_api_error(exc):
    return docker is not None and isinstance(exc, docker.errors.APIError)


def is_connection_error(exc):
    return docker is not None and isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout))


def bulk_calls(client, size):
    """The requests a run sends once per image (delete image, delete container, inspect image), as fast as they go.

    Over a unix socket the SDK opens one connection pool per URL, so each request that names another image costs a
    new connection and the whole ``requests`` machinery (about 1.5 ms of client CPU each). The returned object sends
    these requests over at most ``size`` kept-alive connections to the same socket, written and read directly
    (about 0.15 ms each), and raises the very exceptions the SDK raises. Other transports (TCP, TLS, ssh) use the
    SDK. ``inspect_images`` answers many inspects at once (pipelined on a unix socket). Call ``close()`` when done.
    """
    adapter = getattr(client, "adapters", {}).get("http+docker://")
    if isinstance(adapter, docker.transport.UnixHTTPAdapter):
        return _UnixCalls(f"/v{client._version}", client.timeout, adapter.socket_path, size)
    return _SDKCalls(client, size)


class _SDKCalls:
    def __init__(self, client, size=1):
        self.client = client
        self.size = max(1, size)

    def remove_image(self, image, force=False, noprune=False):
        return self.client.remove_image(image, force=force, noprune=noprune)

    def remove_container(self, container):
        self.client.remove_container(container)

    def inspect_image(self, image):
        return self.client.inspect_image(image)

    def inspect_images(self, images, stop=None):
        """``[(image, inspect data, or the engine's error for it)]`` in the order given; ``size`` at a time.

        When the ``stop`` event is set, no further request is sent and the answers so far are returned.
        """
        def one(image):
            if stop is not None and stop.is_set():
                return None
            return image, _answer_or_error(self.inspect_image, image)

        with ThreadPoolExecutor(max_workers=self.size) as pool:
            return [answer for answer in pool.map(one, images) if answer is not None]

    def close(self):
        """The client is closed by its owner."""


def _answer_or_error(call, image):
    try:
        return call(image)
    except docker.errors.APIError as exc:
        return exc


class _UnixCalls:
    def __init__(self, prefix, timeout, socket_path, size=1):
        self.prefix = prefix
        self.socket_timeout = timeout
        self.socket_path = socket_path
        self.size = max(1, size)
        self._idle = []  # (socket, reader) kept alive between requests, at most ``size``
        self._lock = threading.Lock()

    def remove_image(self, image, force=False, noprune=False):
        query = urlencode({"force": force, "noprune": noprune})
        return self._send("DELETE", f"/images/{_quote(image)}?{query}")

    def remove_container(self, container):
        self._send("DELETE", f"/containers/{_quote(container)}?v=False&link=False&force=False")

    def inspect_image(self, image):
        return self._send("GET", f"/images/{_quote(image)}/json")

    def inspect_images(self, images, stop=None):
        """``[(image, inspect data, or the engine's error for it)]`` in the order given.

        The requests are pipelined (HTTP/1.1) on one connection of their own: the engine answers them in order, so
        neither side waits for the other between two images, and reading an answer costs a fraction of what a
        request through the pool costs. Should that connection break, the images not yet answered are asked one by
        one through the pool, which raises the SDK's connection errors if the engine is really gone. When the
        ``stop`` event is set, no further request is sent and the answers so far are returned.
        """
        images = list(images)
        answers = []
        try:
            self._pipelined_inspects(images, answers, stop)
        except TimeoutError as exc:
            raise requests.exceptions.Timeout(exc) from exc
        except (OSError, ValueError):
            pass  # whatever is unanswered is asked again below
        for image in images[len(answers):]:
            if stop is not None and stop.is_set():
                break
            answers.append((image, _answer_or_error(self.inspect_image, image)))
        return answers

    def close(self):
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            _close_connection(connection)

    def _send(self, method, path):
        """One request on a kept-alive connection (a new one when none is idle); the SDK's exceptions."""
        url = self.prefix + path
        connection = self._take()
        try:
            if connection is None:
                connection = self._open()
            sock, reader = connection
            sock.sendall(f"{method} {url} HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n".encode("ascii"))
            status, reason, body, will_close = _read_answer(reader)
        except TimeoutError as exc:
            _close_connection(connection)
            raise requests.exceptions.Timeout(exc) from exc
        except (OSError, ValueError) as exc:
            _close_connection(connection)
            raise requests.exceptions.ConnectionError(exc) from exc
        if will_close:
            _close_connection(connection)
        else:
            self._give_back(connection)
        if status >= 400:
            raise _sdk_error(status, reason, body, _sdk_url(url))
        return json.loads(body) if body else None

    def _open(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.socket_timeout)
            sock.connect(self.socket_path)
            return sock, sock.makefile("rb")
        except OSError:
            sock.close()
            raise

    def _take(self):
        """An idle connection the daemon has not closed meanwhile, or None."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                connection = self._idle.pop()
            # an idle keep-alive connection has nothing to read; if it has, the daemon closed it (or it is broken)
            if not select.select([connection[0]], [], [], 0)[0]:
                return connection
            _close_connection(connection)

    def _give_back(self, connection):
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(connection)
                return
        _close_connection(connection)

    def _pipelined_inspects(self, images, answers, stop):
        """Append ``(image, answer)`` to ``answers`` as the engine answers; stops early if it closes the connection."""
        paths = [f"{self.prefix}/images/{_quote(image)}/json" for image in images]
        connection = self._open()  # a connection of its own, never given back to the idle ones
        try:
            self._pipeline(*connection, images, paths, answers, stop)
        finally:
            _close_connection(connection)

    @staticmethod
    def _pipeline(sock, reader, images, paths, answers, stop):
        sent = 0
        while len(answers) < len(images):
            if stop is not None and stop.is_set():
                return
            # keep between half and all of _PIPELINE_DEPTH requests in flight, sent in one write each time
            if sent < len(images) and sent - len(answers) <= _PIPELINE_DEPTH // 2:
                batch = paths[sent:len(answers) + _PIPELINE_DEPTH]
                sock.sendall(b"".join(f"GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n".encode("ascii")
                                      for path in batch))
                sent += len(batch)
            status, reason, body, will_close = _read_answer(reader)
            index = len(answers)
            if status >= 400:
                answers.append((images[index], _sdk_error(status, reason, body, _sdk_url(paths[index]))))
            else:
                answers.append((images[index], json.loads(body) if body else None))
            if will_close:
                return


_PIPELINE_DEPTH = 64
_MAX_LINE = 65536


class _ProtocolError(ValueError):
    """An answer that is not the HTTP/1.1 the engine speaks."""


def _read_line(reader):
    line = reader.readline(_MAX_LINE + 1)
    if not line:
        raise _ProtocolError("the daemon closed the connection before it answered")
    if not line.endswith(b"\n") or len(line) > _MAX_LINE:
        raise _ProtocolError(f"truncated or overlong line in an answer: {line[:80]!r}")
    return line


def _read_answer(reader):
    """``(status, reason, body, will_close)`` of the next HTTP/1.1 answer from a buffered binary ``reader``.

    Only what the engine sends is handled: a ``Content-Length`` body, a chunked body (with or without trailers), or
    no body; the status line and headers are parsed here because ``http.client`` parses headers with the e-mail
    package, which costs more than the whole rest of an inspect.
    """
    version, _space, rest = _read_line(reader).decode("iso-8859-1").rstrip("\r\n").partition(" ")
    code, _space, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise _ProtocolError(f"not an HTTP/1.x status line: {version} {rest}"[:120])
    status = int(code)
    headers = {}
    while True:
        line = _read_line(reader)
        if line in (b"\r\n", b"\n"):
            break
        name, _colon, value = line.decode("iso-8859-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    will_close = version == "HTTP/1.0" or headers.get("connection", "").lower() == "close"
    if status < 200:
        raise _ProtocolError(f"unexpected interim answer {status} {reason}")
    if status in (204, 304):
        return status, reason, b"", will_close
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return status, reason, _read_chunks(reader), will_close
    if "content-length" in headers:
        length = int(headers["content-length"])
        body = reader.read(length)
        if len(body) != length:
            raise _ProtocolError(f"answer body cut short: {len(body)} of {length} bytes")
        return status, reason, body, will_close
    return status, reason, reader.read(), True  # no length: the body ends with the connection


def _read_chunks(reader):
    parts = []
    while True:
        size = int(_read_line(reader).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while _read_line(reader) not in (b"\r\n", b"\n"):
                pass  # trailers
            return b"".join(parts)
        chunk = reader.read(size)
        if len(chunk) != size or _read_line(reader) not in (b"\r\n", b"\n"):
            raise _ProtocolError("chunked answer cut short")
        parts.append(chunk)


def _close_connection(connection):
    if connection is not None:
        sock, reader = connection
        reader.close()
        sock.close()


def _quote(value):
    return quote(value, safe="/:")


def _sdk_url(path):
    return f"http+docker://localhost{path}"


def _sdk_error(status, reason, data, url):
    """The exception the SDK raises for this error answer (``APIError``, ``NotFound``, ``ImageNotFound``)."""
    response = requests.models.Response()
    response.status_code = status
    response.reason = reason
    response.url = url
    response.encoding = "utf-8"
    response._content = data
    failure = requests.exceptions.HTTPError(f"{status} {reason} for url: {url}", response=response)
    try:
        docker.errors.create_api_error_from_http_exception(failure)
    except docker.errors.APIError as exc:
        return exc
    raise AssertionError("the SDK returned no error for an error answer")  # pragma: no cover


class LayerReader:
    """Every image's ``RootFS.Layers`` (diff IDs), read in a thread of its own while the plan is being made.

    ``start()`` sends the inspects (pipelined on a unix socket), ``layers()`` waits for them and returns
    ``{image ID: diff IDs}`` (an image deleted meanwhile by another client is left out), ``cancel()`` stops sending
    when the plan turns out not to need them. Engine errors come out of ``layers()`` as ``JanitorError``.
    """

    def __init__(self, client, image_ids, parallel):
        self.client = client
        self.image_ids = tuple(image_ids)
        self.parallel = parallel
        self._stop = threading.Event()
        self._thread = None
        self._answers = ()
        self._error = None

    def start(self):
        self._thread = threading.Thread(target=self._read, name="janitor-layers", daemon=True)
        self._thread.start()
        return self

    def _read(self):
        calls = bulk_calls(self.client, self.parallel)
        try:
            self._answers = calls.inspect_images(self.image_ids, stop=self._stop)
        except Exception as exc:  # noqa: BLE001 - handed to the planning thread in layers()
            self._error = exc
        finally:
            calls.close()

    def layers(self):
        self._thread.join()
        if self._error is not None:
            if is_connection_error(self._error):
                raise lost_connection_error(self.client, self._error, "inspecting the images") from self._error
            raise self._error
        found = {}
        for image_id, answer in self._answers:
            if isinstance(answer, Exception):
                if status_of(answer) == 404:
                    continue  # a vanished image has no layers to predict
                raise api_error(answer, f"inspecting image {image_id}")
            found[image_id] = tuple((answer.get("RootFS") or {}).get("Layers") or ())
        return found

    def cancel(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
