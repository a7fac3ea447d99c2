"""Run a command and start it again whenever it exits, as docker-compose.yml's
`restart: unless-stopped` does for every Airflow service: Airflow's scheduler exits when its
metadata database goes away (a PostgreSQL restart), and production runs it under a supervisor.

usage: supervise.py COMMAND [ARGS...]    SIGTERM or SIGINT: passed to the command, then exit
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

FAST_EXIT_S = 60     # a command that ran this long starts again after 1 s; a crash loop backs off
MAX_DELAY_S = 30


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    stopping = False
    child: subprocess.Popen | None = None

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    delay = 1
    while True:
        started = time.monotonic()
        child = subprocess.Popen(argv)
        code = child.wait()
        if stopping:
            return exit_status(code)
        delay = 1 if time.monotonic() - started >= FAST_EXIT_S else min(delay * 2, MAX_DELAY_S)
        print(f"supervise: {' '.join(argv[:3])} exited with {code}; starting it again in {delay} s", flush=True)
        time.sleep(delay)
        if stopping:
            return exit_status(code)


def exit_status(code: int) -> int:
    """A command ended by signal N (returncode -N) exits as a shell reports it: 128 + N."""
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
