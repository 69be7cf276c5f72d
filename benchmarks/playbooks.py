"""The playbooks the benchmark runs, written as text (every list inline, as a user would write it).

The engine is given by ``DOCKER_HOST`` in the environment, which janitor.docker and community.docker both read,
so the same playbook works after every restart of the engine.

The janitor rows pass ``layer_cache``: the warm rows a file that stays in the benchmark's work dir across the
restores (warmed once per N), the cold rows another file that ``run.py`` deletes just before each of their runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from imageset import SET_LABEL, ImageSet

TASK = "bench"
RECORDED_CHECK_RESULT = "check-result.json"  # the explicit-list --check result, played back by bench_echo
WARM_CACHE = "layers-warm-{n}.json"  # the warm rows' layer_cache (one per N; the profile reuses the largest N's)
COLD_CACHE = "layers-cold.json"  # the cold rows' layer_cache, deleted just before each cold run

_HEAD = """---
- name: Benchmark
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
"""


def _flow(values) -> str:
    """A YAML flow sequence (JSON is valid YAML)."""
    return json.dumps(list(values))


def janitor_list(image_set: ImageSet, layer_cache: Path) -> str:
    return _HEAD + f"""    - name: {TASK}
      janitor.docker.image_remove:
        images: {_flow(image_set.references)}
        containers: remove
        layer_cache: {json.dumps(str(layer_cache))}
"""


def janitor_filter(layer_cache: Path) -> str:
    # a label filter selects whole images by ID; some are tagged in two repositories, which needs force
    return _HEAD + f"""    - name: {TASK}
      janitor.docker.image_remove:
        filters:
          label: {SET_LABEL}
        force: true
        containers: remove
        layer_cache: {json.dumps(str(layer_cache))}
"""


def echo(image_set: ImageSet, result_file: Path, layer_cache: Path) -> str:
    """image_remove's arguments in, a recorded image_remove result out, no work: Ansible's own share."""
    return _HEAD + f"""    - name: {TASK}
      bench_echo:
        images: {_flow(image_set.references)}
        containers: remove
        layer_cache: {json.dumps(str(layer_cache))}
        result_file: {json.dumps(str(result_file))}
"""


def noop() -> str:
    return _HEAD + f"""    - name: {TASK}
      ansible.builtin.ping:
"""


def community_loop(image_set: ImageSet) -> str:
    return _HEAD + f"""    - name: containers
      community.docker.docker_container:
        name: "{{{{ item }}}}"
        state: absent
      loop: {_flow(image_set.containers)}
    - name: {TASK}
      community.docker.docker_image_remove:
        name: "{{{{ item }}}}"
      loop: {_flow(image_set.references)}
"""


def community_prune() -> str:
    return _HEAD + f"""    - name: {TASK}
      community.docker.docker_prune:
        containers: true
        containers_filters:
          label: {SET_LABEL}
        images: true
        images_filters:
          label: {SET_LABEL}
          dangling: false
"""


def cache_paths(folder: Path, n: int) -> dict:
    """``{"warm": path, "cold": path}``: the two ``layer_cache`` files of one N."""
    return {"warm": folder / WARM_CACHE.format(n=n), "cold": folder / COLD_CACHE}


def write_all(folder: Path, image_set: ImageSet) -> dict:
    caches = cache_paths(folder, image_set.n)
    texts = {
        "janitor_list": janitor_list(image_set, caches["warm"]),
        "janitor_list_cold": janitor_list(image_set, caches["cold"]),
        "echo_check": echo(image_set, folder / RECORDED_CHECK_RESULT, caches["warm"]),
        "janitor_filter": janitor_filter(caches["warm"]),
        "noop": noop(),
        "community_loop": community_loop(image_set),
        "community_prune": community_prune(),
    }
    paths = {}
    for name, text in texts.items():
        path = folder / f"{name}.yml"
        path.write_text(text, encoding="utf-8")
        paths[name] = path
    return paths
