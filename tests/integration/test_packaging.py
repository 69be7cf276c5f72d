"""The collection builds, installs from its tarball, and documents every module (no engine needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if not p.stem.startswith("_"))


def _run(*cmd, env=None, cwd=None):
    return subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build the tarball and install it into a fresh collections path."""
    out = tmp_path_factory.mktemp("build")
    built = _run(str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(REPO))
    assert built.returncode == 0, built.stderr
    tarballs = list(out.glob("janitor-docker-*.tar.gz"))
    assert len(tarballs) == 1
    target = tmp_path_factory.mktemp("collections")
    # only the fresh path: the development link in ANSIBLE_COLLECTIONS_PATH would make the install a no-op
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(target))
    inst = _run(str(BIN / "ansible-galaxy"), "collection", "install", "--no-deps", "--force", "-p", str(target),
                str(tarballs[0]), env=env)
    assert inst.returncode == 0, inst.stderr
    return tarballs[0], target


def test_tarball_has_the_collection_and_nothing_local(installed):
    tarball = installed[0]
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "galaxy.yml" not in names  # replaced by MANIFEST.json
    assert "MANIFEST.json" in names and "meta/runtime.yml" in names
    for module in MODULES:
        assert f"plugins/modules/{module}.py" in names
    for junk in (".cache", ".venv", ".git", "tests/output"):
        assert not any(n == junk or n.startswith(junk + "/") for n in names), junk


def test_installed_version_matches_galaxy_yml(installed):
    target = installed[1]
    manifest = json.loads((target / "ansible_collections/janitor/docker/MANIFEST.json").read_text())
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert manifest["collection_info"]["version"] == galaxy["version"]
    assert manifest["collection_info"]["license"] == ["GPL-3.0-or-later"]


def test_action_group_lists_every_module():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    assert sorted(runtime["action_groups"]["docker"]) == MODULES


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_installed_module(installed, module):
    target = installed[1]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(target))
    doc = _run(str(BIN / "ansible-doc"), "-j", "-t", "module", f"janitor.docker.{module}", env=env)
    assert doc.returncode == 0, doc.stderr
    data = json.loads(doc.stdout)
    entry = data[f"janitor.docker.{module}"]
    assert entry["doc"]["options"]["docker_host"]["default"] == "unix:///var/run/docker.sock"
    assert entry["examples"].strip() and entry["return"]
    text = _run(str(BIN / "ansible-doc"), "-t", "module", f"janitor.docker.{module}", env=env)
    assert text.returncode == 0 and "docker_host" in text.stdout
