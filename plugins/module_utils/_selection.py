# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The selection: ``images`` (resolved by ``_references``), engine-style image filters, ``exclude``,
``keep_latest`` and ``all`` -> Requests.

``Selection(params)`` validates every selection option once, before connecting; ``Selection.resolve(snapshot)``
is pure and reads nothing but the snapshot, so check mode and the real run select the same images from the same
engine state, and the selection is tested without a daemon. ``select(snapshot, params, now)`` is the rules alone.

Semantics (the engine's, on one snapshot):

* Without ``all``, filters look at the images ``docker images`` lists: every image with a reference, and untagged
  images without child images. Untagged intermediate images (parents of other images) are hidden, as on the
  engine; they go with their last child when ``prune`` is on. With ``all``, every image not used by a container
  is a candidate (``docker image prune -a``), still without the intermediate images, which the engine removes
  through their children.
* ``reference`` globs follow Go's ``path.Match`` (``*`` and ``?`` never match ``/``) against each reference in its
  familiar form and against its repository name, like ``docker images --filter reference=``. Only the matching
  references are requested (other tags stay).
* ``label``: every value must hold (``key`` present, or ``key=value`` equal). ``label!``: no value may hold.
* ``before`` / ``since``: created strictly before / after the named image (the listing has whole seconds: an
  image created in the same second as the named one is never selected by either).
* ``until``: created at or before now minus a duration (``240h``, ``10d``, ``2w``, ``1h30m``) or a timestamp.
* ``exclude`` protects whole images (by ID or ID prefix, reference, or glob) from every rule. ``keep_latest: N``
  keeps, per repository, the N most recently created images among those still selected after ``exclude``.
"""

from __future__ import annotations

import calendar
import re
import time

from ansible_collections.janitor.docker.plugins.module_utils import _references
from ansible_collections.janitor.docker.plugins.module_utils._errors import JanitorError
from ansible_collections.janitor.docker.plugins.module_utils._planner import rules_for
from ansible_collections.janitor.docker.plugins.module_utils._snapshot import Request, repository_of

SELECTION_ARGUMENT_SPEC = dict(
    filters=dict(type="dict"),
    exclude=dict(type="list", elements="str", default=[]),
    keep_latest=dict(type="int"),
    all=dict(type="bool", default=False),
)

FILTER_NAMES = ("before", "dangling", "label", "label!", "reference", "since", "until")

KEPT_EXCLUDED = "excluded"
KEPT_LATEST = "keep_latest"

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                 "h": 3600.0, "d": 86400.0, "w": 604800.0}
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2})(?::(\d{2})(?::(\d{2})(\.\d{1,9})?)?)?)?"
    r"(Z|z|[+-]\d{2}:\d{2})?$"
)
_UNIX = re.compile(r"^(\d+)(?:\.(\d{1,9}))?$")
_LABEL_KEY = re.compile(r"^[^=\s]+$")

DURATION_FORMS = ("a duration such as 240h, 90m, 1h30m, 10d or 2w; a timestamp such as 2024-05-01, "
                  "2024-05-01T12:00:00Z or 2024-05-01T12:00:00+02:00 (local time without a zone); "
                  "or Unix seconds such as 1714564800")


# -- exclude and globs -------------------------------------------------------------------------------------
def _check_exclude(text):
    """Refuse an ``exclude`` entry that can never match: it would protect nothing while the user believes it does."""
    if any(c.isspace() for c in text):
        raise JanitorError(f"exclude: {text!r} can never match an image (references and IDs hold no spaces)")
    if _is_glob(text) or _references.HEX_RE.match(text):
        return
    try:
        _references.parse(text)
    except JanitorError as exc:
        raise JanitorError(f"exclude: {text!r} is neither an image reference, an image ID nor a glob, so it would "
                           f"protect nothing ({exc.message})") from exc


def _exclude_key(text):
    """The reference (``app:1``, ``app@sha256:...``) or repository (``app``) an exclude entry names, in the form the
    snapshot lists it, or None for a hex string that is no valid name (an ID)."""
    try:
        reference = _references.parse(text)
    except JanitorError:
        return None
    return reference.familiar()


def _is_glob(text):
    return any(c in text for c in "*?[\\")


def compile_glob(pattern, option="filters.reference", cross_slash=False):
    """A compiled regex matching what Go's ``path.Match(pattern, s)`` matches; JanitorError on a bad pattern.
    ``cross_slash``: ``*`` and ``?`` match ``/`` too (only to explain a pattern that matches nothing)."""
    out = []
    i = 0
    n = len(pattern)

    def bad(why):
        return JanitorError(
            f"{option}: {pattern!r} is not a valid glob ({why}); use * and ? (they do not match /), [abc], [a-z] "
            f"or [^a-z] classes, and \\ to escape a special character"
        )

    while i < n:
        c = pattern[i]
        if c == "*":
            out.append(".*" if cross_slash else "[^/]*")
            i += 1
        elif c == "?":
            out.append("." if cross_slash else "[^/]")
            i += 1
        elif c == "\\":
            if i + 1 >= n:
                raise bad("it ends with an escape character")
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "[":
            i += 1
            negate = i < n and pattern[i] == "^"
            if negate:
                i += 1
            ranges = []
            while True:
                if i >= n:
                    raise bad("a [ class is not closed")
                if pattern[i] == "]" and ranges:
                    i += 1
                    break
                lo, i = _class_char(pattern, i, bad)
                hi = lo
                if i < n and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1, bad)
                    if hi < lo:
                        raise bad(f"the range {lo}-{hi} is reversed")
                ranges.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
            out.append(("[^/" if negate else "[") + "".join(ranges) + "]")
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _class_char(pattern, i, bad):
    if i >= len(pattern):
        raise bad("a [ class is not closed")
    c = pattern[i]
    if c in "-]":
        raise bad(f"{c!r} must be escaped inside a [ class")
    if c == "\\":
        if i + 1 >= len(pattern):
            raise bad("it ends with an escape character")
        return pattern[i + 1], i + 2
    return c, i + 1


def reference_matches(regexes, reference):
    """``docker images --filter reference=``: the familiar reference, or else its repository name, matches."""
    name = repository_of(reference)
    return any(rx.match(reference) or rx.match(name) for rx in regexes)


# -- time ---------------------------------------------------------------------------------------------------
def parse_duration(text):
    """Seconds for a Go-style duration with days and weeks added (``1h30m``, ``10d``, ``2w``), else None."""
    body = text.strip()
    sign = 1.0
    if body[:1] in ("+", "-"):
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if not body or body == "0":
        return None
    pos = 0
    total = 0.0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if not match:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return sign * total


def parse_until(value, now):
    """The cut-off time (epoch seconds) for ``until``: now minus a duration, or an absolute time."""
    text = str(value).strip()
    duration = parse_duration(text) if text else None
    if duration is not None:
        return now - duration
    match = _TIMESTAMP.match(text)
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        try:
            fields = (int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
            if not (1 <= fields[1] <= 12 and 1 <= fields[2] <= 31 and fields[3] < 24 and fields[4] < 60
                    and fields[5] < 61):
                raise ValueError("out of range")
            if zone is None:
                seconds = time.mktime(fields + (0, 0, -1))
            else:
                seconds = calendar.timegm(fields + (0, 0, 0))
                if zone not in ("Z", "z"):
                    offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
                    seconds -= offset if zone[0] == "+" else -offset
        except (ValueError, OverflowError) as exc:
            raise JanitorError(f"filters.until: {text!r} is not a valid time ({exc}); use {DURATION_FORMS}") from exc
        return seconds + (float(fraction) if fraction else 0.0)
    match = _UNIX.match(text)
    if match:
        return float(text)
    raise JanitorError(f"filters.until: {text!r} is neither a duration nor a timestamp; use {DURATION_FORMS}")


# -- validation ---------------------------------------------------------------------------------------------
def _as_list(name, value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise JanitorError(f"filters.{name}: {item!r} is not a string; give a string or a list of strings")
        text = str(item).strip()
        if not text:
            raise JanitorError(f"filters.{name}: an empty value is not allowed")
        out.append(text)
    return out


def _as_bool(name, value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise JanitorError(f"filters.{name}: {value!r} is not a boolean; use true or false")


def _labels(name, value):
    checks = []
    for text in _as_list(name, value):
        key, eq, wanted = text.partition("=")
        if not _LABEL_KEY.match(key):
            raise JanitorError(f"filters.{name}: {text!r} is not a label condition; use key or key=value "
                               f"(the key not empty, without spaces)")
        checks.append((key, wanted if eq else None))
    return checks


def _single(name, value):
    values = _as_list(name, value)
    if len(values) != 1:
        raise JanitorError(f"filters.{name}: give exactly one value, not {len(values)}")
    return values[0]


class _Policy:
    """The validated options."""

    def __init__(self, params, now):
        filters = params.get("filters")
        if filters is None:
            filters = {}
        if not isinstance(filters, dict):
            raise JanitorError(f"filters: expected a dictionary of filter names, got {filters!r}")
        unknown = sorted(str(k) for k in filters if k not in FILTER_NAMES)
        if unknown:
            raise JanitorError(f"filters: unknown filter name(s) {', '.join(unknown)}; valid filters: "
                               f"{', '.join(FILTER_NAMES)}")
        self.filters = {k: v for k, v in filters.items() if v is not None}
        self.all = bool(params.get("all"))
        self.dangling = _as_bool("dangling", self.filters["dangling"]) if "dangling" in self.filters else None
        self.patterns = _as_list("reference", self.filters.get("reference"))
        self.reference_rx = [compile_glob(p) for p in self.patterns]
        self.labels = _labels("label", self.filters.get("label"))
        self.not_labels = _labels("label!", self.filters.get("label!"))
        self.before = _single("before", self.filters["before"]) if "before" in self.filters else None
        self.since = _single("since", self.filters["since"]) if "since" in self.filters else None
        self.until = None
        if "until" in self.filters:
            self.until = parse_until(_single("until", self.filters["until"]), now)
        keep = params.get("keep_latest")
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 0):
            raise JanitorError(f"keep_latest: {keep!r} is not valid; use a whole number, 0 or more "
                               f"(the images to keep per repository)")
        self.keep_latest = keep
        if keep is not None and not (self.filters or self.all):
            raise JanitorError("keep_latest applies to the images filters or all select; give filters (for example "
                               "reference: myapp) or all: true with it")
        exclude = params.get("exclude") or []
        if isinstance(exclude, str):
            exclude = [exclude]
        self.exclude = []
        for item in exclude:
            text = str(item).strip()
            if not text:
                raise JanitorError("exclude: an empty value is not allowed; give references, globs or image IDs")
            _check_exclude(text)
            self.exclude.append(text)
        self.exclude_rx = [(text, compile_glob(text, "exclude")) for text in self.exclude if _is_glob(text)]
        # a name without tag protects every reference in that repository, as reference= would select them all
        self.exclude_refs = {}
        for text in self.exclude:
            if not _is_glob(text):
                key = _exclude_key(text)
                if key is not None:
                    self.exclude_refs[key] = text
        self.exclude_hex = [text for text in self.exclude if _references.HEX_RE.match(text)]

    @property
    def active(self):
        return bool(self.filters) or self.all

    def describe(self, patterns=None):
        """``dangling=true,label=a`` — the filters as given, for ``given`` (only ``patterns`` of ``reference``)."""
        parts = []
        for name in FILTER_NAMES:
            if name not in self.filters:
                continue
            value = self.filters[name]
            if name == "reference" and patterns is not None:
                value = patterns
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, bool):
                    item = str(item).lower()
                parts.append(f"{name}={item}")
        if self.all:
            parts.insert(0, "all=true")
        return ",".join(parts)


# -- the snapshot, indexed once ----------------------------------------------------------------------------
class _Index:
    def __init__(self, snapshot):
        self.snapshot = snapshot
        self.by_id = snapshot.by_id()
        self.child_count = {}
        for image in snapshot.images:
            if image.parent:
                self.child_count[image.parent] = self.child_count.get(image.parent, 0) + 1

    def intermediate(self, image):
        """Untagged and a parent: hidden from ``docker images`` and left to ``prune`` of its last child."""
        return not image.references and self.child_count.get(image.id, 0) > 0


def _named_image(snapshot, text, option):
    """The image ``before``/``since`` names (a reference, ID or ID prefix, resolved as the engine resolves it)."""
    try:
        found = _references.find_image(snapshot, text)
    except JanitorError as exc:
        raise JanitorError(f"{option}: {exc.message}") from exc
    if found is None:
        raise JanitorError(f"{option}: no such image {text!r}")
    return snapshot.by_id()[found[0]]


def _label_ok(image, checks, negate):
    labels = image.label_dict if image.labels else {}
    for key, wanted in checks:
        holds = key in labels and (wanted is None or labels[key] == wanted)
        if holds == negate:
            return False
    return True


def _matching_references(image, policy):
    """The references the ``reference`` filter asks to remove: matching tags, and matching digests of
    repositories in which no tag of this image is removed (removing a repository's last tag takes its digests)."""
    tags = [t for t in image.tags if reference_matches(policy.reference_rx, t)]
    tag_repos = {repository_of(t) for t in tags}
    digests = [d for d in image.digests
               if reference_matches(policy.reference_rx, d) and repository_of(d) not in tag_repos]
    return tags + digests


def _excluded_by(image, policy):
    """The exclude entry protecting this image, or None."""
    if not policy.exclude:
        return None
    for ref in image.references:
        for key in (ref, repository_of(ref)):
            if key in policy.exclude_refs:
                return policy.exclude_refs[key]
    for text in policy.exclude_hex:
        if _references.is_id_prefix(image.id, text):
            return text
    for text, rx in policy.exclude_rx:
        if any(rx.match(ref) or rx.match(repository_of(ref)) for ref in image.references):
            return text
    return None


def _entry(image, rule, reason, given, **extra):
    entry = {"id": image.id, "references": list(image.references), "rule": rule, "reason": reason,
             "given": given}
    entry.update(extra)
    return entry


def _select(snapshot, policy):
    """``(requests, kept)`` for the rule options (``filters``, ``exclude``, ``keep_latest``, ``all``).

    ``requests``: ``Request`` objects (kind ``reference`` for the ``reference`` filter, else ``id``), newest image
    first. ``kept``: dicts ``{id, references, rule, reason, given}`` for images the filters selected but that stay:
    reason ``excluded`` (with ``by``) or ``keep_latest`` (with ``repository``).
    """
    if not policy.active:
        return [], []
    index = _Index(snapshot)
    before = _named_image(snapshot, policy.before, "filters.before").created if policy.before else None
    since = _named_image(snapshot, policy.since, "filters.since").created if policy.since else None
    rule = "filters" if policy.filters else "all"
    given = policy.describe()
    # the containerd store's image prune selects untagged intermediate images like any other (a parent is no
    # obstacle to deleting them there) and walks no parents; the graph driver's leaves them to its parent walk
    skip_intermediate = rules_for(snapshot.store).image_prune_walks_parents

    selected = []  # (image, references or None for the whole image)
    kept = []
    for image in snapshot.images:
        if skip_intermediate and index.intermediate(image):
            continue
        if policy.dangling is not None and image.dangling != policy.dangling:
            continue
        if before is not None and not image.created < before:
            continue
        if since is not None and not image.created > since:
            continue
        if policy.until is not None and not image.created <= policy.until:
            continue
        if policy.labels and not _label_ok(image, policy.labels, False):
            continue
        if policy.not_labels and not _label_ok(image, policy.not_labels, True):
            continue
        refs = None
        if policy.reference_rx:
            refs = _matching_references(image, policy)
            if not refs:
                continue
        protector = _excluded_by(image, policy)
        if protector is not None:
            kept.append(_entry(image, rule, KEPT_EXCLUDED, given, by=protector))
            continue
        selected.append((image, refs))

    if policy.keep_latest is not None:
        selected, latest = _keep_latest(selected, policy.keep_latest)
        kept.extend(_entry(image, rule, KEPT_LATEST, given, repository=repo) for image, repo in latest)

    selected.sort(key=lambda pair: (-pair[0].created, pair[0].id))
    requests = []
    for image, refs in selected:
        if refs is None:
            requests.append(Request("id", image.id, image.id, given=given, rule=rule))
        else:
            for ref in refs:
                name = repository_of(ref)
                patterns = [p for p, rx in zip(policy.patterns, policy.reference_rx) if rx.match(ref) or rx.match(name)]
                requests.append(Request("reference", ref, image.id, given=policy.describe(patterns), rule=rule))
    kept.sort(key=lambda entry: (entry["reason"], entry["id"]))
    return requests, kept


def _keep_latest(selected, count):
    """Per repository, the ``count`` newest selected images stay. A whole-image selection stays entirely when
    kept in any of its repositories; a reference selection keeps only its references in that repository."""
    by_repo = {}
    for position, (image, refs) in enumerate(selected):
        repos = {repository_of(r) for r in (refs if refs is not None else image.references)}
        for repo in repos:
            by_repo.setdefault(repo, []).append(position)
    keep_repos = {}  # position -> set of repositories in which it is kept
    for repo, positions in by_repo.items():
        positions.sort(key=lambda p: (-selected[p][0].created, selected[p][0].id))
        for position in positions[:count]:
            keep_repos.setdefault(position, set()).add(repo)
    remaining = []
    latest = []
    for position, (image, refs) in enumerate(selected):
        repos = keep_repos.get(position)
        if not repos:
            remaining.append((image, refs))
            continue
        for repo in sorted(repos):
            latest.append((image, repo))
        if refs is None:
            continue
        rest = [r for r in refs if repository_of(r) not in repos]
        if rest:
            remaining.append((image, rest))
    return remaining, latest


def slash_warnings(snapshot, policy):
    """A warning for each ``exclude`` glob or ``reference`` pattern that matches no image but would match one if
    ``*`` and ``?`` crossed ``/`` (``*:stable`` and ``registry.example.com/shop/web:stable``), naming the pattern
    and one such reference. A pattern that simply has nothing to match today is normal: no warning."""
    patterns = [("filters.reference", p, rx) for p, rx in zip(policy.patterns, policy.reference_rx)]
    patterns += [("exclude", t, rx) for t, rx in policy.exclude_rx]
    patterns = [(option, pattern, rx) for option, pattern, rx in patterns if "*" in pattern or "?" in pattern]
    if not patterns:
        return []
    refs = sorted({ref for image in snapshot.images for ref in image.references})
    warnings = []
    for option, pattern, rx in patterns:
        if any(reference_matches([rx], ref) for ref in refs):
            continue
        wide = compile_glob(pattern, option, cross_slash=True)
        example = next((ref for ref in refs if reference_matches([wide], ref)), None)
        if example is not None:
            warnings.append(f"{option}: {pattern!r} matches no image: * and ? do not match '/' (as in docker images "
                            f"--filter reference=), so it does not match {example!r}; write the path parts out "
                            f"(for example one */ per path level) to match such images")
    return warnings


class Selected:
    """What a selection chose on one snapshot: ``requests`` (``images`` first, then the rules, de-duplicated),
    ``kept`` (images a rule or ``images`` selected that stay: ``excluded``, ``keep_latest``), ``not_found`` (the
    ``images`` entries that name nothing), ``protected`` ({image ID: the exclude entry}, for the planner: no
    path may delete them, not even the prune of an untagged parent) and ``warnings`` (patterns that match nothing
    only because ``*`` stops at ``/``)."""

    def __init__(self, requests, kept, not_found, protected, warnings=()):
        self.requests = list(requests)
        self.kept = list(kept)
        self.not_found = list(not_found)
        self.protected = dict(protected)
        self.warnings = list(warnings)


class Selection:
    """The selection options (``images``, ``tag``, ``filters``, ``exclude``, ``keep_latest``, ``all``), validated
    once from the module parameters before connecting; ``resolve(snapshot)`` applies them to a snapshot."""

    def __init__(self, params, now=None):
        self.values = list(params.get("images") or [])
        self.tag = params.get("tag", "latest")
        _references.validate(self.values, default_tag=self.tag)
        self.policy = _Policy(params, time.time() if now is None else now)

    def resolve(self, snapshot):
        resolution = _references.resolve(snapshot, self.values, default_tag=self.tag)
        protected = {}
        if self.policy.exclude:
            for image in snapshot.images:
                protector = _excluded_by(image, self.policy)
                if protector is not None:
                    protected[image.id] = protector
        named = []
        kept = {}
        by_id = snapshot.by_id()
        for request in resolution.requests:
            if request.image_id not in protected:
                named.append(request)
            elif request.image_id not in kept:
                kept[request.image_id] = _entry(by_id[request.image_id], request.rule, KEPT_EXCLUDED, request.given,
                                                by=protected[request.image_id])
        selected, rule_kept = _select(snapshot, self.policy)
        return Selected(_references.merge(named, selected), list(kept.values()) + rule_kept, resolution.not_found,
                        protected, slash_warnings(snapshot, self.policy))


def annotate(result, plan, kept):
    """Name, in ``result["images"]``, the rule that selected each image (from the plan) and why it was skipped, and
    add the images the selection kept (``action: kept``). Check mode and the real run go through here alike."""
    by_id = plan.snapshot.by_id()
    reasons = {}
    for entry in result.get("skipped_images") or ():
        reasons.setdefault(entry["image"], entry)
    for entry in result.get("images") or ():
        origin = plan.origin.get(entry["id"])
        if origin is not None:
            entry["rule"], entry["given"] = origin
        if entry["id"] in reasons:
            skipped = reasons[entry["id"]]
            entry["reason"] = skipped["reason"]
            if skipped.get("containers"):
                entry["containers"] = list(skipped["containers"])
    listed = {entry["id"] for entry in result.get("images") or ()}
    for item in kept:
        if item["id"] in listed:
            continue  # also selected by another rule (``images``): its outcome is already reported
        listed.add(item["id"])
        image = by_id.get(item["id"])
        entry = {"id": item["id"], "references": list(item["references"]), "size": image.size if image else 0,
                 "action": "kept"}
        entry.update({k: v for k, v in item.items() if k not in ("id", "references")})
        result.setdefault("images", []).append(entry)
    return result
