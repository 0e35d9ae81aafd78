#!/usr/bin/env python3
"""A StableNew-style controller: drives a WebUI through Warden's control API.

It does what StableNew does around a generation session, out loud:
connect, start the WebUI and wait until it is healthy, show its state and process counts,
restart it (the old tree confirmed dead before the new one starts), stop it, and print the
termination report. Live transitions are printed from the event stream as they happen.

    python3 examples/stablenew/controller.py --state-dir .warden --instance webui
    python3 examples/stablenew/controller.py --sidecar warden.config.json --instance webui   # starts warden run itself

Exit status: 0 when every stop was confirmed with no survivors; 1 when a process survived a stop;
3 when Warden refused or failed a command (the error's code is printed); 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from warden_client import EventStream, Sidecar, WardenClient, WardenError, wait_for  # noqa: E402

EXIT_OK = 0
EXIT_SURVIVORS = 1
EXIT_ERROR = 3

_print_lock = threading.Lock()


def say(text: str = "") -> None:
    """Prints a line at once (the event thread prints too)."""
    with _print_lock:
        print(text, flush=True)


def describe(instance: Dict[str, Any]) -> str:
    """One line: state, pids and the process counts Warden sampled for this instance."""
    counts = instance.get("counts") or {}
    pids = f"pid {instance.get('pid')} (shell {instance.get('shellPid')}, python {instance.get('pythonPid')})"
    return (
        f"{instance['id']}: {instance['state']}  {pids}  restarts {instance.get('restarts', 0)}  "
        f"processes: python {counts.get('python', 0)}, shell {counts.get('shell', 0)}, total {counts.get('total', 0)}"
    )


def print_report(label: str, report: Optional[Dict[str, Any]]) -> int:
    """Prints a termination report (who was killed with which signal, who survived); returns the survivor count."""
    if report is None:
        say(f"{label}: no termination report (nothing was running)")
        say("survivors: 0")
        return 0
    killed: List[Dict[str, Any]] = report.get("killed", [])
    survivors: List[Dict[str, Any]] = report.get("survivors", [])
    escalated = "yes" if report.get("escalated") else "no"
    say(f"{label}: stopped {len(killed)} process{'' if len(killed) == 1 else 'es'} in {report.get('durationMs', 0):.0f} ms (escalated: {escalated})")
    for entry in killed:
        # "none": it exited on the polite request (A1111's server-stop) before any signal was needed.
        signal = "exited on request" if entry["signal"] == "none" else entry["signal"]
        say(f"  stopped  pid {entry['pid']:<7} {entry['name']:<10} {entry['role']:<7} {signal}")
    for entry in survivors:
        say(f"  SURVIVED pid {entry['pid']:<7} {entry['name']:<10} {entry['role']:<7} {entry.get('reason', '')}")
    say(f"survivors: {len(survivors)}")
    return len(survivors)


def follow_events(stream: EventStream, instance_id: str) -> None:
    """Prints this instance's transitions, terminations and alerts as they arrive (StableNew updates its UI here)."""
    try:
        for event in stream:
            data = event["data"] if isinstance(event["data"], dict) else {}
            if data.get("instance") not in (None, instance_id):
                continue
            if event["type"] == "transition" and data.get("from") != data.get("to"):
                say(f"  event: {instance_id} {data.get('from')} -> {data.get('to')} ({data.get('detail')})")
            elif event["type"] == "alert":
                say(f"  event: alert ({data.get('level')}): {data.get('message')}")
            elif event["type"] == "shutdown":
                say("  event: warden shut down")
    except WardenError as error:
        if not stream.closed:
            say(f"  event stream ended: {error}")


def wait_for_counts(client: WardenClient, instance_id: str, timeout: float = 10.0) -> Dict[str, Any]:
    """The instance's status once the watchdog's sampler has counted its tree (counts lag a start by one sample)."""
    latest: Dict[str, Any] = {}

    def counted() -> bool:
        latest.update(client.instance(instance_id))
        counts = latest.get("counts") or {}
        return latest.get("state") == "running" and counts.get("python", 0) > 0

    wait_for(counted, timeout)
    return latest


def run(client: WardenClient, instance_id: str, follow: bool) -> int:
    """The session: start, healthy, counts, restart, stop, report. Returns the exit status."""
    stream: Optional[EventStream] = None
    watcher: Optional[threading.Thread] = None
    if follow:
        stream = client.events()
        watcher = threading.Thread(target=follow_events, args=(stream, instance_id), name="warden-events", daemon=True)
        watcher.start()
    try:
        survivors = 0
        before = client.instance(instance_id)
        say(f"{instance_id}: {before['state']} (before the session)")

        say(f"start: waiting until {instance_id} is healthy ...")
        client.start(instance_id, wait=True)
        say(describe(wait_for_counts(client, instance_id)))

        say("restart: the old tree is stopped and confirmed dead before a new one starts ...")
        restarted = client.restart(instance_id, wait=True)["instance"]
        survivors += print_report("restart (old tree)", restarted.get("lastReport"))
        say(describe(wait_for_counts(client, instance_id)))

        say(f"stop: stopping {instance_id}; the answer comes once the shell parent and every Python process are dead ...")
        stopped = client.stop(instance_id, wait=True)
        say(f"{instance_id}: {stopped['instance']['state']}")
        survivors += print_report("stop", stopped.get("report"))

        if survivors > 0:
            say(f"FAILED: {survivors} process(es) survived a stop; Warden keeps them on record (see `warden audit`).")
            return EXIT_SURVIVORS
        say("ok: every tree was confirmed dead")
        return EXIT_OK
    finally:
        if stream is not None:
            stream.close()
        if watcher is not None:
            watcher.join(timeout=5)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Drive a WebUI through a running `warden run`, the way StableNew does.")
    parser.add_argument("--state-dir", default=".warden", help="warden's state directory (holds server.json and token); default .warden")
    parser.add_argument("--instance", default="webui", help="the instance id from warden.config.json; default webui")
    parser.add_argument("--url", help="the control API URL (default: from <state-dir>/server.json)")
    parser.add_argument("--token", help="the API token (default: from <state-dir>/token)")
    parser.add_argument("--wait-timeout", type=float, default=600.0, help="seconds a waited start or restart may take; default 600")
    parser.add_argument("--no-events", action="store_true", help="do not follow the event stream")
    parser.add_argument("--sidecar", metavar="CONFIG", help="start `warden run --config CONFIG` owned by this process (it dies with us) and stop it at the end, instead of connecting to a running one")
    parser.add_argument("--warden", help="the warden command for --sidecar (default: $WARDEN_BIN, ./node_modules/.bin/warden, npx, warden on PATH)")
    args = parser.parse_args(argv)

    sidecar: Optional[Sidecar] = None
    try:
        if args.sidecar:
            sidecar = Sidecar(args.sidecar, warden=args.warden, project_dir=os.getcwd(), wait_timeout=args.wait_timeout)
            say(f"sidecar: starting {' '.join(sidecar.command)}")
            client = sidecar.start().client
        else:
            client = WardenClient(url=args.url, token=args.token, state_dir=args.state_dir, wait_timeout=args.wait_timeout)
        say(f"connected to {client.url}" + (f" (warden pid {client.server_pid})" if client.server_pid else ""))
        status = run(client, args.instance, follow=not args.no_events)
        if sidecar is not None:
            code = sidecar.stop()
            say(f"sidecar: warden run exited {code}")
            if code != 0 and status == EXIT_OK:
                status = EXIT_SURVIVORS
        return status
    except WardenError as error:
        say(f"error {error.code}" + (f" (HTTP {error.status})" if error.status else "") + f": {error.message}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        say("interrupted; the WebUI stays under Warden's supervision" if sidecar is None else "interrupted; the sidecar stops every tree")
        return 130
    finally:
        if sidecar is not None and sidecar.running():
            sidecar.stop()


if __name__ == "__main__":
    sys.exit(main())
