# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.janitor.docker.plugins.module_utils._units import UNIT_BYTES, human_size, size_bytes


@pytest.mark.parametrize("size, text", [
    (0, "0 B"),
    (999, "999 B"),
    (1000, "1 kB"),
    (1048576, "1.049 MB"),  # a MiB is not "1 MB": decimal units, as docker image ls prints them
    (12_582_912, "12.58 MB"),
    (7_340_032, "7.34 MB"),
    (999_960, "1000 kB"),  # Docker's units.HumanSize prints the same four digits
    (5 * 10 ** 9, "5 GB"),
    (3 * 10 ** 15, "3 PB"),
    (-2048, "-2.048 kB"),
    (None, "?"),
])
def test_human_size_is_decimal_like_the_docker_cli(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize("text, size", [
    ("0", 0),
    ("512", 512),
    ("512B", 512),
    ("1 kB", 1000),
    ("1K", 1000),
    ("1.821 GB", 1_821_000_000),
    ("65.54kB", 65_540),
    (" 7.44 GB ", 7_440_000_000),
    (".5 mb", 500_000),
    ("1.5 KiB", 1536),
    ("15GiB", 15 * 2 ** 30),
    ("10 gib", 10 * 2 ** 30),
    ("1 Mi", 2 ** 20),
    ("2PB", 2 * 10 ** 15),
    ("1 YB", 10 ** 24),
    ("1 YiB", 2 ** 80),
    ("1.5B", Fraction(3, 2)),  # exact: rounding is the caller's
])
def test_size_bytes_is_exact(text, size):
    assert size_bytes(text) == size


@pytest.mark.parametrize("text", ["", " ", "GB", "-1 GB", "+1GB", "1e3", "1.2.3 GB", "1,5 GB", "5.", "1 bb", "1 KiBB",
                                  "12 parsecs", "1 G B", "N/A", "85%", "\u0663GB"])
def test_size_bytes_rejects_what_is_not_a_number_and_a_unit(text):
    assert size_bytes(text) is None


def test_quirks_are_exact_case_and_come_first():
    old_docker = {"Mb": 1024 ** 2}
    assert size_bytes("291.5 Mb", old_docker) == 305_659_904
    assert size_bytes("291.5 MB", old_docker) == 291_500_000
    assert size_bytes("291.5 mb", old_docker) == 291_500_000
    assert size_bytes("291.5 Mb") == 291_500_000


def test_one_table_of_decimal_and_binary_units():
    for power, prefix in enumerate("KMGTPEZY", start=1):
        for unit in (prefix, prefix + "B", prefix.lower() + "b"):
            assert size_bytes(f"3 {unit}") == 3 * 1000 ** power, unit
        for unit in (prefix + "i", prefix + "iB", prefix.lower() + "ib"):
            assert size_bytes(f"3 {unit}") == 3 * 1024 ** power, unit
    assert set(UNIT_BYTES) == {"", "b"} | {p + i + b for p in "kmgtpezy" for i in ("", "i") for b in ("", "b")}


@given(st.integers(0, 10 ** 12), st.integers(0, 9999), st.sampled_from(sorted(UNIT_BYTES)), st.sampled_from(["", " "]))
def test_size_bytes_is_the_number_times_the_unit(whole, fraction, unit, space):
    text = f"{whole}.{fraction:04d}{space}{unit.upper()}"
    assert size_bytes(text) == Fraction(whole * 10000 + fraction, 10000) * UNIT_BYTES[unit]
