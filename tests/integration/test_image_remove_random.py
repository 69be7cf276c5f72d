"""Random image/container graphs on the real engines: check mode equals the real run, and a rerun changes nothing.

Images are loaded (fast on every engine) with random tags across repositories, some sharing base layers (so the
classic store's released layers are predicted from RootFS), some used by stopped containers; the requests mix
tags, names, IDs and ID prefixes with every container policy, force and prune. Some cases add a chain of images
built with the classic builder on the first image (``FROM``, ``COPY``, ``LABEL``: each build leaves an untagged
intermediate image), named by tag or ID, and their intermediates by ID.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.janitor.docker.plugins.module_utils._result import RESULT_KEYS
from tests.harness.ansible_runner import run_module
from tests.harness.images import ImageSpec

REPOS = ("rnd0", "team/rnd1", "localhost:5000/rnd2")
TAGS = ("t0", "t1")
POOL = [f"{repo}:{tag}" for repo in REPOS for tag in TAGS]


@st.composite
def graphs(draw):
    count = draw(st.integers(1, 5))
    free = list(POOL)
    specs = []
    for n in range(count):
        tags = draw(st.lists(st.sampled_from(free), min_size=1, max_size=2, unique=True))
        free = [t for t in free if t not in tags]
        base = draw(st.sampled_from([[], ["base a"], ["base a", "base b"]]))
        specs.append(ImageSpec(tags, f"random image {n}", extra_layers=base))
        if len(free) < 2:
            break
    stopped = draw(st.lists(st.booleans(), min_size=len(specs), max_size=len(specs)))
    return specs, stopped


@settings(max_examples=int(os.environ.get("JANITOR_RANDOM_EXAMPLES", "8")), deadline=None, database=None,
          derandomize=os.environ.get("JANITOR_RANDOM_SEEDED", "1") == "1",
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=graphs(), data=st.data())
def test_random_graphs_check_equals_real(engine, images, case, data):
    specs, stopped = case
    engine.reset()
    ids = images.load(specs)
    containers = {images.stopped_container(image_id) for image_id, used in zip(ids, stopped) if used}
    chain = []
    for n in range(data.draw(st.integers(0, 2), label="builder chain")):
        parent = chain[-1] if chain else ids[0]
        chain.append(images.build(f"FROM {parent}\nCOPY g /g\nLABEL rnd.chain={n}\n", {"g": f"chain {n}".encode()},
                                  tag=f"rndb:c{n}"))
        chain_intermediate = engine.api.inspect_image(chain[-1])["Parent"]
        ids.append(chain_intermediate)
    ids.extend(chain)
    names = POOL + ["rnd0", "team/rnd1", "absent:1", "rndb:c0", "rndb:c1"] + list(ids) + [i[7:19] for i in ids]
    values = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=6, unique=True), label="images")
    options = data.draw(st.fixed_dictionaries({
        "containers": st.sampled_from(["skip", "remove"]),
        "force": st.booleans(),
        "prune": st.booleans(),
        "parallel": st.sampled_from([1, 3]),
    }), label="options")
    args = {"docker_host": engine.url, "images": values, **options}
    before = engine.state()
    check = run_module("image_remove", args, check_mode=True, diff=True)
    assert not check.failed, check
    assert engine.state() == before
    real = run_module("image_remove", args, diff=True)
    assert not real.failed, real
    for key in RESULT_KEYS:
        assert check[key] == real[key], (key, check[key], real[key])
    assert "prediction_notes" not in check, check.get("prediction_notes")
    after = engine.state()
    # what the result says is what the engine shows
    assert set(real["deleted"]).isdisjoint(after["images"])
    for image_id, refs in real["diff"]["after"]["images"].items():
        assert sorted(after["images"][image_id]) == refs
    assert set(after["containers"]) == containers - set(real["containers_removed"])
    again = run_module("image_remove", args)
    assert not again.failed and again["changed"] is False, again
