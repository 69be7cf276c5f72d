# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Sizes as a person reads them: decimal units like the docker CLI (1 kB = 1000 bytes), four significant digits.

Results keep exact bytes; only text meant for reading (messages, the role's summary and Markdown report, the demo)
goes through ``human_size``. Pure: imports nothing of ours.
"""

from __future__ import annotations

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


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
