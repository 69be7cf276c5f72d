# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The transport: the connection options -> an ``Engine``; every engine failure -> an ``_errors`` exception.

This is the only module that talks to the Docker engine. ``connect(params)`` checks the daemon's API version
(on a unix socket with one ``GET /_ping``, whose ``API-Version`` header names it) and returns an ``Engine`` with the
reads a run needs (``info()``, ``images(all=True)``, ``containers(all=True)``, ``inspect_container(id)``, ``df()``,
``version()``, ``api_version``, ``host``, ``concurrent_reads``) and ``bulk_calls(engine, size)`` gives the requests sent once per image
or container (``remove_image``, ``remove_container``, ``inspect_image``, ``inspect_images``), at most ``size`` at a
time.

* A daemon on a unix socket (the usual case) is spoken to with the standard library's ``http.client`` over
  kept-alive connections, one per worker: no Docker SDK is imported (importing it costs about 0.3 s, more than the
  rest of a run on a host of a few hundred images). ``http.client`` reads the answers (status line, headers,
  chunked bodies, ``Connection: close``); ``_Response`` only adds that every 1xx interim answer is skipped, not
  only ``100 Continue``.
* Every other host (``tcp://``, TLS, ``ssh://``) goes through the Docker SDK's ``APIClient``.

Both raise only ``_errors`` types: ``EngineAPIError`` (the engine answered an error status; ``status``),
``EngineUnreachableError`` (no answer: cannot connect, connection lost before the request reached the daemon, or a
timeout; ``timed_out``) and ``AnswerLostError`` (the request reached the engine, or may have, and its answer was
lost or unreadable: the caller reads the engine's state back to learn what happened). A request is sent again only
when it provably never reached the daemon: on a unix socket, a connection reset (the daemon closed the connection
with our request unread) or a broken pipe (it had closed it before we wrote). Reads (``GET``) that lost their
answer are asked once more on a new connection; a ``DELETE`` never is.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import socket
import threading
from urllib.parse import quote, urlencode

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.janitor.docker.plugins.module_utils._errors import (
    AnswerLostError,
    EngineAPIError,
    EngineUnreachableError,
    JanitorError,
    SDKMissingError,
)

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DEFAULT_TIMEOUT = 60
MAX_TIMEOUT = 86400  # a day; far beyond it the socket layer overflows or, past 2**31 ms, times out at once
MIN_API_VERSION = "1.41"
MANIFESTS_LISTING_API = "1.47"  # the first API version whose image listing gives each image's Manifests
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
    return _sdk().tls.TLSConfig(
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


def _sdk():
    """The Docker SDK, imported on first use (only for tcp/TLS/ssh hosts); ``SDKMissingError`` without it."""
    try:
        import docker  # pylint: disable=import-outside-toplevel
        import docker.errors  # noqa: F401 pylint: disable=import-outside-toplevel
        import docker.tls  # noqa: F401 pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise SDKMissingError(
            missing_required_lib(f"{SDK_PACKAGE} (Docker SDK for Python) >= {SDK_MIN_VERSION}, needed for "
                                 f"tcp://, TLS and ssh:// hosts"),
            exception=str(exc),
        ) from exc
    return docker


# Python 3.8 and 3.9 raise socket.timeout, an OSError that is not (yet) TimeoutError
_TIMEOUTS = (socket.timeout, TimeoutError)
# on a unix socket these prove that the daemon never read the request: it closed the connection with our request
# unread (reset), or before we wrote it (broken pipe); an empty answer (RemoteDisconnected) proves nothing
_NEVER_READ = (BrokenPipeError, ConnectionResetError)


def _never_read(exc):
    return isinstance(exc, _NEVER_READ) and not isinstance(exc, http.client.RemoteDisconnected)


def _status_of(exc):
    """The HTTP status of an engine's error answer (ours or the SDK's), or None."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status
    return getattr(getattr(exc, "response", None), "status_code", None)


def connect(params):
    """A connected ``Engine`` for the module parameters (the connection options).

    Raises ``SDKMissingError``, ``EngineUnreachableError`` or ``JanitorError`` with an operator-facing message.
    """
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
        if api_version_tuple(api_version) < api_version_tuple(MIN_API_VERSION):
            raise JanitorError(f"api_version={api_version} is older than {MIN_API_VERSION}, the oldest this "
                               f"collection supports; use auto or {MIN_API_VERSION} or newer")
    timeout = params.get("timeout")
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= MAX_TIMEOUT:
        raise JanitorError(f"timeout={timeout!r} is not valid: give the seconds to wait for each answer of the Docker "
                           f"daemon, a whole number from 1 to {MAX_TIMEOUT} (a day); DOCKER_TIMEOUT gives it when the "
                           f"option is not set, and {DEFAULT_TIMEOUT} when neither is")
    if host.startswith("unix://") and not (params.get("tls") or params.get("validate_certs")):
        engine = _UnixEngine(host, host[len("unix://"):], timeout)
    else:
        engine = _SDKEngine(host, params, timeout, auto, api_version)
    try:
        version = engine.start(None if auto else api_version)
    except EngineAPIError as exc:
        engine.close()
        raise _connection_error(host, exc, params) from exc
    except JanitorError as exc:
        engine.close()
        if getattr(exc, "timed_out", False):
            raise  # its message names the request, the daemon and the timeout
        raise _connection_error(host, exc.__cause__ or exc, params) from exc
    engine_api = version.get("ApiVersion")
    if not engine_api:
        engine.close()
        raise JanitorError(f"the server at {host} is not a Docker daemon: its answer to the API version check "
                           f"names no API version (GET /_ping without an API-Version header on a unix socket, "
                           f"GET /version without ApiVersion elsewhere); is docker_host a Docker daemon, or a proxy "
                           f"in front of one that drops it?")
    if api_version_tuple(engine_api) < api_version_tuple(MIN_API_VERSION):
        engine.close()
        raise JanitorError(
            f"the Docker daemon at {host} speaks API {engine_api}{_named(version)}, older than {MIN_API_VERSION} "
            f"(Docker 20.10), the oldest this collection supports"
        )
    return engine


def _named(version):
    """How the daemon names its release, for messages: `` (Docker 19.03.15)`` from a ``/version`` answer, else its
    ``Server`` header as it sent it (dockerd: ``Docker/19.03.15 (linux)``), else nothing."""
    if version.get("Version"):
        return f" (Docker {version['Version']})"
    if version.get("Server"):
        return f" (Server: {version['Server']})"
    return ""


def _as_dict(answer):
    """A JSON answer that should be an object, as a dict (empty when it is something else)."""
    return answer if isinstance(answer, dict) else {}


def api_version_tuple(text):
    """``"1.50"`` -> ``(1, 50)`` for comparing API versions; ``(0,)`` for anything that is not one."""
    try:
        return tuple(int(part) for part in str(text).split("."))
    except ValueError:
        return (0,)


def _lists_manifests(engine, manifests):
    """Whether an image listing asked ``manifests`` is sent with ``manifests=1``: only from API 1.47 on (older
    engines list the images without them)."""
    return manifests and api_version_tuple(engine.api_version) >= api_version_tuple(MANIFESTS_LISTING_API)


def _connection_error(host, exc, params=None):
    params = params or {}
    text = str(exc)
    lowered = text.lower()
    if "paramiko" in lowered and str(host).startswith("ssh://"):
        return SDKMissingError(
            f"{host} is an ssh:// host, which the Docker SDK reaches through the paramiko package: install paramiko "
            f"on the managed host beside the Docker SDK (pip install paramiko), or reach the daemon over tcp:// with "
            f"TLS, or run the task on the daemon's own host with its unix socket ({text})"
        )
    if "permission denied" in lowered:
        return EngineUnreachableError(
            f"permission denied on the Docker socket of {host}: run the task as root (become: true) or as a member "
            f"of the socket's group ({text})"
        )
    if _status_of(exc) is not None and "client version" in lowered and "too old" in lowered:
        return JanitorError(f"the Docker daemon at {host} refused the API version: {text}")
    if _status_of(exc) is not None and "client version" in lowered and "too new" in lowered:
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
    if _status_of(exc) is not None:
        # an error status to the first request (the API version check): whatever answered is no Docker daemon we
        # can use (a web server or a proxy on that socket, an authorization plugin that refuses us)
        return JanitorError(f"the server at {host} is not a Docker daemon, or refused us: {text} "
                            f"(status {_status_of(exc)}); is docker_host a Docker daemon?")
    if "timed out" in lowered or "timeout" in lowered:
        return EngineUnreachableError(f"the Docker daemon at {host} did not answer in time: {text}")
    return EngineUnreachableError(f"cannot reach the Docker daemon at {host}: {text}")


def _quote(value):
    return quote(value, safe="/:")


def _explanation(body):
    """The engine's error text: the ``message`` of its JSON answer, else the answer as text."""
    text = body.decode("utf-8", "replace").strip() if isinstance(body, bytes) else str(body or "")
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return text


def _decoded(body, host, action):
    """The JSON value of an answer's body (None when empty); ``AnswerLostError`` when it is not JSON."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        shown = body[:80].decode("utf-8", "replace") if isinstance(body, bytes) else str(body)[:80]
        raise AnswerLostError(f"{action}: the Docker daemon at {host} answered with something that is not JSON "
                              f"({shown!r}); is docker_host a Docker daemon, or a proxy in front of one?") from exc


class _Response(http.client.HTTPResponse):
    """``http.client``'s answer reader, skipping every 1xx interim answer (it only skips ``100 Continue``)."""

    def _read_status(self):
        while True:
            version, status, reason = super()._read_status()
            if 100 < status < 200 and status != 101:
                http.client.parse_headers(self.fp)  # the interim answer's headers; the final answer follows
                continue
            return version, status, reason


class _UnixConnection(http.client.HTTPConnection):
    """An ``http.client`` connection to a unix socket."""

    response_class = _Response

    def __init__(self, socket_path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _Connections:
    """At most ``size`` idle kept-alive connections to one unix socket, shared by the threads of one job."""

    def __init__(self, socket_path, timeout, size):
        self.socket_path = socket_path
        self.timeout = timeout
        self.size = max(1, size)
        self._idle = []
        self._lock = threading.Lock()

    def take(self, fresh=False):
        """An idle connection the daemon has not closed meanwhile, else (and always when ``fresh``) a new one."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle and not fresh else None
            if connection is None:
                connection = _UnixConnection(self.socket_path, self.timeout)
                connection.connect()
                return connection
            # an idle keep-alive connection has nothing to read: if it has, the daemon closed it, or sent bytes
            # after its last answer that belong to no request; either way it is not used again
            if connection.sock is not None and not select.select([connection.sock], [], [], 0)[0]:
                return connection
            connection.close()

    def give_back(self, connection):
        if connection.sock is not None:
            with self._lock:
                if len(self._idle) < self.size:
                    self._idle.append(connection)
                    return
        connection.close()

    def close(self):
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class _UnixEngine:
    """A daemon on a unix socket, spoken to with ``http.client``; every failure an ``_errors`` exception.

    Its reads may be sent from several threads at once (``concurrent_reads``): a thread that finds no idle
    connection opens one of its own, and at most one idle connection is kept afterwards.
    """

    concurrent_reads = True

    def __init__(self, host, socket_path, timeout):
        self.host = host  # the daemon as the user named it, for messages
        self.socket_path = socket_path
        self.timeout = timeout
        self.api_version = None
        self.prefix = ""
        self._connections = _Connections(socket_path, timeout, 1)

    def start(self, api_version):
        """Learn the daemon's API version from the ``API-Version`` header of its ``GET /_ping`` answer, as the
        docker CLI does (``/version`` costs the daemon a call to containerd: about 4.5 ms against 0.3 ms).

        With ``api_version`` the ping is sent at ``/v{api_version}/_ping``, so a daemon that does not speak that
        version refuses it ("client version ... is too new"), as it would refuse any other request. Returns
        ``{"ApiVersion": the daemon's (newest) API version, "Server": its Server header}``; ``ApiVersion`` is empty
        when the answer has no such header (not a Docker daemon). A non-2xx answer raises ``EngineAPIError``.
        """
        if api_version is not None:
            self.api_version = api_version
            self.prefix = f"/v{api_version}"
        action = "checking the daemon's API version (GET /_ping)"
        response, body = self._send("GET", "/_ping", action)
        if not 200 <= response.status < 300:
            explanation = _explanation(body) or response.reason
            raise EngineAPIError(f"{action}: {response.status} {explanation}", status=response.status,
                                 explanation=explanation)
        found = {"ApiVersion": (response.getheader("API-Version") or "").strip(),
                 "Server": (response.getheader("Server") or "").strip()}
        if api_version is None and found["ApiVersion"]:
            self.api_version = found["ApiVersion"]
            self.prefix = f"/v{self.api_version}"
        return found

    def version(self):
        """The daemon's ``GET /version`` answer, asked when called (a run does not need it)."""
        return self.request("GET", "/version", "asking the daemon's version")

    def info(self):
        return self.request("GET", "/info", "reading the daemon's info")

    def images(self, all=False, manifests=False):  # pylint: disable=redefined-builtin
        """The image listing; with ``manifests``, each image's ``Manifests`` (API 1.47+, the containerd store)."""
        query = f"all={int(bool(all))}" + ("&manifests=1" if _lists_manifests(self, manifests) else "")
        return self.request("GET", f"/images/json?{query}", "listing the images")

    def containers(self, all=False):  # pylint: disable=redefined-builtin
        return self.request("GET", f"/containers/json?all={int(bool(all))}", "listing the containers")

    def inspect_container(self, container):
        return self.request("GET", f"/containers/{_quote(container)}/json", f"inspecting container {container[:12]}")

    def image_manifests(self, image):
        """The image's inspect with its manifests (``Manifests``: API 1.48+, the containerd image store)."""
        return self.request("GET", f"/images/{_quote(image)}/json?manifests=1", f"inspecting image {image}")

    def df(self):
        return self.request("GET", "/system/df", "reading the disk usage (system df)")

    def close(self):
        self._connections.close()

    def request(self, method, path, action, connections=None):
        """One request; the decoded JSON answer. Raises the ``_errors`` types (see the module docstring)."""
        _response, body = self._send(method, path, action, connections)
        return _decoded(body, self.host, action)

    def _send(self, method, path, action, connections=None):
        """One request; ``(http.client's response, its body)`` of an answer below 400 (its headers stay readable
        with ``getheader``). Raises the ``_errors`` types (see the module docstring)."""
        connections = connections or self._connections
        url = self.prefix + path
        for attempt in (1, 2):
            try:
                connection = connections.take(fresh=attempt > 1)
            except _TIMEOUTS as exc:
                raise self._timed_out(action, exc) from exc
            except OSError as exc:
                raise EngineUnreachableError(f"{action}: cannot reach the Docker daemon at {self.host}: {exc}") \
                    from exc
            try:
                response, body = self._exchange(connection, method, url, action, attempt)
            except _Resend:
                continue
            connections.give_back(connection)
            if response.status >= 400:
                explanation = _explanation(body) or response.reason
                raise EngineAPIError(f"{action}: {explanation}", status=response.status, explanation=explanation)
            return response, body
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(self, connection, method, url, action, attempt):
        """``(response, body)`` of one request on ``connection``; closes it on any failure."""
        answered = False
        try:
            connection.request(method, url)
            response = connection.getresponse()
            answered = True
            return response, response.read()
        except _TIMEOUTS as exc:
            connection.close()
            raise self._timed_out(action, exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            if not answered and _never_read(exc) and attempt == 1:
                raise _Resend() from exc  # the daemon closed the connection with our request unread
            if method == "GET" and attempt == 1:
                raise _Resend() from exc  # a read: asking again changes nothing
            if not answered and _never_read(exc):
                raise EngineUnreachableError(f"{action}: lost the connection to the Docker daemon at {self.host} "
                                             f"twice before it read the request: {exc}") from exc
            raise AnswerLostError(f"{action}: the answer of the Docker daemon at {self.host} was lost or "
                                  f"unreadable ({type(exc).__name__}: {exc})") from exc

    def _timed_out(self, action, exc):
        return EngineUnreachableError(f"{action}: the Docker daemon at {self.host} did not answer in time "
                                      f"(timeout={self.timeout} s): {exc or 'timed out'}", timed_out=True)


class _Resend(Exception):
    """Internal: the request provably never reached the daemon (or is a read), send it on a new connection."""


class _UnixCalls:
    """The per-image requests over at most ``size`` kept-alive connections of their own."""

    def __init__(self, engine, size):
        self.engine = engine
        self.size = max(1, size)
        self._connections = _Connections(engine.socket_path, engine.timeout, self.size)

    def _send(self, method, path, action):
        return self.engine.request(method, path, action, self._connections)

    def remove_image(self, image, force=False, noprune=False, platforms=()):
        query = urlencode([("force", force), ("noprune", noprune)] + [("platforms", p) for p in platforms])
        return self._send("DELETE", f"/images/{_quote(image)}?{query}", f"removing image {image}")

    def remove_container(self, container):
        self._send("DELETE", f"/containers/{_quote(container)}?v=False&link=False&force=False",
                   f"removing container {container[:12]}")

    def inspect_image(self, image):
        return self._send("GET", f"/images/{_quote(image)}/json", f"inspecting image {image}")

    def history(self, image):
        return self._send("GET", f"/images/{_quote(image)}/history", f"reading the history of image {image}")

    def inspect_images(self, images, stop=None):
        return _inspect_many(self, images, stop)

    def close(self):
        self._connections.close()


def _inspect_many(calls, images, stop):
    """``[(image, inspect data, or the EngineAPIError the engine answered for it)]`` in the order given.

    ``calls.size`` threads take the images in turn, each on a connection of its own. A failure without an answer
    (lost connection, timeout) stops every thread and is raised. When the ``stop`` event is set, no further request
    is sent and the answers so far (a prefix of ``images``) are returned.
    """
    images = list(images)
    answers = [None] * len(images)
    lock = threading.Lock()
    position = [0]
    failures = []
    halt = threading.Event()

    def work():
        while not halt.is_set() and not (stop is not None and stop.is_set()):
            with lock:
                index = position[0]
                if index >= len(images):
                    return
                position[0] += 1
            try:
                answer = calls.inspect_image(images[index])
            except EngineAPIError as exc:
                answer = exc
            except Exception as exc:  # noqa: BLE001 - raised in the calling thread below
                failures.append(exc)
                halt.set()
                return
            answers[index] = (images[index], answer)

    threads = [threading.Thread(target=work, name="janitor-inspect", daemon=True)
               for _worker in range(min(calls.size, len(images)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    done = []
    for answer in answers:
        if answer is None:
            break
        done.append(answer)
    return done


def _sdk_json(client, verb, path, name, params):
    """A request the SDK has no method for (query parameters it does not pass: ``manifests``, ``platforms``), sent
    and decoded by the SDK's own request helpers; ``path`` with ``{0}`` for ``name`` (None: a path without one)."""
    send = client._get if verb == "get" else client._delete  # pylint: disable=protected-access
    url = client._url(path, name) if name is not None else client._url(path)  # pylint: disable=protected-access
    return client._result(send(url, params=params), True)  # pylint: disable=protected-access


class _SDKEngine:
    """A daemon on tcp://, TLS or ssh://, through the Docker SDK's ``APIClient``; failures as ``_errors`` types.

    Its reads are sent one after the other (``concurrent_reads`` false): the SDK's client is a ``requests``
    session, which requests does not promise to be safe to share between threads.
    """

    concurrent_reads = False

    def __init__(self, host, params, timeout, auto, api_version):
        docker = _sdk()
        self.host = host
        self.timeout = timeout
        self._auto = auto
        tls = _tls_config(params)
        try:
            # never "auto" here: the SDK would ask the daemon before the TLS settings below are in place
            self.client = docker.APIClient(base_url=_base_url(params),
                                           version=MIN_API_VERSION if auto else api_version, timeout=timeout,
                                           tls=tls)
        except Exception as exc:  # noqa: BLE001 - a bad URL, an ssh host that cannot be reached...
            raise _connection_error(host, exc, params) from exc
        if tls is not None:
            _pin_tls_settings(self.client)
            if params.get("tls_hostname") and params.get("validate_certs"):
                _expect_hostname(self.client, params["tls_hostname"])
        self._version = {}

    @property
    def api_version(self):
        return self.client.api_version

    def start(self, api_version):
        version = _as_dict(self.call(self.client.version, "asking the daemon's version", api_version=False))
        if self._auto and version.get("ApiVersion"):
            self.client._version = str(version["ApiVersion"])  # pylint: disable=protected-access
        self.call(self.client.ping, "pinging the daemon")
        if api_version is not None:
            version = _as_dict(self.call(self.client.version, "asking the daemon's version"))
        self._version = version
        return version

    def version(self):
        return dict(self._version)

    def info(self):
        return self.call(self.client.info, "reading the daemon's info")

    def images(self, all=False, manifests=False):  # pylint: disable=redefined-builtin
        """The image listing; with ``manifests``, each image's ``Manifests`` (API 1.47+, the containerd store)."""
        if _lists_manifests(self, manifests):
            return self.call(_sdk_json, "listing the images", self.client, "get", "/images/json", None,
                             [("all", int(bool(all))), ("manifests", 1)])
        return self.call(self.client.images, "listing the images", all=all)

    def containers(self, all=False):  # pylint: disable=redefined-builtin
        return self.call(self.client.containers, "listing the containers", all=all)

    def inspect_container(self, container):
        return self.call(self.client.inspect_container, f"inspecting container {container[:12]}", container)

    def image_manifests(self, image):
        """The image's inspect with its manifests (``Manifests``: API 1.48+, the containerd image store)."""
        return self.call(_sdk_json, f"inspecting image {image}", self.client, "get", "/images/{0}/json", image,
                         [("manifests", 1)])

    def df(self):
        return self.call(self.client.df, "reading the disk usage (system df)")

    def close(self):
        self.client.close()

    def call(self, method, action, *args, **kwargs):
        """``method(*args, **kwargs)`` with the SDK's and requests' exceptions turned into ``_errors`` types."""
        try:
            return method(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - sorted out by _from_sdk
            raise self._from_sdk(exc, action) from exc

    def _from_sdk(self, exc, action):
        import requests.exceptions  # pylint: disable=import-outside-toplevel
        docker = _sdk()
        if isinstance(exc, docker.errors.APIError):
            explanation = exc.explanation or str(exc)
            if isinstance(explanation, bytes):
                explanation = explanation.decode("utf-8", "replace")
            return EngineAPIError(f"{action}: {explanation}", status=_status_of(exc), explanation=str(explanation))
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return EngineUnreachableError(f"{action}: cannot reach the Docker daemon at {self.host} in time: {exc}",
                                          timed_out=True)
        if isinstance(exc, (requests.exceptions.Timeout, *_TIMEOUTS)):
            return EngineUnreachableError(f"{action}: the Docker daemon at {self.host} did not answer in time "
                                          f"(timeout={self.timeout} s): {exc}", timed_out=True)
        text = str(exc)
        if isinstance(exc, requests.exceptions.ConnectionError) and (
                "NewConnectionError" in text or "refused" in text.lower() or "No such file" in text):
            return EngineUnreachableError(f"{action}: cannot reach the Docker daemon at {self.host}: {text}")
        if isinstance(exc, ValueError):
            return AnswerLostError(f"{action}: the Docker daemon at {self.host} answered with something that is "
                                   f"not JSON ({text[:120]})")
        if isinstance(exc, (requests.exceptions.RequestException, OSError)):
            return AnswerLostError(f"{action}: lost the connection to the Docker daemon at {self.host}: {text}")
        if isinstance(exc, docker.errors.DockerException):
            return JanitorError(f"{action}: {text}")
        return JanitorError(f"{action}: unexpected failure talking to the Docker daemon at {self.host}: "
                            f"{type(exc).__name__}: {text}")


class _SDKCalls:
    """The per-image requests through the SDK client (tcp, TLS, ssh), ``size`` at a time."""

    def __init__(self, engine, size):
        self.engine = engine
        self.size = max(1, size)

    def remove_image(self, image, force=False, noprune=False, platforms=()):
        if not platforms:
            return self.engine.call(self.engine.client.remove_image, f"removing image {image}", image, force=force,
                                    noprune=noprune)
        params = [("force", force), ("noprune", noprune)] + [("platforms", p) for p in platforms]
        return self.engine.call(_sdk_json, f"removing image {image}", self.engine.client, "delete", "/images/{0}",
                                image, params)

    def remove_container(self, container):
        self.engine.call(self.engine.client.remove_container, f"removing container {container[:12]}", container)

    def inspect_image(self, image):
        return self.engine.call(self.engine.client.inspect_image, f"inspecting image {image}", image)

    def history(self, image):
        return self.engine.call(self.engine.client.history, f"reading the history of image {image}", image)

    def inspect_images(self, images, stop=None):
        return _inspect_many(self, images, stop)

    def close(self):
        """The client is closed by its engine."""


def bulk_calls(engine, size):
    """The requests a run sends once per image or container, at most ``size`` at a time (one connection each).

    ``remove_image(image, force, noprune)`` (the engine's list of ``Untagged``/``Deleted`` entries),
    ``remove_container(id)``, ``inspect_image(image)``, ``history(image)`` and ``inspect_images(images, stop=None)``. Call ``close()``
    when done. Objects that are not engines of this module (test fakes) are used as they are.
    """
    if isinstance(engine, _UnixEngine):
        return _UnixCalls(engine, size)
    if isinstance(engine, _SDKEngine):
        return _SDKCalls(engine, size)
    return _Direct(engine, size)


class _Direct:
    """The per-image requests of an object that is not one of our engines (a test's fake engine)."""

    def __init__(self, engine, size):
        self.engine = engine
        self.size = max(1, size)

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def inspect_images(self, images, stop=None):
        return _inspect_many(self, images, stop)

    def close(self):
        """The engine is closed by its owner."""
