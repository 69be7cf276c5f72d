# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Sizes as people write and read them.

``size_bytes`` reads a number and a unit (``"1.821 GB"``, ``"65.54kB"``, ``"15GiB"``, ``"512"``) into exact bytes
with one unit table: ``B``, decimal (SI) units ``kB`` to ``YB`` (powers of 1000, as the docker CLI prints them) and
binary (IEC) units ``KiB`` to ``YiB`` (powers of 1024), case-insensitive, the ``B`` optional. Each caller keeps its
own rules on top: how to round, what a negative or a bare number means, its error message, and the quirks of the text
it reads (``docker info`` of Docker 1.0 to 1.3 printed MiB as ``Mb``: ``_storage`` passes that as ``quirks``).

``human_size`` writes bytes for reading: decimal units like the docker CLI (1 kB = 1000 bytes), four significant
digits. Results keep exact bytes; only text meant for reading (messages, the role's summary and Markdown report, the
demo) goes through it. Pure: imports nothing of ours.
"""

from __future__ import annotations

import re
from fractions import Fraction

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")

# The one unit table: lower-case unit (with and without its B) -> bytes.
UNIT_BYTES = {"": 1, "b": 1}
UNIT_BYTES.update({prefix + binary + suffix: (1024 if binary else 1000) ** power
                   for power, prefix in enumerate("kmgtpezy", start=1) for binary in ("", "i") for suffix in ("", "b")})

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")


def size_bytes(text, quirks=None):
    """The exact bytes (a ``Fraction``) of a size written as a number and a unit, or None when ``text`` is not one.

    ``"1.5 kB"`` -> 1500, ``"1.5KiB"`` -> 1536, ``"512"`` -> 512, ``".5 mb"`` -> 500000; no sign, no exponent.
    ``quirks`` maps units, in their exact case, to the bytes they mean where they differ from the table (they are
    looked up first). Rounding to whole bytes is the caller's.
    """
    match = _SIZE.match(text)
    if not match:
        return None
    number, unit = match.groups()
    factor = (quirks or {}).get(unit) or UNIT_BYTES.get(unit.lower())
    if factor is None:
        return None
    return Fraction(number) * factor


def human_size(size):
    """``1048576`` -> ``"1.049 MB"``, ``999`` -> ``"999 B"``, ``None`` -> ``"?"``; negative sizes keep their sign."""
    if size is None:
        return "?"
    value = float(size)
    for unit in _UNITS:
        if abs(value) < 1000 or unit == _UNITS[-1]:
            break
        value /= 1000
    if unit == "B":
        return f"{int(size)} B"
    return f"{value:.4g} {unit}"  # as Docker's units.HumanSize: 999960 bytes are "1000 kB" there too
