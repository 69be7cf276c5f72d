# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark-only module: takes image_remove's arguments and returns a recorded image_remove result unchanged.

It does no work of its own, so its time minus the no-op row is what Ansible itself spends on passing that many
arguments in and that large a result out (templating, argument checks, scrubbing, JSON, the controller's handling).
It is not part of the collection: the benchmark finds it through ANSIBLE_LIBRARY.
"""

from __future__ import annotations

import json

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            images=dict(type="list", elements="str"),
            containers=dict(type="str"),
            force=dict(type="bool", default=False),
            filters=dict(type="dict"),
            layer_cache=dict(type="path"),
            result_file=dict(type="path", required=True),
        ),
        supports_check_mode=True,
    )
    with open(module.params["result_file"], encoding="utf-8") as handle:
        result = json.load(handle)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
