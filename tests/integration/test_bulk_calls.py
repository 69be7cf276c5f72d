"""The per-image requests (``_transport.bulk_calls``) answer as the docker SDK does, and fail with the engine's own
status and message, on every engine."""

from __future__ import annotations

import docker
import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _errors, _transport

pytestmark = pytest.mark.engine


@pytest.fixture
def connected(engine):
    ours = _transport.connect({"docker_host": engine.url, "api_version": "auto", "timeout": 30})
    calls = _transport.bulk_calls(ours, 4)
    sdk = docker.APIClient(base_url=engine.url, version=ours.api_version, timeout=30)
    yield sdk, calls
    calls.close()
    ours.close()
    sdk.close()


def _ours(call, *args, **kwargs):
    with pytest.raises(_errors.EngineAPIError) as info:
        call(*args, **kwargs)
    return info.value.status, info.value.explanation


def _sdk(call, *args, **kwargs):
    with pytest.raises(docker.errors.APIError) as info:
        call(*args, **kwargs)
    return info.value.response.status_code, info.value.explanation


def test_unix_socket_uses_http_client_connections(connected):
    _sdk_client, calls = connected
    assert type(calls).__name__ == "_UnixCalls"


def test_inspect_equals_the_sdk(connected, clean_engine, images):
    sdk, calls = connected
    image_id = images.simple("janitor-bulk/team:1", "localhost:5000/janitor-bulk/app:2")
    for name in (image_id, "janitor-bulk/team:1", "localhost:5000/janitor-bulk/app:2", image_id[7:19]):
        assert calls.inspect_image(name) == sdk.inspect_image(name)


def test_many_inspects_equal_the_sdk(connected, clean_engine, images):
    """Many inspects at once: in order, the answers one SDK call each gives, errors with the engine's status and
    message."""
    sdk, calls = connected
    ids = [images.simple(f"janitor-bulk/many:{n}") for n in range(3)]
    failing = ("janitor-bulk/none:1", "Janitor-Bulk/Upper:1")
    names = [*ids, *failing, "janitor-bulk/many:1", ids[0][7:19]] * 30
    expected = {name: _sdk(sdk.inspect_image, name) if name in failing else sdk.inspect_image(name)
                for name in names}
    answers = calls.inspect_images(names)
    assert [name for name, _answer in answers] == names
    assert [(answer.status, answer.explanation) if isinstance(answer, Exception) else answer
            for _name, answer in answers] == [expected[name] for name in names]


def test_untag_and_delete_answers_equal_the_cli(connected, clean_engine, images):
    _sdk_client, calls = connected
    image_id = images.simple("janitor-bulk/team:1", "localhost:5000/janitor-bulk/app:2")
    assert calls.remove_image("localhost:5000/janitor-bulk/app:2") == [
        {"Untagged": "localhost:5000/janitor-bulk/app:2"}]
    answer = calls.remove_image("janitor-bulk/team:1", force=False, noprune=False)
    assert {"Untagged": "janitor-bulk/team:1"} in answer
    assert {"Deleted": image_id} in answer
    assert image_id not in clean_engine.state()["images"]


def test_errors_carry_the_engines_status_and_message(connected, clean_engine, images):
    sdk, calls = connected
    missing = "janitor-bulk/none:1"
    assert _ours(calls.inspect_image, missing) == _sdk(sdk.inspect_image, missing)
    assert _ours(calls.remove_image, missing) == _sdk(sdk.remove_image, missing)
    assert _ours(calls.remove_container, "f" * 64) == _sdk(sdk.remove_container, "f" * 64)

    image_id = images.busybox_image("janitor-bulk/held:1")
    container = images.stopped_container(image_id)
    ours = _ours(calls.remove_image, image_id)
    assert ours == _sdk(sdk.remove_image, image_id)
    assert ours[0] == 409 and container[:12] in ours[1]
    assert clean_engine.state()["containers"] == {container: image_id}
