"""What loading image_remove costs: the pressure-only module_utils load only in runs that use them.

Ansible ships a module's code as source and the managed host compiles it again on every run, so a module_util that
a run does not need still costs it its compile and import (about 12 ms for these three, on every task).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

PRESSURE_ONLY = ("_pressure", "_last_used", "_disk")
PACKAGE = "ansible_collections.janitor.docker.plugins.module_utils"


def _loaded_after(code: str) -> list:
    """The pressure-only module_utils loaded after running ``code`` in a fresh interpreter."""
    script = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        print(json.dumps(sorted(name.rsplit(".", 1)[1] for name in sys.modules
                                if name.rsplit(".", 1)[0] == "{PACKAGE}" and name.rsplit(".", 1)[1] in {PRESSURE_ONLY!r})))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))  # the collection, as here
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_loading_the_module_does_not_load_the_pressure_code():
    assert _loaded_after("import ansible_collections.janitor.docker.plugins.modules.image_remove") == []


def test_a_run_by_references_validates_without_the_pressure_code():
    loaded = _loaded_after("""
        from ansible_collections.janitor.docker.plugins.module_utils import _remove
        params = dict(images=["app:1"], tag="latest", force=False, prune=True, containers=None, parallel=8,
                      platforms=None, layer_cache=None, filters=None, exclude=[], all=False, keep_latest=None,
                      free_space=None, unused_for=None, last_used_state=None)
        remover = _remove.ImageRemover(params, check_mode=True, diff=False, warn=print)
        remover.validate()
    """)
    assert loaded == []


def test_the_pressure_options_are_validated_without_the_pressure_code():
    """free_space is checked before connecting from _pressure_options alone; the choice loads _pressure later."""
    loaded = _loaded_after("""
        from ansible_collections.janitor.docker.plugins.module_utils import _pressure_options
        pressure = _pressure_options.Pressure.from_params({"free_space": {"high": "85%", "low": "80%"}}, 0.0)
        assert pressure.active and pressure.describe() == "free_space=85%/80%"
    """)
    assert loaded == []


def test_a_state_file_run_loads_last_used_when_it_needs_it(tmp_path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"version": 1, "images": {}}))
    loaded = _loaded_after(f"""
        from ansible_collections.janitor.docker.plugins.module_utils import _remove
        run = _remove.PressureRun({str(state)!r})
        assert run.remembered == {{}}, run.remembered
    """)
    assert loaded == ["_last_used"]
