# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """Connection options shared by every module of janitor.docker."""

    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker daemon to talk to, as a URL such as V(unix:///var/run/docker.sock), V(tcp://203.0.113.5:2376)
        or V(ssh://user@host).
      - V(ssh://) hosts are reached through the Docker SDK with the C(paramiko) package, which must be installed on
        the managed host too; the remote user runs C(docker system dial-stdio) there.
      - If not set, the value of the E(DOCKER_HOST) environment variable is used, and if that is not set either,
        V(unix:///var/run/docker.sock).
    type: str
    default: unix:///var/run/docker.sock
    aliases: [docker_url]
  tls_hostname:
    description:
      - The host name expected in the daemon's TLS certificate.
      - If not set, the value of E(DOCKER_TLS_HOSTNAME) is used, and otherwise the host part of O(docker_host).
    type: str
  api_version:
    description:
      - The Docker API version to speak, such as V(1.41), or V(auto) to use the highest version both the SDK and
        the daemon support.
      - If not set, the value of E(DOCKER_API_VERSION) is used, and otherwise V(auto).
    type: str
    default: auto
    aliases: [docker_api_version]
  timeout:
    description:
      - Seconds to wait for one answer of the Docker API, a whole number from V(1) to V(86400) (a day).
      - If not set, the value of E(DOCKER_TIMEOUT) is used, and otherwise V(60).
    type: int
    default: 60
  ca_path:
    description:
      - The CA certificate that signed the daemon's certificate, to verify the daemon.
      - If not set, C(ca.pem) in the directory named by E(DOCKER_CERT_PATH) is used when that variable is set.
    type: path
    aliases: [ca_cert, tls_ca_cert, cacert_path]
  client_cert:
    description:
      - The client's TLS certificate, for daemons that authenticate clients.
      - If not set, C(cert.pem) in the directory named by E(DOCKER_CERT_PATH) is used when that variable is set.
    type: path
    aliases: [tls_client_cert, cert_path]
  client_key:
    description:
      - The private key of O(client_cert). Only its path is ever used or reported, never its content.
      - If not set, C(key.pem) in the directory named by E(DOCKER_CERT_PATH) is used when that variable is set.
    type: path
    aliases: [tls_client_key, key_path]
  tls:
    description:
      - Use TLS to talk to the daemon, without verifying the daemon's certificate unless O(validate_certs=true).
      - If not set, the value of E(DOCKER_TLS) is used, and otherwise V(false).
    type: bool
    default: false
  validate_certs:
    description:
      - Use TLS and verify the daemon's certificate against O(ca_path).
      - If not set, the value of E(DOCKER_TLS_VERIFY) is used, and otherwise V(false).
    type: bool
    default: false
    aliases: [tls_verify]
notes:
  - Connection options can be set once for every module of this collection with
    C(module_defaults) and the action group C(group/janitor.docker.docker).
  - On a unix socket the modules talk to the daemon with Python's C(http.client) and need no other package.
    C(tcp://) and C(ssh://) hosts go through the Docker SDK for Python (the C(docker) package, 7.0 or newer), and
    C(ssh://) hosts also through C(paramiko); both must be installed on the host that runs the module.
requirements:
  - "Docker SDK for Python >= 7.0.0 (the C(docker) package), for tcp:// and ssh:// hosts"
  - "paramiko, for ssh:// hosts"
  - "A Docker daemon with API version 1.41 (Docker 20.10) or newer"
"""
