"""The connection layer against each private engine, and the harness itself."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _errors, _transport


def test_connect_reaches_engine(engine):
    client = _transport.connect({"docker_host": engine.url, "api_version": "auto", "timeout": 30})
    try:
        version = client.version()
        assert version["Version"] == engine.version["Version"]
        assert client.api_version == version["ApiVersion"]
        assert client.info()["ServerVersion"] == engine.version["Version"]
    finally:
        client.close()


def test_fixed_api_version_is_used(engine):
    client = _transport.connect({"docker_host": engine.url, "api_version": "1.41", "timeout": 30})
    try:
        assert client.api_version == "1.41"
        assert isinstance(client.images(all=True), list)
    finally:
        client.close()


def test_api_version_older_than_supported_is_refused(engine):
    with pytest.raises(_errors.JanitorError) as info:
        _transport.connect({"docker_host": engine.url, "api_version": "1.30", "timeout": 30})
    assert "1.30" in info.value.message and "1.41" in info.value.message


def test_missing_socket_names_the_host():
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        url = f"unix://{tmp}/nothing.sock"
        with pytest.raises(_errors.EngineUnreachableError) as info:
            _transport.connect({"docker_host": url, "timeout": 5})
    assert url in info.value.message


def test_socket_that_does_not_answer_times_out():
    with tempfile.TemporaryDirectory(prefix="jd-") as tmp:
        path = Path(tmp) / "silent.sock"
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        server.listen(1)
        try:
            with pytest.raises(_errors.EngineUnreachableError) as info:
                _transport.connect({"docker_host": f"unix://{path}", "timeout": 1})
        finally:
            server.close()
    assert "did not answer in time" in info.value.message


def test_harness_state_and_reset(clean_engine, images):
    image_id = images.simple("janitor-harness:one", "janitor-harness:two")
    expected = ["janitor-harness:one", "janitor-harness:two"]
    if clean_engine.containerd_store:
        # the containerd store lists a digest reference of a local image's repository (docs/image-remove.md)
        expected.append(f"janitor-harness@{image_id}")
    assert clean_engine.state()["images"] == {image_id: expected}
    cli = clean_engine.cli("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(cli) == ["janitor-harness:one", "janitor-harness:two"]
    clean_engine.reset()
    assert clean_engine.state() == {"images": {}, "containers": {}}
