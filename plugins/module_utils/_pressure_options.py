# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The disk-pressure options (``free_space``, ``unused_for``, ``last_used_state``), validated before connecting.

Every run reads them; only a run that uses them imports the choice itself (``_pressure``), the last-use state
(``_last_used``) and the disk measure (``_disk``), so a run by references or filters does not load that code.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ansible_collections.janitor.docker.plugins.module_utils import _statefile
from ansible_collections.janitor.docker.plugins.module_utils._errors import JanitorError
from ansible_collections.janitor.docker.plugins.module_utils._selection import (
    DURATION_FORMS,
    parse_duration,
    parse_until,
)
from ansible_collections.janitor.docker.plugins.module_utils._units import size_bytes

MEASURE_FILESYSTEM = "filesystem"
MEASURE_IMAGES = "images"

PRESSURE_ARGUMENT_SPEC = dict(
    free_space=dict(type="dict"),
    unused_for=dict(type="str"),
    last_used_state=dict(type="path"),
)

SIZE_FORMS = ("a percentage of the filesystem that holds the engine's images (\"85%\"), or a size of the images "
              "(\"20GB\", \"15GiB\", \"512MiB\", or bytes as a whole number such as 21474836480); both values of "
              "the same kind")

_PERCENT = re.compile(r"^([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*%$")  # ASCII digits only, as in sizes


# -- options ----------------------------------------------------------------------------------------------------
def _threshold(name, value):
    """``(kind, number)`` for one ``free_space`` value: ``("percent", 85.0)`` or ``("bytes", 20000000000)``."""
    option = f"free_space.{name}"
    if isinstance(value, bool) or value is None:
        raise JanitorError(f"{option}: {value!r} is not valid; use {SIZE_FORMS}")
    if isinstance(value, int):
        if value < 0:
            raise JanitorError(f"{option}: {value!r} is negative; use {SIZE_FORMS}")
        return "bytes", value
    if isinstance(value, float):
        raise JanitorError(f"{option}: {value!r} is not a whole number of bytes; use {SIZE_FORMS}")
    text = str(value).strip()
    match = _PERCENT.match(text)
    if match:
        percent = float(match.group(1))
        if percent > 100:
            raise JanitorError(f"{option}: {text!r} is more than 100%; use {SIZE_FORMS}")
        return "percent", percent
    size = size_bytes(text)
    if size is not None:
        return "bytes", int(size)  # whole bytes, rounded down
    raise JanitorError(f"{option}: {text!r} is neither a percentage nor a size; use {SIZE_FORMS} (units: B, kB, MB, "
                       f"GB, TB, PB, EB, ZB, YB - powers of 1000 - and KiB to YiB - powers of 1024)")


@dataclass(frozen=True)
class FreeSpace:
    """The validated ``free_space`` option: ``measure`` and the two thresholds (percent or bytes)."""

    measure: str
    high: float
    low: float

    def bounds(self, total):
        """``(high, low)`` in bytes; percentages are of ``total`` (low rounded down, high up: both are met only
        by a measure that is really at or below, at or above them)."""
        if self.measure == MEASURE_IMAGES:
            return int(self.high), int(self.low)
        return int(math.ceil(total * self.high / 100.0)), int(math.floor(total * self.low / 100.0))


def parse_free_space(value):
    """The FreeSpace for the option's value, None when not given; JanitorError naming the bad part."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise JanitorError(f"free_space: expected a dictionary with high and low, got {value!r}; for example "
                           f"free_space: {{high: \"85%\", low: \"80%\"}} or {{high: 20GB, low: 15GB}}")
    unknown = sorted(str(k) for k in value if k not in ("high", "low"))
    if unknown:
        raise JanitorError(f"free_space: unknown key(s) {', '.join(unknown)}; give high and low")
    missing = [k for k in ("high", "low") if value.get(k) is None]
    if missing:
        raise JanitorError(f"free_space: {' and '.join(missing)} missing; give both high and low, each {SIZE_FORMS}")
    high_kind, high = _threshold("high", value["high"])
    low_kind, low = _threshold("low", value["low"])
    if high_kind != low_kind:
        raise JanitorError(f"free_space: high {value['high']!r} and low {value['low']!r} are of different kinds; "
                           f"give both as percentages (of the filesystem) or both as sizes (of the images)")
    if low > high:
        raise JanitorError(f"free_space: low {value['low']!r} is above high {value['high']!r}; low must be at or "
                           f"below high (remove images when the measure reaches high, until it is at or below low)")
    return FreeSpace(MEASURE_FILESYSTEM if high_kind == "percent" else MEASURE_IMAGES, high, low)


def parse_unused_for(value, now):
    """The cut-off (epoch seconds) for ``unused_for``: the same forms as ``filters.until`` (its parser)."""
    if value is None:
        return None
    text = str(value).strip()
    duration = parse_duration(text) if text else None
    if duration is not None and duration < 0:
        raise JanitorError(f"unused_for: {text!r} is a negative duration; use {DURATION_FORMS}")
    try:
        return parse_until(text, now)
    except JanitorError as exc:
        reason = exc.message.split(": ", 1)[-1]
        raise JanitorError(f"unused_for: {reason}") from exc


@dataclass(frozen=True)
class Pressure:
    """The validated disk-pressure options (checked before connecting)."""

    free_space: FreeSpace = None
    unused_before: float = None  # images last used at or before this time are selected (unused_for)
    unused_for: str = ""
    state_path: str = ""

    @classmethod
    def from_params(cls, params, now):
        free_space = parse_free_space(params.get("free_space"))
        unused_for = params.get("unused_for")
        unused_before = parse_unused_for(unused_for, now)
        for option, given, does in (("free_space", free_space, "chooses the images to remove"),
                                    ("unused_for", unused_before, "selects images")):
            if given is not None and params.get("images"):
                raise JanitorError(f"{option} {does} by their last use; it cannot be combined with images (explicit "
                                   f"references). Use filters or all to choose the candidates, or remove the named "
                                   f"images in a task of their own")
        state_path = _statefile.checked_path("last_used_state", params.get("last_used_state"),
                                             "/var/lib/janitor-docker/last-used.json")
        return cls(free_space, unused_before, str(unused_for or "").strip(), state_path)

    @property
    def active(self):
        return self.free_space is not None or self.unused_before is not None

    def describe(self):
        parts = []
        if self.free_space is not None:
            unit = "%" if self.free_space.measure == MEASURE_FILESYSTEM else ""
            parts.append(f"free_space={_number(self.free_space.high)}{unit}/{_number(self.free_space.low)}{unit}")
        if self.unused_before is not None:
            parts.append(f"unused_for={self.unused_for}")
        return ",".join(parts)


def _number(value):
    return str(int(value)) if float(value).is_integer() else str(value)
