"""The last net of both modules: an error no code foresaw (a bug) ends in a message that names it and says what
the operator can rely on, with the traceback handed to ``fail_json(exception=...)`` (shown by Ansible with -vvv), never a bare traceback."""

from __future__ import annotations

import pytest

from ansible_collections.janitor.docker.plugins.module_utils import _planner, _storage
from tests.harness.ansible_runner import run_module
from tests.harness.faults import fake_engine


def _broken(*_args, **_kwargs):
    raise RuntimeError("a bug planted by the test")


@pytest.mark.parametrize("module, args, target, name", [
    ("image_remove", {"images": ["app1:1"]}, _planner, "plan"),
    ("storage_info", {}, _storage, "analyse"),
])
@pytest.mark.parametrize("check_mode", [True, False])
def test_an_unforeseen_error_ends_in_a_message(monkeypatch, module, args, target, name, check_mode):
    monkeypatch.setattr(target, name, _broken)
    with fake_engine() as daemon:
        result = run_module(module, dict(args, docker_host=daemon.url), check_mode=check_mode)
        assert daemon.deletes() == []
    assert result.failed and result.get("changed", False) is False, result
    assert result["msg"].startswith(f"{module} stopped on an error it did not foresee (RuntimeError: a bug planted by "
                                    f"the test); this is a bug in janitor.docker"), result["msg"]
    assert "check mode" in result["msg"]
    # the traceback goes to Ansible, which includes it only when asked to (-vvv, ansible-core's traceback settings)
    assert "a bug planted by the test" in str(result.get("exception", "a bug planted by the test"))
