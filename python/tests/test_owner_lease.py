"""The owner lease: a WebUI started through a Sidecar never outlives the Python process that owns it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
from conftest import fake_instance, pids_of_instance, warden_command, write_config

from warden_client import Sidecar

PARENT = Path(__file__).with_name("owner_parent.py")
#: The issue's bound: within 2 s of the owner's death no WebUI process remains.
BOUND_S = 2.0


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


def start_owner(tmp_path: Path, extra: List[str]) -> Dict[str, Any]:
    instance = fake_instance(tmp_path, args=["--workers", "2"])
    config = write_config(tmp_path, [instance])
    # PROCESS LIFECYCLE: creates a subprocess
    # Parent tracking: the Popen handle (killed by the test itself).   Cleanup handled by: the test's SIGKILL, then
    #   the autouse sweep (pids carrying this test's instance id).   Known risks: none past the test.
    owner = subprocess.Popen([sys.executable, str(PARENT), str(config), instance["id"], warden_command(), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert owner.stdout is not None
    line = owner.stdout.readline()
    if not line:
        owner.wait(timeout=10)
        pytest.fail(f"the owner process ended before starting the WebUI: {owner.stderr.read().decode() if owner.stderr else ''}")
    started = json.loads(line)
    return {"owner": owner, "instance": instance, "state": tmp_path / "state", **started}


def sigkill_owner_and_time_the_tree(run: Dict[str, Any]) -> float:
    owner: subprocess.Popen[bytes] = run["owner"]
    before = pids_of_instance(run["instance"]["id"])
    assert len(before) >= 4, before  # bash, launch.py, 2 workers
    assert run["root"] in before
    killed_at = time.monotonic()
    owner.send_signal(signal.SIGKILL)
    owner.wait(timeout=5)  # reaped at once: the pid is gone, not a zombie
    while pids_of_instance(run["instance"]["id"]) and time.monotonic() - killed_at < 15:
        time.sleep(0.02)
    elapsed = time.monotonic() - killed_at
    print(f"owner SIGKILLed -> no WebUI process left after {elapsed:.3f} s")
    return elapsed


def test_a_sigkilled_owner_takes_its_webui_down_within_2_s(tmp_path: Path) -> None:
    run = start_owner(tmp_path, [])
    elapsed = sigkill_owner_and_time_the_tree(run)
    assert pids_of_instance(run["instance"]["id"]) == []
    assert elapsed <= BOUND_S, f"the WebUI outlived its owner by {elapsed:.2f} s"
    # warden run itself ran its confirmed shutdown and exited.
    deadline = time.monotonic() + 10
    while alive(run["warden"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(run["warden"])
    log = (run["state"] / "sidecar.log").read_text()
    assert "stopping every instance (confirmed dead), then exiting" in log
    assert "survivors 0" in log


def test_without_the_lifeline_the_owner_pid_alone_ends_the_webui_within_2_s(tmp_path: Path) -> None:
    run = start_owner(tmp_path, ["--no-lifeline"])
    assert "--lifeline" not in run["command"]
    elapsed = sigkill_owner_and_time_the_tree(run)
    assert pids_of_instance(run["instance"]["id"]) == []
    assert elapsed <= BOUND_S, f"the WebUI outlived its owner by {elapsed:.2f} s"
    log = (run["state"] / "sidecar.log").read_text()
    assert f"owner pid {run['owner'].pid} exited" in log


def test_closing_the_lifeline_ends_warden_run_with_every_tree_confirmed_dead(tmp_path: Path, make_sidecar: Any) -> None:
    instance = fake_instance(tmp_path)
    # owner_pid=0: no --owner-pid, the lifeline alone (we stay alive and just let go of the pipe).
    sidecar = make_sidecar(write_config(tmp_path, [instance]), owner_pid=0)
    assert "--owner-pid" not in sidecar.command
    sidecar.client.ensure_running(instance["id"], timeout=30)
    assert pids_of_instance(instance["id"])
    assert sidecar.process is not None and sidecar.process.stdin is not None
    sidecar.process.stdin.close()
    assert sidecar.process.wait(timeout=20) == 0
    assert pids_of_instance(instance["id"]) == []
    assert "the owner closed the lifeline" in sidecar.output()


def test_an_owner_that_is_already_gone_is_refused_and_nothing_starts(tmp_path: Path) -> None:
    instance = fake_instance(tmp_path)
    config = write_config(tmp_path, [instance])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    command = Sidecar(str(config), warden=warden_command(), owner_pid=gone.pid, lifeline=False).command
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 64
    assert f"--owner-pid {gone.pid}: no such process is running (the owner is already gone); nothing was started." in result.stderr
    assert pids_of_instance(instance["id"]) == []
    assert not (tmp_path / "state" / "server.json").exists()


def test_a_lifeline_that_is_not_a_pipe_is_refused(tmp_path: Path) -> None:
    instance = fake_instance(tmp_path)
    config = write_config(tmp_path, [instance])
    command = Sidecar(str(config), warden=warden_command(), owner_pid=0, lifeline=True).command
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 64
    assert "--lifeline: stdin must be a pipe held open by the owner" in result.stderr
    assert pids_of_instance(instance["id"]) == []
