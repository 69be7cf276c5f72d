"""Stand-in Python interpreter that measures the module process: peak memory and wall time.

``run.py`` points ``ANSIBLE_PYTHON_INTERPRETER`` at a two-line shell shim that runs this script. Ansible then
starts the module (its AnsiballZ wrapper runs the module in the same process) as a child of this script, which
waits for it with ``wait4`` and appends one JSON line to ``$JANITOR_BENCH_RSS_FILE``: the child's peak resident
set size (``ru_maxrss``), its wall, user and system time. Arguments, standard input and output pass through
unchanged, and the exit code is the child's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main() -> int:
    real = os.environ["JANITOR_BENCH_PYTHON"]
    started = time.perf_counter()
    child = subprocess.Popen([real, *sys.argv[1:]])  # pylint: disable=consider-using-with
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    record = {
        "argv": [os.path.basename(a) for a in sys.argv[1:2]],
        "max_rss_kib": usage.ru_maxrss,
        "wall_seconds": round(wall, 4),
        "user_seconds": round(usage.ru_utime, 4),
        "system_seconds": round(usage.ru_stime, 4),
        "exit_code": child.returncode,
    }
    with open(os.environ["JANITOR_BENCH_RSS_FILE"], "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
