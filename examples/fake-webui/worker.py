#!/usr/bin/env python3
"""Child process of the fake WebUI (Python 3 standard library only).

Two roles:

* worker (default): started by launch.py with ``--workers N`` or ``--spawn-storm``.
  It only sleeps (near-zero CPU). It does NOT watch its parent: when launch.py crashes
  the worker survives and is reparented (to init or the nearest subreaper), which is
  exactly the real-world leak the supervisor has to clean up.
* daemon (``--daemon``): the final process of launch.py's ``--daemon-grandchild``
  double fork. It has already left launch.py's session and process group; it sleeps
  forever. Only proof by environment marker finds it.

Both keep the environment they were given (the supervisor's marker variable included).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fake WebUI worker / daemon")
    parser.add_argument("--index", type=int, default=0, help="worker number (for humans reading ps)")
    parser.add_argument("--daemon", action="store_true", help="run as the escaped daemon grandchild")
    parser.add_argument("--ignore-sigterm", action="store_true", help="ignore SIGTERM; only SIGKILL ends it")
    args = parser.parse_args(argv)

    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        # Explicitly default, even if the parent had it ignored (SIG_IGN survives exec).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
