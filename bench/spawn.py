"""Run a command and write its peak RSS to a file: `python -S bench/spawn.py OUT CMD ARG...`.

Linux carries a process's memory high-water mark across `exec` into `ru_maxrss`: a child started
straight from the harness (tens of MB, after importing syncd) would report at least the harness's
size. Started from this small process instead (plain `python -S`, the standard library only),
the floor is this process's own few MB. The child inherits stdin, stdout and stderr; this
process exits with the child's exit code.
"""

import json
import os
import sys


def main() -> int:
    out, *command = sys.argv[1:]
    pid = os.posix_spawnp(command[0], command, dict(os.environ))
    _, status, usage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    with open(out, "w") as handle:
        json.dump({"status": code, "maxrss_kib": usage.ru_maxrss}, handle)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
