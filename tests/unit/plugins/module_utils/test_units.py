# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.janitor.docker.plugins.module_utils._units import human_size


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
