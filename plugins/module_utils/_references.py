# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Image references: a real grammar, Docker Hub normalisation, and resolution against a snapshot.

Everything here is pure: ``parse()`` validates one string before any engine call, ``resolve()`` turns what the
user wrote into ``_snapshot.Request``s the way the engine would resolve it (full ID, then reference, then ID
prefix), and reports what matches nothing under ``not_found``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ansible_collections.janitor.docker.plugins.module_utils._errors import JanitorError
from ansible_collections.janitor.docker.plugins.module_utils._snapshot import CONTAINERD, Request, repository_of

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
MAX_NAME = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*(?::[0-9]+)?"
COMPONENT_RE = re.compile(rf"^{_COMPONENT}$")
DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
FULL_ID_RE = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")
HEX_RE = re.compile(r"^(?:sha256:)?([0-9a-f]+)$")

VALID_FORMS = (
    "valid forms: an image ID prefix (hex characters; the containerd image store needs at least 4), a full ID (sha256:<64 hex> or <64 hex>), "
    "name, name:tag, name@sha256:<64 hex> or name:tag@sha256:<64 hex>, where name is [host[:port]/]path "
    "with lower-case path components (e.g. busybox, library/busybox, localhost:5000/team/app:1.2)"
)


@dataclass(frozen=True)
class Reference:
    """A parsed reference, normalised: ``domain`` is ``docker.io`` for Docker Hub, ``path`` has ``library/``."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self):
        """The familiar repository name, as the engine lists it (``busybox``, ``localhost:5000/team/app``)."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in path[len(OFFICIAL_REPO_PREFIX):]:
                path = path[len(OFFICIAL_REPO_PREFIX):]
            return path
        return f"{self.domain}/{self.path}"

    @property
    def tagged(self):
        """``name:tag`` (familiar form), or "" when there is no tag."""
        return f"{self.name}:{self.tag}" if self.tag else ""

    @property
    def digested(self):
        """``name@digest`` (familiar form), or "" when there is no digest."""
        return f"{self.name}@{self.digest}" if self.digest else ""

    def familiar(self):
        """The reference the engine looks up: the digest wins over the tag, as in the engine."""
        return self.digested or self.tagged or self.name


def _error(value, why):
    return JanitorError(f"invalid image reference {value!r}: {why}; {VALID_FORMS}", value=value)


def split_domain(name):
    """``(domain, path)`` of a name, with Docker Hub's defaults, as the engine splits it."""
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    return domain, path


def parse(value, default_tag=""):
    """Parse and validate one reference (not an ID). ``default_tag`` is added when there is neither tag nor digest.

    Raises ``JanitorError`` naming the value and the valid forms. A run parses each reference several times
    (validation, resolution, the snapshot's tags), so answers are remembered; ``Reference`` is immutable.
    """
    if isinstance(value, str) and isinstance(default_tag, str):
        return _parse_remembered(value, default_tag)
    return _parse(value, default_tag)


def _parse(value, default_tag):
    if not isinstance(value, str) or not value.strip():
        raise _error(value, "empty reference")
    if value != value.strip() or any(ch.isspace() for ch in value):
        raise _error(value, "white space is not allowed")
    remainder, at, digest = value.partition("@")
    if at:
        if not DIGEST_RE.match(digest):
            raise _error(value, f"malformed digest {digest!r} (expected sha256: and 64 lower-case hex characters)")
    tag = ""
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1:]
        if not TAG_RE.match(tag):
            raise _error(value, f"malformed tag {tag!r} (letters, digits, _, . and -, at most 128, not starting "
                                f"with . or -)")
    if not remainder:
        raise _error(value, "empty name")
    if len(remainder) > MAX_NAME:
        raise _error(value, f"name longer than {MAX_NAME} characters")
    domain, path = split_domain(remainder)
    if domain != DEFAULT_DOMAIN and not DOMAIN_RE.match(domain):
        raise _error(value, f"malformed registry host {domain!r}")
    for component in path.split("/"):
        if not COMPONENT_RE.match(component):
            why = "repository names must be lower-case" if component.lower() != component else (
                f"malformed path component {component!r}")
            raise _error(value, why)
    if FULL_ID_RE.match(remainder) and not tag and not at:
        raise _error(value, "a 64-character hex string is an image ID, not a name")
    if not tag and not digest and default_tag:
        tag = default_tag
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


_parse_remembered = functools.lru_cache(maxsize=1 << 16)(_parse)


def familiar(value):
    """The familiar form of a reference string as the engine reports it (``docker.io/library/a:1`` -> ``a:1``)."""
    return parse(value).familiar()


def validate_tag(tag):
    if not isinstance(tag, str) or not TAG_RE.match(tag):
        raise JanitorError(f"invalid tag {tag!r}: letters, digits, _, . and -, at most 128 characters, "
                           f"not starting with . or -", value=tag)
    return tag


@dataclass(frozen=True)
class ResolutionRules:
    """How one kind of image store resolves what ``DELETE /images/<x>`` names, as data (the delete rules that
    follow are the planner's ``StoreRules``), and which name it finds fastest for an inspect (``inspect_by_tag``).
    Found by experiment on the engines, the docker CLI as reference.

    Both stores look a string up as a name (``<name>:latest`` without a tag) and as an ID prefix, and both treat a
    string that is a prefix of the found image's ID as a request by ID (the whole image, moby's
    ``isImageIDPrefix``), even when the image was found by its name.
    """

    kind: str
    min_prefix: int  # the shortest hex string the store takes as an ID prefix (``sha256:`` optional)
    name_and_prefix_together: bool  # containerd: one lookup by name or ID prefix; two images -> ambiguous.
    #                                 graph driver: the name wins, the ID prefix is tried only when no name matches
    tag_with_digest_must_match: bool  # ``repo:tag@digest``: containerd untags only that tag and answers "No such
    #                                   image" when the image has no such tag; the graph driver ignores the tag
    #                                   and removes the digest reference
    digest_names_image_id: bool  # ``repo@<image ID>`` names the image for every repository of its names
    #                              (containerd: image IDs are manifest digests); the graph driver needs the listed
    #                              digest reference
    inspect_by_tag: bool  # an image is inspected faster by one of its tags than by its ID: the containerd store
    #                       finds a name with one lookup and an ID by reading every image (one of the three walks of
    #                       its store an inspect makes); the graph driver finds either at once


GRAPH_DRIVER_RESOLUTION = ResolutionRules("classic", min_prefix=1, name_and_prefix_together=False,
                                          tag_with_digest_must_match=False, digest_names_image_id=False,
                                          inspect_by_tag=False)
CONTAINERD_RESOLUTION = ResolutionRules("containerd", min_prefix=4, name_and_prefix_together=True,
                                        tag_with_digest_must_match=True, digest_names_image_id=True,
                                        inspect_by_tag=True)


def resolution_rules_for(store):
    return CONTAINERD_RESOLUTION if store == CONTAINERD else GRAPH_DRIVER_RESOLUTION


def inspect_names(snapshot):
    """``{image ID: the tag to inspect it by}`` on a store that finds a tag faster than an ID (``inspect_by_tag``);
    images without a tag, and every image on the other stores, are inspected by ID. A tag can move to another image
    after the listing: the inspect's answer names the image it found, and ``_layer_reader.LayerReader`` asks by ID
    when that is not the listed one."""
    if not resolution_rules_for(snapshot.store).inspect_by_tag:
        return {}
    return {image.id: image.tags[0] for image in snapshot.images if image.tags}


@dataclass(frozen=True)
class Resolution:
    requests: tuple = ()  # Request, in the order given, de-duplicated
    not_found: tuple = ()  # what the user wrote, for references that match nothing


def _index(snapshot):
    refs = {}
    for image in snapshot.images:
        for ref in image.references:
            refs.setdefault(ref, image.id)
    return refs


def is_id_prefix(image_id, value):
    """moby's isImageIDPrefix: ``value`` is a prefix of ``sha256:<hex>`` or of ``<hex>``."""
    return image_id.startswith(value) or image_id.split(":", 1)[-1].startswith(value)


def _id_prefix(value, rules):
    """The hex part when the store takes ``value`` as an ID prefix, else None."""
    hexmatch = HEX_RE.match(value)
    if not hexmatch or not rules.min_prefix <= len(hexmatch.group(1)) <= 64:
        return None
    return hexmatch.group(1)


def _prefix_candidates(snapshot, hexpart):
    return sorted(image.id for image in snapshot.images if image.id[len("sha256:"):].startswith(hexpart))


def _ambiguous(value, candidates, named):
    how = "as a name and an ID prefix" if named else "as an ID prefix"
    return JanitorError(
        f"image reference {value!r} is ambiguous: it names {len(candidates)} images ({', '.join(candidates)}) {how}; "
        f"give a full reference (name:tag) or more ID characters",
        value=value, candidates=candidates)


def _by_name(snapshot, reference, refs, rules):
    """``(image ID, target)`` of the image a parsed reference names, or ``(None, None)``."""
    if reference.digest:
        image = snapshot.by_id().get(reference.digest) if rules.digest_names_image_id else None
        if rules.tag_with_digest_must_match and reference.tag:
            # containerd: the digest finds the image, the tag must be one of its names; only that tag goes
            if image is not None and reference.tagged in image.tags:
                return image.id, reference.tagged
            return None, None
        target = reference.digested
        image_id = refs.get(target)
        if image_id is None and image is not None and any(repository_of(tag) == reference.name
                                                          for tag in image.tags):
            # the containerd image store answers to <repo>@<image ID> for every repository of an image's names,
            # while the listing shows only some of these digest references
            image_id = image.id
        return (image_id, target) if image_id is not None else (None, None)
    target = reference.familiar()
    image_id = refs.get(target)
    return (image_id, target) if image_id is not None else (None, None)


def find_image(snapshot, value, default_tag="latest", refs=None, rules=None):
    """``(image ID, target, by_id)`` for ``value`` the way the store resolves it, or ``None`` when it names no
    image. ``by_id``: the engine deletes the whole image (a full ID, an ID prefix, or a name that is also a prefix
    of the ID of the image it names). Raises ``JanitorError`` on bad input and on an ambiguous reference."""
    if rules is None:
        rules = resolution_rules_for(snapshot.store)
    if refs is None:
        refs = _index(snapshot)
    if not isinstance(value, str) or not value.strip():
        raise _error(value, "empty reference")
    full = FULL_ID_RE.match(value)
    if full:
        image_id = "sha256:" + full.group(1)
        return (image_id, image_id, True) if image_id in snapshot.by_id() else None
    hexpart = _id_prefix(value, rules)
    reference = None
    try:
        reference = parse(value, default_tag=default_tag)
    except JanitorError:
        if hexpart is None:
            raise
    named, target = (None, None) if reference is None else _by_name(snapshot, reference, refs, rules)
    if named is not None and not rules.name_and_prefix_together:
        hexpart = None  # the graph driver: the name wins
    candidates = _prefix_candidates(snapshot, hexpart) if hexpart is not None else []
    found = sorted(set(candidates) | ({named} if named else set()))
    if len(found) > 1:
        raise _ambiguous(value, found, named is not None)
    if not found:
        return None
    image_id = found[0]
    # the engine gets the value itself (the module adds a ``tag`` other than latest to a name): a value that is a
    # prefix of the found image's ID deletes the whole image, even when the image was found by its name
    if named == image_id and (default_tag != "latest" or not is_id_prefix(image_id, value)):
        return image_id, target, False
    return image_id, image_id, True


def resolve_one(snapshot, value, default_tag="latest", refs=None, rules=None):
    """One ``Request`` for ``value``, or ``None`` when it matches nothing. Raises ``JanitorError`` on bad input."""
    found = find_image(snapshot, value, default_tag=default_tag, refs=refs, rules=rules)
    if found is None:
        return None
    image_id, target, by_id = found
    return Request(kind="id" if by_id else "reference", target=target, image_id=image_id, given=value)


def validate(values, default_tag="latest"):
    """Check the syntax of every value without a snapshot (for errors before connecting)."""
    validate_tag(default_tag)
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise _error(value, "empty reference")
        if FULL_ID_RE.match(value) or HEX_RE.match(value):
            continue
        if value.startswith("sha256:"):
            raise _error(value, "malformed image ID (sha256: must be followed by hex characters)")
        parse(value, default_tag=default_tag)


def resolve(snapshot, values, default_tag="latest"):
    """``Resolution`` of every value against ``snapshot``; every error is raised before anything is returned."""
    validate(values, default_tag)
    refs = _index(snapshot)
    rules = resolution_rules_for(snapshot.store)
    requests = []
    seen = set()
    not_found = []
    for value in values:
        request = resolve_one(snapshot, value, default_tag=default_tag, refs=refs, rules=rules)
        if request is None:
            if value not in not_found:
                not_found.append(value)
            continue
        key = (request.kind, request.target)
        if key not in seen:
            seen.add(key)
            requests.append(request)
    return Resolution(requests=tuple(requests), not_found=tuple(not_found))


def merge(*groups):
    """One ordered list of Requests from several sources (explicit images, filters), without duplicates."""
    merged = []
    seen = set()
    for group in groups:
        for request in group:
            key = (request.kind, request.target)
            if key not in seen:
                seen.add(key)
                merged.append(request)
    return merged
