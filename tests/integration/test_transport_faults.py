"""image_remove against a fake daemon on a unix socket that misbehaves the way proxies and broken daemons do.

Each case runs in check mode and for real, each on a fresh fake holding the same images; the fake logs what it
really did. Whatever the fault, the result must be exactly what the fake did (nothing claimed that it did not do,
nothing it did left out), the message clear, and never a traceback. A real run that completes must equal its check
mode prediction.
"""

from __future__ import annotations

import time

import pytest

from tests.harness.ansible_runner import ModuleResult, run_module, warning_texts
from tests.harness.faults import FakeEngine, run_module_process


def iid(n):
    return "sha256:" + f"{n:02x}" * 32


# ten images, one tag each, one image with two tags of one repository (of which one is named: it is untagged)
IMAGES = {**{iid(n): [f"app{n}:1"] for n in range(1, 10)}, iid(10): ["app10:1", "app10:2"]}
NAMED = [f"app{n}:1" for n in range(1, 11)]


def _run(tmp_path, faults, check_mode, images=NAMED, own_process=False, **options):
    """image_remove against a fresh fake with ``faults``; in this process, or in its own as Ansible runs it (only
    then are the module's warnings in its result)."""
    path = tmp_path / f"engine-{'check' if check_mode else 'real'}.sock"
    with FakeEngine(path, IMAGES) as fake:
        for name, value in faults.items():
            setattr(fake, name, value)
        args = {"docker_host": fake.url, "images": images, "timeout": 2, "parallel": 4, **options}
        started = time.monotonic()
        if own_process:
            result, proc = run_module_process("image_remove", args, check_mode=check_mode)
            assert "Traceback" not in proc.stderr, proc.stderr
            result = ModuleResult(result)
        else:
            result = run_module("image_remove", args, check_mode=check_mode)
        elapsed = time.monotonic() - started
    return result, fake, elapsed


def _exact(result, fake):
    """The result reports exactly what the fake did."""
    assert "Traceback" not in result.get("msg", ""), result["msg"]
    assert "exception" not in result, result["exception"]
    assert sorted(result["untagged"]) == sorted(fake.untagged), (result, fake.log)
    assert sorted(result["deleted"]) == sorted(fake.deleted), (result, fake.log)
    assert len(fake.deletes()) == len(set(fake.deletes())), fake.deletes()  # no DELETE carried out twice


def _check_and_real(tmp_path, faults, **options):
    check, fake, _elapsed = _run(tmp_path, faults, True, **options)
    assert not check.failed, check
    assert fake.deletes() == [], "check mode sent a DELETE"
    real, fake, _elapsed = _run(tmp_path, faults, False, **options)
    _exact(real, fake)
    return check, real, fake


@pytest.mark.parametrize("interim", [["100 Continue"], ["102 Processing", "103 Early Hints"]])
def test_interim_answers(tmp_path, interim):
    check, real, _fake = _check_and_real(tmp_path, {"interim": interim})
    assert not real.failed, real
    assert {k: real[k] for k in ("untagged", "deleted")} == {k: check[k] for k in ("untagged", "deleted")}
    assert len(real["deleted"]) == 9 and len(real["untagged"]) == 10


@pytest.mark.parametrize("after", [1, 3])
def test_a_daemon_that_closes_each_connection_silently_after_n_answers(tmp_path, after):
    check, real, fake = _check_and_real(tmp_path, {"close_after": after})
    assert not real.failed, real
    assert sorted(fake.deleted) == sorted(IMAGES)[:9] and real["deleted"] == check["deleted"]


def test_connection_keep_alive_close(tmp_path):
    check, real, fake = _check_and_real(tmp_path, {"connection_header": "keep-alive, close"})
    assert not real.failed, real
    assert real["deleted"] == check["deleted"] and len(real["deleted"]) == 9
    assert set(fake.served) <= {0, 1}  # never a second request on a connection the daemon closes


@pytest.mark.parametrize("delay", [0, 0.005], ids=["same-write", "later"])
def test_stray_bytes_after_each_answer(tmp_path, delay):
    """A clear failure is acceptable here (dockerd never sends such bytes), but the result is what the fake did,
    and an answer lost to them is read back from the fake's state, with a warning."""
    check, fake, _elapsed = _run(tmp_path, {"stray": b"\r\n", "stray_delay": delay}, True)
    assert "Traceback" not in check.get("msg", "") and fake.deletes() == []
    real, fake, _elapsed = _run(tmp_path, {"stray": b"\r\n", "stray_delay": delay}, False, parallel=1,
                                own_process=True)
    _exact(real, fake)
    for warning in warning_texts(real):
        assert "read back from the engine" in warning or "differ from the plan" in warning, warning


@pytest.mark.parametrize("phase, stall", [("snapshot", "/images/json"), ("inspects", "/images/sha256:"),
                                          ("deletes", "/images/app3:1?")])
def test_a_stall_at_each_phase_ends_in_a_clear_message_in_about_the_timeout(tmp_path, phase, stall):
    for check_mode in (True, False):
        if phase == "inspects" and not check_mode:
            continue  # a real run inspects no image
        result, fake, elapsed = _run(tmp_path, {"stall": stall}, check_mode)
        if phase == "deletes" and check_mode:
            assert not result.failed, result  # check mode sends no DELETE
            continue
        assert result.failed, result
        assert "did not answer in time" in result["msg"] and "timeout=2" in result["msg"], result["msg"]
        assert fake.url in result["msg"], result["msg"]
        assert elapsed < 2 * 2 + 1.5, elapsed  # about the timeout, never twice
        if phase == "deletes":
            _exact(result, fake)
            assert "app3:1" in result["msg"] and "before the error" in result["msg"], result["msg"]
            assert "the engine may still carry this request out" in result["msg"], result["msg"]
        else:
            assert fake.deletes() == [], fake.deletes()


@pytest.mark.parametrize("where", ["/images/json", "/images/sha256:"])
def test_a_read_answered_with_something_that_is_not_json(tmp_path, where):
    result, fake, _elapsed = _run(tmp_path, {"not_json": where}, True)
    assert result.failed and "not JSON" in result["msg"] and fake.url in result["msg"], result
    assert "exception" not in result and "Traceback" not in result["msg"]


def test_a_delete_answered_with_something_that_is_not_json_is_read_back(tmp_path):
    """The fake carried the DELETE out, but its answer is unreadable: the outcome comes from the fake's state."""
    real, fake, _elapsed = _run(tmp_path, {"not_json": "/images/app4:1?"}, False, own_process=True)
    assert not real.failed, real
    _exact(real, fake)
    assert iid(4) in real["deleted"] and "app4:1" in real["untagged"]
    assert any("app4:1" in warning and "read back" in warning for warning in warning_texts(real)), real


def test_a_409_and_a_404_on_delete(tmp_path):
    refuse = {"app2:1": (409, 'conflict: unable to remove repository reference "app2:1" (must force) - '
                              "container 0123456789ab is using its referenced image"),
              "app3:1": (404, "No such image: app3:1")}
    check, real, fake = _check_and_real(tmp_path, {"refuse": refuse})
    assert not real.failed, real
    assert iid(2) not in real["deleted"] and iid(3) not in real["deleted"] and len(real["deleted"]) == 7
    (skipped,) = real["skipped_images"]
    assert skipped["image"] == iid(2) and skipped["reason"] == "container" and "must force" in skipped["detail"]
    assert len(check["deleted"]) == 9  # the fake's refusals are not in the snapshot: check mode cannot know


@pytest.mark.parametrize("answer", [(404, "NotFound: content digest sha256:" + "ab" * 32 + ": not found"),
                                    (500, "content digest sha256:" + "cd" * 32 + ": not found")])
def test_a_listing_that_loses_content_under_it_is_read_again(tmp_path, answer):
    """Another client deleting images while the containerd store lists them: the listing is read again."""
    check, real, fake = _check_and_real(tmp_path, {"vanish": 2, "vanish_answer": answer})
    assert not real.failed and real["deleted"] == check["deleted"] and len(real["deleted"]) == 9, real
    assert sum(1 for _method, path, status in fake.log if "/images/json" in path and status == answer[0]) == 2


def test_a_listing_that_keeps_failing_fails_clearly(tmp_path):
    result, fake, _elapsed = _run(tmp_path, {"vanish": 10}, False)
    assert result.failed and "listing the images" in result["msg"] and "not found" in result["msg"], result
    assert fake.deletes() == [] and "Traceback" not in result["msg"]
    assert sum(1 for _method, path, status in fake.log if "/images/json" in path and status == 404) == 3


def test_a_listing_error_that_is_no_vanished_content_is_not_read_again(tmp_path):
    result, fake, _elapsed = _run(tmp_path, {"vanish": 1, "vanish_answer": (500, "io error on the disk")}, False)
    assert result.failed and "io error on the disk" in result["msg"], result
    assert sum(1 for _method, path, _status in fake.log if "/images/json" in path) == 1


@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "real"])
def test_a_last_use_run_inspects_each_image_once(tmp_path, check_mode):
    """``unused_for`` needs every image's layers (the space) and last tag time (the last use): both come from one
    inspect per image, not two."""
    result, fake, _elapsed = _run(tmp_path, {}, check_mode, images=None, unused_for="1d")
    assert not result.failed, result
    assert len(result["deleted"]) == len(IMAGES), result
    inspects = [path.split("?")[0].rsplit("/", 2)[-2] for method, path, _status in fake.log
                if method == "GET" and path.split("?")[0].endswith("/json") and "/images/sha256:" in path]
    assert sorted(inspects) == sorted(IMAGES), fake.log
