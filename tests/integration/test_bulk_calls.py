"""The per-image requests (``_engine.bulk_calls``) answer and fail exactly as the docker SDK does, on every engine."""

from __future__ import annotations

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _engine


@pytest.fixture
def connected(engine):
    client = _engine.connect({"docker_host": engine.url, "api_version": "auto", "timeout": 30})
    calls = _engine.bulk_calls(client, 4)
    yield client, calls
    calls.close()
    client.close()


def _failure(call, *args, **kwargs):
    with pytest.raises(Exception) as info:  # noqa: PT011 - the type is what is compared
        call(*args, **kwargs)
    exc = info.value
    return type(exc), exc.response.status_code, exc.explanation, str(exc)


def test_unix_socket_uses_one_keep_alive_pool(connected):
    _client, calls = connected
    assert type(calls).__name__ == "_UnixCalls"


def test_inspect_equals_the_sdk(connected, clean_engine, images):
    client, calls = connected
    image_id = images.simple("janitor-bulk/team:1", "localhost:5000/janitor-bulk/app:2")
    for name in (image_id, "janitor-bulk/team:1", "localhost:5000/janitor-bulk/app:2", image_id[7:19]):
        assert calls.inspect_image(name) == client.inspect_image(name)


def _plain(answer):
    if isinstance(answer, Exception):
        return type(answer), answer.response.status_code, answer.explanation, str(answer)
    return answer


def test_pipelined_inspects_equal_the_sdk(connected, clean_engine, images):
    """Many inspects at once: in order, the answers one SDK call each gives, errors as the SDK raises them."""
    client, calls = connected
    ids = [images.simple(f"janitor-bulk/many:{n}") for n in range(3)]
    failing = ("janitor-bulk/none:1", "Janitor-Bulk/Upper:1")
    names = [*ids, *failing, "janitor-bulk/many:1", ids[0][7:19]] * 30  # more than one pipeline window
    expected = {name: _failure(client.inspect_image, name) if name in failing else client.inspect_image(name)
                for name in names}
    answers = calls.inspect_images(names)
    assert [name for name, _answer in answers] == names
    assert [_plain(answer) for _name, answer in answers] == [expected[name] for name in names]


def test_untag_and_delete_answers_equal_the_cli(connected, clean_engine, images):
    _client, calls = connected
    image_id = images.simple("janitor-bulk/team:1", "localhost:5000/janitor-bulk/app:2")
    assert calls.remove_image("localhost:5000/janitor-bulk/app:2") == [
        {"Untagged": "localhost:5000/janitor-bulk/app:2"}]
    answer = calls.remove_image("janitor-bulk/team:1", force=False, noprune=False)
    assert {"Untagged": "janitor-bulk/team:1"} in answer
    assert {"Deleted": image_id} in answer
    assert image_id not in clean_engine.state()["images"]


def test_errors_are_the_sdk_errors(connected, clean_engine, images):
    client, calls = connected
    missing = "janitor-bulk/none:1"
    assert _failure(calls.inspect_image, missing) == _failure(client.inspect_image, missing)
    assert _failure(calls.remove_image, missing) == _failure(client.remove_image, missing)
    assert _failure(calls.remove_container, "f" * 64) == _failure(client.remove_container, "f" * 64)

    image_id = images.busybox_image("janitor-bulk/held:1")
    container = images.stopped_container(image_id)
    ours = _failure(calls.remove_image, image_id)
    sdk = _failure(client.remove_image, image_id)
    assert ours == sdk
    assert ours[1] == 409 and container[:12] in ours[2]
    assert clean_engine.state()["containers"] == {container: image_id}
