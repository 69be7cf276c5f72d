"""The README's sample inventory, run as it is, with the collection built and installed from its tarball (issue 19).

Nothing from the source tree: a fresh collections path with only the installed tarball, ``ansible-playbook`` started
in a directory of its own (where the relative report directory must appear), the daemon named by ``DOCKER_HOST``
as the README says. The dry run, then the real run, against the engine's state.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from tests.harness.ansible_runner import REPO_ROOT, run_playbook
from tests.harness.images import ImageFactory

pytestmark = pytest.mark.engine

BIN = Path(sys.executable).parent
MARKER = "<!-- sample-inventory:"
UTC = timezone.utc


def sample_inventory() -> str:
    """The YAML block right after the README's sample-inventory marker, byte for byte."""
    text = (REPO_ROOT / "README.md").read_text()
    after = text[text.index(MARKER):]
    match = re.search(r"```yaml\n(.*?)```", after, re.S)
    assert match, "no yaml block after the sample-inventory marker"
    return match.group(1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    built = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out),
                            str(REPO_ROOT)], capture_output=True, text=True, check=False, timeout=300)
    assert built.returncode == 0, built.stderr
    target = tmp_path_factory.mktemp("collections")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(target))
    tarball = next(out.glob("janitor-docker-*.tar.gz"))
    inst = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--no-deps", "-p", str(target),
                           str(tarball)], capture_output=True, text=True, check=False, timeout=300, env=env)
    assert inst.returncode == 0, inst.stderr
    return target


def test_sample_inventory_is_valid_and_fixes_the_stable_exclude():
    inventory = yaml.safe_load(sample_inventory())
    rules = inventory["all"]["vars"]["image_cleanup_rules"]
    assert rules[1]["exclude"] == ["registry.example.com/shop/*:stable"]  # "*:stable" matches no name with a "/"
    for doc in ("README.md", "docs/image_cleanup.md"):
        assert not re.search(r'exclude: \[[^\]]*"\*:stable"', (REPO_ROOT / doc).read_text()), doc


def test_readme_sample_inventory_as_is_from_the_installed_tarball(installed, clean_engine, tmp_path):
    engine = clean_engine
    f = ImageFactory(engine)
    web = {n: f.simple(f"registry.example.com/shop/web:{n}", content=f"web {n}",
                       created=datetime(2020 + n, 1, 1, tzinfo=UTC)) for n in (1, 2, 3, 4)}
    stable = f.simple("registry.example.com/shop/web:stable", content="web stable",
                      created=datetime(2019, 1, 1, tzinfo=UTC))
    dangling = f.simple(content="a dangling leftover")
    workdir = tmp_path / "ops"
    workdir.mkdir()
    (workdir / "inventory.yml").write_text(sample_inventory())
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed), "DOCKER_HOST": engine.url}
    # the one change to the README's run: the role's layer cache in the test's directory, not under /var/cache
    cache = {"image_cleanup_layer_cache": str(tmp_path / "layers.json")}
    before = engine.state()
    check = run_playbook("janitor.docker.cleanup", inventory="inventory.yml", check=True, env=env, cwd=workdir,
                         extra_vars=cache)
    assert check.rc == 0, check.stdout[-3000:]
    assert engine.state() == before
    real = run_playbook("janitor.docker.cleanup", inventory="inventory.yml", env=env, cwd=workdir, extra_vars=cache)
    assert real.rc == 0, real.stdout[-3000:]
    after = engine.state()["images"]
    assert web[1] not in after and dangling not in after
    assert {web[2], web[3], web[4], stable} <= set(after)  # the newest three, and :stable by exclude
    reports = workdir / "reports"
    dry = json.loads((reports / "image-cleanup.dry-run.json").read_text())
    done = json.loads((reports / "image-cleanup.json").read_text())
    assert done["hosts"]["names"] == ["localhost"] and done["totals"]["deleted"] == 2
    assert {k: v for k, v in dry.items() if k not in ("dry_run", "generated_at")} == \
        {k: v for k, v in done.items() if k not in ("dry_run", "generated_at")}
    kept = {k["image"]: k["reason"] for r in done["per_host"][0]["rules"] for k in r["kept"]}
    assert kept[stable] == "excluded"
    # nothing written inside the installed collection (the relative report directory is the start directory's)
    assert not (installed / "ansible_collections" / "janitor" / "docker" / "playbooks" / "reports").exists()
