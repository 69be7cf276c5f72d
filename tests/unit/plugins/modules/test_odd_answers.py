"""Odd answers from the daemon never end in a traceback.

A broken daemon, a proxy in front of one, or another program on the socket may answer a request with a value of
another shape than dockerd's: a field missing, null, of another type, out of range; a list where an object belongs.
Each case changes one field of one answer of a fake daemon (tests/harness/faults.py, ``rewrite``; on a unix socket,
where the collection speaks http.client, and on tcp, where it uses the Docker SDK) and runs
``image_remove`` (check mode, then a real run on the fake's store made new) or ``storage_info``: the module succeeds,
or fails with a message naming the daemon, and never with a Python exception's name that no message explains; a real
run reports what the fake did (an unreadable DELETE answer is read back from its state).
"""

from __future__ import annotations

import copy

import pytest

from tests.harness.ansible_runner import run_module, run_module_plainly
from tests.harness.faults import fake_engine, image_id

MISSING = object()  # the field left out
ODD = [MISSING, None, "", "x", -1, 2 ** 70, 1.5, True, [], {}, [None], [1], ["<none>:<none>"], ["app1:1"],
       "sha256:zz", {"a": None}]
EXPLAINED = ("not what a Docker daemon sends", "not a Docker daemon")
STORE = {image_id(n): [f"app{n}:1"] for n in range(1, 4)}
CONTAINER = {"Id": "c" * 64, "Names": ["/web"], "Image": "app1:1", "ImageID": image_id(1), "State": "exited",
             "Status": "Exited (0) 2 days ago", "Labels": {}, "Created": 1700000000}


def _set(value, field, odd):
    """``value`` with ``field`` set to ``odd`` (or left out) in its first record (a list) or in itself (an object)."""
    value = copy.deepcopy(value)
    target = value[0] if isinstance(value, list) and value else value
    if isinstance(target, dict):
        if odd is MISSING:
            target.pop(field, None)
        else:
            target[field] = odd
    return value


@pytest.fixture(scope="module", params=["unix", "tcp"])
def fake(request):
    """The fake on a unix socket (the collection's own http.client transport) and on tcp (the Docker SDK)."""
    with fake_engine(STORE, tcp=request.param == "tcp") as daemon:
        yield daemon


def _reset(daemon, rewrite, api_version):
    """The fake as new: its store, an empty log, the one rewrite of the case."""
    with daemon.lock:
        daemon.images = {image: list(tags) for image, tags in STORE.items()}
        daemon.log.clear()
        daemon.untagged.clear()
        daemon.deleted.clear()
        daemon.rewrite = rewrite
        daemon.API_VERSION = api_version or type(daemon).API_VERSION


def _problem(daemon, module, args, check_mode, rewrite, api_version=None, exact=True):
    _reset(daemon, rewrite, api_version)
    result, problem = run_module_plainly(module, dict(args, docker_host=daemon.url), check_mode=check_mode,
                                         explained=EXPLAINED)
    if problem:
        return problem
    message = str(result.get("msg", ""))
    if result.failed and daemon.url not in message and "image" not in message:
        return f"a failure that names neither the daemon nor an image: {message}"
    if check_mode and daemon.deletes():
        return f"check mode sent {daemon.deletes()}"
    if exact and not check_mode and module == "image_remove" and "deleted" in result and (
            sorted(result["deleted"]) != sorted(daemon.deleted) or sorted(result["untagged"]) != sorted(daemon.untagged)):
        return f"the result is not what the fake did: {result['untagged']} {result['deleted']} {daemon.log}"
    return None


def _sweep(daemon, module, args, fragment, base, fields, modes=(True, False)):
    problems = []
    for field in fields:
        for odd in ODD:
            for check_mode in modes:
                rewrite = {fragment: lambda value, f=field, o=odd: _set(base(value), f, o)}
                problem = _problem(daemon, module, args, check_mode, rewrite)
                if problem:
                    shown = "(missing)" if odd is MISSING else repr(odd)
                    problems.append(f"{fragment} {field}={shown} check_mode={check_mode}: {problem}")
    assert not problems, "\n".join(problems)


REMOVE = {"images": ["app1:1", "app2:1"]}


@pytest.mark.parametrize("field", ["Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size", "Labels",
                                   "Containers"])
def test_an_odd_field_in_the_image_listing(fake, field):
    _sweep(fake, "image_remove", REMOVE, "/images/json", lambda value: value, [field])


@pytest.mark.parametrize("field", sorted(CONTAINER))
def test_an_odd_field_in_the_container_listing(fake, field):
    _sweep(fake, "image_remove", dict(REMOVE, containers="remove"), "/containers/json", lambda value: [CONTAINER], [field])


@pytest.mark.parametrize("field", ["Id", "RootFS", "Metadata", "Created", "Size"])
def test_an_odd_field_in_an_image_inspect(fake, field):
    _sweep(fake, "image_remove", REMOVE, "/images/sha256:", lambda value: value, [field])


PRESSURE = [{"free_space": {"high": "2kB", "low": "1kB"}}, {"unused_for": "1s", "all": True}]


@pytest.mark.parametrize("args", PRESSURE, ids=["free_space", "unused_for"])
@pytest.mark.parametrize("field", ["Metadata", "Created", "RepoTags", "Size"])
def test_an_odd_field_in_an_image_inspect_under_disk_pressure(fake, args, field):
    _sweep(fake, "image_remove", args, "/images/sha256:", lambda value: value, [field])


def test_an_odd_last_tag_time(fake):
    _sweep(fake, "image_remove", PRESSURE[1], "/images/sha256:", lambda value: value.setdefault("Metadata", {}),
           ["LastTagTime"])


@pytest.mark.parametrize("field", ["LayersSize", "Images"])
def test_an_odd_field_in_the_disk_usage(fake, field):
    _sweep(fake, "image_remove", PRESSURE[0], "/system/df", lambda value: value, [field])


def test_odd_layers_in_an_image_inspect(fake):
    _sweep(fake, "image_remove", REMOVE, "/images/sha256:", lambda value: value["RootFS"], ["Layers", "Type"])


def test_an_unreadable_delete_answer_is_read_back(fake):
    """The engine did the removal, but its answer holds no list of Untagged and Deleted strings: what it did comes
    from its state (the result equals what the fake did)."""
    problems = []
    for odd in ODD[1:] + [[{"Untagged": None}], [{"Deleted": 5}], [{"Weird": "x"}], [{"Untagged": ["app1:1"]}]]:
        problem = _problem(fake, "image_remove", REMOVE, False, {"DELETE": lambda value, o=odd: o,
                                                                 "/images/app": lambda value, o=odd: o})
        if problem:
            problems.append(f"DELETE answered {odd!r}: {problem}")
    assert not problems, "\n".join(problems)


def test_a_false_but_well_formed_delete_answer_is_reported_as_answered(fake):
    """An answer of the right shape is taken at its word (the module cannot tell it from the truth without reading
    the engine back after every request): no traceback, and the result holds what it says."""
    for odd in ([{"Deleted": "sha256:zz"}], [{"Untagged": "app9:1"}], [{"Deleted": image_id(3)}]):
        _reset(fake, {"/images/app": lambda value, o=odd: o}, None)
        result = run_module("image_remove", dict(REMOVE, docker_host=fake.url), check_mode=False)
        assert "exception" not in result and not result.failed, result
        assert odd[0].get("Deleted", odd[0].get("Untagged")) in result["deleted"] + result["untagged"], result


@pytest.mark.parametrize("module, args", [("image_remove", REMOVE), ("storage_info", {})])
@pytest.mark.parametrize("field", ["Driver", "DriverStatus", "ServerVersion", "DockerRootDir", "Containers"])
def test_an_odd_field_in_the_daemon_info(fake, module, args, field):
    _sweep(fake, module, args, "/info", lambda value: value, [field], modes=(True,))


@pytest.mark.parametrize("module, args", [("image_remove", REMOVE), ("storage_info", {})])
def test_odd_devicemapper_status_lines(fake, module, args):
    def devicemapper(value):
        return dict(value, Driver="devicemapper", DriverStatus=[["Pool Name", "docker-pool"],
                                                                ["Data Space Used", "1 GB"]])
    _sweep(fake, module, args, "/info", devicemapper, ["DriverStatus"], modes=(True,))
    problems = []
    for odd in ODD[1:] + [[["Data Space Used"]], [["Data Space Used", "lots"]], [["Data Space Total", "-5 GB"]],
                          [[None, None]], [["Data loop file", 5]], [["Pool Blocksize", "0 B"]]]:
        rewrite = {"/info": lambda value, o=odd: dict(devicemapper(value), DriverStatus=o)}
        problem = _problem(fake, module, args, True, rewrite)
        if problem:
            problems.append(f"DriverStatus={odd!r}: {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("module, args", [("image_remove", REMOVE), ("storage_info", {})])
@pytest.mark.parametrize("api_version", ["", "x", "1", "1.x", "99.99", "1.41.0", " 1.41"])
def test_an_odd_api_version_header(fake, module, args, api_version):
    problem = _problem(fake, module, args, True, {}, api_version=api_version)
    assert problem is None, problem
