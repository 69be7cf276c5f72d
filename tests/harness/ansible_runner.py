"""Three ways to run the collection's modules from tests.

* ``run_module()``: in this process, importing ``ansible_collections.janitor.docker.plugins.modules.<name>``;
  fastest, used for most integration tests.
* pytest-ansible's ``localhost`` fixture: ``getattr(localhost, "janitor.docker.image_remove")(...)`` (in tests).
* ``run_playbook()``: ``ansible-playbook`` as a subprocess, results collected by the ``janitor_results`` callback.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

HARNESS_DIR = Path(__file__).resolve().parent
REPO_ROOT = HARNESS_DIR.parents[1]


class ModuleResult(dict):
    """The module's JSON result; ``failed`` is set when it called fail_json."""

    @property
    def failed(self) -> bool:
        return bool(self.get("failed"))

    @property
    def warning_texts(self) -> list[str]:
        return warning_texts(self)


def warning_texts(result: dict) -> list[str]:
    """A result's warnings as text (``run_module`` records them itself: in this process, where pytest imports
    Ansible's controller side, ``module.warn`` would go to the controller's display and not into the result)."""
    texts = []
    for warning in result.get("warnings") or ():
        if isinstance(warning, dict):
            warning = (warning.get("event") or {}).get("msg") or warning.get("msg") or str(warning)
        texts.append(warning)
    return texts


def run_module(name: str, args: dict, check_mode: bool = False, diff: bool = False) -> ModuleResult:
    """Run ``janitor.docker.<name>`` in-process with ``args``; returns its result (fail_json included)."""
    module = importlib.import_module(f"ansible_collections.janitor.docker.plugins.modules.{name}")
    full_args = dict(args)
    full_args["_ansible_check_mode"] = check_mode
    full_args["_ansible_diff"] = diff
    out = io.StringIO()
    warned = []
    original_warn = AnsibleModule.warn

    def warn(self, warning):
        warned.append(warning)
        return original_warn(self, warning)

    with patch_module_args(full_args), contextlib.redirect_stdout(out), mock.patch.object(AnsibleModule, "warn", warn):
        try:
            module.main()
        except SystemExit:
            pass
    text = out.getvalue().strip()
    if not text:
        raise AssertionError(f"module {name} printed nothing")
    result = ModuleResult(json.loads(text.splitlines()[-1]))
    if warned and not result.get("warnings"):
        result["warnings"] = warned
    return result


# Python's exception names: one of them in a module's message means that a failure was not foreseen
UNFORESEEN = ("Traceback", "KeyError", "TypeError", "AttributeError", "IndexError", "ValueError", "OverflowError",
              "UnboundLocalError", "RecursionError", "ZeroDivisionError", "NoneType", "OSError", "did not foresee")


def run_module_plainly(name: str, args: dict, check_mode: bool = False, explained: tuple = ()):
    """``(result, problem)``: ``run_module``, and what went wrong for the user, or None: an exception out of
    ``main()``, a traceback in the result, a failure without a message, or a message naming a Python exception
    (or the modules' last net) that neither Ansible's own "argument ..." conversion message nor one of the
    ``explained`` phrases accounts for."""
    try:
        result = run_module(name, args, check_mode=check_mode)
    except Exception as exc:  # noqa: BLE001 - the finding itself
        return None, f"{type(exc).__name__}: {exc}"
    message = str(result.get("msg", ""))
    if "exception" in result:
        return result, f"exception in the result: {str(result['exception'])[-400:]}"
    if result.failed and not message:
        return result, "failed without a message"
    if (any(name in message for name in UNFORESEEN) and not message.startswith("argument '")
            and not any(text in message for text in explained)):
        return result, message
    return result, None


def ansible_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.setdefault("ANSIBLE_PYTHON_INTERPRETER", sys.executable)
    env["ANSIBLE_CALLBACK_PLUGINS"] = str(HARNESS_DIR / "callback_plugins")
    env["ANSIBLE_CALLBACKS_ENABLED"] = "janitor_results"
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_RETRY_FILES_ENABLED"] = "0"
    env["ANSIBLE_HOST_KEY_CHECKING"] = "0"
    env["ANSIBLE_LOCALHOST_WARNING"] = "0"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "0"
    env.update(extra or {})
    return env


class PlaybookRun:
    def __init__(self, proc: subprocess.CompletedProcess, results: list[dict]):
        self.proc = proc
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.results = results

    def task(self, name: str, host: str | None = None) -> dict:
        """The result of the last task called ``name`` (on ``host``)."""
        found = [r for r in self.results if r["task"] == name and (host is None or r["host"] == host)]
        if not found:
            raise KeyError(f"no result for task {name!r}; tasks: {sorted({r['task'] for r in self.results})}\n"
                           f"{self.stdout}")
        return found[-1]["result"]


def run_playbook(playbook: str | Path, inventory: str = "localhost,", check: bool = False, diff: bool = False,
                 extra_vars: dict | None = None, env: dict | None = None, args: tuple[str, ...] = (),
                 timeout: float = 600, cwd: str | Path | None = None) -> PlaybookRun:
    """Run ``ansible-playbook`` (a path, or a collection playbook name) in ``cwd`` and collect every task result."""
    with tempfile.TemporaryDirectory(prefix="jd-play-") as tmp:
        results_file = Path(tmp) / "results.jsonl"
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", inventory, str(playbook)]
        if inventory == "localhost,":
            cmd += ["-c", "local"]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        cmd += list(args)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd,
                              env=ansible_env({**(env or {}), "JANITOR_RESULTS_FILE": str(results_file)}))
        results = []
        if results_file.exists():
            results = [json.loads(line) for line in results_file.read_text().splitlines() if line.strip()]
        return PlaybookRun(proc, results)


def play_recap(stdout: str) -> dict:
    """``{host: {"ok": n, "changed": n, ...}}`` from the PLAY RECAP of ``ansible-playbook``'s output."""
    recap = {}
    for line in stdout.split("PLAY RECAP")[-1].splitlines():
        match = re.match(r"^(\S+)\s*:\s*(.*)$", line.strip())
        if match:
            recap[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return recap
