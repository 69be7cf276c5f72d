"""janitor.docker.image_remove against the private engines (legacy, classic, containerd).

Every scenario runs check mode first (which must change nothing and predict every result key), then the real run,
then the real run again (which must report ``changed: false``). Where a test relies on an engine rule, the docker
CLI's ``rmi`` on an identical state is the reference the module's ``untagged`` and ``deleted`` must equal.
"""

from __future__ import annotations

import io
import json
import tarfile
import textwrap

import pytest

from ansible_collections.janitor.docker.plugins.module_utils._result import RESULT_KEYS
from tests.harness.ansible_runner import run_module, run_playbook, warning_texts
from tests.harness.images import ImageSpec, save_archive

CONTENT = "janitor image_remove "


# -- helpers -----------------------------------------------------------------------------------------------------
def module(engine, images, check=False, diff=False, **options):
    return run_module("image_remove", {"docker_host": engine.url, "images": images, **options}, check_mode=check,
                      diff=diff)


def check_then_run(engine, images, **options):
    """Check mode, real run, second real run (in diff mode); check mode must equal the real run on every key."""
    before = engine.state()
    check = module(engine, images, check=True, diff=True, **options)
    assert not check.failed, check
    assert engine.state() == before, "check mode changed the engine"
    real = module(engine, images, diff=True, **options)
    assert not real.failed, real
    for key in RESULT_KEYS:
        assert check[key] == real[key], (key, check[key], real[key])
    assert not [w for w in warning_texts(real) if "differ from the plan" in w], warning_texts(real)
    again = module(engine, images, **options)
    assert not again.failed, again
    assert (again["changed"], again["untagged"], again["deleted"]) == (False, [], []), again
    return real


def roles(ids_by_role, values):
    """Image IDs replaced by their role in the scenario, anything else (a layer chain ID) by ``layer``."""
    names = {image_id: role for role, image_id in ids_by_role.items()}
    return sorted(names.get(value, "layer") for value in values)


def same_as_cli(engine, setup, images, cli_commands, **options):
    """Run the module on ``setup()``'s state, then the CLI commands on a fresh identical state; compare."""
    engine.reset()
    ours_ids = setup()
    result = check_then_run(engine, images(ours_ids) if callable(images) else images, **options)
    engine.reset()
    cli_ids = setup()
    untagged, deleted, errors = [], [], []
    for command in cli_commands:
        if command[0] == "rm":
            engine.cli("rm", *[cli_ids.get(arg, arg) for arg in command[1:]])
            continue
        rc, u, d, err = engine.rmi(*[cli_ids.get(arg, arg) for arg in command])
        untagged += u
        deleted += d
        if rc:
            errors.append(err)
    assert sorted(set(result["untagged"])) == sorted(set(untagged))
    assert roles(ours_ids, set(result["deleted"]) | set(result["deleted_layers"])) == roles(cli_ids, set(deleted))
    return result, errors, cli_ids


def listed(engine, image_id):
    """The image's references as the listing gives them (containerd adds <repo>@<id> digests)."""
    for image in engine.api.images(all=True):
        if image["Id"] == image_id:
            return [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"] + [
                d for d in image.get("RepoDigests") or [] if d != "<none>@<none>"]
    return []


def load(images, *tags, content="one"):
    """A loaded image with fixed content (the same ID every time on the same engine)."""
    return images.load([ImageSpec(list(tags), CONTENT + content)])[0]


# -- reference forms -----------------------------------------------------------------------------------------------
FORMS = [
    ("docker.io/library/busybox:latest", {}, ["busybox:latest"]),
    ("library/busybox", {}, ["busybox:latest"]),
    ("busybox", {"tag": "1.36"}, ["busybox:1.36"]),
    ("localhost:5000/team/app:1.2", {}, ["localhost:5000/team/app:1.2"]),
    ("team/tool:v1", {}, ["team/tool:v1"]),
]


@pytest.mark.parametrize("value, options, untagged", FORMS, ids=[f[0] for f in FORMS])
def test_reference_forms(clean_engine, images, value, options, untagged):
    image = load(images, "busybox:latest", "busybox:1.36", "localhost:5000/team/app:1.2", "team/tool:v1")
    result = check_then_run(clean_engine, [value], **options)
    assert (result["changed"], result["untagged"], result["deleted"]) == (True, untagged, [])
    assert [(entry["id"], entry["action"]) for entry in result["images"]] == [(image, "untagged")]
    assert set(untagged).isdisjoint(clean_engine.state()["images"][image])


@pytest.mark.parametrize("form", ["short", "prefix3", "full", "full-without-sha256"])
def test_id_forms_delete_the_image(clean_engine, images, form):
    image = load(images, "idform:1")
    load(images, "other:1", content="other")
    value = {"short": image[7:19], "prefix3": None, "full": image, "full-without-sha256": image[7:]}[form]
    if value is None:
        others = [i for i in clean_engine.state()["images"] if i != image]
        shortest = 4 if clean_engine.containerd_store else 1  # each store's ID-prefix rule (test_resolution.py)
        length = next(n for n in range(shortest, 64) if all(not o[7:].startswith(image[7:7 + n]) for o in others))
        value = image[7:7 + length]
    result = check_then_run(clean_engine, [value])
    assert (result["untagged"], result["deleted"]) == (["idform:1"], [image])
    assert image not in clean_engine.state()["images"]


def config_id(spec):
    """The image ID the classic store gives a loaded spec: the digest of its config."""
    with tarfile.open(fileobj=io.BytesIO(save_archive([spec]))) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    return "sha256:" + manifest[0]["Config"][: -len(".json")]


def colliding_ids(images, engine):
    """Load images until two IDs share their first 3 hex characters: (prefix, [both IDs])."""
    seen = {}
    if not engine.containerd_store:  # the ID is the config digest: find a pair offline, load only that pair
        for n in range(5000):
            spec = ImageSpec([f"amb-{n}:1"], f"{CONTENT} ambiguous {n}")
            image_id = config_id(spec)
            if image_id[7:10] in seen:
                first = seen[image_id[7:10]]
                assert sorted(images.load([first[1], spec])) == sorted([first[0], image_id])
                return image_id[7:10], sorted([first[0], image_id])
            seen[image_id[7:10]] = (image_id, spec)
    for batch in range(8):  # containerd: the ID is the digest of a manifest the engine writes
        specs = [ImageSpec([f"amb{batch}-{n}:1"], f"{CONTENT} ambiguous {batch} {n}") for n in range(40)]
        for image_id in images.load(specs):
            if image_id[7:10] in seen and seen[image_id[7:10]] != image_id:
                return image_id[7:10], sorted([seen[image_id[7:10]], image_id])
            seen[image_id[7:10]] = image_id
    raise AssertionError("no two of 320 image IDs share 3 hex characters")


def test_ambiguous_prefix_lists_the_candidates(clean_engine, images):
    prefix, candidates = colliding_ids(images, clean_engine)
    load(images, "present:1")
    before = clean_engine.state()
    result = module(clean_engine, ["present:1", prefix])
    if clean_engine.containerd_store:
        # 3 hex characters are no ID prefix for the containerd image service: a name, and none has it
        assert not result.failed and result["not_found"] == [prefix], result
        return
    assert result.failed and "ambiguous" in result["msg"] and repr(prefix) in result["msg"]
    assert all(candidate in result["msg"] for candidate in candidates)
    assert clean_engine.state() == before


def test_not_found_changes_nothing(clean_engine, images):
    load(images, "present:1")
    before = clean_engine.state()
    result = check_then_run(clean_engine, ["absent:1", "fff999", "sha256:" + "0" * 64])
    assert result["changed"] is False
    assert result["not_found"] == ["absent:1", "fff999", "sha256:" + "0" * 64]
    assert clean_engine.state() == before


@pytest.mark.parametrize("value, fragment", [
    ("", "empty reference"),
    ("Upper/Case:1", "lower-case"),
    ("app@sha256:1234", "malformed digest"),
    ("sha256:xyz", "malformed image ID"),
    ("a//b:1", "malformed path component"),
])
def test_bad_input_fails_before_any_change(clean_engine, images, value, fragment):
    load(images, "present:1")
    before = clean_engine.state()
    result = module(clean_engine, ["present:1", value])
    assert result.failed and fragment in result["msg"] and repr(value) in result["msg"]
    assert clean_engine.state() == before


def test_bad_option_values_fail(clean_engine):
    result = module(clean_engine, ["x"], containers="nuke")
    assert result.failed and "nuke" in result["msg"]
    result = module(clean_engine, ["x"], parallel=0)
    assert result.failed and "parallel=0" in result["msg"]
    result = module(clean_engine, ["x"], tag="bad tag")
    assert result.failed and "'bad tag'" in result["msg"]


# -- engine rules, the CLI as the reference ------------------------------------------------------------------------
def test_three_tags_removed_tag_by_tag(clean_engine, images):
    def setup():
        return {"img": load(images, "three:a", "three:b", "other/three:c", content="three")}

    steps = [(["three:a"], [], "untagged"), (["three:b"], [], "untagged"), (["other/three:c"], ["img"], "deleted")]
    clean_engine.reset()
    ids = setup()
    for refs, deleted, action in steps:
        result = check_then_run(clean_engine, refs)
        assert result["untagged"] == refs and result["deleted"] == [ids[r] for r in deleted]
        assert result["images"][0]["action"] == action
    # the CLI on the same state says the same, step by step
    clean_engine.reset()
    setup()
    for refs, deleted, _action in steps:
        rc, untagged, cli_deleted, _err = clean_engine.rmi(*refs)
        assert rc == 0 and untagged == refs and roles(ids, cli_deleted).count("img") == len(deleted)
    assert same_as_cli(clean_engine, setup, ["three:a", "three:b", "other/three:c"],
                       [["three:a"], ["three:b"], ["other/three:c"]])[0]["deleted"]


def test_two_repositories_by_id(clean_engine, images):
    def setup():
        return {"img": load(images, "repo-a:1", "repo-b:1", content="two repos")}

    result, errors, ids = same_as_cli(clean_engine, setup, lambda ids: [ids["img"]], [["img"]])
    assert result["changed"] is False and result["deleted"] == []
    assert result["skipped_images"] == [{"image": ids["img"], "references": listed(clean_engine, ids["img"]),
                                         "reason": "multiple_repositories", "containers": []}]
    assert errors and "referenced in multiple repositories" in errors[0]
    result, errors, ids = same_as_cli(clean_engine, setup, lambda ids: [ids["img"]], [["-f", "img"]], force=True)
    assert errors == [] and result["untagged"] == ["repo-a:1", "repo-b:1"] and result["deleted"] == [ids["img"]]


def test_digest_references_from_a_registry(clean_engine, images, registry):
    def setup():
        image = load(images, "app:src", content="pushed")
        pushed = registry.push(clean_engine, image, "team/app", "1")
        return {"img": image, "pushed": pushed}

    clean_engine.reset()
    ids = setup()
    pushed = ids["pushed"]
    name = pushed.rsplit(":", 1)[0]
    digest = next(d for d in clean_engine.api.inspect_image(ids["img"])["RepoDigests"] if d.startswith(name + "@"))
    with_tag = f"{pushed}@{digest.split('@')[1]}"
    for value in (digest, with_tag):
        result, errors, _ids = same_as_cli(clean_engine, setup, [value], [[digest]])
        assert errors == []
        if clean_engine.containerd_store:
            # containerd: a digest removal untags every tag of that repository
            assert result["untagged"] == [pushed]
        else:
            # classic: only the digest reference goes
            assert result["untagged"] == [digest]
        assert result["deleted"] == [] and result["images"][0]["action"] == "untagged"
    # removing the repository's last tag: the classic store drops its digests too
    result, errors, _ids = same_as_cli(clean_engine, setup, [pushed], [[pushed]])
    expected = [pushed] if clean_engine.containerd_store else sorted([pushed, digest])
    assert errors == [] and result["untagged"] == expected
    # and the last tag elsewhere deletes the image
    result, errors, _ids = same_as_cli(clean_engine, setup, [pushed, "app:src"], [[pushed], ["app:src"]])
    assert errors == [] and result["deleted"] == [ids["img"]]


def build_pair(images):
    parent = images.scratch(images.unique("parent"), tag="pc-parent:1")
    child = images.child("pc-parent:1", images.unique("child"), tag="pc-child:1")
    return {"parent": parent, "child": child}


def test_parent_by_id_with_a_child(clean_engine, images):
    result, errors, ids = same_as_cli(clean_engine, lambda: build_pair(images), lambda ids: [ids["parent"]],
                                      [["-f", "parent"]], force=True)
    if clean_engine.containerd_store:
        # no child conflict on the containerd image store: the parent goes, the child keeps working
        assert errors == []
        assert result["untagged"] == ["pc-parent:1"] and len(result["deleted"]) == 1
        assert result["skipped_images"] == []
    else:
        assert errors and "dependent child images" in errors[0]
        assert result["changed"] is False and result["skipped_images"][0]["reason"] == "child_images"
        assert result["images"][0]["action"] == "skipped"


def test_parent_tag_with_a_child(clean_engine, images):
    result, errors, ids = same_as_cli(clean_engine, lambda: build_pair(images), ["pc-parent:1"], [["pc-parent:1"]])
    assert errors == [] and result["untagged"] == ["pc-parent:1"]
    if clean_engine.containerd_store:
        # reported deleted, yet the listing keeps it as an untagged image for its child
        assert roles(ids, result["deleted"]) == ["layer"] and len(result["deleted"]) == 1
        assert result["skipped_images"] == []
    else:
        assert result["deleted"] == []
        assert [s["reason"] for s in result["skipped_images"]] == ["child_images"]


@pytest.mark.parametrize("prune", [True, False])
def test_child_and_parent(clean_engine, images, prune):
    flags = [] if prune else ["--no-prune"]
    result, errors, _ids = same_as_cli(clean_engine, lambda: build_pair(images), ["pc-parent:1", "pc-child:1"],
                                       [[*flags, "pc-child:1"], [*flags, "pc-parent:1"]], prune=prune)
    assert errors == []
    assert result["untagged"] == ["pc-child:1", "pc-parent:1"] and len(result["deleted"]) == 2


def test_child_prunes_its_untagged_parent(clean_engine, images):
    def setup():
        ids = build_pair(images)
        clean_engine.api.remove_image("pc-parent:1")  # the parent stays, untagged, for its child
        return ids

    result, errors, ids = same_as_cli(clean_engine, setup, ["pc-child:1"], [["pc-child:1"]])
    assert errors == [] and result["untagged"] == ["pc-child:1"]
    assert len(result["deleted"]) == 2


# -- containers --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["fail", "skip", "remove"])
def test_stopped_container(clean_engine, images, policy):
    def setup():
        image = load(images, "used:1", content="used by a stopped container")
        return {"img": image, "ctr": images.stopped_container(image)}

    if policy == "fail":
        ids = setup()
        before = clean_engine.state()
        result = module(clean_engine, ["used:1"], containers="fail")
        assert result.failed and ids["img"] in result["msg"] and ids["ctr"][:12] in result["msg"]
        assert clean_engine.state() == before
        rc, _untagged, _deleted, err = clean_engine.rmi("used:1")
        assert rc != 0 and "is using its referenced image" in err
        return
    if policy == "skip":
        clean_engine.reset()
        ids = setup()
        result = check_then_run(clean_engine, ["used:1"], containers="skip")
        assert result["changed"] is False
        assert result["skipped_images"] == [{"image": ids["img"], "references": listed(clean_engine, ids["img"]),
                                             "reason": "container",
                                             "containers": [ids["ctr"]]}]
        return
    result, errors, ids = same_as_cli(clean_engine, setup, ["used:1"], [["rm", "ctr"], ["used:1"]],
                                      containers="remove")
    assert errors == []
    assert result["containers_removed"] == [result["containers_removed"][0]]
    assert result["deleted"] == [result["images"][0]["id"]] and result["skipped_images"] == []
    assert clean_engine.state()["containers"] == {}


@pytest.mark.parametrize("policy", ["fail", "skip", "remove"])
def test_running_container(clean_engine, images, policy):
    image = images.busybox_image("janitor-busybox:run")
    container = images.running_container(image)
    before = clean_engine.state()
    if policy == "fail":
        result = module(clean_engine, ["janitor-busybox:run"], containers=policy)
        assert result.failed and container[:12] in result["msg"] and "running" in result["msg"]
    else:
        result = check_then_run(clean_engine, ["janitor-busybox:run", image], containers=policy, force=True)
        assert result["changed"] is False and result["containers_removed"] == []
        assert result["skipped_images"] == [{"image": image, "references": listed(clean_engine, image),
                                             "reason": "running_container", "containers": [container]}]
    assert clean_engine.state() == before
    rc, _untagged, _deleted, err = clean_engine.rmi("-f", image)
    assert rc != 0 and "running container" in err


def test_force_untags_a_digest_of_an_image_a_container_uses(clean_engine, images, registry):
    """classic: a tag and a digest of one repository are one reference to the engine; with a stopped container it
    refuses to untag the digest unless forced, and forced it only untags. containerd: the digest takes the tag too,
    so the image would lose its last name - the container policy decides."""
    def setup():
        image = load(images, "forced:src", content="forced untag")
        pushed = registry.push(clean_engine, image, "team/forced", "1")
        clean_engine.api.remove_image("forced:src")
        digest = next(d for d in clean_engine.api.inspect_image(image)["RepoDigests"]
                      if d.startswith(pushed.rsplit(":", 1)[0] + "@"))
        return {"img": image, "ctr": images.stopped_container(image), "digest": digest}

    clean_engine.reset()
    ids = setup()
    rc, _untagged, _deleted, err = clean_engine.rmi(ids["digest"])
    assert rc != 0 and "must force" in err.replace("must be forced", "must force")
    if clean_engine.containerd_store:
        result = check_then_run(clean_engine, [ids["digest"]], force=True, containers="skip")
        assert result["untagged"] == [] and [s["reason"] for s in result["skipped_images"]] == ["container"]
        return
    result, errors, _ids = same_as_cli(clean_engine, setup, lambda ids: [ids["digest"]], [["-f", "digest"]],
                                       force=True, containers="skip")
    assert errors == [] and result["untagged"] == [_ids["digest"]] and result["deleted"] == []
    assert result["skipped_images"] == [] and len(clean_engine.state()["containers"]) == 1


def test_one_tag_of_a_used_image_is_untagged(clean_engine, images):
    image = load(images, "shared:1", "shared:2", content="two tags, one container")
    images.stopped_container(image)
    result = check_then_run(clean_engine, ["shared:1"])
    assert result["untagged"] == ["shared:1"] and result["skipped_images"] == []


def test_diff_only_in_diff_mode(clean_engine, images):
    """Like Ansible's own modules, the result carries ``diff`` only when diff mode is on; it names what changes."""
    gone = load(images, "diffed:1", content="diff gone")
    kept = load(images, "diffed:2", "diffed-keep:1", content="diff kept")
    plain = module(clean_engine, ["diffed:1"], check=True)
    assert "diff" not in plain and plain["deleted"] == [gone]
    clean_engine.reset()
    gone = load(images, "diffed:1", content="diff gone")
    kept = load(images, "diffed:2", "diffed-keep:1", content="diff kept")
    before = {gone: sorted(listed(clean_engine, gone)), kept: sorted(listed(clean_engine, kept))}
    check = module(clean_engine, ["diffed:1", "diffed:2"], check=True, diff=True)
    real = module(clean_engine, ["diffed:1", "diffed:2"], diff=True)
    assert check["diff"] == real["diff"]
    assert real["diff"]["before"]["images"] == before and "diffed-keep:1" in before[kept]
    assert real["diff"]["after"]["images"] == {kept: sorted(listed(clean_engine, kept))}
    assert "diff" not in module(clean_engine, ["diffed-keep:1"])


@pytest.mark.parametrize("order", [(3, 1, 0, 2), (0, 2, 3, 1)], ids=["registry-last", "hub-first"])
def test_diff_after_is_what_the_listing_shows(clean_engine, images, order):
    """Tag by tag: the predicted ``after`` equals the listing (containerd moves its one listed digest around)."""
    tags = ["a/b:1", "b:1", "localhost:5000/a:1", "quay.io/x/y:1", "zz:1"]
    image = load(images, *tags, content="moving digest")
    for index in order:
        result = module(clean_engine, [tags[index]], diff=True)
        assert not result.failed and result["untagged"] == [tags[index]], result
        assert result["diff"]["after"]["images"] == {image: sorted(listed(clean_engine, image))}


# -- parallel, and the other ways to run the module ------------------------------------------------------------------
def test_parallel_equals_sequential(clean_engine, images):
    specs = [ImageSpec([f"par{n}:a", f"par{n}:b"], f"{CONTENT} parallel {n}") for n in range(8)]
    values = [f"par{n}:{t}" for n in range(8) for t in "ab"]
    results = {}
    for parallel in (1, 6):
        clean_engine.reset()
        images.load(specs)
        results[parallel] = check_then_run(clean_engine, values, parallel=parallel)
    for key in RESULT_KEYS:
        assert results[1][key] == results[6][key], key
    assert len(results[6]["deleted"]) == 8


def test_playbook_check_then_real(clean_engine, images, tmp_path):
    """One ansible-playbook run: the task in check mode, then for real (reruns are proven in-process)."""
    image = load(images, "play:1", "play:2", content="playbook")
    task = textwrap.indent(textwrap.dedent(f"""\
        janitor.docker.image_remove:
          docker_host: {clean_engine.url}
          name: [play, "play:2"]
          tag: "1"
        """), "      ")
    playbook = tmp_path / "remove.yml"
    playbook.write_text(textwrap.dedent("""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: check
              check_mode: true
              register: checked
        {task}
            - name: real
              register: removed
        {task}
        """).format(task=task))
    run = run_playbook(playbook, diff=True)
    assert run.rc == 0, run.stdout
    for key in RESULT_KEYS:
        assert run.task("check")[key] == run.task("real")[key], key
    assert run.task("real")["deleted"] == [image]


def test_pytest_ansible_localhost(clean_engine, images, localhost):
    image = load(images, "adhoc:1", content="adhoc")
    contacted = getattr(localhost, "janitor.docker.image_remove")(docker_host=clean_engine.url, images="adhoc:1")
    result = contacted["localhost"]
    assert result["changed"] is True and result["deleted"] == [image]


def test_playbook_task_with_skipped_images_is_not_an_ansible_skip(clean_engine, images, tmp_path):
    """Images left in place are listed in skipped_images; Ansible still sees a task that ran and changed."""
    kept = load(images, "held:1", content="held by a container")
    images.stopped_container(kept)
    load(images, "free:1", content="free to go")
    playbook = tmp_path / "skip.yml"
    playbook.write_text(textwrap.dedent(f"""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: remove
              janitor.docker.image_remove:
                docker_host: {clean_engine.url}
                images: ["held:1", "free:1"]
                containers: skip
        """))
    run = run_playbook(playbook)
    assert run.rc == 0, run.stdout
    (record,) = [r for r in run.results if r["task"] == "remove"]
    assert record["status"] == "ok", record
    assert record["result"]["changed"] is True
    assert [s["image"] for s in record["result"]["skipped_images"]] == [kept]
    assert "changed=1" in run.stdout and "skipped=0" in run.stdout
