"""`make demo`: a private Docker engine with sample images, a dry run, the real run, and a summary.

The engine is private (its own socket under /tmp, no networking) and is stopped at the end; the host's own Docker
daemon is never used. Pick the engine kind with DEMO_ENGINE=legacy|classic|containerd (default: legacy).
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness.ansible_runner import run_playbook  # noqa: E402
from tests.harness.engines import Engine, engine_spec  # noqa: E402
from tests.harness.images import ImageFactory  # noqa: E402
from tests.harness.registry import Registry  # noqa: E402

PLAYBOOK = REPO / "demo" / "cleanup-demo.yml"


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 100 - len(text)))


def sample_images(engine: Engine, registry: Registry) -> dict:
    """The classic cases, built offline."""
    f = ImageFactory(engine)
    web = f.simple("shop/web:1.0", "shop/web:stable", "mirror/web:1.0", content="web 1.0",
                   labels={"team": "shop"})
    parent = f.scratch("base layer", tag="base/app:1")
    f.child("base/app:1", "app 2", tag="shop/app:2")
    tool = f.simple("shop/tool:old", content="old tool")
    f.stopped_container(tool)
    f.simple(content="a dangling leftover")  # no tag at all
    api = f.simple("shop/api:1", content="api 1")
    pushed = registry.push(engine, api, "shop/api", "1")
    engine.api.remove_image("shop/api:1")
    digest = [d for d in engine.api.inspect_image(pushed)["RepoDigests"] if d.startswith(registry.host)][0]
    return {"web": web, "parent": parent, "tool": tool, "pushed": pushed, "digest": digest}


def write_playbook(digest_ref: str) -> None:
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
                  - shop/web:stable      # one of several tags: only untagged
                  - mirror/web:1.0       # last tag in its repository
                  - base/app:1           # a parent with a child: untagged, kept
                  - shop/tool:old        # used by a stopped container
                  - {digest_ref}  # by digest
                  - shop/gone:1          # not there: reported, not an error
                filters:
                  dangling: true         # untagged leftovers
                containers: skip
              register: cleanup

            - name: Show what was (or would be) done
              ansible.builtin.debug:
                var: cleanup
        """))


def summary(title: str, result: dict) -> None:
    banner(title)
    print(f"changed:         {result.get('changed')}")
    for key in ("untagged", "deleted", "not_found"):
        values = result.get(key) or []
        print(f"{key + ':':16} {len(values)}")
        for value in values:
            print(f"    {value}")
    print(f"skipped_images:  {len(result.get('skipped_images') or [])}")
    for item in result.get("skipped_images") or []:
        print(f"    {item.get('image', '')[:19]} {', '.join(item.get('references') or [])}: {item.get('reason')}"
              f" {' '.join(c[:12] for c in item.get('containers') or [])}")
    print(f"space_reclaimed: {result.get('space_reclaimed')} bytes")


def main() -> int:
    kind = os.environ.get("DEMO_ENGINE", "legacy")
    engine = Engine(engine_spec(kind))
    registry = Registry()
    try:
        banner(f"starting a private {kind} engine and a local registry")
        engine.start()
        registry.start()
        print(engine.describe())
        refs = sample_images(engine, registry)
        write_playbook(refs["digest"])
        banner("images before")
        print(engine.cli("images", "-a", "--digests").stdout)
        env = {"DOCKER_HOST": engine.url}
        for check, title in ((True, "dry run (--check): what a real run will do"), (False, "real run")):
            run = run_playbook(PLAYBOOK, check=check, env=env)
            if run.rc != 0:
                print(run.stdout, run.proc.stderr)
                return run.rc
            summary(title, run.task("Remove old images, keep what containers still use"))
        banner("images after")
        print(engine.cli("images", "-a", "--digests").stdout)
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
