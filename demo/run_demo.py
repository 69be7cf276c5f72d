"""`make demo`: a private Docker engine with the realistic image world, a dry run, the real run, and a summary.

The engine is private (its own socket under /tmp, no networking) and is stopped at the end; the host's own Docker
daemon is never used. The images are the test harness's realistic world (tests/harness/world.py): base images of a
few MB, runtimes and applications built on them, pushed to a local registry and pulled back (shared layers, no
``Parent``), CI leftovers and stopped containers. Pick the engine kind with DEMO_ENGINE=legacy|classic|containerd
(default: legacy). The summary shows ``space_reclaimed`` beside what ``docker system df`` shows freed.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plugins.module_utils._units import human_size  # noqa: E402
from tests.harness.ansible_runner import run_playbook  # noqa: E402
from tests.harness.engines import Engine, engine_spec  # noqa: E402
from tests.harness.registry import Registry  # noqa: E402
from tests.harness.world import make_world  # noqa: E402

PLAYBOOK = REPO / "demo" / "cleanup-demo.yml"


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 100 - len(text)))


def write_playbook(world) -> None:
    PLAYBOOK.write_text(textwrap.dedent(f"""\
        ---
        # Written by demo/run_demo.py. The same task runs in check mode first, then for real.
        - name: Clean up images on the demo engine
          hosts: localhost
          connection: local
          gather_facts: false
          tasks:
            - name: Remove old images, keep what containers still use
              janitor.docker.image_remove:
                docker_host: "{{{{ lookup('ansible.builtin.env', 'DOCKER_HOST') }}}}"
                images:
                  - {world.ref("apps/web:1.0")}      # an old release: its own layer goes, the base stays
                  - {world.ref("mirror/web:1.1")}    # one of several names: only untagged
                  - {world.ref("runtime/node:20")}   # apps/api is built on it: the image goes, its layers stay
                  - {world.ref("apps/api:2.0")}      # a stopped container uses it: skipped
                  - shop/gone:1          # not there: reported, not an error
                filters:
                  dangling: true         # CI leftovers (the stopped container's build is skipped)
                containers: skip
              register: cleanup

            - name: Show what was (or would be) done
              ansible.builtin.debug:
                var: cleanup
        """))


def layers_size(engine: Engine) -> int:
    """What ``docker system df`` counts for images (``LayersSize`` of ``GET /system/df``)."""
    return engine.api.df()["LayersSize"]


def summary(title: str, result: dict, freed: int | None = None) -> None:
    banner(title)
    print(f"msg:             {result.get('msg')}")
    print(f"changed:         {result.get('changed')}")
    for key in ("untagged", "deleted", "not_found"):
        values = result.get(key) or []
        print(f"{key + ':':16} {len(values)}")
        for value in values:
            print(f"    {value}")
    print(f"skipped_images:  {len(result.get('skipped_images') or [])}")
    for item in result.get("skipped_images") or []:
        named = " ".join([item.get("image", "")[:19], ", ".join(item.get("references") or [])]).strip()
        print(f"    {named}: {item.get('reason')} {' '.join(c[:12] for c in item.get('containers') or [])}")
    space = result.get("space_reclaimed")
    print(f"space_reclaimed: {human_size(space)} ({space} bytes)")
    if freed is not None:
        print(f"docker system df: {human_size(freed)} freed ({freed} bytes, the drop of the images' size)")


def main() -> int:
    kind = os.environ.get("DEMO_ENGINE", "legacy")
    engine = Engine(engine_spec(kind))
    registry = Registry()
    try:
        banner(f"starting a private {kind} engine and a local registry")
        engine.start()
        registry.start()
        print(engine.describe())
        world = make_world(engine, registry)
        write_playbook(world)
        banner("images before")
        print(engine.cli("images", "-a", "--digests").stdout)
        print(engine.cli("system", "df").stdout)
        env = {"DOCKER_HOST": engine.url}
        for check, title in ((True, "dry run (--check): what a real run will do"), (False, "real run")):
            before = layers_size(engine)
            run = run_playbook(PLAYBOOK, check=check, env=env)
            if run.rc != 0:
                print(run.stdout, run.proc.stderr)
                return run.rc
            summary(title, run.task("Remove old images, keep what containers still use"),
                    None if check else before - layers_size(engine))
        banner("images after")
        print(engine.cli("images", "-a", "--digests").stdout)
        print(engine.cli("system", "df").stdout)
        run = run_playbook(PLAYBOOK, env=env)
        result = run.task("Remove old images, keep what containers still use")
        banner("rerun")
        print(f"changed: {result.get('changed')} (idempotent: nothing left to do)")
        print(json.dumps({"rc": run.rc}))
        return run.rc
    finally:
        banner("stopping the private engine")
        registry.stop()
        engine.stop()


if __name__ == "__main__":
    sys.exit(main())
