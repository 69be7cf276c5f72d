"""Odd arguments never end in a traceback: each odd value of each option alone in an otherwise valid task, then
combinations drawn at random from a fixed seed.

Each case runs ``image_remove`` (check mode; a real run for every fourth random case) or ``storage_info``
in-process against a fake daemon on a unix socket. Whatever the arguments, the module ends with a result: it succeeds, or it fails with
a message without a Python exception's name in it (``changed: false`` in check mode); check mode sends no DELETE. A run of
this kind found the tracebacks of ``timeout: -1`` and ``timeout: 1099511627776``.
"""

from __future__ import annotations

import random

import pytest

from tests.harness.ansible_runner import run_module_plainly
from tests.harness.faults import image_id, fake_engine

SEED = 20261206
CASES = 240

STRINGS = ["", " ", ":", "@", "a@", "@sha256:", "sha256:", "sha256:zz", "a:b:c", "A:1", "app1:1 ", "app1::1",
           "app1@sha256:" + "0" * 64, "app1@sha256:" + "0" * 63, "x" * 300, "../a", "a//b", "\u00e9", "\n", "*", "**",
           "[", "[a-", "app?:1", "app1:1@sha256:" + "1" * 64, "localhost:5000/a", "127.0.0.1:5000/a:1", "01", "0101",
           "sha256:0101", image_id(1), image_id(1)[7:19], "01" * 40, "docker.io/library/app1:1", "docker.io/app1",
           "a:" + "b" * 200, "a:-1", "app1", "app2:1", "1h", "-1h", "0", "2024-13-40", "1e9", "nan", "x=y", "=x"]
VALUES = STRINGS + [0, -1, 1, 2 ** 31, 2 ** 40, 1.5, True, False, [], {}, ["app1:1"], {"a": 1}, [[]], [{}]]
FILTER_NAMES = ["before", "since", "until", "label", "label!", "reference", "dangling", "Label", ""]


def _maybe(rng, share):
    return rng.random() < share


IMAGE_REMOVE_OPTIONS = {
    "images": VALUES + [[value] for value in STRINGS],
    "filters": VALUES + [{name: value} for name in FILTER_NAMES for value in VALUES + [[value] for value in STRINGS]],
    "exclude": VALUES + [[value] for value in STRINGS], "keep_latest": VALUES,
    "all": VALUES, "tag": VALUES, "parallel": VALUES, "timeout": VALUES + [-1, 0, 2 ** 40],
    "containers": VALUES + ["remove", "skip", "fail"],
    "platforms": VALUES + [["linux/arm64"], ["linux"], ["linux/arm64/v8/x"], ["windows/amd64"]],
    "free_space": VALUES + [{"high": "90%", "low": "80%"}, {"high": "1GB"}, {"low": "x"}, {"high": "80%", "low": "90%"},
                            {"high": "101%", "low": "1%"}, {"high": 5, "low": 4, "measure": "x"}],
    "unused_for": VALUES + ["1h", "0s", "10y"], "api_version": VALUES + ["1.41", "auto", "9.99", "1.4x"],
    "force": VALUES, "prune": VALUES,
}


def _filters(rng):
    return {rng.choice(FILTER_NAMES): rng.choice(VALUES) for unused in range(rng.randint(1, 3))}


def _image_remove_args(rng):
    """A valid task with one or two options made odd (so that each reaches the code that reads it), or, one case in
    five, odd values for many options at once."""
    if _maybe(rng, 0.2):
        args = {name: rng.choice(pool) for name, pool in IMAGE_REMOVE_OPTIONS.items() if _maybe(rng, 0.3)}
    else:
        args = {"images": ["app1:1", "app2:1"]} if _maybe(rng, 0.6) else {"filters": {"reference": "app*"}}
        for name in rng.sample(sorted(IMAGE_REMOVE_OPTIONS), rng.randint(1, 2)):
            args[name] = rng.choice(IMAGE_REMOVE_OPTIONS[name])
    if _maybe(rng, 0.3):
        args["filters"] = _filters(rng)
    return args


STORAGE_INFO_OPTIONS = {
    "thresholds": VALUES + [{key: value} for key in ("data_used_percent_warning", "metadata_min_free_bytes", "x")
                            for value in VALUES],
    "timeout": VALUES + [-1, 0, 2 ** 40], "api_version": VALUES, "docker_info": STRINGS,
    "daemon_config_path": STRINGS, "sysconfig_storage_path": STRINGS,
}


def _storage_info_args(rng):
    return {name: rng.choice(pool) for name, pool in STORAGE_INFO_OPTIONS.items() if _maybe(rng, 0.3)}


def _cases():
    rng = random.Random(SEED)
    for number in range(CASES):
        if number % 5 == 4:
            yield number, "storage_info", _storage_info_args(rng), True
        else:
            yield number, "image_remove", _image_remove_args(rng), number % 4 != 3


@pytest.fixture(scope="module")
def daemon():
    with fake_engine({image_id(n): [f"app{n}:1"] for n in range(1, 40)}) as fake:
        yield fake


def _problem(daemon, module, args, check_mode):
    """What is wrong with the module's ending for ``args``, or None."""
    deletes = len(daemon.deletes())
    result, problem = run_module_plainly(module, dict(args, docker_host=daemon.url), check_mode=check_mode)
    if problem:
        return f"{args}: {problem}"
    if check_mode and (result.get("changed", False) and result.failed or len(daemon.deletes()) != deletes):
        return f"{args}: check mode changed something: {result}"
    return None


@pytest.mark.parametrize("name", sorted(IMAGE_REMOVE_OPTIONS))
def test_each_odd_value_of_each_image_remove_option_alone(daemon, name):
    """Every odd value of the option, in an otherwise valid check-mode task."""
    base = {"images": ["app1:1", "app2:1"]} if name != "images" else {}
    problems = [_problem(daemon, "image_remove", dict(base, **{name: value}), True)
                for value in IMAGE_REMOVE_OPTIONS[name]]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


@pytest.mark.parametrize("name", sorted(STORAGE_INFO_OPTIONS))
def test_each_odd_value_of_each_storage_info_option_alone(daemon, name):
    problems = [_problem(daemon, "storage_info", {name: value}, True) for value in STORAGE_INFO_OPTIONS[name]]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


@pytest.mark.parametrize("number, module, args, check_mode", list(_cases()), ids=lambda value: None)
def test_odd_arguments_together_end_in_a_result_and_never_in_a_traceback(daemon, number, module, args, check_mode):
    problem = _problem(daemon, module, args, check_mode)
    assert problem is None, (number, problem)
