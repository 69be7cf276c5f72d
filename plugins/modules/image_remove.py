#!/usr/bin/python
# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image_remove
short_description: Remove Docker images safely, idempotently, with an exact check mode
version_added: 1.0.0
description:
  - Removes Docker images named by ID, ID prefix, name, tag or digest, following the Docker engine's own rules
    for untagging and deleting, on the classic graph-driver store and on the containerd image store.
  - The module reads the images and containers once, plans every engine request with a model of the engine's
    delete rules, and then either reports the plan (check mode) or sends it. Check mode returns the same result
    the real run returns on the same state.
  - Removing one of several references of an image only untags it. An image is deleted when its last reference
    goes, or when it is named by ID. Layers shared with other images stay.
  - Images used by containers are handled by O(containers), never by accident - a running container's image is
    never deleted.
author:
  - janitor.docker developers (@janitor-docker)
extends_documentation_fragment:
  - janitor.docker.engine
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
    details:
      - Check mode reports every result key with the value the real run then returns on the same state.
  diff_mode:
    support: full
    details:
      - The diff lists the references of every selected or deleted image, before and after. It is returned only in
        diff mode.
  idempotent:
    description: Running the module again with the same options changes nothing and reports C(changed=false).
    support: full
  platform:
    support: full
    platforms: posix
  action_group:
    membership:
      - janitor.docker.docker
options:
  images:
    description:
      - The images to remove. Each entry is one of
        an image ID prefix (V(3f2a9c); the containerd image store takes 4 to 64 hex characters, the graph-driver
        store any number);
        a full image ID, with or without V(sha256:);
        V(name), V(name:tag), V(name@sha256:<digest>) or V(name:tag@sha256:<digest>), where a name may start with a
        registry host and port (V(localhost:5000/team/app:1.2)).
      - Docker Hub names are normalised as the engine does, so V(busybox), V(library/busybox) and
        V(docker.io/library/busybox:latest) are the same reference.
      - A string is resolved as the engine resolves it - a full ID first, then a name and an ID prefix. On the
        graph-driver store a name wins over an ID prefix; on the containerd image store a hex string that is a
        name of one image and an ID prefix of another is ambiguous, an error.
      - A hex-looking name (V(cafe), V(bee)) that is also a prefix of its own image's ID removes the whole image,
        as by ID (the engine does the same). Once such a name is gone, the same string can match another image's
        ID prefix, as C(docker rmi) would; in a recurring playbook write it with its tag (V(cafe:latest)).
      - A prefix that matches several images and a malformed reference are errors, raised before anything is
        removed. A reference that matches nothing is reported under RV(not_found) and is not an error.
      - Naming a reference removes that reference (like C(docker rmi name:tag)); naming an ID removes the whole
        image with all its references (like C(docker rmi <id>)).
      - With V(name:tag@sha256:<digest>) on the graph-driver store the digest decides and the tag is ignored; on
        the containerd image store the tag must be one of that image's names and only that tag is removed.
    type: list
    elements: str
    aliases: [name]
  tag:
    description:
      - The tag used for names given without tag or digest, as in community.docker's C(docker_image_remove).
      - A tag written in the name takes precedence.
    type: str
    default: latest
  force:
    description:
      - Like C(docker rmi -f) for images named by ID in O(images) that have several tags or references in several
        repositories - without O(force=true) such an image is reported in RV(skipped_images) with the reason
        V(multiple_tags) (several tags of one repository) or V(multiple_repositories).
      - Images that O(filters) or O(all) select do not need it - they are removed as C(docker image prune) removes
        them, each reference and then the image with its last one.
      - O(force) does not decide about containers, O(containers) does. Images of running containers are never
        deleted; images of stopped containers are deleted only with O(containers=remove), after their containers.
    type: bool
    default: false
  prune:
    description:
      - Also delete untagged parent images that are left without children, as the engine does by default.
      - V(false) is the engine's C(noprune) (C(docker rmi --no-prune)).
    type: bool
    default: true
  containers:
    description:
      - What to do when a container uses an image whose last reference would be removed or that would be deleted.
        Removing one of several references of such an image is always allowed.
      - V(fail) fails the task before anything is removed, naming the images and their containers.
      - V(skip) leaves such images as they are and reports them in RV(skipped_images).
      - V(remove) removes the stopped containers that use the image, then the image. Images used by a running
        container are left as they are and reported in RV(skipped_images) (never a failure).
      - When not given, the module decides per image by what selected it. An image named in O(images) is handled
        as with V(fail), like C(docker rmi). An image that only O(filters) or O(all) selected is handled as with
        V(skip), like C(docker image prune) - the task does not fail, the image stays, and it is reported in
        RV(skipped_images) with the reason V(container) or V(running_container), so a CI host with stopped
        containers on dangling images is cleaned without failing.
      - When given, it applies to every image, whatever selected it.
      - A container that mounts an image (C(--mount type=image), Docker 28.0 and later) counts as a container that
        uses that image, on both image stores.
    type: str
    choices: [fail, skip, remove]
  parallel:
    description:
      - How many removal requests may run at the same time. Requests that depend on each other (the same image,
        a child and its parents) always run in order, so the result is the same as with V(1).
      - Over a unix socket, that many connections to the daemon are kept open during the run. The images' layers
        (see O(layer_cache)) are read with this many concurrent requests too.
      - The default, 8, removed 300 images about 15 % faster than 4 on both the classic and the containerd store
        (C(benchmarks/README.md)); lower it on a host whose disk is busy with other work.
    type: int
    default: 8
  platforms:
    description:
      - Remove only these platform variants of the images named in O(images) (C(docker rmi --platform)), each
        V(os/architecture) or V(os/architecture/variant) (V(linux/amd64), V(linux/arm/v7)). Needs Docker API 1.50
        (Docker 28.2) or newer; below it the task fails before anything is removed.
      - On the containerd image store O(force=true) is required - the engine removes that variant's content
        (manifest, configuration, layers) from every image that references it, and keeps the images and their
        names; the manifests removed are listed in RV(deleted_platforms). A platform an image does not hold fails
        the task before anything is removed.
      - The graph-driver store holds one platform per image - give one, the image's own, and the image is removed
        as without O(platforms); another platform fails the task before anything is removed.
      - Only with O(images); not with O(filters), O(all), O(free_space) or O(unused_for).
    type: list
    elements: str
  filters:
    description:
      - Select images by policy, with the engine's image filters; the selected images are removed in the same pass
        and with the same result keys as O(images), the way C(docker image prune) removes them - each reference,
        and the image with its last one, without O(force). Several filters must all hold.
      - V(dangling) (bool) - V(true) selects untagged images, V(false) tagged ones.
      - V(reference) - a glob or a list of globs (V(*) and V(?) do not match V(/); V([a-z]) classes) matched
        against each reference (V(app:1)) and its repository name (V(app)), as C(docker images --filter reference=).
        Only the matching references are removed, like C(docker rmi app:1); the image goes with its last one.
      - V(label) - V(key) or V(key=value), a string or a list; every one must hold.
      - V(label!) - V(key) or V(key=value), a string or a list; an image is selected only if none holds (an image
        without the key is selected by V(key=value)).
      - V(before) and V(since) - an image reference or ID; selects images created strictly before or after it.
      - V(until) - a duration before now (V(240h), V(90m), V(1h30m), V(10d), V(2w)) or a timestamp
        (V(2024-05-01), V(2024-05-01T12:00:00Z), Unix seconds; local time without a zone); selects images created
        at or before it, as C(docker image prune --filter until=).
      - Without O(all), filters apply to the images C(docker images) lists - tagged images and untagged images
        without child images. Untagged parent images are removed with their last child (O(prune)); on the
        containerd image store they are selected too, as its C(docker image prune) selects them.
      - Unknown filter names and malformed values fail the task before anything is removed.
    type: dict
  exclude:
    description:
      - Images that are never removed, whatever selects them (O(images), O(filters), O(all)) - each entry a
        reference (V(app:1); a name without tag, V(app), protects every tag of that repository), a glob
        (V(app:1.*), V(team/*)), or an image ID or ID prefix.
      - In globs V(*) and V(?) do not match V(/), as in the V(reference) filter - V(*:stable) does not protect
        V(registry.example.com/shop/web:stable). A glob (here or in the V(reference) filter) that matches no image but
        would match one if they did gives a warning naming it and one such image.
      - Protected images are listed in RV(images) with RV(images[].action=kept) and RV(images[].reason=excluded).
      - When the engine would delete a protected untagged parent image together with its last child (O(prune)),
        the task fails before anything is removed; set O(prune=false) to keep untagged parents.
    type: list
    elements: str
    default: []
  keep_latest:
    description:
      - Keep the N most recently created images of each repository among those O(filters) or O(all) select
        (after O(exclude)), and remove the others. V(0) keeps none.
      - An image with tags in several repositories stays when it is among the newest of any of them; with a
        V(reference) filter only its references in the repositories where it is kept stay.
      - Images without any reference belong to no repository and are not kept.
    type: int
  all:
    description:
      - Select every image no container uses, as C(docker image prune -a) (with O(filters), every such image that
        matches them). Images used by containers stay, unless O(containers) says otherwise; they are reported in
        RV(skipped_images) and in RV(images) with RV(images[].action=skipped) and RV(images[].reason=container)
        or V(running_container).
      - On the classic store untagged parent images are left to O(prune) of their last child, as the engine does;
        the containerd image store has no such dependency and they are selected too.
    type: bool
    default: false
  free_space:
    description:
      - Disk-pressure cleanup, like kubelet's image garbage collection and docuum - a dictionary with V(high) and
        V(low). When the measure is at or above V(high), remove images, least recently used first, until it is at or
        below V(low); below V(high), remove nothing. See O(last_used_state) for how the last use is known.
      - Both values are of one kind. A percentage (V("85%")) measures the use of the filesystem that holds the
        images, read on this host - the engine's data root (C(DockerRootDir)), or on the containerd image store
        containerd's root (V(/var/lib/containerd) for the system containerd of Debian's and Docker's packages, or
        the C(root) of C(/etc/containerd/config.toml), read with Python 3.11's C(tomllib) or the C(tomli) package;
        under the data root when dockerd runs its own containerd). The engine must be on this host (a unix socket
        that exists here), otherwise the task fails before anything is removed and suggests the size form. A size
        (V(20GB), V(15GiB), V(512MiB), or bytes as a whole number) measures the images' total size in the engine's
        own accounting (C(LayersSize) of C(docker system df)). V(low) must not be above V(high).
      - The candidates are the images O(filters) or O(all) select, or every image when neither is given - never an
        image a container uses (in any state), an O(exclude)d image, a O(keep_latest) survivor, or an image
        younger than C(filters.until). Children go before their parents. Combining it with O(images) is an error.
      - How many images go is decided once, from the plan and the layer accounting (each layer counted once,
        freed only when no remaining image or container needs it), not by measuring again; the set is minimal -
        stopping one image earlier would not reach V(low). When the candidates cannot bring the measure down to
        V(low), all of them are removed, RV(free_space.target_met) is V(false) and the task warns (not a failure).
    type: dict
  unused_for:
    description:
      - Select the candidates (as for O(free_space)) whose last use is older than this - a duration such as V(30d),
        V(720h) or V(2w), or a timestamp, the same forms as C(filters.until) (kubelet's C(imageMaximumGCAge)).
      - With O(free_space), only such images are candidates (a minimum idle time); alone, all of them are removed.
      - Combining it with O(images) is an error.
    type: str
  last_used_state:
    description:
      - A file on the managed host (an absolute path, for example V(/var/lib/janitor-docker/last-used.json)) that
        remembers between runs when each image was last used, as docuum does.
      - The last use of an image is the latest of its creation time, its last tag time (C(Metadata.LastTagTime) -
        a pull, load, tag or build), the created, started and finished times of the containers that use it (now,
        while one runs), and what earlier runs recorded in this file. Without the file an image whose containers
        are gone falls back to its creation or tag time. Ties go to the older image, then the smaller ID.
      - Each real run records, per image ID, the latest use its containers showed and when a run last saw a
        container on it; the file is written atomically (a temporary file renamed over it) and never in check
        mode. A missing file is the first run; an unreadable one is a warning; both start afresh, never a failure.
      - Off by default.
    type: path
  layer_cache:
    description:
      - A file on the managed host (an absolute path, for example V(/var/cache/janitor-docker/layers.json)) that
        remembers each image's layers between runs, so that a run inspects only the images it has not seen before.
      - RV(space_reclaimed) needs the layers of every image, one inspect per image; on the containerd image store
        an inspect costs more the more images there are, and those inspects are most of a dry run's time. An
        image's layers cannot change while its ID stays the same (the ID is the digest of its config, manifest or
        index); an entry is used only while the engine lists the image with the same ID and size and, on the
        containerd image store, the same platform manifests present (an index keeps its ID when one platform's
        content is swapped for another's).
      - With O(free_space) or O(unused_for) every image is still inspected (each image's last tag time comes from
        its inspect); the file is then only refreshed.
      - Written at the end of a run that read layers it did not know (or, once a day, to note that its images are
        still there), check mode included (it is the module's cache, not the engine's state), atomically (a
        temporary file renamed over it). Entries of images no run has listed for 30 days are dropped, and of the
        images a run does not list at most the 2000 seen last are kept.
      - A missing file is a cold start; an unreadable one, or a failed write, is a warning, never a failure. A
        relative path is refused before anything is read. See C(docs/space.md).
      - Off by default.
    type: path
notes:
  - O(images) accepts one string too.
  - "Deleted layers: the classic store reports the layer chain IDs it releases; the containerd image store
    reports none, so RV(deleted_layers) is empty there."
  - Only the images and containers read at the start are planned for; if another client changes them during the
    run, the engine's answers win, and the images that met a conflict are reported in RV(skipped_images) with a C(detail).
  - "O(filters), O(exclude), O(keep_latest) and O(all) are resolved against the same single read of images and
    containers as O(images), so check mode selects exactly what the real run removes. The listing gives creation
    times in whole seconds: an image created in the same second as the one named by C(before) or
    C(since) is selected by neither."
  - "Where the engine kinds disagree, one rule applies everywhere: C(until) uses the image's creation time
    (the containerd image store's own prune uses the time the image was stored locally), and
    V(label!=key=value) selects images without the key (the containerd image store's own filter does not)."
seealso:
  - module: janitor.docker.storage_info
"""

EXAMPLES = r"""
- name: Remove one tag; the image goes when it was its last reference
  janitor.docker.image_remove:
    images: myapp:1.0

- name: Remove several images, by name, digest and ID prefix
  janitor.docker.image_remove:
    images:
      - busybox                    # busybox:latest
      - localhost:5000/team/app@sha256:4b7a8d1a3c9e6f0b2d5e8a1c4f7b0e3d6a9c2f5b8e1d4a7c0f3b6e9d2a5c8f1b
      - 3f2a9c                     # an ID prefix
    containers: skip

- name: Remove an image referenced in two repositories, and the stopped containers that use it
  janitor.docker.image_remove:
    images: sha256:0d4f7a3b2c1e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a
    force: true
    containers: remove
  register: removed

- name: Remove dangling images older than ten days, check mode shows exactly which
  janitor.docker.image_remove:
    filters:
      dangling: true
      until: 10d

- name: Keep the two newest builds of every app repository, never the release images
  janitor.docker.image_remove:
    filters:
      reference: ["registry.example.com/apps/*"]
      label: built-by=ci
    exclude: ["registry.example.com/apps/*:release-*"]
    keep_latest: 2
    containers: skip

- name: Everything no container uses, except the base images (docker image prune -a, with exclusions)
  janitor.docker.image_remove:
    all: true
    filters:
      label!: keep
    exclude: [debian, "alpine:3.*"]

- name: Keep the disk that holds Docker's data root below 85 %, down to 80 %, least recently used images first
  janitor.docker.image_remove:
    free_space:
      high: "85%"
      low: "80%"
    exclude: ["registry.example.com/base/*"]
    last_used_state: /var/lib/janitor-docker/last-used.json
  register: pressure

- name: Keep the images below 20 GB (docker system df), never removing images used in the last two days
  janitor.docker.image_remove:
    free_space:
      high: 20GB
      low: 15GB
    unused_for: 2d

- name: Remove CI images nobody used for 30 days
  janitor.docker.image_remove:
    filters:
      label: built-by=ci
    unused_for: 30d
    last_used_state: /var/lib/janitor-docker/last-used.json

- name: Every night on a CI runner, remove the images built by CI; remember the layers so each run inspects only new images
  janitor.docker.image_remove:
    filters:
      label: built-by=ci
    layer_cache: /var/cache/janitor-docker/layers.json

- name: Same options as community.docker.docker_image_remove
  janitor.docker.image_remove:
    name: registry.example.com/tools/cli
    tag: "2.4"
    force: false
    prune: true
"""

RETURN = r"""
untagged:
  description:
    - The references removed, as the engine reports them (familiar form, V(busybox:latest)), sorted.
  returned: always
  type: list
  elements: str
  sample: [busybox:latest, localhost:5000/team/app@sha256:4b7a8d1a3c9e6f0b2d5e8a1c4f7b0e3d6a9c2f5b8e1d4a7c0f3b6e9d2a5c8f1b]
deleted:
  description:
    - The IDs of the images deleted (full V(sha256:) form, sorted), including untagged parents deleted with them.
  returned: always
  type: list
  elements: str
  sample: [sha256:0d4f7a3b2c1e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a]
deleted_layers:
  description:
    - The layer chain IDs the engine released (sorted). The classic store reports them; the containerd image store
      does not, so this is empty there.
  returned: always
  type: list
  elements: str
deleted_platforms:
  description:
    - With O(platforms) on the containerd image store, the platform variants whose content was removed - one entry
      per image and platform, with the manifest the engine reported deleted. The images stay.
  returned: always
  type: list
  elements: dict
  contains:
    image:
      description: The image ID.
      type: str
    platform:
      description: The platform, V(os/architecture[/variant]).
      type: str
    manifest:
      description: The digest of the platform's manifest.
      type: str
containers_removed:
  description: The IDs of the stopped containers removed because of O(containers=remove).
  returned: always
  type: list
  elements: str
skipped_images:
  description:
    - The selected images left in place (wholly or in part), and why.
    - Not called C(skipped) because Ansible reads a true C(skipped) in a task result as "the task was skipped".
  returned: always
  type: list
  elements: dict
  contains:
    image:
      description: The image ID.
      type: str
    references:
      description: Its references when the module started.
      type: list
      elements: str
    reason:
      description:
        - V(container) (stopped containers use it), V(running_container), V(child_images) (the classic store keeps
          a parent that has child images; its references may have been removed), V(multiple_tags) (named by ID,
          several tags of one repository, and O(force=false)) or V(multiple_repositories) (named by ID, references
          in several repositories, and O(force=false)).
      type: str
    containers:
      description: The IDs of the containers that use it.
      type: list
      elements: str
    detail:
      description: Only when the image changed during the run - the engine's conflict message.
      type: str
      returned: when another client changed the image during the run
not_found:
  description: The entries of O(images) that match no image, as given.
  returned: always
  type: list
  elements: str
space_reclaimed:
  description:
    - Bytes the removal frees on the engine's disk - the layers that no remaining image and no remaining container
      needs after the run, each counted once however many deleted images share it, and on the containerd image
      store also their content (compressed layer blobs, image configs and manifests). This is what the engine's own
      C(LayersSize) (C(docker system df)) drops by, and on the classic store what C(docker image prune) reports as
      reclaimed for the same images.
    - Check mode and the real run compute it the same way, from the layers of every image (C(RootFS.Layers)), their
      listed sizes and, where released layers meet or end inside other images, the history of one of those images.
      On the containerd image store the compressed content of a layer inside an image is estimated in proportion
      to the layer's unpacked size (see C(docs/space.md)).
  returned: always
  type: int
  sample: 1048576
msg:
  description:
    - One line for people, the same in check mode and the real run - references untagged, images deleted, selected
      images left in place and why (in use by containers, child images, multiple repositories, excluded,
      keep_latest), containers removed and references not found when there are any, and the space in decimal
      units as the docker CLI writes them.
  returned: success
  type: str
  sample: untagged 4, deleted 1, kept 2 (1 in use, 1 excluded), 1.049 MB reclaimed
images:
  description:
    - One entry per selected image, in the order they were named (O(filters) and O(all) - newest first), then
      the images O(filters) or O(all) selected but O(exclude) or O(keep_latest) kept.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The image ID.
      type: str
    references:
      description: Its references when the module started.
      type: list
      elements: str
    size:
      description: Its size in bytes, as listed.
      type: int
    action:
      description:
        - V(deleted), V(untagged) (some references removed, the image stays), V(skipped), V(unchanged), or
          V(kept) (selected by O(filters) or O(all), and kept by O(exclude) or O(keep_latest)).
      type: str
    rule:
      description:
        - What selected it - V(images), V(filters), V(all), V(free_space) or V(unused_for).
      type: str
    given:
      description:
        - What the user wrote - the O(images) entry, or the filters (V(dangling=true,until=10d)).
      type: str
    reason:
      description:
        - For V(skipped), the reason in RV(skipped_images). For V(kept), V(excluded) or V(keep_latest); with
          O(free_space) or O(unused_for) also V(container) (a container uses it), V(recently_used) (used within
          O(unused_for)), V(child_images) (a parent whose children stay) or V(other_references) (a V(reference)
          filter selected only some of its references).
      type: str
      returned: when skipped or kept
    last_used:
      description:
        - With O(free_space) or O(unused_for), for each image removed by them and each image kept as
          V(recently_used) - its last use (UTC, V(2024-05-01T12:00:00Z)); see O(last_used_state).
      type: str
      returned: when removed or kept by free_space or unused_for
    by:
      description: For V(excluded), the O(exclude) entry that protected it.
      type: str
      returned: when excluded
    repository:
      description: For V(keep_latest), the repository in which it is among the newest.
      type: str
      returned: when kept by keep_latest
    containers:
      description: For V(container) and V(running_container), the IDs of the containers that use it.
      type: list
      elements: str
      returned: when skipped for its containers
diff:
  description: The references of each selected or deleted image, before and after.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: C(images) - image ID to its sorted references, before.
      type: dict
    after:
      description: C(images) - image ID to its sorted references, after; deleted images are absent.
      type: dict
free_space:
  description:
    - With O(free_space), the measure and what the run did to it, in bytes. RV(free_space.used_after) is the measure
      before minus what the deleted images free in the layer accounting - in check mode the prediction, in a real
      run the same computation from the engine's answers.
  returned: when O(free_space) is given
  type: dict
  contains:
    measure:
      description: V(filesystem) (O(free_space) in percent) or V(images) (sizes).
      type: str
    path:
      description: The directory whose filesystem was measured - the engine's data root (C(DockerRootDir)), or
        containerd's root on the containerd image store; the data root for the V(images) measure.
      type: str
    total:
      description: The filesystem's size; V(null) for the V(images) measure.
      type: int
    high:
      description: The V(high) threshold in bytes (a percentage of RV(free_space.total), rounded up).
      type: int
    low:
      description: The V(low) threshold in bytes (a percentage of RV(free_space.total), rounded down).
      type: int
    used_before:
      description: The measure when the module started (filesystem - its size minus the space available).
      type: int
    used_after:
      description: The measure after the removal.
      type: int
    target_met:
      description:
        - V(true) when the measure was below V(high) or is now at or below V(low); V(false) when the candidates
          were not enough (the task warns).
      type: bool
  sample: {measure: filesystem, path: /var/lib/docker, total: 107374182400, high: 91268055040, low: 85899345920,
           used_before: 93000000000, used_after: 85100000000, target_met: true}
"""

import traceback  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.janitor.docker.plugins.module_utils import (  # noqa: E402
    _errors,
    _pressure_options,
    _remove,
    _selection,
    _transport,
)


def main():
    argument_spec = _transport.engine_argument_spec(
        images=dict(type="list", elements="str", aliases=["name"]),
        tag=dict(type="str", default="latest"),
        force=dict(type="bool", default=False),
        prune=dict(type="bool", default=True),
        containers=dict(type="str", choices=["fail", "skip", "remove"]),
        parallel=dict(type="int", default=8),
        platforms=dict(type="list", elements="str"),
        layer_cache=dict(type="path"),
        **_selection.SELECTION_ARGUMENT_SPEC,
        **_pressure_options.PRESSURE_ARGUMENT_SPEC,
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    _transport.guard_secrets(module)
    remover = _remove.ImageRemover(module.params, check_mode=module.check_mode, diff=module._diff, warn=module.warn)
    try:
        result = remover.run()
    except _errors.ExecutionError as exc:
        module.fail_json(msg=exc.message, **remover.finish(dict(exc.result)))
    except _errors.JanitorError as exc:
        module.fail_json(msg=exc.message, **exc.details)
    except Exception as exc:  # noqa: BLE001 - the last net: a message, never a bare traceback
        module.fail_json(msg=_errors.unforeseen(exc, "image_remove"), exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
